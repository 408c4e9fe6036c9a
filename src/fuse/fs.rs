//! fuser's `Filesystem` over [`Ops`]: each callback takes the request's arguments, runs
//! the operation (async ones on the runtime, so the FUSE threads only parse and
//! dispatch) and replies once with its result. Also the kernel's settings at `init`.

use super::attr::file_attr;
use super::ops::{Caller, Completion, FsOptions, Ops, SetAttr, MAX_IO};
use crate::client::FileStatus;
use bytes::Bytes;
use fuser::{
    AccessFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::warn;

/// The file system handed to fuser.
#[derive(Debug)]
pub struct CurvineFs {
    ops: Arc<Ops>,
}

impl CurvineFs {
    /// A file system over `client` laid out by `inodes` (one cluster directory at the
    /// root, or several mounts).
    pub fn new(
        client: crate::client::Client,
        rt: tokio::runtime::Handle,
        inodes: super::inodes::Inodes,
        opts: FsOptions,
    ) -> CurvineFs {
        CurvineFs {
            ops: Arc::new(Ops::new(client, rt, inodes, opts)),
        }
    }

    /// The operations, for flushing at unmount.
    pub fn ops(&self) -> Arc<Ops> {
        self.ops.clone()
    }

    /// Runs `f` on the runtime.
    fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(Arc<Ops>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = f(self.ops.clone());
        self.ops.runtime().spawn(fut);
    }

    /// Replies to an entry request.
    fn entry(ops: &Ops, result: Result<fuser::FileAttr, Errno>, reply: ReplyEntry) {
        let o = ops.options();
        match result {
            Ok(attr) => reply.entry_with_ttls(&o.attr_ttl, &o.entry_ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    /// Replies to getxattr/listxattr: the size when asked with 0, else the bytes, or
    /// ERANGE when they do not fit.
    fn xattr(result: Result<Vec<u8>, Errno>, size: u32, reply: fuser::ReplyXattr) {
        match result {
            Ok(data) if size == 0 => reply.size(data.len() as u32),
            Ok(data) if data.len() <= size as usize => reply.data(&data),
            Ok(_) => reply.error(Errno::ERANGE),
            Err(e) => reply.error(e),
        }
    }

    /// Replies to an empty request.
    fn empty(result: Result<(), Errno>, reply: ReplyEmpty) {
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// Where the answer to a flush, fsync or release goes.
fn reply_empty(reply: ReplyEmpty) -> Completion<()> {
    Box::new(move |result| CurvineFs::empty(result, reply))
}

impl Filesystem for CurvineFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        // The kernel offers its own window (128 KiB by default) and takes no larger one
        // here; the mount's window is raised through sysfs afterwards (`readahead`).
        let _ = config.set_max_readahead(MAX_IO);
        let _ = config.set_max_background(64);
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_ASYNC_DIO
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_MAX_PAGES;
        let supported = config.capabilities();
        let _ = config.add_capabilities(wanted & supported);
        if self.ops.options().write_back_cache {
            if let Err(missing) = config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE) {
                warn!(?missing, "the kernel does not offer the write-back cache");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_owned();
        self.spawn(|ops| async move {
            match ops.lookup(parent.0, &name).await {
                Ok(Some(attr)) => Self::entry(&ops, Ok(attr), reply),
                Ok(None) => {
                    let mut attr = file_attr(0, &FileStatus::default(), None);
                    attr.ino = INodeNo(0);
                    reply.entry(&ops.options().negative_ttl, &attr, Generation(0));
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.ops.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.spawn(|ops| async move {
            match ops.getattr(ino.0).await {
                Ok(attr) => reply.attr(&ops.options().attr_ttl, &attr),
                Err(e) => reply.error(e),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        self.spawn(|ops| async move {
            match ops.setattr(ino.0, set).await {
                Ok(attr) => reply.attr(&ops.options().attr_ttl, &attr),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn(|ops| async move {
            match ops.readlink(ino.0).await {
                Ok(target) => reply.data(target.as_bytes()),
                Err(e) => reply.error(e),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (caller, name) = (caller(req), name.to_owned());
        self.spawn(|ops| async move {
            let result = ops.mknod(caller, parent.0, &name, mode, umask, rdev).await;
            Self::entry(&ops, result, reply);
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = newname.to_owned();
        self.spawn(move |ops| async move {
            let result = ops.link(ino.0, newparent.0, &newname).await;
            Self::entry(&ops, result, reply);
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (caller, name) = (caller(req), name.to_owned());
        self.spawn(|ops| async move {
            let result = ops.mkdir(caller, parent.0, &name, mode, umask).await;
            Self::entry(&ops, result, reply);
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn(|ops| async move { Self::empty(ops.remove(parent.0, &name).await, reply) });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn(|ops| async move { Self::empty(ops.remove(parent.0, &name).await, reply) });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (caller, name, target) = (caller(req), link_name.to_owned(), target.to_owned());
        self.spawn(|ops| async move {
            let result = ops.symlink(caller, parent.0, &name, &target).await;
            Self::entry(&ops, result, reply);
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.spawn(|ops| async move {
            let result = ops
                .rename(parent.0, &name, newparent.0, &newname, flags)
                .await;
            Self::empty(result, reply);
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.spawn(|ops| async move {
            match ops.open(ino.0, flags).await {
                Ok(o) => reply.opened(FileHandle(o.fh), o.flags),
                Err(e) => reply.error(e),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Queued here, on the FUSE thread, so reads keep the kernel's order.
        self.ops.read(
            ino.0,
            fh.0,
            offset,
            size as usize,
            Box::new(move |result| match result {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            }),
        );
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Queued here, on the FUSE thread, so writes keep the kernel's order.
        self.ops.write(
            ino.0,
            fh.0,
            offset,
            Bytes::copy_from_slice(data),
            Box::new(move |result| match result {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(e),
            }),
        );
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.ops.commit(ino.0, false, reply_empty(reply));
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.ops.release(ino.0, fh.0, reply_empty(reply));
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.ops.commit(ino.0, true, reply_empty(reply));
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(self.ops.opendir()), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.spawn(|ops| async move {
            let result = ops
                .readdir(ino.0, fh.0, offset, |e| {
                    reply.add(INodeNo(e.ino), e.offset, e.kind, e.name)
                })
                .await;
            match result {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.spawn(|ops| async move {
            let result = ops
                .readdirplus(ino.0, fh.0, offset, |e| {
                    reply.add(e.attr.ino, e.offset, e.name, &e.ttl, &e.attr, Generation(0))
                })
                .await;
            match result {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.ops.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are committed to the masters' journal before they are answered.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.spawn(|ops| async move {
            match ops.statfs().await {
                Ok(s) => reply.statfs(
                    s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
                ),
                Err(e) => reply.error(e),
            }
        });
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.spawn(|ops| async move { Self::empty(ops.access(ino.0, mask).await, reply) });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if position != 0 {
            // Only macOS resource forks use a position.
            reply.error(Errno::EINVAL);
            return;
        }
        let (name, value) = (name.to_owned(), value.to_vec());
        self.spawn(move |ops| async move {
            Self::empty(ops.setxattr(ino.0, &name, &value, flags).await, reply);
        });
    }

    fn getxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        size: u32,
        reply: fuser::ReplyXattr,
    ) {
        if name
            .to_str()
            .is_some_and(|n| self.ops.surely_no_xattr(ino.0, n))
        {
            // The common case (security.capability before each write): no hop to the
            // runtime.
            reply.error(Errno::ENODATA);
            return;
        }
        let name = name.to_owned();
        self.spawn(move |ops| async move {
            Self::xattr(ops.getxattr(ino.0, &name).await, size, reply);
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        self.spawn(move |ops| async move {
            Self::xattr(ops.listxattr(ino.0).await, size, reply);
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn(move |ops| async move {
            Self::empty(ops.removexattr(ino.0, &name).await, reply);
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.spawn(move |ops| async move {
            Self::empty(ops.fallocate(ino.0, offset, length, mode).await, reply);
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (caller, name) = (caller(req), name.to_owned());
        self.spawn(|ops| async move {
            match ops
                .create(caller, parent.0, &name, mode, umask, flags)
                .await
            {
                Ok(c) => reply.created(
                    &ops.options().entry_ttl,
                    &c.attr,
                    Generation(0),
                    FileHandle(c.opened.fh),
                    c.opened.flags,
                ),
                Err(e) => reply.error(e),
            }
        });
    }
}
