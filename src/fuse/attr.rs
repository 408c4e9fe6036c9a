//! Translations between the cluster and the kernel: file status to `FileAttr`, and
//! [`FsError`] to errno (the one place where that mapping lives).

use crate::client::FileStatus;
use crate::fs_error::FsError;
use crate::rpc::pb::master::FileKind;
use fuser::{Errno, FileAttr, FileType, INodeNo};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `st_blksize`: what `cp` and friends size their buffers by; one FUSE request.
pub const BLKSIZE: u32 = 1 << 20;

/// The kernel's view of a file status; `size` overrides the master's length while this
/// client holds unwritten data.
pub fn file_attr(ino: u64, status: &FileStatus, size: Option<u64>) -> FileAttr {
    let size = size.unwrap_or(status.size);
    let kind = file_type(status);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time(status.atime_ms),
        mtime: time(status.mtime_ms),
        ctime: time(status.ctime_ms),
        crtime: time(status.ctime_ms),
        kind,
        perm: (status.mode & 0o7777) as u16,
        nlink: match kind {
            FileType::Directory => status.nlink.max(2),
            // 0 for a file unlinked while open.
            _ => status.nlink,
        },
        uid: status.uid,
        gid: status.gid,
        rdev: status.rdev,
        blksize: BLKSIZE,
        flags: 0,
    }
}

/// The kernel's file type of a status.
pub fn file_type(status: &FileStatus) -> FileType {
    match FileKind::try_from(status.kind) {
        Ok(FileKind::Directory) => FileType::Directory,
        Ok(FileKind::Symlink) => FileType::Symlink,
        Ok(FileKind::Fifo) => FileType::NamedPipe,
        Ok(FileKind::Socket) => FileType::Socket,
        Ok(FileKind::CharDevice) => FileType::CharDevice,
        Ok(FileKind::BlockDevice) => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Milliseconds since the epoch of a time the kernel sent.
pub fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The errno a program sees for a cluster error. An unreachable cluster is EIO.
pub fn errno(e: &FsError) -> Errno {
    match e {
        FsError::NotFound(_) => Errno::ENOENT,
        FsError::AlreadyExists(_) => Errno::EEXIST,
        FsError::NotADirectory(_) => Errno::ENOTDIR,
        FsError::IsADirectory(_) => Errno::EISDIR,
        FsError::NotEmpty(_) => Errno::ENOTEMPTY,
        FsError::NotPermitted(_) => Errno::EPERM,
        FsError::TooManyLinks(_) => Errno::EMLINK,
        FsError::NoAttribute(_) => Errno::ENODATA,
        FsError::NotSupported(_) => Errno::EOPNOTSUPP,
        FsError::ReadOnly(_) => Errno::EROFS,
        FsError::CrossDevice(_) => Errno::EXDEV,
        FsError::TooBig(_) => Errno::E2BIG,
        FsError::OutOfRange(_) => Errno::ERANGE,
        FsError::InvalidPath(why) if why.contains("too long") => Errno::ENAMETOOLONG,
        FsError::InvalidPath(_) | FsError::InvalidArgument(_) => Errno::EINVAL,
        FsError::NoSpace(_) => Errno::ENOSPC,
        FsError::Unauthenticated(_) | FsError::BlockToken(_) => Errno::EACCES,
        FsError::Unavailable(_) | FsError::NotLeader { .. } | FsError::Io(_) => {
            log_io_error(e);
            Errno::EIO
        }
    }
}

/// Logs why a program got EIO, at most once a second (a cluster outage fails every
/// request; one line a second says so without flooding the log).
fn log_io_error(e: &FsError) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last = LAST_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000
        && LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let also = SUPPRESSED.swap(0, Ordering::Relaxed);
        tracing::warn!(error = %e, more_in_the_last_second = also, "a file operation failed with EIO");
    } else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_errno_programs_expect() {
        let cases = [
            (FsError::NotFound("x".into()), libc::ENOENT),
            (FsError::AlreadyExists("x".into()), libc::EEXIST),
            (FsError::NotADirectory("x".into()), libc::ENOTDIR),
            (FsError::IsADirectory("x".into()), libc::EISDIR),
            (FsError::NotEmpty("x".into()), libc::ENOTEMPTY),
            (FsError::NoSpace("x".into()), libc::ENOSPC),
            (FsError::Unauthenticated("x".into()), libc::EACCES),
            (FsError::BlockToken("x".into()), libc::EACCES),
            (FsError::Unavailable("x".into()), libc::EIO),
            (FsError::NotLeader { leader: None }, libc::EIO),
            (FsError::InvalidArgument("x".into()), libc::EINVAL),
        ];
        for (e, want) in cases {
            assert_eq!(errno(&e), Errno::from_i32(want), "{e}");
        }
    }

    #[test]
    fn attrs_carry_kind_mode_and_size() {
        let st = FileStatus {
            id: 5,
            kind: FileKind::Directory as i32,
            mode: 0o40755,
            size: 0,
            mtime_ms: 1_500,
            ..Default::default()
        };
        let a = file_attr(5, &st, None);
        assert_eq!(a.kind, FileType::Directory);
        assert_eq!(a.perm, 0o755);
        assert_eq!(a.nlink, 2);
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_millis(1_500));
        let f = FileStatus {
            size: 1000,
            ..Default::default()
        };
        assert_eq!(file_attr(6, &f, Some(1025)).blocks, 3);
        assert_eq!(millis(UNIX_EPOCH + Duration::from_millis(42)), 42);
    }
}
