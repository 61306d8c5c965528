//! [`ProcessCluster`]: one `tinyscheduler-server` and N `tinykv-server` processes on loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::binaries::Binaries;
use crate::config::{ClusterConfig, MAX_STORES};
use crate::errors::{Error, Result};
use crate::layout::{ensure_port_free, free_ports, DirLock, Layout};
use crate::manifest::{Manifest, ProcessEntry, StoreEntry};
use crate::process::{stop_all, stop_all_blocking, Launch, ServerProcess};
use crate::ready::{raw_round_trip, PdProbe, Probe, StoreTarget};

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(200);

/// One store position: a port and a directory that outlive the process in it.
struct StoreSlot {
    port: u16,
    process: Option<ServerProcess>,
    store_id: Option<u64>,
}

/// What a wait is for.
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// The scheduler answers `GetMembers`.
    Scheduler,
    /// Store `i` registered, Up, and heartbeating since its current process started.
    Store(usize),
    /// Every running store up, every region led (and replicated, if configured), and a raw
    /// put/get round trip through the client succeeds.
    Cluster,
}

/// A TinyKV cluster of real processes: one scheduler and N stores on 127.0.0.1, data and logs
/// under one folder (see [`ClusterConfig`] for the layout).
///
/// Stores are numbered by index from 0 in start order; the index names the directory
/// (`store-<i>`), the log, and the port, which a store keeps across restarts. Store *ids* are
/// the scheduler's, learned once a store registers ([`ProcessCluster::store_id`]).
///
/// Every wait polls the processes and the scheduler until a condition holds or the configured
/// timeout passes; a process that exits meanwhile fails the wait at once, quoting its log.
///
/// Dropping the cluster stops every process by PID (SIGTERM, then SIGKILL after the stop
/// timeout), stores first; [`ProcessCluster::stop`] does the same and reports failures.
///
/// ```no_run
/// # async fn demo() -> tinykv_playground::Result<()> {
/// use tinykv_playground::{ClusterConfig, ProcessCluster};
///
/// let dir = std::env::temp_dir().join("my-cluster");
/// let config = ClusterConfig { data_dir: dir, ..ClusterConfig::new_test_config() };
/// let mut cluster = ProcessCluster::start(config).await?;
/// let raw = client::RawClient::new(cluster.pd_endpoints()).await?;
/// raw.put("k", "v").await?;
/// cluster.kill_store(1)?; // SIGKILL
/// assert_eq!(raw.get("k").await?, Some(b"v".to_vec()));
/// cluster.restart_store(1).await?;
/// cluster.stop().await?;
/// # Ok(())
/// # }
/// ```
pub struct ProcessCluster {
    config: ClusterConfig,
    binaries: Binaries,
    layout: Layout,
    pd_port: u16,
    scheduler: Option<ServerProcess>,
    stores: Vec<StoreSlot>,
    /// Set once a stop has run (explicitly or in `Drop`).
    stopped: bool,
    _lock: DirLock,
}

