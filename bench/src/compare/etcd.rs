//! A fresh 3-member etcd cluster on loopback: one data directory per member, default
//! durability (every commit fdatasyncs the WAL).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::process::{ensure_port_free, ServerProcess};
use crate::backend::etcd_connect;
use crate::errors::{Error, Result};

/// Members of the cluster.
pub const MEMBERS: usize = 3;

/// A running etcd cluster.
pub struct EtcdCluster {
    members: Vec<ServerProcess>,
    client_ports: Vec<u16>,
}

impl EtcdCluster {
    /// Starts members `m1..m3` with client ports `base_port + i` and peer ports
    /// `base_port + 3 + i`, data and logs under `dir` (which must be fresh).
    pub fn start(bin: &Path, dir: &Path, base_port: u16, token: &str) -> Result<EtcdCluster> {
        let client_ports: Vec<u16> = (0..MEMBERS as u16).map(|i| base_port + i).collect();
        let peer_ports: Vec<u16> = (0..MEMBERS as u16)
            .map(|i| base_port + MEMBERS as u16 + i)
            .collect();
        for &port in client_ports.iter().chain(&peer_ports) {
            ensure_port_free(port)?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let initial_cluster = (0..MEMBERS)
            .map(|i| format!("m{}=http://127.0.0.1:{}", i + 1, peer_ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(MEMBERS);
        for i in 0..MEMBERS {
            let name = format!("m{}", i + 1);
            let data_dir: PathBuf = dir.join(&name);
            let client_url = format!("http://127.0.0.1:{}", client_ports[i]);
            let peer_url = format!("http://127.0.0.1:{}", peer_ports[i]);
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={initial_cluster}"),
                format!("--initial-cluster-token={token}"),
                "--initial-cluster-state=new".into(),
                "--logger=zap".into(),
                "--log-level=warn".into(),
            ];
            members.push(ServerProcess::spawn(
                &format!("etcd {name}"),
                bin,
                &args,
                &dir.join(format!("{name}.log")),
            )?);
        }
        Ok(EtcdCluster {
            members,
            client_ports,
        })
    }

    /// Client endpoints, `127.0.0.1:port`.
    pub fn endpoints(&self) -> Vec<String> {
        self.client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// `(name, pid)` of every member.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.members
            .iter()
            .map(|m| (m.name().to_owned(), m.pid()))
            .collect()
    }

    /// Waits until every member answers Status and names the same leader. Fails early if a
    /// member exits, and with the last error after `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for m in &mut self.members {
                m.check_running()?;
            }
            let last = match self.leaders().await {
                Ok(leaders) if leaders.iter().all(|&l| l != 0 && l == leaders[0]) => return Ok(()),
                Ok(leaders) => format!("members report leaders {leaders:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::process(
                    "etcd cluster",
                    format!("not ready after {timeout:?}: {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn leaders(&self) -> Result<Vec<u64>> {
        let mut leaders = Vec::with_capacity(MEMBERS);
        for endpoint in self.endpoints() {
            let mut client = etcd_connect(&[endpoint], Duration::from_secs(2)).await?;
            leaders.push(client.status().await?.leader());
        }
        Ok(leaders)
    }

    /// Stops every member by PID, all at once (a leader stopping alone first would try to
    /// hand its leadership over and wait).
    pub async fn stop(&mut self) -> Result<()> {
        let stops = self
            .members
            .iter_mut()
            .map(|m| m.stop(Duration::from_secs(10)));
        futures::future::join_all(stops)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(drop)
    }
}
