//! The coordinator: the background loop that runs schedulers and the replica checker, reaps
//! timed-out operators and moves the TSO window ahead.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::Cluster;
use crate::schedule::{schedulers_by_name, ReplicaChecker, Scheduler};

/// Runs `scheduler` once: admits operators until its kind's limit is reached or it has nothing
/// more to propose. Returns how many operators were admitted.
pub fn run_scheduler(cluster: &Cluster, scheduler: &dyn Scheduler, limit: usize) -> usize {
    if !cluster.is_bootstrapped() {
        return 0;
    }
    let mut running = cluster.operator_count(scheduler.kind());
    if running >= limit {
        return 0;
    }
    let mut view = cluster.view(rand::thread_rng().gen());
    let mut added = 0;
    while running < limit {
        let Some(op) = scheduler.schedule(&view) else {
            break;
        };
        // Marks the region busy, so this loop ends even if admission refuses the operator.
        view.apply_influence(&op);
        match cluster.add_operator(op) {
            Ok(true) => {
                running += 1;
                added += 1;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(scheduler = scheduler.name(), error = %e, "cannot admit operator");
                break;
            }
        }
    }
    added
}

/// Spawns the loop; it ends when `shutdown` turns true (or its sender is dropped). `_guard` is
/// held until then, so the server can wait for the loop to let go of the cluster.
pub fn spawn(
    cluster: Arc<Cluster>,
    mut shutdown: watch::Receiver<bool>,
    tso_tick: Duration,
    guard: mpsc::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _guard = guard;
        let cfg = cluster.schedule_config().clone();
        let schedulers = schedulers_by_name(&cfg.schedulers);
        let limit_of = |s: &dyn Scheduler| match s.kind() {
            crate::schedule::OpKind::Leader => cfg.leader_schedule_limit,
            crate::schedule::OpKind::Region => cfg.region_schedule_limit,
            crate::schedule::OpKind::Replica => cfg.replica_schedule_limit,
        };
        let mut schedule = tokio::time::interval(cfg.schedule_interval);
        let mut patrol = tokio::time::interval(cfg.patrol_interval);
        let mut tso = tokio::time::interval(tso_tick);
        for t in [&mut schedule, &mut patrol, &mut tso] {
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = schedule.tick() => {
                    cluster.remove_timed_out_operators();
                    for s in &schedulers {
                        run_scheduler(&cluster, s.as_ref(), limit_of(s.as_ref()));
                    }
                }
                _ = patrol.tick() => {
                    if cfg.enable_replica_checker {
                        run_scheduler(&cluster, &ReplicaChecker, cfg.replica_schedule_limit);
                    }
                }
                _ = tso.tick() => {
                    if let Err(e) = cluster.tso().advance_window() {
                        tracing::error!(error = %e, "cannot persist the tso window");
                    }
                }
            }
        }
        tracing::debug!("coordinator stopped");
    })
}
