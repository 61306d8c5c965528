//! Every key the store writes is built here; nothing else concatenates key bytes by hand.
//!
//! Layout (big-endian u64s, so keys of one region sort by index):
//!
//! ```text
//! kv engine                                   raft engine
//! ---------                                   -----------
//! 0x01 0x01                 StoreIdent        0x01 0x02 <region> 0x01 <index>  raft log entry
//! 0x01 0x02                 prepare-bootstrap 0x01 0x02 <region> 0x02          RaftLocalState
//! 0x01 0x02 <region> 0x03   RaftApplyState
//! 0x01 0x02 <region> 0x04   RaftLocalState written with the last applied snapshot
//! 0x01 0x03 <region> 0x01   RegionLocalState
//! 'z' <user key>            data (CFs default/lock/write)
//! ```
//!
//! Local (metadata) keys start with 0x01 and data keys with `'z'`, so a scan of the data range never
//! sees metadata. Region ranges `[start, end)` on user keys map to `[data_key(start),
//! data_end_key(end))`, where an empty end means "up to `DATA_MAX_KEY`".

/// Prefix of every local (metadata) key.
pub const LOCAL_PREFIX: u8 = 0x01;
/// Smallest local key.
pub const LOCAL_MIN_KEY: &[u8] = &[LOCAL_PREFIX];
/// Upper bound of all local keys (exclusive).
pub const LOCAL_MAX_KEY: &[u8] = &[LOCAL_PREFIX + 1];

/// Prefix of every data key.
pub const DATA_PREFIX: u8 = b'z';
/// Smallest data key (the data key of the empty user key).
pub const DATA_MIN_KEY: &[u8] = &[DATA_PREFIX];
/// Upper bound of all data keys (exclusive): the data key of "+infinity".
pub const DATA_MAX_KEY: &[u8] = &[DATA_PREFIX + 1];

/// Key of the `StoreIdent` record (kv engine).
pub const STORE_IDENT_KEY: &[u8] = &[LOCAL_PREFIX, 0x01];
/// Key of the region written before bootstrap completes (kv engine).
pub const PREPARE_BOOTSTRAP_KEY: &[u8] = &[LOCAL_PREFIX, 0x02];

const REGION_RAFT_PREFIX: u8 = 0x02;
const REGION_META_PREFIX: u8 = 0x03;

const RAFT_LOG_SUFFIX: u8 = 0x01;
const RAFT_STATE_SUFFIX: u8 = 0x02;
const APPLY_STATE_SUFFIX: u8 = 0x03;
const SNAPSHOT_RAFT_STATE_SUFFIX: u8 = 0x04;
const REGION_STATE_SUFFIX: u8 = 0x01;

const REGION_PREFIX_LEN: usize = 2 + 8;

fn region_prefix(kind: u8, region_id: u64, suffix: u8, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(REGION_PREFIX_LEN + 1 + extra);
    key.push(LOCAL_PREFIX);
    key.push(kind);
    key.extend_from_slice(&region_id.to_be_bytes());
    key.push(suffix);
    key
}

/// Key of raft log entry `index` of `region_id` (raft engine).
pub fn raft_log_key(region_id: u64, index: u64) -> Vec<u8> {
    let mut key = region_prefix(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX, 8);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// Prefix shared by every raft log key of `region_id`; `raft_log_key(r, 0)..raft_log_key(r,
/// u64::MAX)` spans the whole log.
pub fn raft_log_prefix(region_id: u64) -> Vec<u8> {
    region_prefix(REGION_RAFT_PREFIX, region_id, RAFT_LOG_SUFFIX, 0)
}

/// Decodes the index from a raft log key of `region_id`; `None` if `key` is not one.
pub fn raft_log_index(region_id: u64, key: &[u8]) -> Option<u64> {
    let prefix = raft_log_prefix(region_id);
    if key.len() != prefix.len() + 8 || !key.starts_with(&prefix) {
        return None;
    }
    let mut idx = [0u8; 8];
    idx.copy_from_slice(&key[prefix.len()..]);
    Some(u64::from_be_bytes(idx))
}

/// Key of the `RaftLocalState` of `region_id` (raft engine).
pub fn raft_state_key(region_id: u64) -> Vec<u8> {
    region_prefix(REGION_RAFT_PREFIX, region_id, RAFT_STATE_SUFFIX, 0)
}

/// Key of the `RaftApplyState` of `region_id` (kv engine).
pub fn apply_state_key(region_id: u64) -> Vec<u8> {
    region_prefix(REGION_RAFT_PREFIX, region_id, APPLY_STATE_SUFFIX, 0)
}

/// Key of the `RaftLocalState` that a snapshot apply writes to the kv engine, atomically with the
/// snapshot's data, so a restart can finish the raft-engine half of the apply (kv engine).
pub fn snapshot_raft_state_key(region_id: u64) -> Vec<u8> {
    region_prefix(REGION_RAFT_PREFIX, region_id, SNAPSHOT_RAFT_STATE_SUFFIX, 0)
}

/// Key of the `RegionLocalState` of `region_id` (kv engine).
pub fn region_state_key(region_id: u64) -> Vec<u8> {
    region_prefix(REGION_META_PREFIX, region_id, REGION_STATE_SUFFIX, 0)
}

/// Range `[start, end)` covering every `RegionLocalState` key, for loading all regions at start.
pub fn region_state_range() -> (Vec<u8>, Vec<u8>) {
    (
        vec![LOCAL_PREFIX, REGION_META_PREFIX],
        vec![LOCAL_PREFIX, REGION_META_PREFIX + 1],
    )
}

/// Decodes the region id from a `RegionLocalState` key; `None` if `key` is not one.
pub fn region_id_from_state_key(key: &[u8]) -> Option<u64> {
    if key.len() != REGION_PREFIX_LEN + 1
        || key[0] != LOCAL_PREFIX
        || key[1] != REGION_META_PREFIX
        || key[REGION_PREFIX_LEN] != REGION_STATE_SUFFIX
    {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&key[2..REGION_PREFIX_LEN]);
    Some(u64::from_be_bytes(id))
}

/// The data key (what the kv engine stores) of user key `key`.
pub fn data_key(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + key.len());
    v.push(DATA_PREFIX);
    v.extend_from_slice(key);
    v
}

