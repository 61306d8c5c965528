//! The split-check worker: measures a region and picks its split keys, off the pollers.
//!
//! **Size.** RocksDB's range estimate (SST properties plus a share of the memtables) over the
//! three data column families. Below `split-check-scan-limit` the estimate is too coarse to
//! decide on (a few hundred bytes of a fresh region are dominated by memtable attribution), so
//! the region is scanned and measured exactly (keys plus values, every column family); above it
//! the estimate is trusted and only the part needed for the split keys is scanned.
//!
//! **Split keys.** Over the region's entries in key order (the three column families merged),
//! a split key is due every `region-split-size` bytes, at most `batch-split-limit` of them, and
//! only if the region exceeds `region-max-size`. The key itself is taken from the first entry of
//! the *key column family* at or after that point:
//! - if the region has data in CF `write`, it holds transactional data: keys come from `write`
//!   with their 8-byte timestamp suffix stripped, giving an encoded user key, so every version of
//!   a user key stays on one side;
//! - otherwise (raw data) keys come from CF `default` (or `lock`, if that is all there is) as
//!   they are.
//!
//! A key that does not move past the region's start or the previous split key (versions of the
//! same user key) is skipped.

use std::fmt;

use proto::metapb::Region;
use raft_core::engine::{
    EngineIterator, IterOptions, Iterable, KvEngine, RocksEngine, RocksIterator, RocksSnapshot,
    CF_DEFAULT, CF_LOCK, CF_WRITE, DATA_CFS,
};
use raft_core::keys;

use super::Runnable;
use crate::errors::Result;
use crate::msg::{PeerMsg, SplitCheckResult};
use crate::router::Router;

/// Length of the timestamp suffix of a transactional `write` key.
const TS_LEN: usize = 8;
/// Entries read to estimate the average entry size when the size comes from RocksDB's estimate.
const SAMPLE_ENTRIES: u64 = 256;

/// What a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckPolicy {
    /// Split when larger than `max_size`, every `split_size` bytes.
    Size,
    /// Split once, in the middle (a scheduler's split operator without keys).
    Half,
}

/// Measure a region and find its split keys.
#[derive(Debug, Clone)]
pub struct SplitCheckTask {
    /// The region, as its leader knew it (the result carries its epoch).
    pub region: Region,
    /// What to look for.
    pub policy: CheckPolicy,
    /// `region-max-size`.
    pub max_size: u64,
    /// `region-split-size`.
    pub split_size: u64,
    /// `batch-split-limit`.
    pub batch_limit: usize,
    /// `split-check-scan-limit`.
    pub scan_limit: u64,
}

impl fmt::Display for SplitCheckTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "split check of region {} ({:?})",
            self.region.id, self.policy
        )
    }
}

/// Runs [`SplitCheckTask`]s against the kv engine and reports to the region's peer.
pub struct SplitCheckRunner {
    kv: RocksEngine,
    router: Router,
}

impl SplitCheckRunner {
    /// A runner reading `kv` and answering through `router`.
    pub fn new(kv: RocksEngine, router: Router) -> Self {
        SplitCheckRunner { kv, router }
    }
}

impl Runnable for SplitCheckRunner {
    type Task = SplitCheckTask;

    fn run(&mut self, task: SplitCheckTask) {
        let region_id = task.region.id;
        match check(&self.kv, &task) {
            Ok(res) => {
                tracing::debug!(
                    region_id,
                    size = res.approximate_size,
                    keys = res.approximate_keys,
                    split_keys = res.split_keys.len(),
                    "split check done"
                );
                let _ = self
                    .router
                    .send_peer(region_id, PeerMsg::SplitCheckResult(Box::new(res)));
            }
            Err(e) => tracing::warn!(region_id, error = %e, "split check failed"),
        }
    }
}

/// The three data column families of a region, merged in key order.
struct MergedIter {
    iters: Vec<(&'static str, RocksIterator, bool)>,
}

impl MergedIter {
    fn new(snap: &RocksSnapshot, start: &[u8], end: &[u8]) -> Result<MergedIter> {
        let mut iters = Vec::with_capacity(DATA_CFS.len());
        for cf in DATA_CFS {
            let mut opts = IterOptions::new(start.to_vec(), end.to_vec());
            // A one-off scan: keep the block cache for hot data.
            opts.fill_cache = false;
            let mut it = snap.iterator_cf(cf, opts)?;
            let valid = it.seek_to_first()?;
            iters.push((*cf, it, valid));
        }
        Ok(MergedIter { iters })
    }

