//! Results: the JSON records of runs, the side-by-side table and the chart.
//!
//! A [`BenchResult`] is one run (settings, load phase, measured run phase). A [`Comparison`]
//! holds every run of `compare` plus the [`Row`]s that pair an etcd run with a TinyKV run; the
//! table ([`table`]) and the chart ([`chart`]) are both rendered from it, so
//! `tinykv-bench report FILE` can redraw them from a saved JSON.

pub mod chart;
pub mod table;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{CompareConfig, RunConfig, TargetConfig, WorkloadConfig};
use crate::errors::{Error, Result};
use crate::runner::{LoadReport, RunReport};

/// One benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Names the run (`put-64`, or a user label).
    pub id: String,
    /// `etcd` or `tinykv`.
    pub system: String,
    /// Where the clients connected.
    pub target: TargetConfig,
    /// The workload.
    pub workload: WorkloadConfig,
    /// How it was driven.
    pub run: RunConfig,
    /// The load phase, if this run loaded its records.
    pub load: Option<LoadReport>,
    /// The measured run phase.
    pub result: RunReport,
    /// When the run finished, seconds since the Unix epoch.
    pub finished_at: u64,
}

/// Thresholds a row is held to (the project's goals against etcd).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Target {
    /// TinyKV throughput must be at least this multiple of etcd's.
    pub min_throughput_ratio: Option<f64>,
    /// TinyKV p99 must be at most this multiple of etcd's.
    pub max_p99_ratio: Option<f64>,
    /// TinyKV server CPU per op must be at most this multiple of etcd's.
    pub max_cpu_ratio: Option<f64>,
}

/// One line of the side-by-side table: an etcd run and a TinyKV run of the same workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// What the row measures, e.g. "raw put, 64 clients".
    pub title: String,
    /// Short label for the chart's axis.
    pub short: String,
    /// Id of the etcd run, if any.
    pub etcd: Option<String>,
    /// Id of the TinyKV run, if any.
    pub tinykv: Option<String>,
    /// The goal, if the row has one.
    pub target: Option<Target>,
}

/// Everything `compare` produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The settings.
    pub config: CompareConfig,
    /// Every run, etcd's and TinyKV's.
    pub runs: Vec<BenchResult>,
    /// The table's lines.
    pub rows: Vec<Row>,
    /// Runs that did not produce a result: `(run id, error)`.
    pub failures: Vec<(String, String)>,
}

/// The figures of one side of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Server CPU per op, µs.
    pub cpu_us_per_op: Option<f64>,
    /// Failed operations.
    pub errors: u64,
}

impl Figures {
    fn of(run: &BenchResult) -> Figures {
        let total = &run.result.total;
        Figures {
            ops_per_sec: total.ops_per_sec,
            p50_ms: total.latency.p50_ms,
            p99_ms: total.latency.p99_ms,
            cpu_us_per_op: run.result.server_cpu_us_per_op,
            errors: total.errors,
        }
    }
}

/// `tinykv / etcd` for one metric, when both sides have it.
pub fn ratio(tinykv: Option<f64>, etcd: Option<f64>) -> Option<f64> {
    match (tinykv, etcd) {
        (Some(t), Some(e)) if e > 0.0 => Some(t / e),
        _ => None,
    }
}

impl Comparison {
    /// The run with this id.
    pub fn run(&self, id: &str) -> Option<&BenchResult> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// The figures of both sides of `row` (absent where that run is missing).
    pub fn figures(&self, row: &Row) -> (Option<Figures>, Option<Figures>) {
        let side = |id: &Option<String>| id.as_deref().and_then(|id| self.run(id)).map(Figures::of);
        (side(&row.etcd), side(&row.tinykv))
    }

    /// Writes the comparison as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Reads a comparison written by [`write_json`](Self::write_json).
    pub fn read_json(path: &Path) -> Result<Comparison> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_owned(),
            source,
        })
    }
}