impl ProcessCluster {
    /// Starts the scheduler, then store 0 (which bootstraps a new cluster), then the other
    /// stores, and waits until the cluster is ready: every store registered and heartbeating,
    /// every region with a leader (and fully replicated unless `wait_replicated` is off), and
    /// a raw write and read through the client succeed. An existing data directory is reused
    /// as it is: the same cluster comes back.
    pub async fn start(config: ClusterConfig) -> Result<ProcessCluster> {
        config.validate()?;
        let binaries = match &config.binaries {
            Some(b) => {
                b.check()?;
                b.clone()
            }
            None => Binaries::locate()?,
        };
        let layout = Layout::create(&config.data_dir)?;
        let lock = DirLock::acquire(&layout)?;

        let free = free_ports(1 + config.stores)?;
        let pd_port = match config.pd_port {
            0 => free[0],
            port => {
                ensure_port_free(port)?;
                port
            }
        };
        let mut stores = Vec::with_capacity(config.stores);
        for i in 0..config.stores {
            let port = match config.fixed_store_port(i) {
                Some(port) => {
                    ensure_port_free(port)?;
                    port
                }
                None => free[1 + i],
            };
            stores.push(StoreSlot {
                port,
                process: None,
                store_id: None,
            });
        }
        // A fixed port may coincide with one the kernel just handed out as free.
        let mut ports: Vec<u16> = stores.iter().map(|s| s.port).collect();
        ports.push(pd_port);
        ports.sort_unstable();
        if ports.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::Config(format!(
                "two processes would share a port ({ports:?}); choose other fixed ports"
            )));
        }
        if let Some(toml) = &config.store_config {
            let path = layout.root().join("tinykv.toml");
            std::fs::write(&path, toml).map_err(|e| Error::io(&path, e))?;
        }

        // From here on, an error or a cancelled future drops `cluster`, which stops whatever
        // was started.
        let mut cluster = ProcessCluster {
            config,
            binaries,
            layout,
            pd_port,
            scheduler: None,
            stores,
            stopped: false,
            _lock: lock,
        };
        tracing::info!(dir = %cluster.data_dir().display(), pd = %cluster.pd_endpoint(), "starting cluster");
        // One deadline for the whole start.
        let deadline = Instant::now() + cluster.config.start_timeout;
        cluster.scheduler = Some(ServerProcess::spawn(&cluster.scheduler_launch())?);
        cluster.wait_until(Goal::Scheduler, deadline).await?;
        cluster.spawn_store(0)?;
        cluster.wait_until(Goal::Store(0), deadline).await?;
        for i in 1..cluster.stores.len() {
            cluster.spawn_store(i)?;
        }
        cluster.wait_until(Goal::Cluster, deadline).await?;
        tracing::info!(pd = %cluster.pd_endpoint(), stores = cluster.stores.len(), "cluster ready");
        Ok(cluster)
    }

    // ---- Endpoints, ids, paths ---------------------------------------------------------------

    /// The scheduler endpoint, `127.0.0.1:<port>`: what clients and `--pd` flags take.
    pub fn pd_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.pd_port)
    }

    /// [`pd_endpoint`](Self::pd_endpoint) as the list clients are built from.
    pub fn pd_endpoints(&self) -> Vec<String> {
        vec![self.pd_endpoint()]
    }

    /// The scheduler as a URL, `http://127.0.0.1:<port>` (gRPC and the JSON status routes).
    pub fn pd_url(&self) -> String {
        format!("http://{}", self.pd_endpoint())
    }

    /// Stores in the cluster, running or not.
    pub fn store_count(&self) -> usize {
        self.stores.len()
    }

    fn slot(&self, index: usize) -> Result<&StoreSlot> {
        self.stores.get(index).ok_or(Error::NoSuchStore {
            index,
            count: self.stores.len(),
        })
    }

    fn slot_mut(&mut self, index: usize) -> Result<&mut StoreSlot> {
        let count = self.stores.len();
        self.stores
            .get_mut(index)
            .ok_or(Error::NoSuchStore { index, count })
    }

    /// Store `index`'s address, `127.0.0.1:<port>` (stable across restarts).
    pub fn store_addr(&self, index: usize) -> Result<String> {
        Ok(format!("127.0.0.1:{}", self.slot(index)?.port))
    }

    /// The id the scheduler gave store `index` (known once it registered; kept across
    /// restarts, since a store keeps its identity in its data).
    pub fn store_id(&self, index: usize) -> Result<Option<u64>> {
        Ok(self.slot(index)?.store_id)
    }

    /// The index of the store with scheduler id `store_id`, if it is one of ours.
    pub fn store_index(&self, store_id: u64) -> Option<usize> {
        self.stores
            .iter()
            .position(|s| s.store_id == Some(store_id))
    }

    /// Whether store `index` has a process (it may have exited on its own since; see
    /// [`exited`](Self::exited)).
    pub fn store_running(&self, index: usize) -> Result<bool> {
        Ok(self.slot(index)?.process.is_some())
    }

    /// Store `index`'s PID while it runs.
    pub fn store_pid(&self, index: usize) -> Result<Option<u32>> {
        Ok(self.slot(index)?.process.as_ref().map(ServerProcess::pid))
    }

    /// The scheduler's PID while it runs.
    pub fn scheduler_pid(&self) -> Option<u32> {
        self.scheduler.as_ref().map(ServerProcess::pid)
    }

    /// `(name, pid)` of every running process: `scheduler`, then `store <i>`.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let scheduler = self
            .scheduler_pid()
            .map(|pid| ("scheduler".to_string(), pid));
        let stores = self
            .stores
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.process.as_ref().map(|p| (format!("store {i}"), p.pid())));
        scheduler.into_iter().chain(stores).collect()
    }

    /// The cluster's root folder (absolute).
    pub fn data_dir(&self) -> &Path {
        self.layout.root()
    }

    /// Store `index`'s data directory.
    pub fn store_dir(&self, index: usize) -> Result<PathBuf> {
        self.slot(index)?;
        Ok(self.layout.store_dir(index))
    }

    /// Where the logs are: `pd.log` and `store-<i>.log`.
    pub fn log_dir(&self) -> PathBuf {
        self.layout.log_dir()
    }

    /// The scheduler's log file.
    pub fn scheduler_log(&self) -> PathBuf {
        self.layout.pd_log()
    }

    /// Store `index`'s log file.
    pub fn store_log(&self, index: usize) -> Result<PathBuf> {
        self.slot(index)?;
        Ok(self.layout.store_log(index))
    }

    /// The executables the cluster runs.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Endpoints, PIDs and paths, as written to `cluster.json`.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            pd: self.pd_endpoint(),
            pd_url: self.pd_url(),
            data_dir: self.layout.root().to_path_buf(),
            log_dir: self.layout.log_dir(),
            scheduler: ProcessEntry {
                pid: self.scheduler_pid(),
                addr: self.pd_endpoint(),
                data_dir: self.layout.pd_dir(),
                log: self.layout.pd_log(),
            },
            stores: self
                .stores
                .iter()
                .enumerate()
                .map(|(i, s)| StoreEntry {
                    index: i,
                    store_id: s.store_id,
                    pid: s.process.as_ref().map(ServerProcess::pid),
                    addr: format!("127.0.0.1:{}", s.port),
                    data_dir: self.layout.store_dir(i),
                    log: self.layout.store_log(i),
                })
                .collect(),
        }
    }

    /// `<data dir>/cluster.json`, kept up to date while the cluster runs.
    pub fn manifest_path(&self) -> PathBuf {
        self.layout.manifest()
    }

    fn write_manifest(&self) -> Result<()> {
        self.manifest().write_to(&self.layout.manifest())
    }

    // ---- Stores ------------------------------------------------------------------------------

    /// Stops store `index` with SIGTERM and waits for it to exit (SIGKILL after the stop
    /// timeout). An unclean exit is an error quoting the store's log.
    pub async fn stop_store(&mut self, index: usize) -> Result<()> {
        let process = self.take_store_process(index)?;
        let outcome = stop_all(vec![process], self.config.stop_timeout)
            .await
            .pop()
            .expect("one outcome per process");
        self.write_manifest()?;
        outcome
    }

    /// Kills store `index` with SIGKILL, as a crash would, and collects it.
    pub fn kill_store(&mut self, index: usize) -> Result<()> {
        let process = self.take_store_process(index)?;
        let pid = process.pid();
        process.kill();
        tracing::info!(index, pid, "store killed");
        self.write_manifest()
    }

    fn take_store_process(&mut self, index: usize) -> Result<ServerProcess> {
        self.slot_mut(index)?
            .process
            .take()
            .ok_or_else(|| Error::NotRunning(format!("store {index}")))
    }

    /// Starts stopped (or killed) store `index` again on its port and data, and waits until it
    /// has registered and sent a heartbeat. Catching up on its regions happens afterwards;
    /// [`wait_ready`](Self::wait_ready) waits for that too.
    pub async fn restart_store(&mut self, index: usize) -> Result<()> {
        if self.store_running(index)? {
            return Err(Error::Running(format!("store {index}")));
        }
        self.spawn_store(index)?;
        self.wait(Goal::Store(index)).await
    }

    /// Adds a new, empty store (the next index) and waits until it has registered; the
    /// scheduler then moves replicas onto it over time. Returns its index.
    pub async fn add_store(&mut self) -> Result<usize> {
        let index = self.stores.len();
        if index >= MAX_STORES {
            return Err(Error::Config(format!(
                "a cluster holds at most {MAX_STORES} stores"
            )));
        }
        let port = match self.config.fixed_store_port(index) {
            Some(port) => {
                ensure_port_free(port)?;
                port
            }
            None => self.unused_free_port()?,
        };
        self.stores.push(StoreSlot {
            port,
            process: None,
            store_id: None,
        });
        self.spawn_store(index)?;
        self.wait(Goal::Store(index)).await?;
        Ok(index)
    }

    /// A free port that no store of ours owns: a stopped store's port is free but taken.
    fn unused_free_port(&self) -> Result<u16> {
        // More candidates than the cluster can have stores: one of them is not ours.
        free_ports(MAX_STORES + 2)?
            .into_iter()
            .find(|p| *p != self.pd_port && self.stores.iter().all(|s| s.port != *p))
            .ok_or_else(|| Error::Config("no unused free port".into()))
    }

    fn spawn_store(&mut self, index: usize) -> Result<()> {
        let launch = self.store_launch(index)?;
        let dir = self.layout.store_dir(index);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let process = ServerProcess::spawn(&launch)?;
        tracing::info!(index, pid = process.pid(), addr = %self.store_addr(index)?, "store started");
        self.slot_mut(index)?.process = Some(process);
        self.write_manifest()
    }

    fn store_launch(&self, index: usize) -> Result<Launch> {
        let addr = self.store_addr(index)?;
        let mut args = vec![
            format!("--addr={addr}"),
            format!("--advertise-addr={addr}"),
            format!("--data-dir={}", self.layout.store_dir(index).display()),
            format!("--scheduler={}", self.pd_endpoint()),
            format!("--log-filter={}", self.config.log_filter),
        ];
        if self.config.store_config.is_some() {
            args.push(format!(
                "--config={}",
                self.layout.root().join("tinykv.toml").display()
            ));
        }
        args.extend(self.config.store_args.iter().cloned());
        Ok(Launch {
            name: format!("store {index}"),
            program: self.binaries.server.clone(),
            args,
            log: self.layout.store_log(index),
            die_with_parent: self.config.die_with_parent,
        })
    }

    // ---- Scheduler ---------------------------------------------------------------------------

    fn scheduler_launch(&self) -> Launch {
        let mut args = vec![
            "--name=pd".to_string(),
            format!("--listen-addr={}", self.pd_endpoint()),
            format!("--data-dir={}", self.layout.pd_dir().display()),
            format!("--log-level={}", self.config.log_filter),
        ];
        if let Some(n) = self.config.max_replicas {
            args.push(format!("--max-replicas={n}"));
        }
        args.extend(self.config.scheduler_args.iter().cloned());
        Launch {
            name: "scheduler".into(),
            program: self.binaries.scheduler.clone(),
            args,
            log: self.layout.pd_log(),
            die_with_parent: self.config.die_with_parent,
        }
    }

    /// Stops the scheduler with SIGTERM and waits for it to exit.
    pub async fn stop_scheduler(&mut self) -> Result<()> {
        let process = self
            .scheduler
            .take()
            .ok_or_else(|| Error::NotRunning("scheduler".into()))?;
        let outcome = stop_all(vec![process], self.config.stop_timeout)
            .await
            .pop()
            .expect("one outcome per process");
        self.write_manifest()?;
        outcome
    }

    /// Kills the scheduler with SIGKILL.
    pub fn kill_scheduler(&mut self) -> Result<()> {
        let process = self
            .scheduler
            .take()
            .ok_or_else(|| Error::NotRunning("scheduler".into()))?;
        process.kill();
        self.write_manifest()
    }

    /// Starts a stopped scheduler again on its port and data, and waits until it answers.
    pub async fn restart_scheduler(&mut self) -> Result<()> {
        if self.scheduler.is_some() {
            return Err(Error::Running("scheduler".into()));
        }
        self.scheduler = Some(ServerProcess::spawn(&self.scheduler_launch())?);
        self.write_manifest()?;
        self.wait(Goal::Scheduler).await
    }

    // ---- Readiness and liveness ----------------------------------------------------------------

    /// Waits until the whole cluster is ready again, as [`start`](Self::start) does: every
    /// running store registered and heartbeating, every region led (and replicated unless
    /// `wait_replicated` is off), and a raw round trip succeeds.
    pub async fn wait_ready(&mut self) -> Result<()> {
        self.wait(Goal::Cluster).await
    }

    /// Collects processes that exited on their own since the last call: each is removed from
    /// the cluster (a store can then be restarted) and reported with the end of its log.
    pub fn exited(&mut self) -> Vec<Error> {
        let mut errors = Vec::new();
        if let Some(p) = &mut self.scheduler {
            if let Err(e) = p.check_running() {
                self.scheduler = None;
                errors.push(e);
            }
        }
        for slot in &mut self.stores {
            if let Some(p) = &mut slot.process {
                if let Err(e) = p.check_running() {
                    slot.process = None;
                    errors.push(e);
                }
            }
        }
        if !errors.is_empty() {
            if let Err(e) = self.write_manifest() {
                errors.push(e);
            }
        }
        errors
    }

    /// Fails if a process that should be running has exited; the error reports it, so it is
    /// removed from the cluster (a store can then be restarted).
    fn check_processes(&mut self) -> Result<()> {
        let mut exited = self.exited().into_iter();
        match exited.next() {
            Some(first) => {
                for e in exited {
                    tracing::warn!(error = %e, "process exited");
                }
                Err(first)
            }
            None => Ok(()),
        }
    }

    /// Waits for `goal` with a fresh [`ClusterConfig::start_timeout`].
    async fn wait(&mut self, goal: Goal) -> Result<()> {
        let deadline = Instant::now() + self.config.start_timeout;
        self.wait_until(goal, deadline).await
    }

    async fn wait_until(&mut self, goal: Goal, deadline: Instant) -> Result<()> {
        let mut waiting_for = String::from("nothing checked yet");
        loop {
            self.check_processes()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            // A probe stuck on a hung process must not outlive the deadline; its reason is
            // then the previous round's.
            match tokio::time::timeout(remaining, self.probe(goal)).await {
                Ok(Ok(())) => {
                    self.write_manifest()?;
                    return Ok(());
                }
                Ok(Err(reason)) => waiting_for = reason,
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                let what = match goal {
                    Goal::Scheduler => "scheduler".to_string(),
                    Goal::Store(i) => format!("store {i}"),
                    Goal::Cluster => "cluster".to_string(),
                };
                return Err(Error::NotReady {
                    what,
                    after: self.config.start_timeout,
                    waiting_for,
                    logs: self.layout.log_dir(),
                });
            }
            tracing::debug!(?goal, waiting_for, "not ready yet");
            tokio::time::sleep(POLL).await;
        }
    }

    fn store_target(&self, index: usize) -> Option<StoreTarget> {
        let slot = &self.stores[index];
        slot.process.as_ref().map(|p| StoreTarget {
            index,
            addr: format!("127.0.0.1:{}", slot.port),
            started_secs: p.started_unix_secs(),
        })
    }

    /// One readiness check; learned store ids are recorded.
    async fn probe(&mut self, goal: Goal) -> Probe {
        let mut pd = PdProbe::connect(&self.pd_url()).await?;
        let stores: Vec<usize> = match goal {
            Goal::Scheduler => return Ok(()),
            Goal::Store(i) => vec![i],
            Goal::Cluster => (0..self.stores.len()).collect(),
        };
        for i in stores {
            let Some(target) = self.store_target(i) else {
                // A stopped store is nobody's business here, unless it is the one waited for.
                if matches!(goal, Goal::Store(_)) {
                    return Err(format!("store {i} is not running"));
                }
                continue;
            };
            let id = pd.store_up(&target).await?;
            self.stores[i].store_id = Some(id);
        }
        if let Goal::Cluster = goal {
            let replicas = if self.config.wait_replicated {
                let up = pd
                    .stores()
                    .await?
                    .iter()
                    .filter(|s| s.state == proto::metapb::StoreState::Up as i32)
                    .count();
                Some(pd.max_replicas().await?.min(up))
            } else {
                None
            };
            pd.regions_ready(replicas).await?;
            raw_round_trip(&self.pd_endpoint()).await?;
        }
        Ok(())
    }

    // ---- Stopping ----------------------------------------------------------------------------

    /// Stops every store (SIGTERM, all at once), then the scheduler, waits for them to exit,
    /// and removes `cluster.json`. Returns the first failure (an unclean exit, a process that
    /// had to be killed) after stopping everything.
    pub async fn stop(mut self) -> Result<()> {
        self.stopped = true;
        let grace = self.config.stop_timeout;
        let stores: Vec<ServerProcess> = self
            .stores
            .iter_mut()
            .filter_map(|s| s.process.take())
            .collect();
        let mut outcomes = stop_all(stores, grace).await;
        if let Some(p) = self.scheduler.take() {
            outcomes.extend(stop_all(vec![p], grace).await);
        }
        self.remove_manifest();
        outcomes.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }

    fn remove_manifest(&self) {
        let path = self.layout.manifest();
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove manifest");
            }
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if self.stopped {
            // A stop that was itself dropped midway (a second Ctrl-C): the processes still
            // here are killed as their handles drop.
            self.remove_manifest();
            return;
        }
        let grace = self.config.stop_timeout;
        let stores: Vec<ServerProcess> = self
            .stores
            .iter_mut()
            .filter_map(|s| s.process.take())
            .collect();
        let scheduler: Vec<ServerProcess> = self.scheduler.take().into_iter().collect();
        for outcome in stop_all_blocking(stores, grace)
            .into_iter()
            .chain(stop_all_blocking(scheduler, grace))
        {
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "stopping the cluster");
            }
        }
        self.remove_manifest();
    }
}
