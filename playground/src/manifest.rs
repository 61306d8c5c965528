//! `cluster.json`: a running cluster's endpoints, PIDs and paths, for scripts and tools.
//!
//! The cluster rewrites it (atomically: a temporary file renamed over it) whenever a process
//! starts or stops, and removes it when the cluster stops, so its presence means "running".

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Everything a tool needs to reach or inspect a running cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The scheduler (PD) endpoint, `127.0.0.1:<port>`: what `--pd` flags take.
    pub pd: String,
    /// The same as a URL, `http://127.0.0.1:<port>` (gRPC and the JSON status routes).
    pub pd_url: String,
    /// The cluster's data directory (absolute).
    pub data_dir: PathBuf,
    /// Where the process logs are.
    pub log_dir: PathBuf,
    /// The scheduler process.
    pub scheduler: ProcessEntry,
    /// The stores, by index.
    pub stores: Vec<StoreEntry>,
}

/// The scheduler process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    /// PID while running, `null` when stopped.
    pub pid: Option<u32>,
    /// Listen address, `127.0.0.1:<port>`.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

/// One store process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEntry {
    /// Index in the cluster (`store-<index>` directories and logs).
    pub index: usize,
    /// The store id the scheduler gave it, once it registered.
    pub store_id: Option<u64>,
    /// PID while running, `null` when stopped or killed.
    pub pid: Option<u32>,
    /// Listen and advertised address, `127.0.0.1:<port>`.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl Manifest {
    /// Writes the manifest as pretty JSON, atomically replacing `path`.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let err = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .map_err(|e| err(format!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|e| err(format!("renaming {}: {e}", tmp.display())))
    }

    /// Reads a manifest written by [`Manifest::write_to`].
    pub fn read_from(path: &Path) -> Result<Manifest> {
        let err = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// The PIDs of every running process, scheduler first.
    pub fn pids(&self) -> Vec<u32> {
        self.scheduler
            .pid
            .into_iter()
            .chain(self.stores.iter().filter_map(|s| s.pid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            pd: "127.0.0.1:2379".into(),
            pd_url: "http://127.0.0.1:2379".into(),
            data_dir: dir.path().to_path_buf(),
            log_dir: dir.path().join("logs"),
            scheduler: ProcessEntry {
                pid: Some(10),
                addr: "127.0.0.1:2379".into(),
                data_dir: dir.path().join("pd"),
                log: dir.path().join("logs/pd.log"),
            },
            stores: vec![StoreEntry {
                index: 0,
                store_id: Some(1),
                pid: None,
                addr: "127.0.0.1:20160".into(),
                data_dir: dir.path().join("store-0"),
                log: dir.path().join("logs/store-0.log"),
            }],
        };
        let path = dir.path().join("cluster.json");
        m.write_to(&path).unwrap();
        assert_eq!(Manifest::read_from(&path).unwrap(), m);
        assert_eq!(m.pids(), vec![10]);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["stores"][0]["pid"], serde_json::Value::Null);
        assert!(!dir.path().join("cluster.json.tmp").exists());

        std::fs::write(&path, "{").unwrap();
        let err = Manifest::read_from(&path).unwrap_err().to_string();
        assert!(err.contains("cluster.json"), "{err}");
    }
}
