//! Mount hygiene: what sits at the mount target (from /proc/self/mountinfo), lazily
//! detaching a dead FUSE mount left by a crashed client, creating a missing target, and the
//! idempotent unmount behind `curvine-fluid umount`. Nothing under a target is ever deleted.

use std::io;
use std::path::{Path, PathBuf};

/// One line of /proc/self/mountinfo, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// File system type, e.g. `fuse.curvinefs`.
    pub fs_type: String,
    /// Mount source, e.g. `curvine`.
    pub source: String,
    /// Device `major:minor`; for FUSE the minor names the connection in fusectl.
    pub device: String,
}

impl MountEntry {
    /// A FUSE mount (`fuse` or `fuse.<subtype>`).
    pub fn is_fuse(&self) -> bool {
        self.fs_type == "fuse" || self.fs_type.starts_with("fuse.")
    }
}

/// What is at a mount target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    /// The path does not exist.
    Missing,
    /// A directory with nothing mounted on it.
    Unmounted,
    /// A mount that answers.
    Live(MountEntry),
    /// A mount whose FUSE server is gone ("Transport endpoint is not connected").
    Stale(MountEntry),
}

/// Parses /proc/self/mountinfo text (mount points keep their octal escapes decoded).
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let (device, mount_point) = (fields.get(2)?, fields.get(4)?);
            let mut right = right.split(' ');
            let fs_type = right.next()?;
            let source = right.next().unwrap_or("");
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: fs_type.to_string(),
                source: unescape(source),
                device: device.to_string(),
            })
        })
        .collect()
}

/// Decodes the `\040`-style escapes the kernel uses for blanks and backslashes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(octal, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts of this process's namespace whose mount point is `path`, innermost last.
pub fn mounts_at(path: &Path) -> io::Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.mount_point == path)
        .collect())
}

/// Looks at the target with one call: `statfs` when a FUSE mount sits there (the kernel
/// always asks the FUSE server for it, while a `stat` can be answered from attributes the
/// kernel cached just before the server died), else `stat`.
///
/// Only a FUSE mount on top counts: Fluid binds the host directory at exactly the target
/// (hostPath, Bidirectional), and that bind is where the mount goes, not in its way.
pub fn probe(path: &Path) -> io::Result<TargetState> {
    let top = top_fuse_mount(path)?;
    let answer = match &top {
        Some(_) => statfs(path),
        None => std::fs::metadata(path).map(|_| ()),
    };
    match (answer, top) {
        (Ok(_), Some(m)) => Ok(TargetState::Live(m)),
        (Ok(_), None) => Ok(TargetState::Unmounted),
        (Err(e), Some(m)) if is_dead_mount(&e) => Ok(TargetState::Stale(m)),
        (Err(e), None) if e.kind() == io::ErrorKind::NotFound => Ok(TargetState::Missing),
        (Err(e), _) => Err(e),
    }
}

/// The topmost mount at `path` when it is a FUSE mount.
pub fn top_fuse_mount(path: &Path) -> io::Result<Option<MountEntry>> {
    Ok(mounts_at(path)?.pop().filter(MountEntry::is_fuse))
}

/// `statfs(2)` of a path: it always reaches a FUSE server, where a `stat` may be answered
/// from attributes the kernel cached.
fn statfs(path: &Path) -> io::Result<()> {
    nix::sys::statfs::statfs(path)
        .map(|_| ())
        .map_err(io::Error::from)
}

/// Errors a mount gives when its FUSE server died.
fn is_dead_mount(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTCONN) | Some(libc::ECONNABORTED)
    )
}

/// Makes `path` ready to be mounted on: creates it when missing, lazily detaches dead
/// mounts stacked on it, and refuses when a live mount is there. Returns what it did, for
/// the log.
pub fn prepare_target(path: &Path) -> io::Result<Vec<String>> {
    let mut done = Vec::new();
    // A crashed client can leave several dead mounts stacked on one target; bounded.
    for _ in 0..16 {
        match probe(path)? {
            TargetState::Missing => {
                std::fs::create_dir_all(path)?;
                done.push(format!("created mount target {}", path.display()));
            }
            TargetState::Unmounted => return Ok(done),
            TargetState::Stale(m) => {
                detach(path)?;
                done.push(format!(
                    "detached a dead {} mount at {} (transport endpoint was not connected)",
                    m.fs_type,
                    path.display()
                ));
            }
            TargetState::Live(m) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} is already mounted ({} from {}); stop that client or run \
                         `curvine-fluid umount {}` first",
                        path.display(),
                        m.fs_type,
                        m.source,
                        path.display()
                    ),
                ));
            }
        }
    }
    Err(io::Error::other(format!(
        "{} still has mounts after 16 detaches",
        path.display()
    )))
}

/// What [`unmount`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    /// Nothing was mounted there.
    NotMounted,
    /// Unmounted.
    Unmounted,
    /// Busy (files open): detached lazily; it goes away when the last file is closed.
    Detached,
}

