//! One node of the test network: engines, group, applier, snapshot generator.

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use proto::metapb::{Peer, Region, RegionEpoch};
use proto::raft_serverpb::{KeyValue, PeerState, RaftApplyState};
use raft::eraftpb::{Entry, EntryType, Message};
use raft::ReadState;
use raft_core::conf_change::{apply_conf_change_to_region, decode_conf_change};
use raft_core::config::{EngineConfig, RaftConfig};
use raft_core::engine::{
    Engines, Iterable, KvEngine, Mutable, Peekable, WriteBatch, CF_DEFAULT, DATA_CFS,
};
use raft_core::snap::{GenSnapTask, SnapGenerator, SnapManager};
use raft_core::storage::state;
use raft_core::{
    keys, AppliedConfChange, Applier, ApplyResult, ApplyTask, GroupStatus, PeerStorage,
    ProposalCallback, RaftGroup, StorageContext,
};

use super::REGION_ID;

/// Proposal callback of the tests: `Ok(index)` once applied, `Err(message)` otherwise.
pub struct TestCb(pub Sender<Result<u64, String>>);

impl ProposalCallback for TestCb {
    fn fail(self, err: raft_core::Error) {
        let _ = self.0.send(Err(err.to_string()));
    }
}

/// Entry payload of a put.
pub fn encode_put(key: &[u8], value: &[u8]) -> Vec<u8> {
    KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
    }
    .encode_to_vec()
}

/// Queues generation tasks; the node runs them when it processes, keeping tests deterministic.
#[derive(Default)]
struct QueuedGenerator {
    tasks: Mutex<Vec<GenSnapTask>>,
}

impl SnapGenerator for QueuedGenerator {
    fn schedule(&self, task: GenSnapTask) {
        self.tasks.lock().unwrap().push(task);
    }
}

/// Applies puts and conf changes; every applied index is recorded (across restarts).
struct KvApplier {
    engines: Engines,
    region: Region,
    apply_state: RaftApplyState,
}

impl KvApplier {
    fn load(engines: &Engines, region: Region) -> KvApplier {
        let apply_state = state::load_apply_state(&engines.kv, REGION_ID)
            .unwrap()
            .unwrap_or_default();
        KvApplier {
            engines: engines.clone(),
            region,
            apply_state,
        }
    }

    fn apply_task(&mut self, task: ApplyTask<TestCb>, applied_log: &mut Vec<u64>) -> ApplyResult {
        if let Some(s) = &task.snapshot {
            self.apply_state = s.apply_state;
            self.region = s.region.clone();
        }
        let mut wb = self.engines.kv.write_batch();
        let mut conf_changes = vec![];
        for e in &task.entries {
            assert_eq!(
                e.index,
                self.apply_state.applied_index + 1,
                "entries must be applied in order, once"
            );
            self.apply_entry(e, &mut wb, &mut conf_changes);
            self.apply_state.applied_index = e.index;
            self.apply_state.commit_index = e.index;
            self.apply_state.commit_term = e.term;
            applied_log.push(e.index);
        }
        wb.put_msg_cf(
            CF_DEFAULT,
            &keys::apply_state_key(REGION_ID),
            &self.apply_state,
        )
        .unwrap();
        self.engines.kv.write(&mut wb, false).unwrap();
        for p in task.proposals {
            let _ = p.callback.0.send(Ok(p.index));
        }
        ApplyResult {
            apply_state: self.apply_state,
            conf_changes,
            region: None,
        }
    }

