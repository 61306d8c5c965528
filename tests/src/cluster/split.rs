//! Region splits as a test drives them: split at a key through the region's leader (what the
//! `SplitRegion` RPC does), and find out from the scheduler how the key space is cut now.
//!
//! The scheduler learns about splits only from the new regions' heartbeats, so every helper
//! waits on the scheduler's view with the configured deadline.

use proto::metapb::Region;

use super::Cluster;
use crate::errors::{Error, Result};

impl Cluster {
    /// Splits `region_id` at `split_keys` through its leader once (no retry): the regions the
    /// split produced, in key order, or the store's region error.
    pub fn try_split(&self, region: &Region, split_keys: Vec<Vec<u8>>) -> Result<Vec<Region>> {
        let leader = self
            .leader_of_region(region.id)
            .ok_or_else(|| Error::Timeout {
                what: format!("the leader of region {}", region.id),
                attempts: 1,
                last: "no leader reported".into(),
            })?;
        let router = self.router(leader.store_id)?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = router.split_region(
            region.id,
            region.region_epoch.unwrap_or_default(),
            split_keys,
            raftstore::Callback::new(move |resp| {
                let _ = tx.send(resp);
            }),
        );
        let resp = rx
            .recv_timeout(self.cfg.request_timeout)
            .map_err(|_| Error::Timeout {
                what: format!("split of region {}", region.id),
                attempts: 1,
                last: "no answer".into(),
            })?;
        if let Some(e) = resp.error() {
            return Err(Error::Region(Box::new(e.clone())));
        }
        resp.response
            .admin_response
            .and_then(|a| a.splits)
            .map(|s| s.regions)
            .ok_or_else(|| Error::UnexpectedResponse("split without its regions".into()))
    }

    /// Splits the region holding `split_key` at it, retrying (fresh region, new leader) until
    /// a split is accepted, then waits until the scheduler knows a region starting at the key.
    /// Panics if that does not happen within the request timeout.
    pub fn must_split(&self, split_key: &[u8]) {
        let deadline = std::time::Instant::now() + self.cfg.request_timeout;
        loop {
            let region = self.get_region(split_key);
            if region.start_key == split_key {
                break;
            }
            match self.try_split(&region, vec![split_key.to_vec()]) {
                Ok(_) => break,
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "split at {:?}: {e}",
                        String::from_utf8_lossy(split_key)
                    );
                    std::thread::sleep(self.cfg.retry_interval);
                }
            }
        }
        self.must_wait(
            &format!(
                "the scheduler to see a region starting at {:?}",
                String::from_utf8_lossy(split_key)
            ),
            || {
                self.pd
                    .region_by_key(split_key)
                    .is_some_and(|r| r.start_key == split_key)
            },
        );
    }

    /// Waits until `a` and `b` (with `a < b`) are in different regions as the scheduler knows
    /// them; returns their regions.
    pub fn must_wait_split_between(&self, a: &[u8], b: &[u8]) -> (Region, Region) {
        let mut found = None;
        self.must_wait(
            &format!(
                "{:?} and {:?} to be in different regions",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            ),
            || {
                let (ra, rb) = (self.pd.region_by_key(a), self.pd.region_by_key(b));
                match (ra, rb) {
                    (Some(ra), Some(rb)) if ra.id != rb.id => {
                        found = Some((ra, rb));
                        true
                    }
                    _ => false,
                }
            },
        );
        found.expect("waited for it")
    }

    /// Waits until the scheduler's regions cover the whole key space without a gap or an
    /// overlap; returns them in key order.
    pub fn must_tile_key_space(&self) -> Vec<Region> {
        let mut regions = vec![];
        let mut last = String::new();
        let ok = super::wait_for(self.cfg.wait_timeout, || {
            regions = self.pd.regions();
            match check_tiling(&regions) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            }
        });
        assert!(ok, "regions do not tile the key space: {last}");
        regions
    }
}

/// Whether `regions` (in key order) cover the key space exactly.
fn check_tiling(regions: &[Region]) -> std::result::Result<(), String> {
    let mut next: &[u8] = b"";
    for (i, r) in regions.iter().enumerate() {
        if r.start_key != next {
            return Err(format!(
                "region {} starts at {:?}, expected {:?}",
                r.id,
                String::from_utf8_lossy(&r.start_key),
                String::from_utf8_lossy(next)
            ));
        }
        if r.end_key.is_empty() {
            return if i + 1 == regions.len() {
                Ok(())
            } else {
                Err(format!(
                    "region {} ends the key space but is not last",
                    r.id
                ))
            };
        }
        next = &r.end_key;
    }
    Err(format!(
        "no region covers keys from {:?}",
        String::from_utf8_lossy(next)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: u64, s: &[u8], e: &[u8]) -> Region {
        Region {
            id,
            start_key: s.to_vec(),
            end_key: e.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn tiling_finds_gaps_overlaps_and_open_ends() {
        assert!(check_tiling(&[r(1, b"", b"")]).is_ok());
        assert!(check_tiling(&[r(1, b"", b"m"), r(2, b"m", b"")]).is_ok());
        assert!(check_tiling(&[r(1, b"", b"m"), r(2, b"n", b"")]).is_err());
        assert!(check_tiling(&[r(1, b"", b"m")]).is_err());
        assert!(check_tiling(&[r(1, b"", b""), r(2, b"m", b"")]).is_err());
        assert!(check_tiling(&[]).is_err());
    }
}
