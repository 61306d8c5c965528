//! Driving a workload against a backend: the load phase and the measured run phase.
//!
//! ```text
//!  load:  clients take batches of record ids ──▶ Backend::load ──▶ (retry a failed batch) ──▶ done
//!
//!  run:   start ── warm-up (unmeasured) ── measure_start ─────────── end (duration or op count)
//!                                            │ CPU snapshot            │ CPU snapshot after the
//!                                            │                         │ last client returns
//!         each client: next_op ──▶ execute (txn retries) ──▶ record latency in its Recorder
//! ```
//!
//! Clients run closed-loop on the tokio runtime: one operation in flight each. Operations that
//! start before `measure_start` are executed but not recorded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::backend::Backend;
use crate::config::{RunConfig, Stop};
use crate::cpu::{CpuProbe, CpuUsage};
use crate::errors::{Error, Result};
use crate::stats::{OpSummary, Outcome, Recorder};
use crate::workload::{Op, Workload};

/// Attempts per load batch before the load phase fails.
const LOAD_ATTEMPTS: u32 = 3;
/// Most concurrent load requests: batches are large, more only queue up.
const MAX_LOADERS: usize = 32;

/// What the load phase did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Records written.
    pub records: u64,
    /// Wall time, seconds.
    pub elapsed_secs: f64,
    /// Records per second.
    pub records_per_sec: f64,
}

/// What the measured part of the run phase did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Measured wall time, seconds.
    pub elapsed_secs: f64,
    /// Over all operation kinds.
    pub total: OpSummary,
    /// Per operation kind.
    pub per_op: Vec<OpSummary>,
    /// CPU used during the measured window.
    pub cpu: CpuUsage,
    /// Server CPU per successful operation, microseconds (absent without server pids).
    pub server_cpu_us_per_op: Option<f64>,
    /// Benchmark-client CPU per successful operation, microseconds.
    pub client_cpu_us_per_op: f64,
    /// The first error messages.
    pub error_samples: Vec<String>,
}

impl RunReport {
    /// Fails if more than `max_ratio` of the operations failed.
    pub fn check_errors(&self, max_ratio: f64) -> Result<()> {
        let total = self.total.ok + self.total.errors;
        if total == 0 {
            return Err(Error::TooManyFailures {
                failed: 0,
                total: 0,
                first: "no operation completed in the measured window".into(),
            });
        }
        if self.total.errors as f64 > max_ratio * total as f64 {
            return Err(Error::TooManyFailures {
                failed: self.total.errors,
                total,
                first: self.error_samples.first().cloned().unwrap_or_default(),
            });
        }
        Ok(())
    }
}

fn progress_bar(show: bool, len: u64, phase: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix:>5} [{elapsed_precise}] [{bar:30}] {pos}/{len} {msg}",
    )
    .expect("static template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(phase.to_owned());
    bar
}

