//! Operations on names and attributes: lookup, getattr, setattr, making and removing
//! names, rename, symlinks, access and statfs.

use super::{io_label, to_errno, Caller, Ops};
use crate::client::FileStatus;
use crate::fs_error::FsError;
use crate::fuse::attr::{errno, file_type, millis};
use crate::fuse::inodes::ROOT;
use crate::rpc::pb::master as pb;
use fuser::{AccessFlags, Errno, FileAttr, FileType, INodeNo, RenameFlags, TimeOrNow};
use std::ffi::OsStr;
use std::path::Path;
use std::time::SystemTime;

/// The changes of a setattr (unset: unchanged).
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    /// Permission bits (the file type bits are ignored).
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Length: truncates or extends.
    pub size: Option<u64>,
    /// Access time.
    pub atime: Option<TimeOrNow>,
    /// Modification time.
    pub mtime: Option<TimeOrNow>,
}

/// The file system's totals, in the kernel's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    /// Blocks of `frsize` bytes.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Preferred I/O size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
}

fn time_ms(t: TimeOrNow) -> i64 {
    match t {
        TimeOrNow::SpecificTime(t) => millis(t),
        TimeOrNow::Now => millis(SystemTime::now()),
    }
}

impl Ops {
    /// The attributes of `name` in `parent`, recording the kernel's lookup of it.
    /// `Ok(None)`: it does not exist and the kernel may cache that (`negative_ttl`).
    pub async fn lookup(&self, parent: u64, name: &OsStr) -> Result<Option<FileAttr>, Errno> {
        let (path, name) = self.child(parent, name)?;
        match self.client.stat(&path).await {
            Ok(st) => Ok(Some(self.entry(parent, &name, &st))),
            Err(FsError::NotFound(_)) if !self.opts.negative_ttl.is_zero() => Ok(None),
            Err(e) => Err(errno(&e)),
        }
    }

    /// A new entry for the kernel: its attributes, with the lookup recorded.
    fn entry(&self, parent: u64, name: &str, status: &FileStatus) -> FileAttr {
        let attr = self.attr(status);
        self.remember(parent, name, &attr);
        attr
    }

    /// Records the kernel's lookup of `name` in `parent`: a file with several names
    /// keeps the others it is known by (a lookup through another name is not a move).
    pub(super) fn remember(&self, parent: u64, name: &str, attr: &FileAttr) {
        let linked = attr.kind != FileType::Directory && attr.nlink > 1;
        self.inodes.remember_name(parent, name, attr.ino.0, linked);
    }

