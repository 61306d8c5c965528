//! Finding (or, for tests, building) the `tinyscheduler-server` and `tinykv-server` executables.
//!
//! A cluster runs binaries that were built beforehand; nothing here compiles unless asked to
//! with [`Binaries::build_with_cargo`]. The search order of [`Binaries::locate`]:
//!
//! 1. `TINYSCHEDULER_SERVER_BIN` / `TINYKV_SERVER_BIN`: one explicit path per binary;
//! 2. `TINYKV_BIN_DIR`: a directory holding both;
//! 3. the directory of the running executable (the playground sits next to the servers in
//!    `target/release`), or its parent when that is `deps/` (test executables);
//! 4. `$CARGO_TARGET_DIR/<profile>`, then `<workspace>/target/<profile>`, where the profile is
//!    the one this crate was compiled with (`debug` or `release`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::errors::{Error, Result};

/// File name of the scheduler binary.
pub const SCHEDULER_BIN: &str = "tinyscheduler-server";
/// File name of the store binary.
pub const SERVER_BIN: &str = "tinykv-server";
/// Names an explicit scheduler executable.
pub const SCHEDULER_BIN_ENV: &str = "TINYSCHEDULER_SERVER_BIN";
/// Names an explicit store executable.
pub const SERVER_BIN_ENV: &str = "TINYKV_SERVER_BIN";
/// Names a directory holding both executables.
pub const BIN_DIR_ENV: &str = "TINYKV_BIN_DIR";

/// Paths of the two server executables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `tinyscheduler-server`.
    pub scheduler: PathBuf,
    /// `tinykv-server`.
    pub server: PathBuf,
}

/// The profile this crate was built with: the one whose binaries match it.
pub fn current_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The workspace root, as seen when this crate was compiled.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}

impl Binaries {
    /// Both binaries from `dir`, if both exist there.
    pub fn in_dir(dir: &Path) -> Option<Binaries> {
        let b = Binaries {
            scheduler: dir.join(SCHEDULER_BIN),
            server: dir.join(SERVER_BIN),
        };
        (is_file(&b.scheduler) && is_file(&b.server)).then_some(b)
    }

    /// Finds both binaries for the profile this crate was compiled with (see the module
    /// documentation for the order).
    pub fn locate() -> Result<Binaries> {
        Binaries::locate_profile(current_profile())
    }

    /// Finds both binaries of `profile` (`debug`, `release`, or a custom profile's directory).
    pub fn locate_profile(profile: &str) -> Result<Binaries> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
            dirs.push(PathBuf::from(dir));
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if exe_dir.file_name().is_some_and(|n| n == "deps") {
                if let Some(parent) = exe_dir.parent() {
                    dirs.push(parent.to_path_buf());
                }
            } else {
                dirs.push(exe_dir);
            }
        }
        if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
            dirs.push(PathBuf::from(target).join(profile));
        }
        dirs.push(workspace_root().join("target").join(profile));

        let scheduler = explicit_or_search(SCHEDULER_BIN, SCHEDULER_BIN_ENV, &dirs)?;
        let server = explicit_or_search(SERVER_BIN, SERVER_BIN_ENV, &dirs)?;
        Ok(Binaries { scheduler, server })
    }

    /// Builds both binaries with Cargo (a no-op when they are up to date) in this crate's
    /// workspace and returns the executables Cargo reports. Meant for test suites, which must
    /// not run stale servers; the explicit `*_BIN` variables still win when set. Needs the
    /// source tree and runs the Cargo that runs the caller (`$CARGO`) if there is one.
    pub fn build_with_cargo(release: bool) -> Result<Binaries> {
        if let (Some(s), Some(k)) = (
            std::env::var_os(SCHEDULER_BIN_ENV),
            std::env::var_os(SERVER_BIN_ENV),
        ) {
            let b = Binaries {
                scheduler: PathBuf::from(s),
                server: PathBuf::from(k),
            };
            b.check()?;
            return Ok(b);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
        ])
        .args(["-p", "scheduler", "--bin", SCHEDULER_BIN])
        .args(["-p", "kvserver", "--bin", SERVER_BIN])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
        if release {
            cmd.arg("--release");
        }
        let out = cmd
            .output()
            .map_err(|e| Error::Build(format!("cannot run cargo: {e}")))?;
        if !out.status.success() {
            return Err(Error::Build(format!(
                "cargo build exited with {}",
                out.status
            )));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let find = |name: &str| {
            stdout
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
                .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
                .ok_or_else(|| Error::Build(format!("cargo reported no {name} executable")))
        };
        Ok(Binaries {
            scheduler: find(SCHEDULER_BIN)?,
            server: find(SERVER_BIN)?,
        })
    }

    /// Fails unless both paths are existing files.
    pub fn check(&self) -> Result<()> {
        for (path, name, env) in [
            (&self.scheduler, SCHEDULER_BIN, SCHEDULER_BIN_ENV),
            (&self.server, SERVER_BIN, SERVER_BIN_ENV),
        ] {
            if !is_file(path) {
                return Err(Error::BinaryNotFound {
                    binary: name,
                    searched: path.display().to_string(),
                    env,
                });
            }
        }
        Ok(())
    }
}

/// The path named by `env`, or the first of `dirs` holding `name`.
fn explicit_or_search(name: &'static str, env: &'static str, dirs: &[PathBuf]) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return if is_file(&path) {
            Ok(path)
        } else {
            Err(Error::BinaryNotFound {
                binary: name,
                searched: format!("{} (from {env})", path.display()),
                env,
            })
        };
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_file(p))
        .ok_or_else(|| Error::BinaryNotFound {
            binary: name,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            env,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_dir_needs_both_binaries() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Binaries::in_dir(dir.path()), None);
        std::fs::write(dir.path().join(SCHEDULER_BIN), b"").unwrap();
        assert_eq!(Binaries::in_dir(dir.path()), None);
        std::fs::write(dir.path().join(SERVER_BIN), b"").unwrap();
        let b = Binaries::in_dir(dir.path()).unwrap();
        assert_eq!(b.server, dir.path().join(SERVER_BIN));
        b.check().unwrap();
    }

    #[test]
    fn search_reports_every_place_tried() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        // Not set in the test environment (the name is unique to this test).
        let err = explicit_or_search("no-such-binary", "TINYKV_TEST_UNSET_VAR", &dirs)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&a.path().display().to_string())
                && err.contains(&b.path().display().to_string())
                && err.contains("make release"),
            "{err}"
        );
        std::fs::write(b.path().join("no-such-binary"), b"").unwrap();
        assert_eq!(
            explicit_or_search("no-such-binary", "TINYKV_TEST_UNSET_VAR", &dirs).unwrap(),
            b.path().join("no-such-binary")
        );
    }

    #[test]
    fn check_names_the_missing_binary() {
        let b = Binaries {
            scheduler: PathBuf::from("/nonexistent/tinyscheduler-server"),
            server: PathBuf::from("/nonexistent/tinykv-server"),
        };
        let err = b.check().unwrap_err().to_string();
        assert!(
            err.contains(SCHEDULER_BIN) && err.contains(SCHEDULER_BIN_ENV),
            "{err}"
        );
    }
}
