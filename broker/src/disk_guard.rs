//! The free-space floor (`log.dir.min.free.bytes`): below it produce requests are refused
//! with KAFKA_STORAGE_ERROR and a message saying why, before RocksDB itself runs out of room.
//! Fetches, offset commits and everything else keep working, and producing resumes by
//! itself once the space is back (producers retry KAFKA_STORAGE_ERROR). A node with live
//! peers also hands its leadership over meanwhile (`server::send_heartbeats`), so its
//! partitions stay writable on replicas with room.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::BrokerError;
use crate::metrics;

/// Watches the free space of the data directory's file system.
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    floor: u64,
    free: AtomicU64,
    below: AtomicBool,
}

impl DiskGuard {
    /// A guard for `dir` with the given floor (0 disables it), checked once now.
    pub fn new(dir: PathBuf, floor: u64) -> Self {
        let guard = Self {
            dir,
            floor,
            free: AtomicU64::new(u64::MAX),
            below: AtomicBool::new(false),
        };
        guard.check();
        guard
    }

    /// Re-reads the free space; logs when the floor is crossed either way.
    pub fn check(&self) {
        let Some((_, free)) = self.space() else {
            return;
        };
        self.free.store(free, Ordering::Release);
        let below = free < self.floor;
        if self.below.swap(below, Ordering::AcqRel) != below {
            if below {
                tracing::error!(free, floor = self.floor, dir = %self.dir.display(),
                    "free space below log.dir.min.free.bytes: refusing produce requests");
            } else {
                tracing::info!(
                    free,
                    floor = self.floor,
                    "free space recovered: producing resumes"
                );
            }
        }
        metrics::record_disk(free, below);
    }

    /// The data directory this guard watches.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// (total, available) bytes of the file system holding the data directory, read now.
    pub fn space(&self) -> Option<(u64, u64)> {
        fs_space(&self.dir)
    }

    /// Whether the data directory was below its free-space floor at the last check.
    pub fn is_below(&self) -> bool {
        self.below.load(Ordering::Acquire)
    }

    /// Err while the data directory is below its free-space floor.
    pub fn check_writable(&self) -> Result<(), BrokerError> {
        if !self.below.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(BrokerError::Storage(format!(
            "log directory {} has {} bytes free, below log.dir.min.free.bytes={}; \
             produce requests are refused until space is freed",
            self.dir.display(),
            self.free.load(Ordering::Acquire),
            self.floor
        )))
    }
}

/// Total bytes and bytes available to unprivileged writers on the file system holding `dir`.
fn fs_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    let block = st.f_frsize as u64;
    (rc == 0).then(|| (st.f_blocks as u64 * block, st.f_bavail as u64 * block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_above_the_free_space_refuses_writes_and_zero_never_does() {
        let dir = std::env::temp_dir();
        assert!(DiskGuard::new(dir.clone(), 0).check_writable().is_ok());
        let refused = DiskGuard::new(dir, u64::MAX).check_writable();
        assert!(matches!(refused, Err(BrokerError::Storage(m)) if m.contains("below")));
    }
}
