//! Latency recording and summaries.
//!
//! Each client records into its own [`Recorder`] (no sharing on the hot path); the runner
//! merges them when the phase ends. Latencies are HdrHistograms in microseconds with three
//! significant digits, from 1 µs to 60 s; slower operations are clamped to 60 s.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::workload::OpKind;

/// Largest latency a histogram holds, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Error messages kept per phase (the first ones: later ones are usually the same).
const MAX_ERROR_SAMPLES: usize = 5;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Counters and latencies of one operation kind.
#[derive(Debug, Clone)]
struct KindStats {
    /// Latencies of successful operations.
    latency: Histogram<u64>,
    errors: u64,
    not_found: u64,
    retries: u64,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats {
            latency: new_histogram(),
            errors: 0,
            not_found: 0,
            retries: 0,
        }
    }
}

/// What happened to one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded (a read found its record).
    Ok,
    /// It succeeded, but a read found nothing.
    NotFound,
}

/// One client's recordings.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// Allocated on first use: a histogram is ~100 KiB and most workloads use one or two kinds.
    kinds: BTreeMap<OpKind, KindStats>,
    error_samples: Vec<String>,
}

impl Recorder {
    fn stats(&mut self, kind: OpKind) -> &mut KindStats {
        self.kinds.entry(kind).or_insert_with(KindStats::new)
    }

    /// Records a successful operation that took `latency` after `retries` retries.
    pub fn record(&mut self, kind: OpKind, latency: Duration, outcome: Outcome, retries: u32) {
        let stats = self.stats(kind);
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        stats.latency.saturating_record(us.min(MAX_LATENCY_US));
        stats.retries += u64::from(retries);
        if outcome == Outcome::NotFound {
            stats.not_found += 1;
        }
    }

    /// Records a failed operation.
    pub fn record_error(&mut self, kind: OpKind, error: &dyn std::fmt::Display, retries: u32) {
        let stats = self.stats(kind);
        stats.errors += 1;
        stats.retries += u64::from(retries);
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(format!("{kind}: {error}"));
        }
    }

    /// Adds `other`'s recordings to these.
    pub fn merge(&mut self, other: &Recorder) {
        for (kind, theirs) in &other.kinds {
            let ours = self.stats(*kind);
            ours.latency
                .add(&theirs.latency)
                .expect("histograms share their bounds");
            ours.errors += theirs.errors;
            ours.not_found += theirs.not_found;
            ours.retries += theirs.retries;
        }
        let room = MAX_ERROR_SAMPLES.saturating_sub(self.error_samples.len());
        self.error_samples
            .extend(other.error_samples.iter().take(room).cloned());
    }

    /// Successful plus failed operations.
    pub fn total_ops(&self) -> u64 {
        self.kinds
            .values()
            .map(|s| s.latency.len() + s.errors)
            .sum()
    }

    /// Failed operations.
    pub fn total_errors(&self) -> u64 {
        self.kinds.values().map(|s| s.errors).sum()
    }

    /// The first error messages recorded.
    pub fn error_samples(&self) -> &[String] {
        &self.error_samples
    }

    /// Per-kind summaries and one over all kinds, for a phase that measured `elapsed`.
    pub fn summarize(&self, elapsed: Duration) -> (Vec<OpSummary>, OpSummary) {
        let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let mut all = KindStats::new();
        let mut per_kind = Vec::new();
        for (kind, s) in &self.kinds {
            all.latency
                .add(&s.latency)
                .expect("histograms share their bounds");
            all.errors += s.errors;
            all.not_found += s.not_found;
            all.retries += s.retries;
            per_kind.push(OpSummary::new(kind.name(), s, secs));
        }
        (per_kind, OpSummary::new("TOTAL", &all, secs))
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1_000.0;
        if h.is_empty() {
            return LatencySummary {
                mean_ms: 0.0,
                p50_ms: 0.0,
                p95_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        LatencySummary {
            mean_ms: h.mean() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Counts, throughput and latencies of one operation kind (or `TOTAL`) in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    /// `READ`, `UPDATE`, ..., or `TOTAL`.
    pub op: String,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// Successful reads that found no record.
    pub not_found: u64,
    /// Transaction retries after conflicts (successful or not in the end).
    pub retries: u64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Latencies of successful operations.
    pub latency: LatencySummary,
}

impl OpSummary {
    fn new(op: &str, s: &KindStats, secs: f64) -> OpSummary {
        OpSummary {
            op: op.to_owned(),
            ok: s.latency.len(),
            errors: s.errors,
            not_found: s.not_found,
            retries: s.retries,
            ops_per_sec: s.latency.len() as f64 / secs,
            latency: LatencySummary::of(&s.latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_latencies() {
        let mut r = Recorder::default();
        for ms in 1..=1_000u64 {
            r.record(
                OpKind::Read,
                Duration::from_micros(ms * 100),
                Outcome::Ok,
                0,
            );
        }
        let (kinds, total) = r.summarize(Duration::from_secs(2));
        assert_eq!(kinds.len(), 1);
        assert_eq!(total.ok, 1_000);
        assert!((total.ops_per_sec - 500.0).abs() < 1e-9);
        let l = total.latency;
        // Three significant digits: within 0.1 % of the exact value.
        assert!((l.p50_ms - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.p99_ms - 99.0).abs() < 0.1, "{l:?}");
        assert!((l.p999_ms - 99.9).abs() < 0.1, "{l:?}");
        assert!((l.max_ms - 100.0).abs() < 0.1, "{l:?}");
        assert!((l.mean_ms - 50.05).abs() < 0.1, "{l:?}");
    }

    #[test]
    fn merge_adds_counts_and_keeps_a_few_errors() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.record(OpKind::Read, Duration::from_millis(1), Outcome::NotFound, 0);
        b.record(OpKind::Update, Duration::from_millis(3), Outcome::Ok, 2);
        for i in 0..10 {
            b.record_error(OpKind::Update, &format!("boom {i}"), 1);
        }
        a.merge(&b);
        assert_eq!(a.total_ops(), 12);
        assert_eq!(a.total_errors(), 10);
        assert_eq!(a.error_samples().len(), MAX_ERROR_SAMPLES);
        assert_eq!(a.error_samples()[0], "UPDATE: boom 0");
        let (kinds, total) = a.summarize(Duration::from_secs(1));
        let names: Vec<&str> = kinds.iter().map(|k| k.op.as_str()).collect();
        assert_eq!(names, ["READ", "UPDATE"]);
        assert_eq!(kinds[0].not_found, 1);
        assert_eq!(kinds[1].retries, 12);
        assert_eq!((total.ok, total.errors), (2, 10));
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut r = Recorder::default();
        r.record(OpKind::Scan, Duration::ZERO, Outcome::Ok, 0);
        r.record(OpKind::Scan, Duration::from_secs(3_600), Outcome::Ok, 0);
        let (_, total) = r.summarize(Duration::from_secs(1));
        assert_eq!(total.ok, 2);
        assert!(total.latency.max_ms >= 59_000.0 && total.latency.max_ms <= 60_100.0);
    }
}