/// Unmounts every FUSE mount at `path` (the bind Fluid makes of the host directory there
/// stays); idempotent (nothing mounted is success).
pub fn unmount(path: &Path) -> io::Result<Unmounted> {
    let mut outcome = Unmounted::NotMounted;
    for _ in 0..16 {
        // FUSE mounts only: the bind of the host directory under them stays.
        if top_fuse_mount(path)?.is_none() {
            return Ok(outcome);
        }
        outcome = match umount2(path, nix::mount::MntFlags::empty()) {
            Ok(()) => Unmounted::Unmounted,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                detach(path)?;
                Unmounted::Detached
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(outcome),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                fusermount_unmount(path)?;
                Unmounted::Unmounted
            }
            Err(e) => return Err(e),
        };
    }
    Ok(outcome)
}

/// What [`mount_fuse`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseMount {
    /// Shown as the mount's source (`df`).
    pub source: String,
    /// The subtype: the file system type is `fuse.<subtype>`.
    pub subtype: String,
    /// Read-only.
    pub readonly: bool,
    /// Other kernel options (`noatime`, `max_read=...`), comma-free each.
    pub options: Vec<String>,
}

/// Opens /dev/fuse and mounts it at `path` with mount(2) (needs CAP_SYS_ADMIN); returns
/// the FUSE connection to serve. `allow_other` and `default_permissions` are always set.
pub fn mount_fuse(path: &Path, m: &FuseMount) -> io::Result<std::os::fd::OwnedFd> {
    use nix::mount::MsFlags;
    use std::os::fd::{AsRawFd, OwnedFd};
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let mut data = vec![
        format!("fd={}", dev.as_raw_fd()),
        "rootmode=40000".to_string(),
        format!("user_id={}", nix::unistd::getuid()),
        format!("group_id={}", nix::unistd::getgid()),
        "allow_other".to_string(),
        "default_permissions".to_string(),
    ];
    if m.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    for o in &m.options {
        match o.as_str() {
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "atime" | "exec" | "async" => {}
            other => data.push(other.to_string()),
        }
    }
    let fstype = format!("fuse.{}", m.subtype);
    nix::mount::mount(
        Some(m.source.as_str()),
        path,
        Some(fstype.as_str()),
        flags,
        Some(data.join(",").as_str()),
    )
    .map_err(io::Error::from)?;
    Ok(OwnedFd::from(dev))
}

/// Aborts the FUSE connection of a (detached) mount through fusectl, so processes still
/// holding files get errors at once instead of hanging; false when fusectl is not mounted.
pub fn abort_connection(entry: &MountEntry) -> bool {
    let Some((_, minor)) = entry.device.split_once(':') else {
        return false;
    };
    let file = Path::new("/sys/fs/fuse/connections")
        .join(minor)
        .join("abort");
    std::fs::write(file, "1").is_ok()
}

/// Lazy unmount: detaches now, frees the mount when no longer busy.
pub fn detach(path: &Path) -> io::Result<()> {
    match umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fusermount_unmount(path),
        Err(e) => Err(e),
    }
}

fn umount2(path: &Path, flags: nix::mount::MntFlags) -> io::Result<()> {
    nix::mount::umount2(path, flags).map_err(io::Error::from)
}

/// Unprivileged unmount through fusermount3 (lazy, so it also works when busy).
fn fusermount_unmount(path: &Path) -> io::Result<()> {
    let out = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(path)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run fusermount3: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "fusermount3 -uz {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
61 28 0:52 / /mnt/with\\040space rw,relatime shared:33 - fuse.curvinefs curvine rw,user_id=0,group_id=0
62 28 0:53 / /runtime-mnt/thin/default/ds/thin-fuse rw - fuse.curvinefs curvine rw
";

    #[test]
    fn parses_mount_points_types_and_escapes() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, PathBuf::from("/proc"));
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[1].fs_type, "fuse.curvinefs");
        assert_eq!(m[1].source, "curvine");
        assert_eq!(m[1].device, "0:52");
        assert_eq!(
            m[2].mount_point,
            PathBuf::from("/runtime-mnt/thin/default/ds/thin-fuse")
        );
    }

    #[test]
    fn ignores_malformed_lines() {
        assert!(parse_mountinfo("garbage\n1 2 3\n").is_empty());
    }

    #[test]
    fn a_plain_directory_is_unmounted_and_a_missing_one_is_created() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(probe(dir.path()).unwrap(), TargetState::Unmounted);
        let leaf = dir.path().join("a/b");
        assert_eq!(probe(&leaf).unwrap(), TargetState::Missing);
        let done = prepare_target(&leaf).unwrap();
        assert_eq!(done.len(), 1);
        assert!(leaf.is_dir());
        assert_eq!(unmount(&leaf).unwrap(), Unmounted::NotMounted);
    }
}
