//! The Python clients from PyPI against a running cluster: the scenario scripts
//! (`python/*.py`), how the harness runs them, and what it checks afterwards.
//!
//! The Rust harness owns the cluster: it starts it, seeds data through our client, forces
//! splits between phases and reads back what the scripts wrote. A script gets `--pd HOST:PORT`,
//! the namespace it writes and the one the harness seeded ([`Phase`]); it checks every answer
//! of its client itself (exit status 1 with a message on a mismatch) and prints one JSON
//! document as the last line of stdout: the pairs it left. The harness then checks those pairs
//! twice: against what the script must leave (restated in Rust, so a script that silently did
//! nothing cannot pass) and against what our client reads back (the clients can report success
//! for writes that never reached a store: reference notes §5.2).
//!
//! - [`raw`]: `tikv-python` 0.1.1, raw API (point, batch, prefix/bounded/reverse scans,
//!   deletes, CAS, the refused TTL).
//! - [`txn`]: the `tikv-client` 0.0.4 wheel, transactions (commit, rollback, conflict, insert,
//!   snapshot, pessimistic, scans).

pub mod raw;
pub mod txn;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::cluster::CompatCluster;
use crate::errors::{Error, Result};
use crate::keys::{Api, Namespace, KEYS_PER_SCENARIO};
use crate::scenarios::Pairs;

/// Keys the harness seeds for a script to read (`--seed-count`).
pub const SEED_COUNT: usize = KEYS_PER_SCENARIO;

/// One run of a script: the namespace the harness seeds for it to read, and the one it writes.
/// Each run gets fresh namespaces, so runs on one cluster never see each other's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// Seeded by the harness through our client; the script only reads it.
    pub seed: Namespace,
    /// Written by the script.
    pub writes: Namespace,
}

impl Phase {
    /// The namespaces of run `tag` of a script of `api` (e.g. `r/py-seed-1/`, `r/py-writes-1/`).
    pub fn new(api: Api, tag: &str) -> Phase {
        let ns = |role: &str| {
            let name = format!("py-{role}-{tag}");
            match api {
                Api::Raw => Namespace::raw(&name),
                Api::Txn => Namespace::txn(&name),
            }
        };
        Phase {
            seed: ns("seed"),
            writes: ns("writes"),
        }
    }

    /// The pairs the harness seeds: `<seed prefix><i:03>` = `seed-<i:03>` (common.py's
    /// `seed_value`).
    pub fn seeds(&self) -> Pairs {
        (0..SEED_COUNT)
            .map(|i| (self.seed.key(i), format!("seed-{i:03}").into_bytes()))
            .collect()
    }

    /// The script's arguments after `--pd`.
    fn args(&self) -> Vec<String> {
        let text = |ns: &Namespace| String::from_utf8_lossy(ns.prefix()).into_owned();
        vec![
            "--prefix".into(),
            text(&self.writes),
            "--seed-prefix".into(),
            text(&self.seed),
            "--seed-count".into(),
            SEED_COUNT.to_string(),
        ]
    }

    /// Splits the key space so this phase runs across regions: the seeded namespace in two (at
    /// its middle), the written one in four (at keys 5, 10 and 15, so scans and batches cross
    /// several boundaries, forward and reverse). Also splits raw from transactional keys
    /// ([`CompatCluster::split_namespaces`]).
    pub async fn split(&self, c: &CompatCluster) -> Result<()> {
        c.split_namespaces(std::slice::from_ref(&self.seed)).await?;
        for i in [5, 10, 15] {
            c.split_at(self.writes.api(), &self.writes.key(i)).await?;
        }
        Ok(())
    }
}

/// The `pairs` object of a script's report (UTF-8 keys and values, see common.py).
pub fn report_pairs(script: &str, report: &serde_json::Value) -> Result<Pairs> {
    let bad = |reason: String| Error::PythonReport {
        script: script_dir().join(script),
        reason,
    };
    let pairs = report
        .get("pairs")
        .and_then(|p| p.as_object())
        .ok_or_else(|| bad(format!("no \"pairs\" object in {report}")))?;
    pairs
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|v| (k.clone().into_bytes(), v.as_bytes().to_vec()))
                .ok_or_else(|| bad(format!("value of {k:?} is not a string: {v}")))
        })
        .collect()
}