/// The data key of a region's (exclusive) end key; the empty end key means +infinity.
pub fn data_end_key(region_end_key: &[u8]) -> Vec<u8> {
    if region_end_key.is_empty() {
        DATA_MAX_KEY.to_vec()
    } else {
        data_key(region_end_key)
    }
}

/// Strips the data prefix, giving back the user key. Panics on a key outside the data range:
/// callers only pass keys they read from a data-bounded iterator.
pub fn origin_key(data_key: &[u8]) -> &[u8] {
    assert!(
        validate_data_key(data_key),
        "not a data key: {:?}",
        data_key
    );
    &data_key[1..]
}

/// Whether `key` is a data key.
pub fn validate_data_key(key: &[u8]) -> bool {
    key.first() == Some(&DATA_PREFIX)
}

/// Whether user key `key` lies in the region range `[start, end)` (empty end = +infinity).
pub fn key_in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    key >= start && (end.is_empty() || key < end)
}

/// Whether `key` lies in `region`.
pub fn key_in_region(key: &[u8], region: &proto::metapb::Region) -> bool {
    key_in_range(key, &region.start_key, &region.end_key)
}

/// Whether the user-key range `[start, end)` (empty end = +infinity) lies inside `region`.
pub fn range_in_region(start: &[u8], end: &[u8], region: &proto::metapb::Region) -> bool {
    if !key_in_region(start, region) {
        return false;
    }
    match (end.is_empty(), region.end_key.is_empty()) {
        (_, true) => true,
        (true, false) => false,
        (false, false) => end <= &region.end_key[..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_log_keys_sort_by_region_then_index() {
        let mut keys = [
            raft_log_key(2, 1),
            raft_log_key(1, 300),
            raft_log_key(1, 2),
            raft_state_key(1),
            raft_log_key(1, u64::MAX),
        ];
        keys.sort();
        assert_eq!(keys[0], raft_log_key(1, 2));
        assert_eq!(keys[1], raft_log_key(1, 300));
        assert_eq!(keys[2], raft_log_key(1, u64::MAX));
        // The state key follows the region's whole log, so log scans never reach it.
        assert_eq!(keys[3], raft_state_key(1));
        assert_eq!(keys[4], raft_log_key(2, 1));
        assert_eq!(raft_log_index(1, &raft_log_key(1, 77)), Some(77));
        assert_eq!(raft_log_index(2, &raft_log_key(1, 77)), None);
        assert_eq!(raft_log_index(1, &raft_state_key(1)), None);
    }

    #[test]
    fn local_and_data_keys_never_collide() {
        for k in [
            STORE_IDENT_KEY.to_vec(),
            PREPARE_BOOTSTRAP_KEY.to_vec(),
            apply_state_key(u64::MAX),
            snapshot_raft_state_key(u64::MAX),
            region_state_key(u64::MAX),
            raft_state_key(7),
        ] {
            assert!(k.as_slice() >= LOCAL_MIN_KEY && k.as_slice() < LOCAL_MAX_KEY);
            assert!(!validate_data_key(&k));
        }
        assert!(data_key(b"").as_slice() >= DATA_MIN_KEY);
        assert!(data_key(&[0xff; 64]).as_slice() < DATA_MAX_KEY);
        assert_eq!(origin_key(&data_key(b"abc")), b"abc");
        assert_eq!(data_end_key(b""), DATA_MAX_KEY);
    }

    #[test]
    fn region_state_keys_round_trip_and_are_in_range() {
        let (start, end) = region_state_range();
        for id in [0, 1, 42, u64::MAX] {
            let k = region_state_key(id);
            assert!(k >= start && k < end);
            assert_eq!(region_id_from_state_key(&k), Some(id));
        }
        assert!(apply_state_key(1) < start);
        assert_eq!(region_id_from_state_key(&apply_state_key(1)), None);
    }

    #[test]
    fn range_checks() {
        let region = proto::metapb::Region {
            start_key: b"b".to_vec(),
            end_key: b"d".to_vec(),
            ..Default::default()
        };
        assert!(!key_in_region(b"a", &region));
        assert!(key_in_region(b"b", &region));
        assert!(key_in_region(b"c\xff", &region));
        assert!(!key_in_region(b"d", &region));
        assert!(range_in_region(b"b", b"d", &region));
        assert!(!range_in_region(b"b", b"", &region));
        assert!(!range_in_region(b"b", b"e", &region));
        let all = proto::metapb::Region::default();
        assert!(key_in_region(b"", &all) && range_in_region(b"", b"", &all));
    }
}
