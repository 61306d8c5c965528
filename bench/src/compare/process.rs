//! Server processes started by `compare`: spawned with their output in a log file, checked
//! while waiting for readiness, stopped by PID (SIGTERM, then SIGKILL after a grace period).
//! Dropping a [`ServerProcess`] that is still running kills it, so an error or a panic never
//! leaves servers behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::errors::{Error, Result};

/// How often a stopping process is checked.
const POLL: Duration = Duration::from_millis(50);

/// A running server process.
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `program args...`, stdout and stderr appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<ServerProcess> {
        let out = File::create(log).map_err(|e| Error::io(log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(log, e))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                Error::process(name, format!("cannot start {}: {e}", program.display()))
            })?;
        tracing::debug!(name, pid = child.id(), "started");
        Ok(ServerProcess {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    /// Its name, e.g. `etcd m1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails (quoting the end of its log) if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::process(&self.name, "already stopped"));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::process(
                &self.name,
                format!(
                    "exited with {status}; log {}:\n{}",
                    self.log.display(),
                    self.log_tail()
                ),
            )),
            Err(e) => Err(Error::process(
                &self.name,
                format!("cannot check status: {e}"),
            )),
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit, then SIGKILLs it.
    pub async fn stop(&mut self, grace: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        if child.try_wait().ok().flatten().is_none() {
            signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() >= deadline {
                    tracing::warn!(name = %self.name, pid, "no exit after SIGTERM; killing");
                    let _ = child.kill();
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        let status = child
            .wait()
            .map_err(|e| Error::process(&self.name, format!("cannot reap pid {pid}: {e}")))?;
        tracing::debug!(name = %self.name, pid, %status, "stopped");
        Ok(())
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, which
    // has not been reaped yet (so the pid cannot have been reused).
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fails if something already listens on `port` of 127.0.0.1 (a leftover server would make
/// the new cluster fail in confusing ways).
pub fn ensure_port_free(port: u16) -> Result<()> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| Error::process(format!("port {port}"), format!("not free: {e}")))
}

/// The first `base + k * span` (k = 0, 1, ...) whose `span` ports are all free on 127.0.0.1.
/// Other tests and servers on a shared machine come and go; a busy default range should move
/// the clusters elsewhere rather than fail the comparison.
pub fn find_free_ports(base: u16, span: u16) -> Result<u16> {
    let mut start = base;
    for _ in 0..50 {
        let Some(end) = start.checked_add(span) else {
            break;
        };
        if (start..end).all(|p| ensure_port_free(p).is_ok()) {
            return Ok(start);
        }
        start = end;
    }
    Err(Error::process(
        format!("ports from {base}"),
        format!("no {span} consecutive free ports found"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_terminates_and_reaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::spawn(
            "sleeper",
            Path::new("sleep"),
            &["600".into()],
            &dir.path().join("sleep.log"),
        )
        .unwrap();
        p.check_running().unwrap();
        let pid = p.pid();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        p.stop(Duration::from_secs(10)).await.unwrap();
        // Reaped: the pid no longer names our child.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains("(sleep)"), "{stat}");
        assert!(p.check_running().is_err());
    }

    #[tokio::test]
    async fn a_process_that_exits_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::spawn(
            "failing",
            Path::new("sh"),
            &["-c".into(), "echo bad flag >&2; exit 3".into()],
            &dir.path().join("fail.log"),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let err = loop {
            match p.check_running() {
                Err(e) => break e.to_string(),
                Ok(()) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(()) => panic!("sh did not exit"),
            }
        };
        assert!(
            err.contains("exit status: 3") && err.contains("bad flag"),
            "{err}"
        );
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ServerProcess::spawn(
            "ghost",
            Path::new("/nonexistent/etcd"),
            &[],
            &dir.path().join("g.log"),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("cannot start /nonexistent/etcd"),
            "{err}"
        );
    }

    #[test]
    fn busy_port_is_detected() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(ensure_port_free(port).is_err());
        drop(listener);
        // A released port is free again — unless a test running beside this one took it in
        // between (ephemeral ports are shared), so a few fresh ports get a chance.
        let freed = std::iter::once(port)
            .chain((0..10).map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            }))
            .any(|p| ensure_port_free(p).is_ok());
        assert!(freed, "no released port was reported free");
    }

    #[test]
    fn busy_ranges_are_skipped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = listener.local_addr().unwrap().port();
        // A range starting at the busy port is skipped for the next one.
        let base = find_free_ports(busy, 4).unwrap();
        assert!(base >= busy + 4, "{base} {busy}");
        assert!(find_free_ports(u16::MAX - 2, 4).is_err());
    }
}
