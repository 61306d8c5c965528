//! A fresh TinyKV cluster on loopback: one `tinyscheduler-server` and three `tinykv-server`s
//! in cluster mode, each with its own data directory (raft logs are fsynced by the stores).
//!
//! Ready means: every process runs, the scheduler answers, all three stores registered, and
//! every region has the wanted number of replicas and a leader. The caller then proves the
//! data path with a write and a read through the real client.

use std::path::Path;
use std::time::Duration;

use client::PdClient;
use tokio::time::Instant;

use super::process::{ensure_port_free, ServerProcess};
use crate::errors::{Error, Result};

/// Stores in the cluster.
pub const STORES: usize = 3;

/// A running TinyKV cluster.
pub struct TinykvCluster {
    scheduler: ServerProcess,
    stores: Vec<ServerProcess>,
    scheduler_port: u16,
}

impl TinykvCluster {
    /// Starts the scheduler on `base_port` and stores on `base_port + 1..=3`, data and logs
    /// under `dir` (which must be fresh).
    pub fn start(
        server_bin: &Path,
        scheduler_bin: &Path,
        dir: &Path,
        base_port: u16,
        replicas: usize,
    ) -> Result<TinykvCluster> {
        let store_ports: Vec<u16> = (1..=STORES as u16).map(|i| base_port + i).collect();
        for &port in std::iter::once(&base_port).chain(&store_ports) {
            ensure_port_free(port)?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let pd_addr = format!("127.0.0.1:{base_port}");
        let scheduler = ServerProcess::spawn(
            "tinyscheduler-server",
            scheduler_bin,
            &[
                "--name=pd1".into(),
                format!("--listen-addr={pd_addr}"),
                format!("--data-dir={}", dir.join("pd").display()),
                format!("--max-replicas={replicas}"),
                "--log-level=warn".into(),
            ],
            &dir.join("pd.log"),
        )?;
        let mut stores = Vec::with_capacity(STORES);
        for (i, port) in store_ports.iter().enumerate() {
            let n = i + 1;
            stores.push(ServerProcess::spawn(
                &format!("tinykv-server {n}"),
                server_bin,
                &[
                    format!("--addr=127.0.0.1:{port}"),
                    format!("--data-dir={}", dir.join(format!("store{n}")).display()),
                    format!("--scheduler={pd_addr}"),
                    "--log-filter=warn".into(),
                ],
                &dir.join(format!("store{n}.log")),
            )?);
        }
        Ok(TinykvCluster {
            scheduler,
            stores,
            scheduler_port: base_port,
        })
    }

    /// The scheduler endpoint, `127.0.0.1:port`.
    pub fn pd_endpoints(&self) -> Vec<String> {
        vec![format!("127.0.0.1:{}", self.scheduler_port)]
    }

    /// `(name, pid)` of every server process, the scheduler included (it serves TSO).
    pub fn pids(&self) -> Vec<(String, u32)> {
        std::iter::once(&self.scheduler)
            .chain(&self.stores)
            .map(|p| (p.name().to_owned(), p.pid()))
            .collect()
    }

    /// Waits until the scheduler answers, all stores registered, and every region has
    /// `replicas` peers and a leader.
    pub async fn wait_ready(&mut self, replicas: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.scheduler.check_running()?;
            for s in &mut self.stores {
                s.check_running()?;
            }
            let last = match self.status(replicas).await {
                Ok(None) => return Ok(()),
                Ok(Some(waiting_for)) => waiting_for,
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::process(
                    "tinykv cluster",
                    format!("not ready after {timeout:?}: {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `None` when ready, else what is still missing.
    async fn status(&self, replicas: usize) -> Result<Option<String>> {
        let config = client::Config {
            timeout: Duration::from_secs(2),
            ..client::Config::default()
        };
        // connect() asks GetMembers: the scheduler is up once this succeeds.
        let pd = PdClient::connect(&self.pd_endpoints(), config).await?;
        let stores = pd.get_all_stores().await?;
        if stores.len() < STORES {
            return Ok(Some(format!(
                "{} of {STORES} stores registered",
                stores.len()
            )));
        }
        let regions = pd.scan_regions(b"", b"", 0).await?;
        if regions.is_empty() {
            return Ok(Some("no region reported yet".into()));
        }
        for r in &regions {
            if r.region.peers.len() < replicas {
                return Ok(Some(format!(
                    "region {} has {} of {replicas} replicas",
                    r.region.id,
                    r.region.peers.len()
                )));
            }
            if r.leader.is_none() {
                return Ok(Some(format!("region {} has no leader", r.region.id)));
            }
        }
        Ok(None)
    }

    /// Stops the stores (together), then the scheduler, by PID.
    pub async fn stop(&mut self) -> Result<()> {
        let stops = self
            .stores
            .iter_mut()
            .map(|s| s.stop(Duration::from_secs(15)));
        let stores = futures::future::join_all(stops)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>();
        let scheduler = self.scheduler.stop(Duration::from_secs(15)).await;
        stores?;
        scheduler
    }
}
