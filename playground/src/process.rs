//! One server process: spawned with its output appended to a log file, watched, and stopped by
//! PID (SIGTERM with a grace period, or SIGKILL).
//!
//! Children get their own process group, so a Ctrl-C in the terminal reaches only the program
//! that owns the cluster, which then stops them in order. On Linux they can also be tied to
//! the starting thread's life (`PR_SET_PDEATHSIG`), so a crashed test leaves no servers behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::errors::{Error, Result};

/// How often an exiting process is checked.
const POLL: Duration = Duration::from_millis(20);
/// Bytes read from the end of a log to quote in errors.
const TAIL_BYTES: u64 = 16 << 10;
/// Lines quoted from the end of a log.
const TAIL_LINES: usize = 20;

/// What a process is started with.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Human name used in errors and logs (`scheduler`, `store 2`).
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The file stdout and stderr are appended to.
    pub log: PathBuf,
    /// Tie the child's life to the starting thread (Linux).
    pub die_with_parent: bool,
}

/// A running (or exited, not yet collected) child process.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    name: String,
    log: PathBuf,
    child: Child,
    pid: u32,
    started: SystemTime,
    /// Set once the child is reaped: from then on its pid may name another process, so it is
    /// never signalled again.
    exit: Option<ExitStatus>,
}

impl ServerProcess {
    /// Starts the process; its output is appended to `launch.log` after a header line.
    pub fn spawn(launch: &Launch) -> Result<ServerProcess> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .map_err(|e| Error::io(&launch.log, e))?;
        let started = SystemTime::now();
        writeln!(
            log,
            "--- {} starting {}: {} {}",
            humantime::format_rfc3339_seconds(started),
            launch.name,
            launch.program.display(),
            launch.args.join(" ")
        )
        .map_err(|e| Error::io(&launch.log, e))?;
        let stderr = log.try_clone().map_err(|e| Error::io(&launch.log, e))?;

        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Our own group: the terminal's Ctrl-C goes to the owner, which stops us in order.
            .process_group(0);
        #[cfg(target_os = "linux")]
        if launch.die_with_parent {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: the closure runs in the forked child before exec and only calls
            // async-signal-safe functions (prctl, getppid); it allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died before prctl took effect.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            name: launch.name.clone(),
            program: launch.program.clone(),
            source,
        })?;
        let pid = child.id();
        tracing::debug!(name = %launch.name, pid, "started");
        Ok(ServerProcess {
            name: launch.name.clone(),
            log: launch.log.clone(),
            child,
            pid,
            started,
            exit: None,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When it was started, in whole Unix seconds (rounded down).
    pub fn started_unix_secs(&self) -> u64 {
        self.started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Its exit status, if it has exited (collecting it).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(status) => self.exit = status,
                // ECHILD and the like: nothing left to wait for; report it as gone.
                Err(e) => {
                    tracing::warn!(name = %self.name, pid = self.pid, error = %e, "cannot check process");
                    self.exit = Some(ExitStatus::default());
                }
            }
        }
        self.exit
    }

    /// Fails with the end of its log if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.try_exit() {
            None => Ok(()),
            Some(status) => Err(self.exited_error(status)),
        }
    }

    fn exited_error(&self, status: ExitStatus) -> Error {
        Error::Exited {
            name: self.name.clone(),
            pid: self.pid,
            status,
            log: self.log.clone(),
            tail: log_tail(&self.log),
        }
    }

    /// Sends `sig` unless the child has been reaped (its pid could name someone else then).
    fn signal(&mut self, sig: libc::c_int) {
        if self.try_exit().is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return;
        };
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Asks the process to stop (SIGTERM).
    pub fn request_stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Kills the process (SIGKILL) and collects it. Returns how it ended; an already exited
    /// process just reports its status.
    pub fn kill(mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        self.wait_blocking()
    }

    fn wait_blocking(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let status = self.child.wait().unwrap_or_default();
        self.exit = Some(status);
        status
    }

    /// The outcome of a stop once the process has exited (`None` while it runs): success
    /// only for a clean exit.
    fn stop_outcome(&mut self) -> Option<Result<()>> {
        let status = self.try_exit()?;
        Some(if status.success() {
            tracing::debug!(name = %self.name, pid = self.pid, "stopped");
            Ok(())
        } else {
            Err(self.exited_error(status))
        })
    }

    /// Kills a process that outlived its grace period and reports it.
    fn force(&mut self, grace: Duration) -> Error {
        tracing::warn!(name = %self.name, pid = self.pid, "no exit after SIGTERM; killing");
        self.signal(libc::SIGKILL);
        self.wait_blocking();
        Error::StopTimeout {
            name: self.name.clone(),
            pid: self.pid,
            after: grace,
            log: self.log.clone(),
        }
    }
}