    /// The attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        if let (ROOT, Some(root)) = (ino, &self.root_status) {
            return Ok(self.attr(root));
        }
        let st = match self.target(ino)? {
            (path, 0) => self.client.stat(&path).await,
            (_, id) => self.client.stat_id(id).await,
        }
        .map_err(to_errno)?;
        let mut attr = self.attr(&st);
        attr.ino = INodeNo(ino);
        Ok(attr)
    }

    /// Changes the attributes of an inode; its attributes after.
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> Result<FileAttr, Errno> {
        self.writable(ino)?;
        let (cluster_path, id) = self.target(ino)?;
        let label = io_label(&cluster_path, id);
        let writes = self.handles.writes_of(ino);
        let mut req = pb::SetAttrRequest {
            path: cluster_path,
            id,
            mode: set.mode.map(|m| m & 0o7777),
            uid: set.uid,
            gid: set.gid,
            atime_ms: set.atime.map(time_ms),
            mtime_ms: set.mtime.map(time_ms),
            size: set.size,
        };
        let mut truncated = None;
        if let (Some(size), Some(w)) = (set.size, &writes) {
            // The file's write task owns its length while it is open for writing.
            truncated = Some(w.truncate(label, size).wait().await.map_err(to_errno)?);
            req.size = None;
        }
        let changes_more = req.mode.is_some()
            || req.uid.is_some()
            || req.gid.is_some()
            || req.atime_ms.is_some()
            || req.mtime_ms.is_some()
            || req.size.is_some();
        let st = match truncated {
            Some(st) if !changes_more => st,
            _ => self.client.set_attr(req).await.map_err(to_errno)?,
        };
        let mut attr = self.attr(&st);
        attr.ino = INodeNo(ino);
        Ok(attr)
    }

    /// The target of a symlink (EINVAL for anything else).
    pub async fn readlink(&self, ino: u64) -> Result<String, Errno> {
        let path = self.path(ino)?;
        match self.client.stat(&path).await {
            Ok(st) if file_type(&st) == FileType::Symlink => Ok(st.symlink_target),
            Ok(_) => Err(Errno::EINVAL),
            Err(e) => Err(errno(&e)),
        }
    }

    /// Makes an empty regular file, a FIFO, a socket or a device node (`mode` carries
    /// the type, `rdev` a device's number).
    pub async fn mknod(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<FileAttr, Errno> {
        // FIFOs, sockets and device nodes are names with attributes: the kernel serves a
        // FIFO's data itself, and the mount is nodev.
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG => None,
            libc::S_IFIFO => Some(pb::FileKind::Fifo),
            libc::S_IFSOCK => Some(pb::FileKind::Socket),
            libc::S_IFCHR => Some(pb::FileKind::CharDevice),
            libc::S_IFBLK => Some(pb::FileKind::BlockDevice),
            _ => return Err(Errno::EINVAL),
        };
        let (path, name) = self.changing(parent, name)?;
        let owner = caller.owner(mode, umask);
        let st = match kind {
            None => self.client.create_file(&path, false, false, owner).await,
            Some(kind) => self.client.mknod_as(&path, kind, rdev, owner).await,
        }
        .map_err(to_errno)?;
        Ok(self.entry(parent, &name, &st))
    }

    /// Gives inode `ino` the new name `new_name` in `new_parent` (a hard link); its
    /// attributes after.
    pub async fn link(
        &self,
        ino: u64,
        new_parent: u64,
        new_name: &OsStr,
    ) -> Result<FileAttr, Errno> {
        self.writable(ino)?;
        self.same_mount(ino, new_parent)?;
        let src = self.path(ino)?;
        let (dst, name) = self.changing(new_parent, new_name)?;
        let st = self.client.link(&src, &dst).await.map_err(to_errno)?;
        let attr = self.attr(&st);
        self.inodes.also_named(new_parent, &name, attr.ino.0);
        Ok(attr)
    }

    /// Makes a directory.
    pub async fn mkdir(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr, Errno> {
        let (path, name) = self.changing(parent, name)?;
        let owner = caller.owner(mode, umask);
        let st = self
            .client
            .mkdir_as(&path, false, owner)
            .await
            .map_err(to_errno)?;
        Ok(self.entry(parent, &name, &st))
    }

    /// Makes a symlink `name` in `parent` pointing at `target`.
    pub async fn symlink(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> Result<FileAttr, Errno> {
        let (path, name) = self.changing(parent, name)?;
        let target = target.to_str().ok_or(Errno::EINVAL)?;
        let owner = caller.owner(0o777, 0);
        let st = self
            .client
            .symlink_as(target, &path, owner)
            .await
            .map_err(to_errno)?;
        Ok(self.entry(parent, &name, &st))
    }

    /// Removes a file, symlink or empty directory (unlink and rmdir alike: the master
    /// knows which it is).
    pub async fn remove(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let (path, name) = self.changing(parent, name)?;
        // A file open here keeps its data when its last name goes, until the last close.
        let open = self
            .inodes
            .ino_of(parent, &name)
            .filter(|ino| self.handles.is_open(*ino));
        match open {
            Some(ino) => {
                let st = self.client.stat(&path).await.map_err(to_errno)?;
                self.client.delete_open(&path).await.map_err(to_errno)?;
                if st.nlink <= 1 && file_type(&st) != FileType::Directory {
                    self.orphaned(ino, st.id);
                }
            }
            None => self.client.delete(&path, false).await.map_err(to_errno)?,
        }
        self.inodes.removed(parent, &name);
        Ok(())
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`, replacing what is there
    /// unless `RENAME_NOREPLACE` (exchange and whiteout: EINVAL).
    pub async fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.writable(parent)?;
        self.writable(new_parent)?;
        self.same_mount(parent, new_parent)?;
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (src, name) = self.child(parent, name)?;
        let (dst, new_name) = self.child(new_parent, new_name)?;
        self.client
            .rename(&src, &dst, no_replace)
            .await
            .map_err(to_errno)?;
        self.inodes.renamed(parent, &name, new_parent, &new_name);
        Ok(())
    }

    /// Whether an inode exists (EROFS when asked for writing on a read-only mount).
    /// Permission bits are the kernel's to check (`default_permissions`).
    pub async fn access(&self, ino: u64, mask: AccessFlags) -> Result<(), Errno> {
        if mask.contains(AccessFlags::W_OK) {
            self.writable(ino)?;
        }
        if ino == ROOT && self.root_status.is_some() {
            return Ok(());
        }
        let path = self.path(ino)?;
        self.client.stat(&path).await.map_err(to_errno)?;
        Ok(())
    }

    /// The cluster's capacity and file count, in 4 KiB blocks.
    pub async fn statfs(&self) -> Result<Statfs, Errno> {
        const BSIZE: u64 = 4096;
        let st = self.client.statfs().await.map_err(to_errno)?;
        let files = st.files + st.dirs;
        let ffree = u64::from(u32::MAX).saturating_sub(files);
        Ok(Statfs {
            blocks: st.capacity / BSIZE,
            bfree: st.available / BSIZE,
            bavail: st.available / BSIZE,
            files: files + ffree,
            ffree,
            bsize: BSIZE as u32,
            namelen: super::NAME_MAX as u32,
            frsize: BSIZE as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, n, ROOT_CALLER};
    use super::*;
    use crate::fuse::inodes::ROOT;
    use fuser::OpenFlags;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, UNIX_EPOCH};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_root_is_a_directory_and_missing_names_are_enoent() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let root = ops.getattr(ROOT).await.unwrap();
        assert_eq!(root.ino, INodeNo(ROOT));
        assert_eq!(root.kind, FileType::Directory);
        assert_eq!(ops.lookup(ROOT, n("missing")).await, Err(Errno::ENOENT));
        assert_eq!(
            ops.getattr(4242).await,
            Err(Errno::ENOENT),
            "an unknown inode"
        );
        assert_eq!(
            ops.lookup(4242, n("x")).await,
            Err(Errno::ENOENT),
            "in an unknown directory"
        );
        assert_eq!(ops.access(ROOT, AccessFlags::R_OK).await, Ok(()));
        assert_eq!(
            ops.access(4242, AccessFlags::R_OK).await,
            Err(Errno::ENOENT)
        );
        // With a negative cache, a missing name is an answer the kernel may keep.
        let cached = fs.ops_with(|o| o.negative_ttl = Duration::from_secs(1));
        assert_eq!(cached.lookup(ROOT, n("missing")).await, Ok(None));
        assert_eq!(
            cached.lookup(4242, n("x")).await,
            Err(Errno::ENOENT),
            "an unknown parent is still an error"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mkdir_then_lookup_finds_the_same_inode() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let d = ops
            .mkdir(ROOT_CALLER, ROOT, n("d"), 0o777, 0o022)
            .await
            .unwrap();
        assert_eq!(d.kind, FileType::Directory);
        assert_eq!(d.perm, 0o755, "the umask applies");
        assert_eq!(d.nlink, 2);
        let found = ops.lookup(ROOT, n("d")).await.unwrap().unwrap();
        assert_eq!(found.ino, d.ino);
        assert_eq!(ops.getattr(d.ino.0).await.unwrap().ino, d.ino);
        assert_eq!(
            ops.mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0).await,
            Err(Errno::EEXIST)
        );
        let sub = ops
            .mkdir(ROOT_CALLER, d.ino.0, n("e"), 0o700, 0)
            .await
            .unwrap();
        assert_eq!(sub.perm, 0o700);
        assert_eq!(fs.client.stat("/d/e").await.unwrap().id, sub.ino.0);
        let (ino, fh) = testkit::create(ops, ROOT, "f").await;
        testkit::release(ops, ino, fh).await.unwrap();
        assert_eq!(
            ops.mkdir(ROOT_CALLER, ino, n("under-a-file"), 0o755, 0)
                .await,
            Err(Errno::ENOTDIR)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_and_non_utf8_names_are_refused() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let longest = "x".repeat(255);
        assert_eq!(ops.lookup(ROOT, n(&longest)).await, Err(Errno::ENOENT));
        let too_long = "x".repeat(256);
        assert_eq!(
            ops.lookup(ROOT, n(&too_long)).await,
            Err(Errno::ENAMETOOLONG)
        );
        assert_eq!(
            ops.mkdir(ROOT_CALLER, ROOT, n(&too_long), 0o755, 0).await,
            Err(Errno::ENAMETOOLONG)
        );
        let bad = OsStr::from_bytes(b"caf\xe9");
        assert_eq!(ops.lookup(ROOT, bad).await, Err(Errno::EINVAL));
        assert_eq!(
            ops.rename(ROOT, n("a"), ROOT, bad, RenameFlags::empty())
                .await,
            Err(Errno::EINVAL)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rename_moves_names_and_noreplace_refuses_to_replace() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let a = testkit::put(ops, ROOT, "a", b"aaa").await;
        let b = testkit::put(ops, ROOT, "b", b"bbbb").await;
        ops.rename(ROOT, n("a"), ROOT, n("c"), RenameFlags::empty())
            .await
            .unwrap();
        assert_eq!(ops.lookup(ROOT, n("a")).await, Err(Errno::ENOENT));
        assert_eq!(ops.lookup(ROOT, n("c")).await.unwrap().unwrap().ino.0, a);
        assert_eq!(
            ops.rename(ROOT, n("c"), ROOT, n("b"), RenameFlags::RENAME_NOREPLACE)
                .await,
            Err(Errno::EEXIST)
        );
        assert_eq!(testkit::get(ops, b).await, b"bbbb");
        for flag in [RenameFlags::RENAME_EXCHANGE, RenameFlags::RENAME_WHITEOUT] {
            assert_eq!(
                ops.rename(ROOT, n("c"), ROOT, n("b"), flag).await,
                Err(Errno::EINVAL)
            );
        }
        assert_eq!(
            ops.rename(ROOT, n("nothing"), ROOT, n("z"), RenameFlags::empty())
                .await,
            Err(Errno::ENOENT)
        );
        // Without the flag the target is replaced; the old inode loses its path.
        ops.rename(ROOT, n("c"), ROOT, n("b"), RenameFlags::empty())
            .await
            .unwrap();
        assert_eq!(ops.lookup(ROOT, n("b")).await.unwrap().unwrap().ino.0, a);
        assert_eq!(testkit::get(ops, a).await, b"aaa");
        assert_eq!(ops.getattr(b).await, Err(Errno::ENOENT));
        // A directory moves with everything the kernel knows under it.
        let d = ops
            .mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0)
            .await
            .unwrap();
        let f = testkit::put(ops, d.ino.0, "f", b"in d").await;
        ops.rename(ROOT, n("d"), ROOT, n("e"), RenameFlags::empty())
            .await
            .unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().size, 4);
        assert_eq!(testkit::get(ops, f).await, b"in d");
        assert!(fs.client.stat("/e/f").await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unlink_and_rmdir_remove_names_but_not_full_directories() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let d = ops
            .mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0)
            .await
            .unwrap();
        let f = testkit::put(ops, d.ino.0, "f", b"x").await;
        assert_eq!(ops.remove(ROOT, n("d")).await, Err(Errno::ENOTEMPTY));
        assert_eq!(ops.remove(d.ino.0, n("nothing")).await, Err(Errno::ENOENT));
        ops.remove(d.ino.0, n("f")).await.unwrap();
        assert_eq!(ops.lookup(d.ino.0, n("f")).await, Err(Errno::ENOENT));
        assert_eq!(ops.getattr(f).await, Err(Errno::ENOENT), "its path is gone");
        ops.remove(ROOT, n("d")).await.unwrap();
        assert_eq!(ops.lookup(ROOT, n("d")).await, Err(Errno::ENOENT));
        assert_eq!(testkit::list(ops, ROOT).await, [".", ".."]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn setattr_truncates_extends_chmods_and_sets_times() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let data = testkit::pattern(3000);
        let f = testkit::put(ops, ROOT, "f", &data).await;
        let set = |s: SetAttr| ops.setattr(f, s);
        let cut = set(SetAttr {
            size: Some(1000),
            ..SetAttr::default()
        })
        .await
        .unwrap();
        assert_eq!((cut.ino.0, cut.size), (f, 1000));
        assert_eq!(testkit::get(ops, f).await, &data[..1000]);
        let grown = set(SetAttr {
            size: Some(1500),
            ..SetAttr::default()
        })
        .await
        .unwrap();
        assert_eq!(grown.size, 1500);
        let mut want = data[..1000].to_vec();
        want.resize(1500, 0);
        assert_eq!(
            testkit::get(ops, f).await,
            want,
            "an extension reads as zeros"
        );
        // The file type bits of the mode are dropped.
        let chmod = set(SetAttr {
            mode: Some(libc::S_IFREG | 0o640),
            ..SetAttr::default()
        })
        .await
        .unwrap();
        assert_eq!((chmod.perm, chmod.kind), (0o640, FileType::RegularFile));
        assert_eq!(fs.client.stat("/f").await.unwrap().mode & 0o7777, 0o640);
        let when = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let touched = set(SetAttr {
            mtime: Some(TimeOrNow::SpecificTime(when)),
            uid: Some(7),
            gid: Some(8),
            ..SetAttr::default()
        })
        .await
        .unwrap();
        assert_eq!(touched.mtime, when);
        assert_eq!((touched.uid, touched.gid), (7, 8));
        assert_eq!(
            ops.setattr(4242, SetAttr::default()).await,
            Err(Errno::ENOENT)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn setattr_truncates_a_file_open_for_writing_through_its_writes() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let data = testkit::pattern(5000);
        let (f, fh) = testkit::create(ops, ROOT, "f").await;
        testkit::write(ops, f, fh, 0, &data).await.unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().size, 5000, "unwritten length");
        let cut = ops
            .setattr(
                f,
                SetAttr {
                    size: Some(100),
                    ..SetAttr::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(cut.size, 100);
        testkit::write(ops, f, fh, 100, b"tail").await.unwrap();
        testkit::release(ops, f, fh).await.unwrap();
        let mut want = data[..100].to_vec();
        want.extend_from_slice(b"tail");
        assert_eq!(testkit::get(ops, f).await, want);
        assert_eq!(fs.client.read_file("/f").await.unwrap(), want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn symlinks_read_back_their_target() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let l = ops
            .symlink(ROOT_CALLER, ROOT, n("l"), Path::new("../some/target"))
            .await
            .unwrap();
        assert_eq!(l.kind, FileType::Symlink);
        assert_eq!(l.perm, 0o777);
        assert_eq!(ops.readlink(l.ino.0).await.unwrap(), "../some/target");
        let found = ops.lookup(ROOT, n("l")).await.unwrap().unwrap();
        assert_eq!((found.ino, found.kind), (l.ino, FileType::Symlink));
        let f = testkit::put(ops, ROOT, "f", b"").await;
        assert_eq!(ops.readlink(f).await, Err(Errno::EINVAL), "not a symlink");
        assert_eq!(
            ops.symlink(ROOT_CALLER, ROOT, n("l"), Path::new("x")).await,
            Err(Errno::EEXIST)
        );
        ops.remove(ROOT, n("l")).await.unwrap();
        assert_eq!(ops.lookup(ROOT, n("l")).await, Err(Errno::ENOENT));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mknod_makes_files_fifos_sockets_and_device_nodes() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let f = ops
            .mknod(ROOT_CALLER, ROOT, n("f"), libc::S_IFREG | 0o666, 0o022, 0)
            .await
            .unwrap();
        assert_eq!((f.kind, f.perm, f.size), (FileType::RegularFile, 0o644, 0));
        let kinds = [
            ("fifo", libc::S_IFIFO, FileType::NamedPipe, 0),
            ("sock", libc::S_IFSOCK, FileType::Socket, 0),
            ("chr", libc::S_IFCHR, FileType::CharDevice, 0x0103),
            ("blk", libc::S_IFBLK, FileType::BlockDevice, 0x0801),
        ];
        for (name, ifmt, kind, rdev) in kinds {
            let a = ops
                .mknod(ROOT_CALLER, ROOT, n(name), ifmt | 0o640, 0, rdev)
                .await
                .unwrap();
            assert_eq!(
                (a.kind, a.perm, a.rdev, a.nlink),
                (kind, 0o640, rdev, 1),
                "{name}"
            );
            let again = ops.getattr(a.ino.0).await.unwrap();
            assert_eq!((again.kind, again.rdev), (kind, rdev), "{name}");
        }
        assert_eq!(
            ops.mknod(ROOT_CALLER, ROOT, n("f"), libc::S_IFREG | 0o644, 0, 0)
                .await,
            Err(Errno::EEXIST)
        );
        assert_eq!(
            ops.mknod(ROOT_CALLER, ROOT, n("fifo"), libc::S_IFIFO | 0o644, 0, 0)
                .await,
            Err(Errno::EEXIST)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hard_links_share_the_inode_and_count_names() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let f = testkit::put(ops, ROOT, "f", b"shared").await;
        let d = ops
            .mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0)
            .await
            .unwrap();
        let l = ops.link(f, d.ino.0, n("g")).await.unwrap();
        assert_eq!((l.ino.0, l.nlink), (f, 2));
        assert_eq!(ops.getattr(f).await.unwrap().nlink, 2);
        let g = ops.lookup(d.ino.0, n("g")).await.unwrap().unwrap();
        assert_eq!(g.ino.0, f);
        assert_eq!(testkit::get(ops, g.ino.0).await, b"shared");
        assert_eq!(ops.link(f, ROOT, n("d")).await.err(), Some(Errno::EEXIST));
        assert_eq!(
            ops.link(d.ino.0, ROOT, n("d2")).await.err(),
            Some(Errno::EPERM)
        );
        // Unlinking one name keeps the other, with its data.
        ops.remove(ROOT, n("f")).await.unwrap();
        let g = ops.getattr(f).await.unwrap();
        assert_eq!((g.nlink, g.size), (1, 6));
        assert_eq!(testkit::get(ops, f).await, b"shared");
        // A directory counts 2 and its subdirectories.
        let root = ops.getattr(ROOT).await.unwrap();
        assert_eq!(root.nlink, 3);
        ops.mkdir(ROOT_CALLER, d.ino.0, n("sub"), 0o755, 0)
            .await
            .unwrap();
        assert_eq!(ops.getattr(d.ino.0).await.unwrap().nlink, 3);
        // Renaming one name of a file onto another of its names does nothing.
        let h = ops.link(f, d.ino.0, n("h")).await.unwrap();
        assert_eq!(h.nlink, 2);
        ops.rename(d.ino.0, n("g"), d.ino.0, n("h"), RenameFlags::empty())
            .await
            .unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().nlink, 2);
        assert!(ops.lookup(d.ino.0, n("g")).await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_mount_refuses_every_change_with_erofs() {
        let fs = testkit::start().await;
        let f = testkit::put(&fs.ops, ROOT, "f", b"data").await;
        let ro = fs.ops_with(|o| o.readonly = true);
        let f_attr = ro.lookup(ROOT, n("f")).await.unwrap().unwrap();
        assert_eq!(f_attr.ino.0, f);
        let erofs = Err(Errno::EROFS);
        assert_eq!(ro.mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0).await, erofs);
        assert_eq!(
            ro.mknod(ROOT_CALLER, ROOT, n("m"), libc::S_IFREG | 0o644, 0, 0)
                .await,
            erofs
        );
        assert_eq!(
            ro.symlink(ROOT_CALLER, ROOT, n("l"), Path::new("f")).await,
            erofs
        );
        assert_eq!(
            ro.create(ROOT_CALLER, ROOT, n("g"), 0o644, 0, libc::O_WRONLY)
                .await
                .map(|c| c.opened.fh),
            Err(Errno::EROFS)
        );
        assert_eq!(ro.remove(ROOT, n("f")).await, Err(Errno::EROFS));
        assert_eq!(
            ro.rename(ROOT, n("f"), ROOT, n("g"), RenameFlags::empty())
                .await,
            Err(Errno::EROFS)
        );
        let chmod = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        assert_eq!(ro.setattr(f, chmod).await, erofs);
        for flags in [libc::O_WRONLY, libc::O_RDWR] {
            assert_eq!(ro.open(f, OpenFlags(flags)).await, Err(Errno::EROFS));
        }
        assert_eq!(ro.access(f, AccessFlags::W_OK).await, Err(Errno::EROFS));
        assert_eq!(ro.access(f, AccessFlags::R_OK).await, Ok(()));
        assert_eq!(testkit::get(&ro, f).await, b"data", "reads still work");
        assert_eq!(fs.client.read_file("/f").await.unwrap(), b"data");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statfs_reports_capacity_and_counts_files() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let before = ops.statfs().await.unwrap();
        assert_eq!(
            (before.bsize, before.frsize, before.namelen),
            (4096, 4096, 255)
        );
        assert!(before.blocks > 0, "{before:?}");
        assert!(before.bfree <= before.blocks && before.bavail == before.bfree);
        assert_eq!(before.files, u64::from(u32::MAX));
        testkit::put(ops, ROOT, "f", b"x").await;
        ops.mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0)
            .await
            .unwrap();
        let after = ops.statfs().await.unwrap();
        assert_eq!(after.ffree + 2, before.ffree);
        assert_eq!(after.files, before.files);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_root_of_several_mounts_shows_each_and_keeps_them_apart() {
        use crate::fuse::inodes::RootEntry;
        let fs = testkit::start().await;
        fs.client.mkdir("/data/a", true).await.unwrap();
        fs.client.mkdir("/data/b", true).await.unwrap();
        fs.client.mkdir("/c", true).await.unwrap();
        let entry = |name: &str, fs_path: &str, read_only| RootEntry {
            name: name.into(),
            fs_path: fs_path.into(),
            read_only,
        };
        let ops = fs.ops_with_view(vec![
            entry("train", "/data/a", false),
            entry("frozen", "/data/b", true),
            entry("c", "/c", false),
        ]);
        let ops = &*ops;
        let root = ops.getattr(ROOT).await.unwrap();
        assert_eq!(
            (root.kind, root.perm, root.nlink),
            (FileType::Directory, 0o755, 5)
        );
        assert_eq!(
            testkit::list(ops, ROOT).await,
            [".", "..", "train", "frozen", "c"]
        );
        assert_eq!(ops.lookup(ROOT, n("data")).await, Err(Errno::ENOENT));
        // A file made through one mount is in its cluster directory.
        let train = ops.lookup(ROOT, n("train")).await.unwrap().unwrap().ino.0;
        testkit::put(ops, train, "f", b"bytes").await;
        assert_eq!(fs.client.stat("/data/a/f").await.unwrap().size, 5);
        let f = ops.lookup(train, n("f")).await.unwrap().unwrap();
        assert_eq!(testkit::get(ops, f.ino.0).await, b"bytes");
        // The root is fixed, a read-only mount refuses changes, mounts are apart.
        assert_eq!(
            ops.mkdir(ROOT_CALLER, ROOT, n("new"), 0o755, 0).await.err(),
            Some(Errno::EROFS)
        );
        assert_eq!(ops.remove(ROOT, n("train")).await, Err(Errno::EROFS));
        let frozen = ops.lookup(ROOT, n("frozen")).await.unwrap().unwrap().ino.0;
        assert_eq!(
            ops.mkdir(ROOT_CALLER, frozen, n("x"), 0o755, 0).await.err(),
            Some(Errno::EROFS)
        );
        assert_eq!(
            ops.access(frozen, AccessFlags::W_OK).await,
            Err(Errno::EROFS)
        );
        assert_eq!(
            ops.rename(train, n("f"), frozen, n("f"), RenameFlags::empty())
                .await,
            Err(Errno::EROFS)
        );
        assert_eq!(
            ops.rename(ROOT, n("train"), ROOT, n("t2"), RenameFlags::empty())
                .await,
            Err(Errno::EROFS)
        );
        let c = ops.lookup(ROOT, n("c")).await.unwrap().unwrap().ino.0;
        assert_eq!(
            ops.rename(train, n("f"), c, n("f"), RenameFlags::empty())
                .await,
            Err(Errno::EXDEV),
            "each mount is its own file system: mv copies"
        );
        ops.rename(train, n("f"), train, n("g"), RenameFlags::empty())
            .await
            .unwrap();
        assert!(fs.client.stat("/data/a/g").await.is_ok());
        assert_eq!(ops.access(ROOT, AccessFlags::R_OK).await, Ok(()));
        assert!(fs.client.stat("/data/a").await.is_ok(), "nothing removed");
    }
}
