//! Where a cluster keeps its files, the lock that keeps two clusters off one folder, and
//! loopback ports.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::errors::{Error, Result};

/// Paths under a cluster's data directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Creates `root` (and `logs/`) if needed; `root` is made absolute so paths printed for
    /// the user and written to `cluster.json` work from any directory.
    pub fn create(root: &Path) -> Result<Layout> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let root = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let layout = Layout { root };
        let logs = layout.log_dir();
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pd_dir(&self) -> PathBuf {
        self.root.join("pd")
    }

    pub fn store_dir(&self, index: usize) -> PathBuf {
        self.root.join(format!("store-{index}"))
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn pd_log(&self) -> PathBuf {
        self.log_dir().join("pd.log")
    }

    pub fn store_log(&self, index: usize) -> PathBuf {
        self.log_dir().join(format!("store-{index}.log"))
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }
}

/// An exclusive `flock` on `<dir>/.lock`, held while the cluster exists. The kernel drops it
/// when the process dies, so a crashed owner never leaves the folder locked.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(layout: &Layout) -> Result<DirLock> {
        let path = layout.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // SAFETY: flock(2) on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Error::DirInUse {
                    dir: layout.root().to_path_buf(),
                    lock: path,
                }
            } else {
                Error::io(&path, err)
            });
        }
        Ok(DirLock { _file: file })
    }
}

/// Fails unless `port` on 127.0.0.1 can be bound right now.
pub(crate) fn ensure_port_free(port: u16) -> Result<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|e| Error::PortInUse {
            port,
            reason: e.to_string(),
        })
}

/// `n` distinct free loopback ports. The listeners are held until all are chosen, so the
/// kernel cannot hand out one port twice; the window between here and the server's own bind
/// is the usual, accepted race of this technique.
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)).map_err(Error::NoFreePort))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(Error::NoFreePort))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(&dir.path().join("c")).unwrap();
        assert!(layout.log_dir().is_dir());
        let first = DirLock::acquire(&layout).unwrap();
        let err = DirLock::acquire(&layout).unwrap_err();
        assert!(matches!(err, Error::DirInUse { .. }), "{err}");
        drop(first);
        DirLock::acquire(&layout).unwrap();
    }

    #[test]
    fn ports_are_distinct_and_a_taken_port_is_named() {
        let ports = free_ports(8).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);

        let held = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let err = ensure_port_free(port).unwrap_err().to_string();
        assert!(err.contains(&port.to_string()), "{err}");
        drop(held);
    }
}
