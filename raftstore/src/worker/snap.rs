//! The snapshot worker: generates snapshots off the poller threads (raft-core's
//! [`SnapGenerator`]) and deletes snapshot files nobody needs.
//!
//! A generated snapshot reaches its peer through the channel inside the [`GenSnapTask`]; raft-rs
//! picks it up on its next attempt to send one (after a heartbeat response). A task this worker
//! drops (it stopped) is seen by the peer as a failed generation and retried.

use std::collections::HashMap;
use std::fmt;

use raft_core::snap::{GenSnapTask, SnapGenerator, SnapKind, SnapManager};

use super::{Runnable, Scheduler};

/// Work for the snapshot worker.
pub enum SnapTask {
    /// Generate a snapshot.
    Gen(Box<GenSnapTask>),
    /// Delete snapshot files that are no longer useful. `regions` maps each region this store
    /// hosts to its truncated index: a generated snapshot older than that can never be sent
    /// again, and a region not listed has no peer here any more.
    Gc {
        /// Truncated index of every hosted region.
        regions: HashMap<u64, u64>,
    },
}

impl fmt::Display for SnapTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapTask::Gen(t) => write!(f, "generate snapshot {}", t.key()),
            SnapTask::Gc { regions } => write!(f, "snapshot gc ({} regions)", regions.len()),
        }
    }
}

/// Runs [`SnapTask`]s.
pub struct SnapRunner {
    mgr: SnapManager,
}

impl SnapRunner {
    /// A runner writing into `mgr`'s directory.
    pub fn new(mgr: SnapManager) -> Self {
        SnapRunner { mgr }
    }

    fn gc(&self, regions: &HashMap<u64, u64>) {
        let files = match self.mgr.list() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list snapshot files");
                return;
            }
        };
        // Only the newest generated snapshot of a region can still be asked for.
        let mut newest: HashMap<u64, u64> = HashMap::new();
        for (key, kind) in &files {
            if *kind == SnapKind::Generated {
                let n = newest.entry(key.region_id).or_default();
                *n = (*n).max(key.index);
            }
        }
        let res = self.mgr.gc(|key, kind| match regions.get(&key.region_id) {
            None => true,
            Some(&truncated) => match kind {
                SnapKind::Generated => {
                    key.index < truncated
                        || newest.get(&key.region_id).is_some_and(|n| *n > key.index)
                }
                // Applied snapshots are deleted by the peer; one left at or below the truncated
                // index was superseded.
                SnapKind::Received => key.index <= truncated,
            },
        });
        match res {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "deleted stale snapshot files"),
            Err(e) => tracing::warn!(error = %e, "snapshot gc failed"),
        }
    }
}

impl Runnable for SnapRunner {
    type Task = SnapTask;

    fn run(&mut self, task: SnapTask) {
        match task {
            SnapTask::Gen(t) => {
                // Failures are logged by `run`; dropping the task tells the peer to retry.
                let _ = (*t).run(&self.mgr);
            }
            SnapTask::Gc { regions } => self.gc(&regions),
        }
    }
}

/// raft-core's [`SnapGenerator`] on top of the snapshot worker.
pub struct WorkerSnapGenerator {
    scheduler: Scheduler<SnapTask>,
}

impl WorkerSnapGenerator {
    /// A generator queueing onto `scheduler`.
    pub fn new(scheduler: Scheduler<SnapTask>) -> Self {
        WorkerSnapGenerator { scheduler }
    }
}

impl SnapGenerator for WorkerSnapGenerator {
    fn schedule(&self, task: GenSnapTask) {
        let region_id = task.region_id();
        if self
            .scheduler
            .schedule(SnapTask::Gen(Box::new(task)))
            .is_err()
        {
            tracing::debug!(region_id, "snapshot worker stopped; generation dropped");
        }
    }
}
