//! Operations on names and attributes: lookup, getattr, setattr, making and removing
//! names, rename, symlinks, access and statfs.

use super::{to_errno, Caller, Ops};
use crate::client::FileStatus;
use crate::fs_error::FsError;
use crate::fuse::attr::{errno, file_type, millis};
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
        self.inodes.remember(parent, name, attr.ino.0);
        attr
    }

    /// The attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let path = self.path(ino)?;
        let st = self.client.stat(&path).await.map_err(to_errno)?;
        let mut attr = self.attr(&st);
        attr.ino = INodeNo(ino);
        Ok(attr)
    }

    /// Changes the attributes of an inode; its attributes after.
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> Result<FileAttr, Errno> {
        self.writable()?;
        let path = self.path(ino)?;
        let writes = self.handles.writes_of(ino);
        let mut req = pb::SetAttrRequest {
            path: path.clone(),
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
            truncated = Some(w.truncate(path, size).wait().await.map_err(to_errno)?);
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

    /// Makes an empty regular file (`mode` carries the file type: devices, fifos and
    /// sockets are refused with EPERM).
    pub async fn mknod(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr, Errno> {
        if mode & libc::S_IFMT != libc::S_IFREG {
            // Devices, fifos and sockets have no meaning in a shared cache.
            return Err(Errno::EPERM);
        }
        let (path, name) = self.changing(parent, name)?;
        let owner = caller.owner(mode, umask);
        let st = self
            .client
            .create_file(&path, false, false, owner)
            .await
            .map_err(to_errno)?;
        Ok(self.entry(parent, &name, &st))
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
        self.client.delete(&path, false).await.map_err(to_errno)?;
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
        self.writable()?;
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
        if mask.contains(AccessFlags::W_OK) && self.opts.readonly {
            return Err(Errno::EROFS);
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
