//! Unit tests of `PeerStorage`: the raft-rs `Storage` contract across appends, compaction and
//! restarts, and snapshot generation, transfer, verification and application.

use std::sync::{Arc, Mutex};

use proto::metapb::{Peer, Region};
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};

use super::state::{self, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
use super::{PeerStorage, StorageContext};
use crate::config::EngineConfig;
use crate::engine::{Engines, KvEngine, Mutable, Peekable, CF_DEFAULT, CF_LOCK, CF_WRITE};
use crate::errors::Error;
use crate::keys;
use crate::snap::{decode_descriptor, GenSnapTask, SnapGenerator, SnapKey, SnapKind, SnapManager};

#[derive(Default)]
struct Queued(Mutex<Vec<GenSnapTask>>);

impl SnapGenerator for Queued {
    fn schedule(&self, task: GenSnapTask) {
        self.0.lock().unwrap().push(task);
    }
}

struct Store {
    dir: tempfile::TempDir,
    ctx: StorageContext,
    gen: Arc<Queued>,
}

fn region(id: u64, start: &[u8], end: &[u8]) -> Region {
    Region {
        id,
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        region_epoch: Some(Default::default()),
        peers: vec![Peer {
            id: 1,
            store_id: 1,
            ..Default::default()
        }],
    }
}

impl Store {
    fn new(cache_limit: usize) -> Store {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir, cache_limit)
    }

    fn open(dir: tempfile::TempDir, cache_limit: usize) -> Store {
        let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        let snap_mgr = SnapManager::new(dir.path().join("snap")).unwrap();
        let gen = Arc::new(Queued::default());
        let ctx = StorageContext {
            engines,
            snap_mgr,
            snap_gen: gen.clone(),
            entry_cache_limit: cache_limit,
        };
        Store { dir, ctx, gen }
    }

    /// Drops every handle on the engines and reopens them.
    fn reopen(self) -> Store {
        let limit = self.ctx.entry_cache_limit;
        let Store { dir, ctx, gen } = self;
        drop(gen);
        drop(ctx);
        Store::open(dir, limit)
    }

    fn bootstrap(&self, region: &Region) {
        let e = &self.ctx.engines;
        let (mut kv_wb, mut raft_wb) = (e.kv.write_batch(), e.raft.write_batch());
        state::write_initial_states(&mut kv_wb, &mut raft_wb, region).unwrap();
        e.kv.write(&mut kv_wb, true).unwrap();
        e.raft.write(&mut raft_wb, true).unwrap();
    }

    fn storage(&self, region: &Region) -> PeerStorage {
        PeerStorage::new(&self.ctx, region.clone(), 1).unwrap()
    }
}

fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("e{index}").into_bytes().into(),
        ..Default::default()
    }
}

fn append(s: &mut PeerStorage, ents: &[Entry], hs_commit: u64) {
    let e = s.engines().clone();
    let mut raft_wb = e.raft.write_batch();
    s.append(ents, &mut raft_wb).unwrap();
    let hs = HardState {
        term: ents.last().map_or(RAFT_INIT_LOG_TERM, |e| e.term),
        commit: hs_commit,
        ..Default::default()
    };
    s.set_hard_state(&hs);
    s.persist_state(&mut raft_wb).unwrap();
    e.raft.write(&mut raft_wb, true).unwrap();
}

/// Records entries as applied (and the log compacted to `truncated`, if given) the way an
/// applier would, and reports it.
fn apply_to(s: &mut PeerStorage, applied: u64, truncated: Option<u64>) {
    let mut st = *s.apply_state();
    st.applied_index = applied;
    report(s, st);
    if let Some(t) = truncated {
        st.truncated_state = Some(s.compact_log_state(t).unwrap());
        report(s, st);
    }
}

fn report(s: &mut PeerStorage, st: proto::raft_serverpb::RaftApplyState) {
    let e = s.engines().clone();
    let mut kv_wb = e.kv.write_batch();
    kv_wb
        .put_msg_cf(CF_DEFAULT, &keys::apply_state_key(s.region_id()), &st)
        .unwrap();
    e.kv.write(&mut kv_wb, true).unwrap();
    s.on_applied(st);
    let mut raft_wb = e.raft.write_batch();
    s.persist_state(&mut raft_wb).unwrap();
    e.raft.write(&mut raft_wb, true).unwrap();
}