    fn apply_entry(
        &mut self,
        e: &Entry,
        wb: &mut impl Mutable,
        conf_changes: &mut Vec<AppliedConfChange>,
    ) {
        match e.get_entry_type() {
            EntryType::EntryNormal if e.get_data().is_empty() => {}
            EntryType::EntryNormal => {
                let kv = KeyValue::decode(e.get_data()).expect("test entries are puts");
                wb.put_cf(CF_DEFAULT, &keys::data_key(&kv.key), &kv.value)
                    .unwrap();
            }
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                let cc = decode_conf_change(e).unwrap();
                let new_peers: Vec<Peer> = cc
                    .get_changes()
                    .iter()
                    .map(|c| Peer {
                        id: c.node_id,
                        store_id: c.node_id,
                        ..Default::default()
                    })
                    .collect();
                // A change refused here was refused on proposal too; raft-rs must not see it.
                if let Ok(region) = apply_conf_change_to_region(&self.region, &cc, &new_peers) {
                    let mut rs = proto::raft_serverpb::RegionLocalState {
                        region: Some(region.clone()),
                        ..Default::default()
                    };
                    rs.set_state(PeerState::Normal);
                    wb.put_msg_cf(CF_DEFAULT, &keys::region_state_key(REGION_ID), &rs)
                        .unwrap();
                    self.region = region.clone();
                    conf_changes.push(AppliedConfChange {
                        index: e.index,
                        change: cc,
                        region,
                    });
                }
            }
        }
    }
}

/// `handle_ready`'s applier view of a node.
struct InlineApplier<'a> {
    applier: &'a mut KvApplier,
    applied_log: &'a mut Vec<u64>,
}

impl Applier<TestCb> for InlineApplier<'_> {
    fn apply(&mut self, task: ApplyTask<TestCb>) -> raft_core::Result<ApplyResult> {
        Ok(self.applier.apply_task(task, self.applied_log))
    }
}

/// What one processing pass produced.
pub struct Processed {
    pub progressed: bool,
    pub messages: Vec<Message>,
}

/// One node.
pub struct Node {
    pub id: u64,
    dir: tempfile::TempDir,
    snap_mgr: SnapManager,
    generator: Arc<QueuedGenerator>,
    running: Option<Running>,
    /// Apply tasks are held back while set (entries stay committed but unapplied).
    pub apply_paused: bool,
    /// Drive this node with `handle_ready` instead of the two-phase API.
    pub one_call: bool,
    /// Every index applied, in order, across restarts.
    pub applied_log: Vec<u64>,
    /// Read states received, in order.
    pub read_states: Vec<ReadState>,
    /// Removed from the region and destroyed.
    pub destroyed: bool,
}

struct Running {
    engines: Engines,
    group: RaftGroup<TestCb>,
    applier: KvApplier,
    apply_queue: VecDeque<ApplyTask<TestCb>>,
}

fn region_with(voters: &[u64]) -> Region {
    Region {
        id: REGION_ID,
        start_key: vec![],
        end_key: vec![],
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: voters
            .iter()
            .map(|id| Peer {
                id: *id,
                store_id: *id,
                ..Default::default()
            })
            .collect(),
    }
}