    /// Calls `f(cf, data key, value length)` for each entry in key order until it returns
    /// `false` or the entries run out.
    fn for_each(&mut self, mut f: impl FnMut(&str, &[u8], usize) -> bool) -> Result<()> {
        loop {
            let mut min: Option<usize> = None;
            for (i, (_, it, valid)) in self.iters.iter().enumerate() {
                if *valid && min.is_none_or(|m| it.key() < self.iters[m].1.key()) {
                    min = Some(i);
                }
            }
            let Some(i) = min else {
                return Ok(());
            };
            let (cf, it, valid) = &mut self.iters[i];
            if !f(cf, it.key(), it.value().len()) {
                return Ok(());
            }
            *valid = it.next()?;
        }
    }
}

/// Which column family split keys come from, and whether its keys carry a timestamp.
fn key_source(snap: &RocksSnapshot, start: &[u8], end: &[u8]) -> Result<(&'static str, bool)> {
    let has_data = |cf: &str| -> Result<bool> {
        let mut it = snap.iterator_cf(cf, IterOptions::new(start.to_vec(), end.to_vec()))?;
        Ok(it.seek_to_first()?)
    };
    if has_data(CF_WRITE)? {
        return Ok((CF_WRITE, true));
    }
    if has_data(CF_DEFAULT)? {
        return Ok((CF_DEFAULT, false));
    }
    Ok((CF_LOCK, false))
}

/// The user-key boundary a key of the key column family gives.
fn boundary(data_key: &[u8], strip_ts: bool) -> &[u8] {
    let key = keys::origin_key(data_key);
    if strip_ts && key.len() > TS_LEN {
        &key[..key.len() - TS_LEN]
    } else {
        key
    }
}

/// Collects split keys while walking a region's entries.
struct KeyPicker<'a> {
    region: &'a Region,
    source: &'static str,
    strip_ts: bool,
    /// Bytes between two split keys.
    every: u64,
    limit: usize,
    chunk: u64,
    want: bool,
    /// A split key must be past this: the first key's boundary, then the last split key (no
    /// empty region on the left, no user key split across regions).
    floor: Option<Vec<u8>>,
    keys: Vec<Vec<u8>>,
}

impl KeyPicker<'_> {
    fn done(&self) -> bool {
        self.keys.len() >= self.limit
    }

    /// Accounts one entry; returns whether more keys are wanted.
    fn add(&mut self, cf: &str, data_key: &[u8], size: u64) -> bool {
        if self.done() {
            return false;
        }
        if cf == self.source {
            let key = boundary(data_key, self.strip_ts);
            match &self.floor {
                None => self.floor = Some(key.to_vec()),
                Some(floor) if self.want && key > floor.as_slice() => {
                    if keys::key_in_region(key, self.region) && key > &self.region.start_key[..] {
                        self.keys.push(key.to_vec());
                        self.floor = Some(key.to_vec());
                        self.want = false;
                        self.chunk = 0;
                        if self.done() {
                            return false;
                        }
                    }
                }
                Some(_) => {}
            }
        }
        self.chunk += size;
        if self.chunk >= self.every {
            self.want = true;
        }
        true
    }
}

