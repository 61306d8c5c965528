//! Runs the Python scenario scripts (`python/*.py`) against a running cluster.
//!
//! The Rust harness owns the cluster: it starts it, seeds data, forces splits between phases and
//! reads back what the scripts wrote. A script gets `--pd HOST:PORT` plus its own arguments,
//! checks what its client returns itself (exit status 1 with a message on a mismatch), and
//! prints one JSON document as the last line of stdout: what it left in the cluster, for the
//! harness to read back through our client.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::cluster::CompatCluster;
use crate::errors::{Error, Result};

/// Where the scripts are.
pub fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `python/<script>` with `--pd <endpoint>` and `args`; returns its JSON report.
pub async fn run_script(c: &CompatCluster, script: &str, args: &[String]) -> Result<serde_json::Value> {
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
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| Error::Io {
        path: python.clone(),
        source: e,
    })?;
    let timeout = c.config().script_timeout;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?,
        Err(_) => {
            return Err(Error::PythonScript {
                script: path,
                status: format!("no exit after {timeout:?} (killed)"),
                stdout: String::new(),
                stderr: String::new(),
            })
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Captured by the test runner: shown when the test fails.
    eprintln!("--- {script} {} ---\n{stderr}", args.join(" "));
    if !out.status.success() {
        return Err(Error::PythonScript {
            script: path,
            status: out.status.to_string(),
            stdout,
            stderr,
        });
    }
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let Some(last) = last else {
        return Err(Error::PythonReport {
            script: path,
            reason: "no output".into(),
        });
    };
    serde_json::from_str(last).map_err(|e| Error::PythonReport {
        script: path,
        reason: format!("{e} in {last:?}"),
    })
}