impl Node {
    fn new_dir(id: u64) -> (tempfile::TempDir, SnapManager) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("raft-core-node{id}-"))
            .tempdir()
            .unwrap();
        let snap_mgr = SnapManager::new(dir.path().join("snap")).unwrap();
        (dir, snap_mgr)
    }

    fn open(id: u64, dir: tempfile::TempDir, snap_mgr: SnapManager, cfg: &RaftConfig) -> Node {
        let mut node = Node {
            id,
            dir,
            snap_mgr,
            generator: Arc::new(QueuedGenerator::default()),
            running: None,
            apply_paused: false,
            one_call: false,
            applied_log: vec![],
            read_states: vec![],
            destroyed: false,
        };
        node.restart(cfg);
        node
    }

    /// A bootstrapped voter of a region with `voters`.
    pub fn bootstrap(id: u64, voters: &[u64], cfg: &RaftConfig) -> Node {
        let (dir, snap_mgr) = Node::new_dir(id);
        let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
        state::write_initial_states(&mut kv_wb, &mut raft_wb, &region_with(voters)).unwrap();
        engines.kv.write(&mut kv_wb, true).unwrap();
        engines.raft.write(&mut raft_wb, true).unwrap();
        // Batches hold the DB too: everything must be closed before the node reopens it.
        drop((engines, kv_wb, raft_wb));
        Node::open(id, dir, snap_mgr, cfg)
    }

    /// A peer created empty, waiting for a snapshot.
    pub fn empty(id: u64, cfg: &RaftConfig) -> Node {
        let (dir, snap_mgr) = Node::new_dir(id);
        let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
        state::write_uninitialized_states(&mut kv_wb, &mut raft_wb, REGION_ID).unwrap();
        engines.kv.write(&mut kv_wb, true).unwrap();
        engines.raft.write(&mut raft_wb, true).unwrap();
        // Batches hold the DB too: everything must be closed before the node reopens it.
        drop((engines, kv_wb, raft_wb));
        Node::open(id, dir, snap_mgr, cfg)
    }

    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }

    fn running(&self) -> &Running {
        self.running
            .as_ref()
            .unwrap_or_else(|| panic!("node {} is down", self.id))
    }

    pub fn group(&self) -> &RaftGroup<TestCb> {
        &self.running().group
    }

    pub fn group_mut(&mut self) -> &mut RaftGroup<TestCb> {
        let id = self.id;
        &mut self
            .running
            .as_mut()
            .unwrap_or_else(|| panic!("node {id} is down"))
            .group
    }

    pub fn status(&self) -> GroupStatus {
        self.group().status()
    }

    pub fn engines(&self) -> &Engines {
        &self.running().engines
    }

    pub fn snap_mgr(&self) -> &SnapManager {
        &self.snap_mgr
    }

    /// The value of `key` in this node's kv engine.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.engines()
            .kv
            .get_value_cf(CF_DEFAULT, &keys::data_key(key))
            .unwrap()
    }

    /// Every data record of every data column family.
    pub fn all_data(&self) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
        let mut out = vec![];
        for cf in DATA_CFS {
            self.engines()
                .kv
                .scan_cf(cf, keys::DATA_MIN_KEY, keys::DATA_MAX_KEY, false, |k, v| {
                    out.push((*cf, k.to_vec(), v.to_vec()));
                    Ok(true)
                })
                .unwrap();
        }
        out
    }

    /// The log as (index, term, data) from the first index to the last, read through raft-rs's
    /// `Storage` contract.
    pub fn log(&self) -> Vec<(u64, u64, Vec<u8>)> {
        let s = self.group().storage();
        raft::Storage::entries(
            s,
            s.first_index(),
            s.last_index() + 1,
            None,
            raft::GetEntriesContext::empty(false),
        )
        .unwrap()
        .into_iter()
        .map(|e| (e.index, e.term, e.get_data().to_vec()))
        .collect()
    }

    pub fn crash(&mut self) {
        if let Some(running) = self.running.take() {
            // Queued work dies with the process: pending answers become "shutting down".
            for task in running.apply_queue {
                for p in task.proposals {
                    let _ = p.callback.0.send(Err("shutting down".into()));
                }
            }
            drop(running.group);
        }
        self.generator.tasks.lock().unwrap().clear();
    }

    pub fn restart(&mut self, cfg: &RaftConfig) {
        assert!(self.running.is_none(), "node {} is running", self.id);
        let engines = Engines::open(self.dir.path(), &EngineConfig::new_test_config()).unwrap();
        // Recreating the manager clears transfers a crash interrupted.
        self.snap_mgr = SnapManager::new(self.dir.path().join("snap")).unwrap();
        let region = state::load_region_state(&engines.kv, REGION_ID)
            .unwrap()
            .and_then(|s| s.region)
            .unwrap_or(Region {
                id: REGION_ID,
                ..Default::default()
            });
        let ctx = StorageContext {
            engines: engines.clone(),
            snap_mgr: self.snap_mgr.clone(),
            snap_gen: self.generator.clone(),
            entry_cache_limit: cfg.entry_cache_limit,
        };
        let storage = PeerStorage::new(&ctx, region.clone(), self.id).unwrap();
        let group = RaftGroup::new(cfg, storage).unwrap();
        self.running = Some(Running {
            applier: KvApplier::load(&engines, region),
            engines,
            group,
            apply_queue: VecDeque::new(),
        });
    }

    /// Compacts the log to `index` the way an applier executing CompactLog would.
    pub fn compact(&mut self, index: u64) -> raft_core::Result<()> {
        let r = self.running.as_mut().expect("running");
        assert!(r.apply_queue.is_empty(), "compact with applies pending");
        let truncated = r.group.storage().compact_log_state(index)?;
        r.applier.apply_state.truncated_state = Some(truncated);
        let mut wb = r.engines.kv.write_batch();
        wb.put_msg_cf(
            CF_DEFAULT,
            &keys::apply_state_key(REGION_ID),
            &r.applier.apply_state,
        )?;
        r.engines.kv.write(&mut wb, false)?;
        r.group.on_applied(ApplyResult {
            apply_state: r.applier.apply_state,
            conf_changes: vec![],
            region: None,
        });
        Ok(())
    }

    /// One processing pass: generate snapshots, apply, handle readies.
    pub fn process(&mut self) -> Processed {
        let mut out = Processed {
            progressed: false,
            messages: vec![],
        };
        if self.running.is_none() {
            return out;
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.generator.tasks.lock().unwrap());
        for task in tasks {
            // A failure leaves the peer to retry, as a real worker would.
            let _ = task.run(&self.snap_mgr);
            out.progressed = true;
        }
        loop {
            let mut moved = self.apply_queued();
            let r = self.running.as_mut().unwrap();
            if self.one_call {
                let mut applier = InlineApplier {
                    applier: &mut r.applier,
                    applied_log: &mut self.applied_log,
                };
                let msgs = &mut out.messages;
                moved |= r
                    .group
                    .handle_ready(&mut |m: Message| msgs.push(m), &mut applier)
                    .unwrap();
            } else {
                let (mut kv_wb, mut raft_wb) =
                    (r.engines.kv.write_batch(), r.engines.raft.write_batch());
                if let Some(mut collected) = r.group.collect_ready(&mut kv_wb, &mut raft_wb) {
                    out.messages.append(&mut collected.messages);
                    let sync = collected.must_sync;
                    if !kv_wb.is_empty() {
                        r.engines.kv.write(&mut kv_wb, sync).unwrap();
                    }
                    if !raft_wb.is_empty() {
                        r.engines.raft.write(&mut raft_wb, sync).unwrap();
                    }
                    let persisted = r.group.on_persisted(collected);
                    out.messages.extend(persisted.messages);
                    self.read_states.extend(persisted.read_states);
                    r.apply_queue.extend(persisted.apply);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
            out.progressed = true;
        }
        if self.is_up() && !self.group().is_member() && self.group().storage().is_initialized() {
            self.destroy();
            out.progressed = true;
        }
        out
    }

    fn apply_queued(&mut self) -> bool {
        if self.apply_paused {
            return false;
        }
        let r = self.running.as_mut().unwrap();
        let mut moved = false;
        while let Some(task) = r.apply_queue.pop_front() {
            let result = r.applier.apply_task(task, &mut self.applied_log);
            r.group.on_applied(result);
            moved = true;
        }
        moved
    }

    /// Removed from the region: destroy the peer and its data, as a store would.
    fn destroy(&mut self) {
        let r = self.running.take().unwrap();
        let (mut kv_wb, mut raft_wb) = (r.engines.kv.write_batch(), r.engines.raft.write_batch());
        r.group.destroy(&mut kv_wb, &mut raft_wb, true).unwrap();
        r.engines.kv.write(&mut kv_wb, true).unwrap();
        r.engines.raft.write(&mut raft_wb, true).unwrap();
        self.destroyed = true;
    }
}