/// Where the scripts are.
pub fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `python/<script>` with `--pd <endpoint>` and `args`; returns its JSON report.
pub async fn run_script(
    c: &CompatCluster,
    script: &str,
    args: &[String],
) -> Result<serde_json::Value> {
    let python = c.config().python_path();
    if !python.is_file() {
        return Err(Error::PythonSetup(format!(
            "no interpreter at {}: run `make compat-venv` (it creates the venv with the pinned \
             clients) or set {}",
            python.display(),
            crate::config::PYTHON_ENV
        )));
    }
    let path = script_dir().join(script);
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg("-u")
        .arg(&path)
        .arg("--pd")
        .arg(c.pd_endpoints().join(","))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_process(cmd, c.config().script_timeout)
        .await
        .map_err(|e| Error::Io {
            path: python.clone(),
            source: e,
        })?;
    // Captured by the test runner: shown when the test fails.
    eprintln!("--- {script} {} ---\n{}", args.join(" "), out.stderr);
    if !out.success {
        return Err(Error::PythonScript {
            script: path,
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        });
    }
    parse_report(&out.stdout).map_err(|reason| Error::PythonReport {
        script: path,
        reason,
    })
}

/// What a finished (or killed) process printed, and how it ended.
#[derive(Debug)]
pub struct ProcessOutput {
    /// Exited with status 0.
    pub success: bool,
    /// The exit status, or why it was killed.
    pub status: String,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs `cmd` (stdin closed, stdout and stderr captured), killing it after `timeout`. Both pipes
/// are read while waiting, so a process that hangs still shows how far it got.
pub async fn run_process(
    mut cmd: tokio::process::Command,
    timeout: std::time::Duration,
) -> std::io::Result<ProcessOutput> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let (success, status) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            let status = status?;
            (status.success(), status.to_string())
        }
        Err(_) => {
            // Killing closes the pipes, which ends both readers.
            let _ = child.kill().await;
            (false, format!("no exit after {timeout:?} (killed)"))
        }
    };
    Ok(ProcessOutput {
        success,
        status,
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
    })
}

/// The report: the last non-empty line of a script's stdout, a JSON document.
pub fn parse_report(stdout: &str) -> std::result::Result<serde_json::Value, String> {
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or("no output")?;
    serde_json::from_str(last).map_err(|e| format!("{e} in {last:?}"))
}

/// Everything a child's pipe delivers until it closes, as text (empty if there is no pipe or it
/// fails: the exit status then tells what happened).
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sh(script: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[tokio::test]
    async fn a_process_is_waited_for_and_a_hung_one_killed_with_its_output() {
        let out = run_process(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert!(!out.success);
        assert!(out.status.contains('3'), "{}", out.status);
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("out\n", "err\n")
        );

        // `exec` so the shell itself sleeps: killing it closes the pipes.
        let out = run_process(
            sh("echo started; echo working >&2; exec sleep 60"),
            Duration::from_millis(500),
        )
        .await
        .unwrap();
        assert!(!out.success);
        assert!(out.status.contains("killed"), "{}", out.status);
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("started\n", "working\n")
        );
    }

    #[test]
    fn the_report_is_the_last_line_and_its_pairs_must_be_strings() {
        let v = parse_report("progress\n{\"pairs\": {\"k\": \"v\"}}\n\n").unwrap();
        let pairs = report_pairs("x.py", &v).unwrap();
        assert_eq!(pairs, [(b"k".to_vec(), b"v".to_vec())].into());
        assert!(parse_report("").unwrap_err().contains("no output"));
        assert!(parse_report("{\"pairs\": {}}\nnot json").is_err());
        let err = report_pairs("x.py", &serde_json::json!({"pairs": {"k": 1}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a string"), "{err}");
        assert!(report_pairs("x.py", &serde_json::json!({})).is_err());
    }
}
