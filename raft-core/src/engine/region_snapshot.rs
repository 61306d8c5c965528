//! A snapshot restricted to one region's key range, speaking user keys.
//!
//! Both storages hand readers this type: the standalone storage with a region covering every key,
//! the Raft storage with the region a read was served from (after its read index was applied).
//! Keys going in and out are user keys; the `'z'` data prefix never leaves this module.

use proto::metapb::Region;

use super::{EngineIterator, IterOptions, Iterable, Peekable, RocksIterator, RocksSnapshot};
use crate::errors::{Error, Result};
use crate::keys;

/// A point-in-time view of the data of one region.
#[derive(Clone, Debug)]
pub struct RegionSnapshot {
    snap: RocksSnapshot,
    region: Region,
    term: u64,
}

impl RegionSnapshot {
    /// Wraps `snap` so it only exposes the data of `region`.
    pub fn new(snap: RocksSnapshot, region: Region) -> RegionSnapshot {
        RegionSnapshot {
            snap,
            region,
            term: 0,
        }
    }

    /// The same view, marked as served by the region's Raft leader in `term`.
    pub fn with_term(mut self, term: u64) -> RegionSnapshot {
        self.term = term;
        self
    }

    /// The Raft term in which the leader served this view; 0 if it did not come from Raft.
    /// Writes computed from the view carry it, so a leader that lost and regained leadership
    /// since refuses them (`StaleCommand`) instead of writing over data the view never saw.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The region whose range bounds this view.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The underlying engine snapshot (data keys, no range restriction).
    pub fn engine_snapshot(&self) -> &RocksSnapshot {
        &self.snap
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if keys::key_in_region(key, &self.region) {
            Ok(())
        } else {
            Err(Error::KeyNotInRegion {
                key: key.to_vec(),
                region: Box::new(self.region.clone()),
            })
        }
    }

    /// Reads user key `key` in `cf`. A key outside the region is an error, not a miss.
    pub fn get_value_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        self.snap.get_value_cf(cf, &keys::data_key(key))
    }

    /// Opens an iterator over user keys of `cf` in `[lower, upper)` intersected with the region
    /// (`upper` empty = no upper bound besides the region's).
    pub fn iter_cf(&self, cf: &str, lower: &[u8], upper: &[u8]) -> Result<RegionIterator> {
        let region_lower = keys::data_key(&self.region.start_key);
        let region_upper = keys::data_end_key(&self.region.end_key);
        let lower = keys::data_key(lower).max(region_lower);
        let upper = if upper.is_empty() {
            region_upper
        } else {
            keys::data_key(upper).min(region_upper)
        };
        let it = self.snap.iterator_cf(cf, IterOptions::new(lower, upper))?;
        Ok(RegionIterator { it })
    }

    /// Calls `f(user_key, value)` for every entry of `cf` in `[start, end)` within the region.
    pub fn scan_cf<F>(&self, cf: &str, start: &[u8], end: &[u8], mut f: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<bool>,
    {
        let mut it = self.iter_cf(cf, start, end)?;
        let mut ok = it.seek_to_first()?;
        while ok {
            if !f(it.key(), it.value())? {
                break;
            }
            ok = it.next()?;
        }
        Ok(())
    }
}

/// A cursor over the user keys of one column family within a region.
pub struct RegionIterator {
    it: RocksIterator,
}

impl EngineIterator for RegionIterator {
    fn seek(&mut self, key: &[u8]) -> Result<bool> {
        self.it.seek(&keys::data_key(key))
    }
    fn seek_for_prev(&mut self, key: &[u8]) -> Result<bool> {
        self.it.seek_for_prev(&keys::data_key(key))
    }
    fn seek_to_first(&mut self) -> Result<bool> {
        self.it.seek_to_first()
    }
    fn seek_to_last(&mut self) -> Result<bool> {
        self.it.seek_to_last()
    }
    fn next(&mut self) -> Result<bool> {
        self.it.next()
    }
    fn prev(&mut self) -> Result<bool> {
        self.it.prev()
    }
    fn valid(&self) -> Result<bool> {
        self.it.valid()
    }
    fn key(&self) -> &[u8] {
        keys::origin_key(self.it.key())
    }
    fn value(&self) -> &[u8] {
        self.it.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::engine::{KvEngine, Mutable, RocksEngine, CF_DEFAULT};

    #[test]
    fn view_is_bounded_by_region_and_strips_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let e = RocksEngine::open_kv(dir.path(), &EngineConfig::new_test_config()).unwrap();
        let mut wb = e.write_batch();
        for k in [&b"a"[..], b"b", b"c", b"d"] {
            wb.put_cf(CF_DEFAULT, &keys::data_key(k), k).unwrap();
        }
        // A local key sorts before every data key and must never show up.
        wb.put_cf(CF_DEFAULT, &keys::apply_state_key(1), b"meta")
            .unwrap();
        e.write(&mut wb, false).unwrap();

        let region = Region {
            id: 1,
            start_key: b"b".to_vec(),
            end_key: b"d".to_vec(),
            ..Default::default()
        };
        let snap = RegionSnapshot::new(e.snapshot(), region);
        let mut seen = vec![];
        snap.scan_cf(CF_DEFAULT, b"", b"", |k, _| {
            seen.push(k.to_vec());
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(snap.get_value_cf(CF_DEFAULT, b"c").unwrap().unwrap(), b"c");
        assert!(matches!(
            snap.get_value_cf(CF_DEFAULT, b"d"),
            Err(Error::KeyNotInRegion { .. })
        ));

        let mut it = snap.iter_cf(CF_DEFAULT, b"", b"").unwrap();
        assert!(it.seek_to_last().unwrap());
        assert_eq!(it.key(), b"c");
        assert!(it.seek_for_prev(b"bz").unwrap());
        assert_eq!(it.key(), b"b");

        let whole = RegionSnapshot::new(e.snapshot(), Region::default());
        let mut n = 0;
        whole
            .scan_cf(CF_DEFAULT, b"", b"", |_, _| {
                n += 1;
                Ok(true)
            })
            .unwrap();
        assert_eq!(n, 4);
    }
}
