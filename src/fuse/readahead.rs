//! The kernel's read-ahead window of the mount (`fuse.max_readahead_kb`).
//!
//! The kernel grows a sequential reader's read-ahead window with the stream, up to the
//! window of the mount's backing device. For a FUSE mount that starts at the kernel's
//! default (128 KiB) and the FUSE init reply can only lower it, so the window is raised
//! through sysfs (`/sys/class/bdi/<major>:<minor>/read_ahead_kb`) once the kernel has
//! taken the init reply. Files opened after that use it. Where sysfs is read-only (a
//! container that is not privileged) the mount keeps the kernel's window and says so.

use super::mount_table;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

/// How long [`set`] waits for the new mount to answer.
const WAIT: Duration = Duration::from_secs(5);

/// Sets the window of the mount at `mnt` to `kb` KiB ([`apply`], off the async threads,
/// waiting at most [`WAIT`]) and logs what happened.
pub async fn set(mnt: &Path, kb: u32) {
    let path = mnt.to_path_buf();
    let setting = tokio::task::spawn_blocking(move || apply(&path, kb));
    let outcome = match tokio::time::timeout(WAIT, setting).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => kept(None, e.to_string()),
        Err(_) => kept(None, format!("the mount did not answer within {WAIT:?}")),
    };
    log(mnt, &outcome);
}

/// What setting the window did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The window was changed.
    Set {
        /// The window now, KiB.
        kb: u32,
        /// The window before, KiB.
        before: u32,
    },
    /// The window already had the wanted size.
    Unchanged {
        /// The window, KiB.
        kb: u32,
    },
    /// The window could not be set; the kernel's stays.
    Kept {
        /// The kernel's window, KiB, when known.
        kept: Option<u32>,
        /// Why it could not be set.
        why: String,
    },
}

/// The sysfs file holding the read-ahead window of the device `major:minor`.
pub fn sysfs_path(device: &str) -> PathBuf {
    Path::new("/sys/class/bdi")
        .join(device)
        .join("read_ahead_kb")
}

/// Sets the window of the FUSE mount at `mnt` to `kb` KiB, after a `stat` of the mount
/// (which the kernel holds until the init reply is in). Blocking: call it off the FUSE
/// threads' way, once the session runs.
pub fn apply(mnt: &Path, kb: u32) -> Outcome {
    if let Err(e) = std::fs::metadata(mnt) {
        return kept(None, format!("the mount does not answer: {e}"));
    }
    match mount_table::top_fuse_mount(mnt) {
        Ok(Some(mount)) => set_window(&sysfs_path(&mount.device), kb),
        Ok(None) => kept(None, "no FUSE mount found at the target".into()),
        Err(e) => kept(None, format!("cannot read /proc/self/mountinfo: {e}")),
    }
}

/// Writes `kb` to the sysfs file `file` unless it already holds it.
pub fn set_window(file: &Path, kb: u32) -> Outcome {
    let before = match std::fs::read_to_string(file) {
        Ok(text) => text.trim().parse::<u32>().ok(),
        Err(e) => return kept(None, format!("cannot read {}: {e}", file.display())),
    };
    if before == Some(kb) {
        return Outcome::Unchanged { kb };
    }
    match std::fs::write(file, format!("{kb}\n")) {
        Ok(()) => Outcome::Set {
            kb,
            before: before.unwrap_or(0),
        },
        Err(e) => kept(before, format!("cannot write {}: {e}", file.display())),
    }
}

fn kept(kept: Option<u32>, why: String) -> Outcome {
    Outcome::Kept { kept, why }
}

/// Logs what [`apply`] did, one line.
fn log(mnt: &Path, outcome: &Outcome) {
    let path = mnt.display();
    match outcome {
        Outcome::Set { kb, before } => {
            info!(%path, kb, before, "kernel read-ahead window set (fuse.max_readahead_kb)")
        }
        Outcome::Unchanged { kb } => {
            info!(%path, kb, "kernel read-ahead window already at fuse.max_readahead_kb")
        }
        Outcome::Kept { kept, why } => warn!(
            %path,
            kept_kb = kept.map(|k| k.to_string()).unwrap_or_else(|| "unknown".into()),
            why = %why,
            "kernel read-ahead window not set: sequential reads get the kernel's window; run the client privileged (writable /sys) or set fuse.max_readahead_kb = 128 to accept it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sysfs_file_is_named_by_the_device() {
        assert_eq!(
            sysfs_path("0:53"),
            PathBuf::from("/sys/class/bdi/0:53/read_ahead_kb")
        );
    }

    #[test]
    fn a_window_is_written_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("read_ahead_kb");
        std::fs::write(&file, "128\n").unwrap();
        assert_eq!(
            set_window(&file, 1024),
            Outcome::Set {
                kb: 1024,
                before: 128
            }
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1024\n");
        assert_eq!(set_window(&file, 1024), Outcome::Unchanged { kb: 1024 });
    }

    #[test]
    fn a_missing_file_keeps_the_kernels_window_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        match set_window(&dir.path().join("nothing"), 1024) {
            Outcome::Kept { kept: None, why } => assert!(why.contains("cannot read"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