/// Measures `task.region` and picks its split keys (see the module docs).
pub(crate) fn check(kv: &RocksEngine, task: &SplitCheckTask) -> Result<SplitCheckResult> {
    let region = &task.region;
    let (start, end) = (
        keys::data_key(&region.start_key),
        keys::data_end_key(&region.end_key),
    );
    let mut estimate = 0u64;
    for cf in DATA_CFS {
        estimate += kv.approximate_size_cf(cf, &start, &end)?;
    }
    let snap = kv.snapshot();
    let (source, strip_ts) = key_source(&snap, &start, &end)?;
    let exact = estimate < task.scan_limit;

    // Pass 1: the size (exact below the scan limit; estimated above it from a sample).
    let (mut size, mut entries) = (0u64, 0u64);
    // Sizes count user keys (without the data prefix) and values.
    let entry_size = |k: &[u8], v: usize| (k.len() - 1 + v) as u64;
    MergedIter::new(&snap, &start, &end)?.for_each(|_, k, v| {
        size += entry_size(k, v);
        entries += 1;
        exact || entries < SAMPLE_ENTRIES
    })?;
    if !exact {
        let avg = size.checked_div(entries).unwrap_or(1).max(1);
        size = estimate.max(size);
        entries = size / avg;
    }

    // Pass 2: the split keys, if the region is to be split.
    let (every, limit) = match task.policy {
        CheckPolicy::Size if size > task.max_size => (task.split_size.max(1), task.batch_limit),
        CheckPolicy::Half if size > 1 => ((size / 2).max(1), 1),
        _ => (u64::MAX, 0),
    };
    let mut picker = KeyPicker {
        region,
        source,
        strip_ts,
        every,
        limit,
        chunk: 0,
        want: false,
        floor: None,
        keys: vec![],
    };
    if limit > 0 {
        MergedIter::new(&snap, &start, &end)?
            .for_each(|cf, k, v| picker.add(cf, k, entry_size(k, v)))?;
    }
    Ok(SplitCheckResult {
        epoch: region.region_epoch.unwrap_or_default(),
        approximate_size: size,
        approximate_keys: entries,
        split_keys: picker.keys,
    })
}

#[cfg(test)]
mod tests {
    use raft_core::config::EngineConfig;
    use raft_core::engine::Engines;

    use super::*;

    fn task(region: Region, policy: CheckPolicy, max: u64, split: u64) -> SplitCheckTask {
        SplitCheckTask {
            region,
            policy,
            max_size: max,
            split_size: split,
            batch_limit: 10,
            scan_limit: 1 << 30,
        }
    }

    fn region(start: &[u8], end: &[u8]) -> Region {
        Region {
            id: 1,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn raw_regions_split_every_split_size_inside_their_range() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        // 100 entries of 10 bytes (key 4 + value 6) in default, one outside the region.
        for i in 0..100u32 {
            let k = format!("k{i:03}");
            e.kv.put_cf(CF_DEFAULT, &keys::data_key(k.as_bytes()), b"vvvvvv")
                .unwrap();
        }
        e.kv.put_cf(CF_DEFAULT, &keys::data_key(b"zzz"), &[0; 4096])
            .unwrap();
        let r = region(b"k", b"l");
        let res = check(&e.kv, &task(r.clone(), CheckPolicy::Size, 2000, 1000)).unwrap();
        assert_eq!((res.approximate_size, res.approximate_keys), (1000, 100));
        assert!(res.split_keys.is_empty(), "not above the maximum");

        let res = check(&e.kv, &task(r.clone(), CheckPolicy::Size, 500, 300)).unwrap();
        let keys: Vec<String> = res
            .split_keys
            .iter()
            .map(|k| String::from_utf8(k.clone()).unwrap())
            .collect();
        assert_eq!(keys, vec!["k030", "k060", "k090"]);

        let res = check(&e.kv, &task(r, CheckPolicy::Half, u64::MAX, 1)).unwrap();
        assert_eq!(res.split_keys, vec![b"k050".to_vec()]);
    }

    #[test]
    fn transactional_split_keys_drop_the_timestamp_and_never_split_versions() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        // Three "user keys" (9-byte encoded form), each with 10 versions of 20-byte values.
        for user in [b'a', b'b', b'c'] {
            let enc = [user, 0, 0, 0, 0, 0, 0, 0, 0xF8];
            for ts in 0..10u64 {
                let mut k = enc.to_vec();
                k.extend_from_slice(&(!ts).to_be_bytes());
                e.kv.put_cf(CF_WRITE, &keys::data_key(&k), &[1; 20])
                    .unwrap();
            }
        }
        let res = check(&e.kv, &task(region(b"", b""), CheckPolicy::Size, 100, 50)).unwrap();
        assert_eq!(
            res.split_keys,
            vec![
                vec![b'b', 0, 0, 0, 0, 0, 0, 0, 0xF8],
                vec![b'c', 0, 0, 0, 0, 0, 0, 0, 0xF8]
            ],
            "one key per user key at most, without the timestamp"
        );
    }
}