/// Writes records `0..record_count` in batches. Each client instance in `backends` serves a
/// share of the loaders.
pub async fn load(
    backends: &[Backend],
    workload: &Arc<Workload>,
    run: &RunConfig,
    show_progress: bool,
) -> Result<LoadReport> {
    let records = workload.config().record_count;
    let batch = run.load_batch_size as u64;
    let batches = records.div_ceil(batch);
    let next_batch = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(show_progress, records, "load");
    let started = Instant::now();
    let loaders = run.concurrency.clamp(1, MAX_LOADERS);
    let mut tasks = Vec::with_capacity(loaders);
    for i in 0..loaders {
        let backend = backends[i % backends.len()].clone();
        let mut generator = workload.generator(run.seed ^ 0x10ad ^ i as u64);
        let next_batch = next_batch.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next_batch.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<(), Error>(());
                }
                let first = b * batch;
                let last = (first + batch).min(records);
                let pairs: Vec<_> = (first..last).map(|id| generator.record(id)).collect();
                let mut attempt = 1;
                loop {
                    match backend.load(pairs.clone()).await {
                        Ok(()) => break,
                        Err(e) if attempt < LOAD_ATTEMPTS => {
                            tracing::warn!(first_id = first, attempt, error = %e, "load batch failed; retrying");
                            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                            attempt += 1;
                        }
                        Err(e) => {
                            return Err(Error::Load {
                                first_id: first,
                                source: Box::new(e),
                            })
                        }
                    }
                }
                bar.inc(last - first);
            }
        }));
    }
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await.expect("load task panicked");
        if let Err(e) = outcome {
            // Make the other loaders stop taking batches.
            next_batch.store(batches, Ordering::Relaxed);
            first_error.get_or_insert(e);
        }
    }
    bar.finish_and_clear();
    if let Some(e) = first_error {
        return Err(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(LoadReport {
        records,
        elapsed_secs: elapsed,
        records_per_sec: records as f64 / elapsed.max(f64::MIN_POSITIVE),
    })
}

/// Counters the progress display reads while clients run.
struct Shared {
    stop: AtomicBool,
    /// Measured operations started (operation-count mode).
    started: AtomicU64,
    /// Measured operations finished, and how many of those failed.
    finished: AtomicU64,
    failed: AtomicU64,
}

/// Runs the operation mix against `backends` and measures it. `cpu` names the server
/// processes to account (it may name none).
pub async fn run(
    backends: &[Backend],
    workload: &Arc<Workload>,
    run: &RunConfig,
    cpu: &CpuProbe,
    show_progress: bool,
) -> Result<RunReport> {
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        started: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let measure_start = Instant::now() + run.warmup;
    let mut tasks = Vec::with_capacity(run.concurrency);
    for i in 0..run.concurrency {
        let client = Client {
            backend: backends[i % backends.len()].clone(),
            workload: workload.clone(),
            shared: shared.clone(),
            stop: run.stop,
            txn_retries: run.txn_retries,
            measure_start,
        };
        let seed = run.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        tasks.push(tokio::spawn(client.run(seed)));
    }

    tokio::time::sleep_until(measure_start).await;
    let cpu_before = cpu.snapshot()?;
    let measured_from = Instant::now();
    let (len, phase) = match run.stop {
        Stop::Duration(d) => (d.as_secs().max(1), "run"),
        Stop::Operations(n) => (n, "run"),
    };
    let bar = progress_bar(show_progress, len, phase);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut joined = futures::future::join_all(tasks);
    let results = loop {
        tokio::select! {
            results = &mut joined => break results,
            _ = ticker.tick() => {
                let done = shared.finished.load(Ordering::Relaxed);
                let secs = measured_from.elapsed().as_secs_f64();
                match run.stop {
                    Stop::Duration(_) => bar.set_position(secs as u64),
                    Stop::Operations(_) => bar.set_position(done),
                }
                bar.set_message(format!(
                    "{done} ops, {:.0} ops/s, {} errors",
                    done as f64 / secs.max(1e-3),
                    shared.failed.load(Ordering::Relaxed)
                ));
            }
        }
    };
    let elapsed = measured_from.elapsed();
    let cpu_after = cpu.snapshot()?;
    bar.finish_and_clear();

    let mut merged = Recorder::default();
    let mut first_error = None;
    for result in results {
        match result.expect("client task panicked") {
            Ok(recorder) => merged.merge(&recorder),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let usage = cpu.usage(&cpu_before, &cpu_after);
    let (per_op, total) = merged.summarize(elapsed);
    let per_op_us = |seconds: f64| seconds * 1e6 / (total.ok.max(1) as f64);
    Ok(RunReport {
        elapsed_secs: elapsed.as_secs_f64(),
        server_cpu_us_per_op: cpu.has_servers().then(|| per_op_us(usage.server_seconds)),
        client_cpu_us_per_op: per_op_us(usage.client_seconds),
        cpu: usage,
        error_samples: merged.error_samples().to_vec(),
        per_op,
        total,
    })
}

/// One closed-loop client.
struct Client {
    backend: Backend,
    workload: Arc<Workload>,
    shared: Arc<Shared>,
    stop: Stop,
    txn_retries: u32,
    measure_start: Instant,
}

impl Client {
    async fn run(self, seed: u64) -> Result<Recorder> {
        let mut generator = self.workload.generator(seed);
        let mut recorder = Recorder::default();
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let started = Instant::now();
            let measured = started >= self.measure_start;
            match self.stop {
                Stop::Duration(d) if started >= self.measure_start + d => break,
                Stop::Operations(n)
                    if measured && self.shared.started.fetch_add(1, Ordering::Relaxed) >= n =>
                {
                    break
                }
                _ => {}
            }
            let op = match generator.next_op() {
                Ok(op) => op,
                Err(e) => {
                    self.shared.stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            };
            let (result, retries) = self.execute(&op).await;
            let latency = started.elapsed();
            if let Op::Insert { id, .. } = op {
                self.workload.finish_insert(id);
            }
            if !measured {
                continue;
            }
            match result {
                Ok(outcome) => recorder.record(op.kind(), latency, outcome, retries),
                Err(e) => {
                    self.shared.failed.fetch_add(1, Ordering::Relaxed);
                    recorder.record_error(op.kind(), &e, retries);
                }
            }
            self.shared.finished.fetch_add(1, Ordering::Relaxed);
        }
        Ok(recorder)
    }

    /// Executes `op`, running a conflicting transaction again up to `txn_retries` times.
    async fn execute(&self, op: &Op) -> (Result<Outcome>, u32) {
        let mut retries = 0;
        loop {
            match self.backend.execute(op).await {
                Err(e) if e.is_txn_retryable() && retries < self.txn_retries => {
                    retries += 1;
                    // Let the conflicting transaction finish before trying again.
                    tokio::time::sleep(Duration::from_millis(2 * u64::from(retries))).await;
                }
                result => return (result, retries),
            }
        }
    }
}