impl Drop for ServerProcess {
    /// A safety net only: owners stop processes explicitly. A process still running here is
    /// killed so nothing outlives its owner.
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            tracing::warn!(name = %self.name, pid = self.pid, "killing a process that was not stopped");
            self.signal(libc::SIGKILL);
            self.wait_blocking();
        }
    }
}

/// SIGTERMs every process at once, then waits for all of them, SIGKILLing those still running
/// after `grace`. Returns one outcome per process, in order.
pub(crate) async fn stop_all(procs: Vec<ServerProcess>, grace: Duration) -> Vec<Result<()>> {
    let mut stopping = Stopping::new(procs, grace);
    loop {
        if let Some(done) = stopping.poll() {
            return done;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`stop_all`] for synchronous contexts (`Drop`).
pub(crate) fn stop_all_blocking(procs: Vec<ServerProcess>, grace: Duration) -> Vec<Result<()>> {
    let mut stopping = Stopping::new(procs, grace);
    loop {
        if let Some(done) = stopping.poll() {
            return done;
        }
        std::thread::sleep(POLL);
    }
}

/// Shared state of the two stop loops.
struct Stopping {
    procs: Vec<ServerProcess>,
    outcomes: Vec<Option<Result<()>>>,
    deadline: Instant,
    grace: Duration,
}

impl Stopping {
    fn new(mut procs: Vec<ServerProcess>, grace: Duration) -> Stopping {
        for p in &mut procs {
            p.request_stop();
        }
        let outcomes = procs.iter().map(|_| None).collect();
        Stopping {
            procs,
            outcomes,
            deadline: Instant::now() + grace,
            grace,
        }
    }

    /// All outcomes once every process has exited (or was killed at the deadline).
    fn poll(&mut self) -> Option<Vec<Result<()>>> {
        let late = Instant::now() >= self.deadline;
        for (p, out) in self.procs.iter_mut().zip(&mut self.outcomes) {
            if out.is_none() {
                *out = p.stop_outcome();
                if out.is_none() && late {
                    *out = Some(Err(p.force(self.grace)));
                }
            }
        }
        if self.outcomes.iter().all(Option::is_some) {
            Some(self.outcomes.iter_mut().filter_map(Option::take).collect())
        } else {
            None
        }
    }
}

/// The last lines of a log file (at most the last 16 KiB of it).
pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::from("(unreadable log)");
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    // A cut first line is partial unless the read started at the beginning of the file.
    let skip_partial = usize::from(from > 0 && lines.len() > 1);
    let start = lines.len().saturating_sub(TAIL_LINES).max(skip_partial);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &Path, name: &str, program: &str, args: &[&str]) -> Launch {
        Launch {
            name: name.into(),
            program: PathBuf::from(program),
            args: args.iter().map(|s| s.to_string()).collect(),
            log: dir.join(format!("{name}.log")),
            die_with_parent: true,
        }
    }

    fn pid_alive(pid: u32) -> bool {
        // A reaped child no longer has a /proc entry (or it names another program).
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains("(sleep)"))
    }

    /// Waits until `sh` has set its trap: the script prints TRAP-SET (upper-cased by `tr`, so
    /// the command line in the log's header does not match).
    async fn wait_for_trap(log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(log).unwrap().contains("TRAP-SET") {
            assert!(Instant::now() < deadline, "sh never set its trap");
            tokio::time::sleep(POLL).await;
        }
    }

    #[tokio::test]
    async fn sigterm_stops_and_reaps() {
        let dir = tempfile::tempdir().unwrap();
        // `sh` exits 0 on SIGTERM through its trap, like a server shutting down cleanly.
        let mut p = ServerProcess::spawn(&launch(
            dir.path(),
            "clean",
            "sh",
            &[
                "-c",
                "trap 'exit 0' TERM; echo trap-set | tr a-z A-Z; while true; do sleep 0.05; done",
            ],
        ))
        .unwrap();
        wait_for_trap(&dir.path().join("clean.log")).await;
        p.check_running().unwrap();
        let out = stop_all(vec![p], Duration::from_secs(30)).await;
        assert!(out[0].is_ok(), "{:?}", out[0]);
    }

    #[tokio::test]
    async fn an_unclean_exit_or_a_hang_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // Killed by SIGTERM (no handler): not a clean shutdown.
        let plain = ServerProcess::spawn(&launch(dir.path(), "plain", "sleep", &["600"])).unwrap();
        let plain_pid = plain.pid();
        // Ignores SIGTERM: killed after the grace period.
        let stubborn = ServerProcess::spawn(&launch(
            dir.path(),
            "stubborn",
            "sh",
            &[
                "-c",
                "trap '' TERM; echo trap-set | tr a-z A-Z; while true; do sleep 0.05; done",
            ],
        ))
        .unwrap();
        // SIGTERM must not arrive before the trap is set.
        wait_for_trap(&dir.path().join("stubborn.log")).await;
        let out = stop_all(vec![plain, stubborn], Duration::from_millis(500)).await;
        let first = out[0].as_ref().unwrap_err().to_string();
        assert!(
            first.contains("plain") && first.contains("signal"),
            "{first}"
        );
        let second = out[1].as_ref().unwrap_err();
        assert!(matches!(second, Error::StopTimeout { .. }), "{second}");
        assert!(!pid_alive(plain_pid));
    }

    #[test]
    fn kill_and_drop_leave_nothing_running() {
        let dir = tempfile::tempdir().unwrap();
        let p = ServerProcess::spawn(&launch(dir.path(), "a", "sleep", &["600"])).unwrap();
        let pid = p.pid();
        let status = p.kill();
        assert!(!status.success());
        assert!(!pid_alive(pid));

        let p = ServerProcess::spawn(&launch(dir.path(), "b", "sleep", &["600"])).unwrap();
        let pid = p.pid();
        drop(p);
        assert!(!pid_alive(pid));
    }

    #[test]
    fn an_early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::spawn(&launch(
            dir.path(),
            "failing",
            "sh",
            &["-c", "echo bad-flag | tr a-z A-Z >&2; exit 3"],
        ))
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let err = loop {
            match p.check_running() {
                Err(e) => break e.to_string(),
                Ok(()) => {
                    assert!(Instant::now() < deadline, "sh did not exit");
                    std::thread::sleep(POLL);
                }
            }
        };
        assert!(
            err.contains("exit status: 3") && err.contains("BAD-FLAG") && err.contains("failing"),
            "{err}"
        );
        // The header line names what was started.
        let log = std::fs::read_to_string(dir.path().join("failing.log")).unwrap();
        assert!(
            log.starts_with("--- ") && log.contains("starting failing: sh"),
            "{log}"
        );
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ServerProcess::spawn(&launch(dir.path(), "ghost", "/nonexistent/bin", &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ghost") && err.contains("/nonexistent/bin"),
            "{err}"
        );
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = log_tail(&path);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.last(), Some(&"line 4999"));
        assert_eq!(log_tail(&dir.path().join("missing.log")), "(no log)");
    }
}