fn entries(s: &PeerStorage, low: u64, high: u64, max: Option<u64>) -> raft::Result<Vec<Entry>> {
    s.entries(low, high, max, GetEntriesContext::empty(false))
}

fn indexes(ents: &[Entry]) -> Vec<(u64, u64)> {
    ents.iter().map(|e| (e.index, e.term)).collect()
}

#[test]
fn bootstrap_state_is_truncated_at_five() {
    let st = Store::new(1 << 20);
    let r = region(1, b"", b"");
    st.bootstrap(&r);
    let s = st.storage(&r);
    assert_eq!(s.first_index(), RAFT_INIT_LOG_INDEX + 1);
    assert_eq!(s.last_index(), RAFT_INIT_LOG_INDEX);
    assert_eq!(s.term(RAFT_INIT_LOG_INDEX).unwrap(), RAFT_INIT_LOG_TERM);
    assert_eq!(s.applied_index(), RAFT_INIT_LOG_INDEX);
    let init = s.initial_state().unwrap();
    assert_eq!(init.hard_state.commit, RAFT_INIT_LOG_INDEX);
    assert_eq!(init.hard_state.term, RAFT_INIT_LOG_TERM);
    assert_eq!(init.conf_state.voters, vec![1]);
    assert!(matches!(
        s.term(4),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert!(matches!(
        s.term(6),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
}

#[test]
fn term_entries_first_last_across_compaction_cache_and_engine() {
    // A tiny cache: most reads go to the engine, the newest to the cache.
    let st = Store::new(200);
    let r = region(1, b"", b"");
    st.bootstrap(&r);
    let mut s = st.storage(&r);
    let ents: Vec<Entry> = (6..=30).map(|i| ent(i, 6 + i / 10)).collect();
    for chunk in ents.chunks(5) {
        append(&mut s, chunk, 30);
    }
    assert!(s.cached_entries() < ents.len());
    assert_eq!(s.last_index(), 30);
    assert_eq!(s.last_term(), 9);
    assert_eq!(indexes(&entries(&s, 6, 31, None).unwrap()), indexes(&ents));
    for e in &ents {
        assert_eq!(s.term(e.index).unwrap(), e.term);
    }
    // Size limits cut at entry boundaries but always return one.
    let one = e_size(&ents[0]);
    assert_eq!(entries(&s, 6, 31, Some(0)).unwrap().len(), 1);
    assert_eq!(entries(&s, 6, 31, Some(one * 3)).unwrap().len(), 3);
    let two = e_size(&ents[19]) + e_size(&ents[20]);
    assert_eq!(entries(&s, 25, 31, Some(two)).unwrap().len(), 2);
    assert_eq!(entries(&s, 25, 31, Some(two - 1)).unwrap().len(), 1);

    apply_to(&mut s, 20, Some(15));
    assert_eq!(s.first_index(), 16);
    assert_eq!(s.truncated_term(), ents[9].term);
    assert_eq!(
        s.term(15).unwrap(),
        ents[9].term,
        "the truncated index keeps its term"
    );
    assert!(matches!(
        s.term(14),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert!(matches!(
        entries(&s, 15, 20, None),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert_eq!(
        indexes(&entries(&s, 16, 31, None).unwrap()),
        indexes(&ents[10..])
    );
    // The compacted entries are gone from the engine too.
    for i in 6..=15 {
        assert!(s
            .engines()
            .raft
            .get_value_cf(CF_DEFAULT, &keys::raft_log_key(1, i))
            .unwrap()
            .is_none());
    }
    assert!(matches!(
        s.compact_log_state(21),
        Err(Error::InvalidCompact { .. })
    ));
    assert!(matches!(
        s.compact_log_state(15),
        Err(Error::InvalidCompact { .. })
    ));
}

fn e_size(e: &Entry) -> u64 {
    u64::from(e.compute_size())
}

#[test]
fn conflicting_suffix_is_replaced_durably() {
    let st = Store::new(1 << 20);
    let r = region(1, b"", b"");
    st.bootstrap(&r);
    let mut s = st.storage(&r);
    append(&mut s, &(6..=10).map(|i| ent(i, 6)).collect::<Vec<_>>(), 5);
    // A new leader's shorter log replaces 8..=10.
    append(&mut s, &[ent(8, 7)], 5);
    assert_eq!(s.last_index(), 8);
    assert_eq!(
        indexes(&entries(&s, 6, 9, None).unwrap()),
        vec![(6, 6), (7, 6), (8, 7)]
    );
    drop(s);
    let st = st.reopen();
    let s = st.storage(&r);
    assert_eq!(s.last_index(), 8);
    assert_eq!(s.last_term(), 7);
    assert_eq!(
        indexes(&entries(&s, 6, 9, None).unwrap()),
        vec![(6, 6), (7, 6), (8, 7)]
    );
    assert!(s
        .engines()
        .raft
        .get_value_cf(CF_DEFAULT, &keys::raft_log_key(1, 9))
        .unwrap()
        .is_none());
}

#[test]
fn restart_recovers_hard_state_log_and_raises_a_lagging_commit() {
    let st = Store::new(1 << 20);
    let r = region(1, b"", b"");
    st.bootstrap(&r);
    let mut s = st.storage(&r);
    let ents: Vec<Entry> = (6..=12).map(|i| ent(i, 6)).collect();
    append(&mut s, &ents, 8);
    // The applier got further than the persisted commit index (it is written lazily).
    apply_to(&mut s, 10, None);
    let hs_before = s.raft_state().hard_state.unwrap();
    drop(s);
    let st = st.reopen();
    let s = st.storage(&r);
    let hs = s.initial_state().unwrap().hard_state;
    assert_eq!(hs.term, hs_before.term);
    assert_eq!(hs.vote, hs_before.vote);
    assert_eq!(hs.commit, 10, "commit raised to the durable applied index");
    assert_eq!(s.applied_index(), 10);
    assert_eq!(indexes(&entries(&s, 6, 13, None).unwrap()), indexes(&ents));
}

fn put_data(st: &Store, cf: &str, kvs: &[(&[u8], &[u8])]) {
    let e = &st.ctx.engines;
    let mut wb = e.kv.write_batch();
    for (k, v) in kvs {
        wb.put_cf(cf, &keys::data_key(k), v).unwrap();
    }
    e.kv.write(&mut wb, false).unwrap();
}

fn data(st: &Store, cf: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    use crate::engine::Iterable;
    let mut out = vec![];
    st.ctx
        .engines
        .kv
        .scan_cf(cf, keys::DATA_MIN_KEY, keys::DATA_MAX_KEY, false, |k, v| {
            out.push((keys::origin_key(k).to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
    out
}

/// A leader store with region [b, d) holding data in every CF, applied up to 12.
fn leader_with_data() -> (Store, Region, PeerStorage) {
    let st = Store::new(1 << 20);
    let r = region(1, b"b", b"d");
    st.bootstrap(&r);
    put_data(
        &st,
        CF_DEFAULT,
        &[
            (b"a", b"outside"),
            (b"b", b"1"),
            (b"c", b"2"),
            (b"d", b"outside"),
        ],
    );
    put_data(&st, CF_LOCK, &[(b"b", b"lock")]);
    put_data(&st, CF_WRITE, &[(b"c", b"write"), (b"c\xff", b"write2")]);
    let mut s = st.storage(&r);
    append(&mut s, &(6..=12).map(|i| ent(i, 6)).collect::<Vec<_>>(), 12);
    apply_to(&mut s, 12, None);
    (st, r, s)
}

/// Asks for a snapshot until the queued generator has produced it.
fn generate(st: &Store, s: &PeerStorage) -> Snapshot {
    assert!(matches!(
        s.snapshot(0, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
    assert!(s.is_generating_snapshot());
    assert!(matches!(
        s.snapshot(0, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
    let tasks: Vec<_> = std::mem::take(&mut *st.gen.0.lock().unwrap());
    assert_eq!(tasks.len(), 1, "one generation at a time");
    for t in tasks {
        t.run(&st.ctx.snap_mgr).unwrap();
    }
    s.snapshot(0, 2).unwrap()
}

/// Streams the generated file of `snap` from `src` into `dst` in chunks of `chunk` bytes,
/// optionally flipping one byte.
fn transfer(
    src: &Store,
    dst: &Store,
    snap: &Snapshot,
    chunk: usize,
    corrupt_at: Option<usize>,
) -> crate::Result<()> {
    let key = SnapKey::from_snapshot(1, snap);
    let desc = decode_descriptor(snap.get_data())?;
    let mut w = dst.ctx.snap_mgr.chunk_writer(&key, &desc)?;
    let mut offset = 0;
    for c in src.ctx.snap_mgr.chunk_reader(&key, chunk)? {
        let mut c = c?;
        if let Some(at) = corrupt_at {
            if at >= offset && at < offset + c.len() {
                c[at - offset] ^= 1;
            }
        }
        offset += c.len();
        w.write_chunk(&c)?;
    }
    w.finish()
}

#[test]
fn snapshot_round_trip_replaces_only_the_region_range() {
    let (leader, r, s) = leader_with_data();
    let snap = generate(&leader, &s);
    assert_eq!(snap.get_metadata().index, 12);
    assert_eq!(snap.get_metadata().term, 6);
    assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1]);
    let desc = decode_descriptor(snap.get_data()).unwrap();
    assert_eq!(desc.region.as_ref().unwrap(), &r);
    assert_eq!(desc.meta.as_ref().unwrap().cf_files.len(), 3);

    // The follower has an old log, stale data in the range and other data outside it.
    let follower = Store::new(1 << 20);
    follower.bootstrap(&r);
    put_data(
        &follower,
        CF_DEFAULT,
        &[(b"a", b"mine"), (b"bb", b"stale"), (b"z", b"mine")],
    );
    let mut f = follower.storage(&r);
    append(&mut f, &(6..=8).map(|i| ent(i, 6)).collect::<Vec<_>>(), 6);
    transfer(&leader, &follower, &snap, 7, None).unwrap();
    assert!(follower
        .ctx
        .snap_mgr
        .exists(&SnapKey::from_snapshot(1, &snap), SnapKind::Received));

    let e = follower.ctx.engines.clone();
    let (mut kv_wb, mut raft_wb) = (e.kv.write_batch(), e.raft.write_batch());
    f.set_hard_state(&HardState {
        term: 6,
        commit: 12,
        ..Default::default()
    });
    let applied = f.apply_snapshot(&snap, &mut kv_wb).unwrap();
    f.persist_state(&mut raft_wb).unwrap();
    e.kv.write(&mut kv_wb, true).unwrap();
    e.raft.write(&mut raft_wb, true).unwrap();
    assert_eq!(applied.apply_state.applied_index, 12);
    assert_eq!(f.first_index(), 13);
    assert_eq!(f.last_index(), 12);
    assert_eq!(f.term(12).unwrap(), 6);

    assert_eq!(
        data(&follower, CF_DEFAULT),
        vec![
            (b"a".to_vec(), b"mine".to_vec()),
            (b"b".to_vec(), b"1".to_vec()),
            (b"c".to_vec(), b"2".to_vec()),
            (b"z".to_vec(), b"mine".to_vec()),
        ]
    );
    assert_eq!(data(&follower, CF_LOCK), data(&leader, CF_LOCK));
    assert_eq!(data(&follower, CF_WRITE), data(&leader, CF_WRITE));
    // The old log is gone, and a restart sees the snapshot's states.
    for i in 6..=8 {
        assert!(e
            .raft
            .get_value_cf(CF_DEFAULT, &keys::raft_log_key(1, i))
            .unwrap()
            .is_none());
    }
    drop((f, e, kv_wb, raft_wb));
    let follower = follower.reopen();
    let f = follower.storage(&r);
    assert_eq!(
        (f.first_index(), f.last_index(), f.applied_index()),
        (13, 12, 12)
    );
    assert_eq!(f.initial_state().unwrap().hard_state.commit, 12);
}

#[test]
fn corrupted_or_truncated_transfers_are_rejected_and_never_published() {
    let (leader, _r, s) = leader_with_data();
    let snap = generate(&leader, &s);
    let key = SnapKey::from_snapshot(1, &snap);
    let follower = Store::new(1 << 20);
    let size = decode_descriptor(snap.get_data()).unwrap().file_size as usize;
    for at in [0, size / 2, size - 1] {
        let err = transfer(&leader, &follower, &snap, 5, Some(at)).unwrap_err();
        assert!(matches!(err, Error::CorruptedSnapshot(_)), "{err}");
        assert!(!follower.ctx.snap_mgr.exists(&key, SnapKind::Received));
    }
    // Too few bytes.
    let desc = decode_descriptor(snap.get_data()).unwrap();
    let w = follower.ctx.snap_mgr.chunk_writer(&key, &desc).unwrap();
    assert!(matches!(w.finish(), Err(Error::CorruptedSnapshot(_))));
    // Too many bytes.
    let mut w = follower.ctx.snap_mgr.chunk_writer(&key, &desc).unwrap();
    assert!(w.write_chunk(&vec![0u8; size + 1]).is_err());
    drop(w);
    assert!(
        std::fs::read_dir(follower.ctx.snap_mgr.dir())
            .unwrap()
            .next()
            .is_none(),
        "no temp files left"
    );
    // A descriptor that does not add up is refused before any byte is written.
    let mut bad = desc.clone();
    bad.file_size += 1;
    assert!(follower.ctx.snap_mgr.chunk_writer(&key, &bad).is_err());
    // And the intact transfer works.
    transfer(&leader, &follower, &snap, 5, None).unwrap();
}

#[test]
fn apply_verifies_the_file_and_leaves_the_batch_untouched_on_corruption() {
    let (leader, r, s) = leader_with_data();
    let snap = generate(&leader, &s);
    let follower = Store::new(1 << 20);
    follower.bootstrap(&r);
    transfer(&leader, &follower, &snap, 64, None).unwrap();
    // Corrupt the published file behind the manager's back.
    let key = SnapKey::from_snapshot(1, &snap);
    let path = follower.ctx.snap_mgr.path(&key, SnapKind::Received);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let mut f = follower.storage(&r);
    let mut kv_wb = follower.ctx.engines.kv.write_batch();
    let err = f.apply_snapshot(&snap, &mut kv_wb).unwrap_err();
    assert!(matches!(err, Error::CorruptedSnapshot(_)), "{err}");
    assert!(crate::engine::WriteBatch::is_empty(&kv_wb));
}

#[test]
fn interrupted_snapshot_apply_is_finished_on_restart() {
    let (leader, r, s) = leader_with_data();
    let snap = generate(&leader, &s);
    let follower = Store::new(1 << 20);
    follower.bootstrap(&r);
    let mut f = follower.storage(&r);
    // A longer, conflicting old log that a lost raft batch would otherwise leave behind.
    append(&mut f, &(6..=20).map(|i| ent(i, 6)).collect::<Vec<_>>(), 6);
    transfer(&leader, &follower, &snap, 64, None).unwrap();
    let e = follower.ctx.engines.clone();
    let mut kv_wb = e.kv.write_batch();
    f.set_hard_state(&HardState {
        term: 7,
        commit: 12,
        ..Default::default()
    });
    f.apply_snapshot(&snap, &mut kv_wb).unwrap();
    // Only the kv half reaches the disk.
    e.kv.write(&mut kv_wb, true).unwrap();
    drop((f, e, kv_wb));
    let follower = follower.reopen();
    let mut f = follower.storage(&r);
    assert_eq!(
        (f.first_index(), f.last_index(), f.applied_index()),
        (13, 12, 12)
    );
    assert_eq!(f.initial_state().unwrap().hard_state.term, 7);
    assert_eq!(f.term(12).unwrap(), 6);
    // The recovery's log cleanup is written with the next raft batch.
    let mut raft_wb = follower.ctx.engines.raft.write_batch();
    f.persist_state(&mut raft_wb).unwrap();
    follower.ctx.engines.raft.write(&mut raft_wb, true).unwrap();
    for i in 6..=20 {
        assert!(follower
            .ctx
            .engines
            .raft
            .get_value_cf(CF_DEFAULT, &keys::raft_log_key(1, i))
            .unwrap()
            .is_none());
    }
    // Recovery is idempotent and does not fire once the raft half is durable.
    drop((f, raft_wb));
    let follower = follower.reopen();
    let mut f = follower.storage(&r);
    append(&mut f, &[ent(13, 7)], 12);
    drop(f);
    let follower = follower.reopen();
    let f = follower.storage(&r);
    assert_eq!(f.last_index(), 13);
}

#[test]
fn stale_generated_snapshot_is_regenerated() {
    let (leader, _r, mut s) = leader_with_data();
    assert!(s.snapshot(0, 2).is_err());
    let task = leader.gen.0.lock().unwrap().pop().unwrap();
    // The log moves on and is compacted past the snapshot being generated.
    append(
        &mut s,
        &(13..=20).map(|i| ent(i, 6)).collect::<Vec<_>>(),
        20,
    );
    apply_to(&mut s, 20, Some(18));
    task.run(&leader.ctx.snap_mgr).unwrap();
    let stale = SnapKey::new(1, 6, 12);
    assert!(leader.ctx.snap_mgr.exists(&stale, SnapKind::Generated));
    // The stale result is dropped (and its file deleted) and a new generation starts.
    assert!(s.snapshot(0, 2).is_err());
    assert!(!leader.ctx.snap_mgr.exists(&stale, SnapKind::Generated));
    let snap = generate_after_request(&leader, &s);
    assert_eq!(snap.get_metadata().index, 20);
}

fn generate_after_request(st: &Store, s: &PeerStorage) -> Snapshot {
    for t in std::mem::take(&mut *st.gen.0.lock().unwrap()) {
        t.run(&st.ctx.snap_mgr).unwrap();
    }
    s.snapshot(0, 2).unwrap()
}

#[test]
fn failed_generation_is_retried() {
    let (leader, _r, s) = leader_with_data();
    assert!(s.snapshot(0, 2).is_err());
    // The generator loses the task (a worker crash): the next request starts over.
    leader.gen.0.lock().unwrap().clear();
    assert!(s.snapshot(0, 2).is_err());
    let snap = generate_after_request(&leader, &s);
    assert_eq!(snap.get_metadata().index, 12);
}

#[test]
fn uninitialized_peer_starts_empty() {
    let st = Store::new(1 << 20);
    let e = &st.ctx.engines;
    let (mut kv_wb, mut raft_wb) = (e.kv.write_batch(), e.raft.write_batch());
    state::write_uninitialized_states(&mut kv_wb, &mut raft_wb, 7).unwrap();
    e.kv.write(&mut kv_wb, true).unwrap();
    e.raft.write(&mut raft_wb, true).unwrap();
    let r = Region {
        id: 7,
        ..Default::default()
    };
    let s = PeerStorage::new(&st.ctx, r, 3).unwrap();
    assert!(!s.is_initialized());
    assert_eq!(
        (s.first_index(), s.last_index(), s.applied_index()),
        (1, 0, 0)
    );
    assert_eq!(s.term(0).unwrap(), 0);
    assert!(s.initial_state().unwrap().conf_state.voters.is_empty());
    let _ = st.dir.path();
}

#[test]
fn entry_encoding_is_rust_protobuf() {
    // The raft engine stores raft-rs's own encoding; prost's eraftpb decodes it identically.
    let st = Store::new(1 << 20);
    let r = region(1, b"", b"");
    st.bootstrap(&r);
    let mut s = st.storage(&r);
    append(&mut s, &[ent(6, 6)], 5);
    let raw = s
        .engines()
        .raft
        .get_value_cf(CF_DEFAULT, &keys::raft_log_key(1, 6))
        .unwrap()
        .unwrap();
    let decoded = <proto::eraftpb::Entry as prost::Message>::decode(raw.as_slice()).unwrap();
    assert_eq!(
        (decoded.index, decoded.term, decoded.data),
        (6, 6, b"e6".to_vec())
    );
}