/// Writes `value` as pretty JSON to `path`, creating the parent directory.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Hand-made results for the table, chart and JSON tests.

    use super::*;
    use crate::config::{EtcdRead, Preset, TargetKind};
    use crate::cpu::CpuUsage;
    use crate::stats::{LatencySummary, OpSummary};

    pub fn result(
        id: &str,
        kind: TargetKind,
        ops_per_sec: f64,
        p99_ms: f64,
        cpu: f64,
    ) -> BenchResult {
        let total = OpSummary {
            op: "TOTAL".into(),
            ok: (ops_per_sec * 10.0) as u64,
            errors: 0,
            not_found: 0,
            retries: 0,
            ops_per_sec,
            latency: LatencySummary {
                mean_ms: p99_ms / 3.0,
                p50_ms: p99_ms / 4.0,
                p95_ms: p99_ms / 2.0,
                p99_ms,
                p999_ms: p99_ms * 2.0,
                max_ms: p99_ms * 3.0,
            },
        };
        BenchResult {
            id: id.into(),
            system: kind.system().into(),
            target: TargetConfig {
                kind,
                etcd_read: EtcdRead::Linearizable,
                ..Default::default()
            },
            workload: Preset::Put.workload(),
            run: RunConfig::default(),
            load: None,
            result: RunReport {
                elapsed_secs: 10.0,
                per_op: vec![OpSummary {
                    op: "UPDATE".into(),
                    ..total.clone()
                }],
                total,
                cpu: CpuUsage {
                    server_seconds: cpu * ops_per_sec * 10.0 / 1e6,
                    per_server: vec![],
                    client_seconds: 1.0,
                },
                server_cpu_us_per_op: Some(cpu),
                client_cpu_us_per_op: 50.0,
                error_samples: vec![],
            },
            finished_at: 1_700_000_000,
        }
    }

    pub fn comparison() -> Comparison {
        Comparison {
            config: CompareConfig::default(),
            runs: vec![
                result("etcd/put-64", TargetKind::Etcd, 5_500.0, 33.0, 240.0),
                result(
                    "tinykv/put-64",
                    TargetKind::TinykvRaw,
                    17_600.0,
                    30.0,
                    100.0,
                ),
                result("etcd/sget-64", TargetKind::Etcd, 10_700.0, 30.0, 140.0),
            ],
            rows: vec![
                Row {
                    title: "raw put, 64 clients".into(),
                    short: "put/64".into(),
                    etcd: Some("etcd/put-64".into()),
                    tinykv: Some("tinykv/put-64".into()),
                    target: Some(Target {
                        min_throughput_ratio: Some(3.0),
                        max_p99_ratio: Some(1.0),
                        max_cpu_ratio: Some(0.5),
                    }),
                },
                Row {
                    title: "serializable get, 64 clients".into(),
                    short: "sget/64".into(),
                    etcd: Some("etcd/sget-64".into()),
                    tinykv: None,
                    target: None,
                },
            ],
            failures: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_round_trips_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/compare.json");
        let cmp = test_util::comparison();
        cmp.write_json(&path).unwrap();
        let back = Comparison::read_json(&path).unwrap();
        assert_eq!(back, cmp);
        let text = std::fs::read_to_string(&path).unwrap();
        for field in [
            "\"ops_per_sec\"",
            "\"p999_ms\"",
            "\"server_cpu_us_per_op\"",
            "\"rows\"",
        ] {
            assert!(text.contains(field), "{field} missing");
        }
    }

    #[test]
    fn figures_and_ratios() {
        let cmp = test_util::comparison();
        let (etcd, tinykv) = cmp.figures(&cmp.rows[0]);
        let (etcd, tinykv) = (etcd.unwrap(), tinykv.unwrap());
        assert_eq!(etcd.ops_per_sec, 5_500.0);
        assert_eq!(tinykv.cpu_us_per_op, Some(100.0));
        let r = ratio(Some(tinykv.ops_per_sec), Some(etcd.ops_per_sec)).unwrap();
        assert!((r - 3.2).abs() < 1e-9);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        let (etcd, tinykv) = cmp.figures(&cmp.rows[1]);
        assert!(etcd.is_some() && tinykv.is_none());
    }

    #[test]
    fn unreadable_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{\"runs\": 3}").unwrap();
        let err = Comparison::read_json(&path).unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
        let err = Comparison::read_json(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.to_string().contains("missing.json"));
    }
}
