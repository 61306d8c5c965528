//! CPU time of server processes, from `/proc/PID/stat`.
//!
//! A process's `utime + stime` (fields 14 and 15, in clock ticks) covers all of its threads.
//! The runner samples every server process right before and right after the measured part of
//! the run phase; the difference, summed over processes and divided by the operations done,
//! is the server CPU per operation. The benchmark client's own CPU is sampled the same way:
//! it shares the machine with the servers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Clock ticks per second of `/proc` CPU times.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// `utime + stime` from the text of `/proc/PID/stat`.
fn parse_stat(text: &str) -> std::result::Result<u64, String> {
    // Field 2 (the command name) is in parentheses and may itself contain spaces or ')'.
    let after_comm = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or("no ')' after the command name")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    let field = |n: usize| -> std::result::Result<u64, String> {
        fields
            .get(n - 3)
            .ok_or_else(|| format!("field {n} missing"))?
            .parse::<u64>()
            .map_err(|e| format!("field {n}: {e}"))
    };
    Ok(field(14)? + field(15)?)
}

/// CPU time used so far by process `pid`, all threads.
pub fn process_cpu(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Cpu {
        pid,
        reason: format!("{path}: {e}"),
    })?;
    let ticks = parse_stat(&text).map_err(|reason| Error::Cpu { pid, reason })?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second() as f64,
    ))
}

/// The processes whose CPU is accounted.
#[derive(Debug, Clone, Default)]
pub struct CpuProbe {
    /// `(name, pid)` of each server process.
    servers: Vec<(String, u32)>,
}

/// CPU used so far by each probed process and by this process.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    servers: Vec<Duration>,
    client: Duration,
}

/// CPU used between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Sum over every server process, seconds.
    pub server_seconds: f64,
    /// Per server process: name, pid, seconds.
    pub per_server: Vec<ProcessCpu>,
    /// The benchmark client, seconds.
    pub client_seconds: f64,
}

/// One process's share of [`CpuUsage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCpu {
    /// What it is (e.g. `etcd m1`, `tinykv-server 2`).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// CPU seconds used.
    pub seconds: f64,
}

impl CpuProbe {
    /// Probes the given `(name, pid)` server processes; checks each is readable now.
    pub fn new(servers: Vec<(String, u32)>) -> Result<CpuProbe> {
        for (_, pid) in &servers {
            process_cpu(*pid)?;
        }
        Ok(CpuProbe { servers })
    }

    /// Whether any server process is probed.
    pub fn has_servers(&self) -> bool {
        !self.servers.is_empty()
    }

    /// Reads every process's CPU time now.
    pub fn snapshot(&self) -> Result<CpuSnapshot> {
        Ok(CpuSnapshot {
            servers: self
                .servers
                .iter()
                .map(|(_, pid)| process_cpu(*pid))
                .collect::<Result<_>>()?,
            client: process_cpu(std::process::id())?,
        })
    }

    /// CPU used between `before` and `after` (both taken from this probe).
    pub fn usage(&self, before: &CpuSnapshot, after: &CpuSnapshot) -> CpuUsage {
        let per_server: Vec<ProcessCpu> = self
            .servers
            .iter()
            .zip(before.servers.iter().zip(&after.servers))
            .map(|((name, pid), (b, a))| ProcessCpu {
                name: name.clone(),
                pid: *pid,
                seconds: a.saturating_sub(*b).as_secs_f64(),
            })
            .collect();
        CpuUsage {
            server_seconds: per_server.iter().map(|p| p.seconds).sum(),
            per_server,
            client_seconds: after.client.saturating_sub(before.client).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime() {
        let line = "4242 (etcd) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 12 0 \
                    5000 800000000 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 \
                    0 0 0";
        assert_eq!(parse_stat(line), Ok(187));
        // A command name with spaces and parentheses.
        let odd = "7 (tiny kv) (x)) R 1 7 7 0 -1 0 0 0 0 0 9 1 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat(odd), Ok(10));
        assert!(parse_stat("7 (short) S 1 2").is_err());
        assert!(parse_stat("garbage").is_err());
    }

    #[test]
    fn own_cpu_grows_with_work() {
        let probe = CpuProbe::new(vec![("self".into(), std::process::id())]).unwrap();
        assert!(probe.has_servers());
        let before = probe.snapshot().unwrap();
        // Spin until the kernel has charged at least one more tick (10 ms at 100 Hz).
        let mut x = 0u64;
        loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            if process_cpu(std::process::id()).unwrap() > before.client {
                break;
            }
        }
        let after = probe.snapshot().unwrap();
        let usage = probe.usage(&before, &after);
        assert!(
            usage.server_seconds > 0.0 && usage.client_seconds > 0.0,
            "{usage:?}"
        );
        assert_eq!(usage.per_server[0].pid, std::process::id());
    }

    #[test]
    fn missing_process_is_an_error() {
        // Pids are below 2^22 on Linux.
        let err = CpuProbe::new(vec![("ghost".into(), u32::MAX - 1)]).unwrap_err();
        assert!(err.to_string().contains("/proc/"), "{err}");
    }
}
