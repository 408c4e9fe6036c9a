//! The FUSE operations: each request is turned into cluster calls on the async runtime and
//! answered when they finish, so the FUSE threads only parse and dispatch.

use super::attr::{errno, file_attr, file_type, millis};
use super::inodes::Inodes;
use super::read::HandleReader;
use super::write::FileWrites;
use crate::client::{Client, FileReader, FileStatus, Owner};
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use bytes::Bytes;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tracing::{debug, warn};

/// Largest read and write request.
pub const MAX_IO: u32 = 1 << 20;

/// How the mount behaves; from `[fuse]`.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Kernel attribute cache.
    pub attr_ttl: Duration,
    /// Kernel dentry cache.
    pub entry_ttl: Duration,
    /// Kernel cache of names that do not exist (zero: none).
    pub negative_ttl: Duration,
    /// Refuse every change with EROFS.
    pub readonly: bool,
    /// Bypass the page cache.
    pub direct_io: bool,
    /// Let the kernel batch writes.
    pub write_back_cache: bool,
    /// Where staging copies of files being rewritten go.
    pub staging: PathBuf,
}

/// One open file.
#[derive(Debug)]
struct Handle {
    reader: Option<HandleReader>,
    /// For a handle open for writing: the file's status at open, until the first write
    /// starts the file's write task (a create that writes nothing never starts one).
    write_from: Option<FileStatus>,
    writes: std::sync::OnceLock<Arc<FileWrites>>,
}

impl Handle {
    fn new(reader: Option<HandleReader>, write_from: Option<FileStatus>) -> Handle {
        Handle {
            reader,
            write_from,
            writes: std::sync::OnceLock::new(),
        }
    }
}

/// One open directory: its listing, fetched at the first read.
#[derive(Debug, Default)]
struct DirHandle {
    entries: tokio::sync::Mutex<Option<Arc<Vec<FileStatus>>>>,
}

/// State shared by the FUSE threads and the tasks answering them.
#[derive(Debug)]
pub struct Shared {
    client: Client,
    rt: tokio::runtime::Handle,
    inodes: Inodes,
    opts: FsOptions,
    next_fh: AtomicU64,
    files: Mutex<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    /// Files open for writing, by inode.
    writes: Mutex<HashMap<u64, Arc<FileWrites>>>,
    /// The size each inode had when its attributes last went to the kernel.
    told_sizes: Mutex<HashMap<u64, u64>>,
    /// Tells the kernel to drop cached attributes.
    notifier: std::sync::OnceLock<fuser::Notifier>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn writes_of(&self, ino: u64) -> Option<Arc<FileWrites>> {
        lock(&self.writes).get(&ino).cloned()
    }

    fn attr(&self, status: &FileStatus) -> FileAttr {
        let ino = self.inodes.ino(status.id);
        let size = self.writes_of(ino).map(|w| w.size());
        let attr = file_attr(ino, status, size);
        lock(&self.told_sizes).insert(ino, attr.size);
        attr
    }

    /// The kernel can talk back through this once the session exists.
    pub fn set_notifier(&self, notifier: fuser::Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Close-to-open consistency: when a file changed size since the kernel last saw its
    /// attributes (another client wrote it), the kernel drops its cached attributes, so
    /// reads see the new length at once instead of after `attr_timeout`.
    fn revalidate(&self, ino: u64, size: u64) {
        let told = lock(&self.told_sizes).get(&ino).copied();
        if told.is_some_and(|t| t != size) && self.writes_of(ino).is_none() {
            if let Some(n) = self.notifier.get() {
                if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
                    debug!(ino, error = %e, "attribute invalidation refused");
                }
            }
            lock(&self.told_sizes).insert(ino, size);
        }
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Commits every file with uncommitted writes (before unmounting).
    pub async fn flush_all(&self) -> Vec<(String, FsError)> {
        let open: Vec<(u64, Arc<FileWrites>)> = lock(&self.writes)
            .iter()
            .map(|(i, w)| (*i, w.clone()))
            .collect();
        let mut failed = Vec::new();
        for (ino, writes) in open {
            let Some(path) = self.inodes.path(ino) else {
                continue;
            };
            if let Err(e) = writes.flush(path.clone()).wait().await {
                failed.push((path, e));
            }
        }
        failed
    }

    /// Files open for writing now.
    pub fn open_for_write(&self) -> usize {
        lock(&self.writes).len()
    }
}

/// The file system handed to fuser.
#[derive(Debug)]
pub struct CurvineFs {
    shared: Arc<Shared>,
}

impl CurvineFs {
    /// A file system over `client`, mounting the directory whose master id is `root_id`
    /// at `root_path`.
    pub fn new(
        client: Client,
        rt: tokio::runtime::Handle,
        root_path: &str,
        root_id: u64,
        opts: FsOptions,
    ) -> CurvineFs {
        CurvineFs {
            shared: Arc::new(Shared {
                client,
                rt,
                inodes: Inodes::new(root_path, root_id),
                opts,
                next_fh: AtomicU64::new(1),
                files: Mutex::new(HashMap::new()),
                dirs: Mutex::new(HashMap::new()),
                writes: Mutex::new(HashMap::new()),
                told_sizes: Mutex::new(HashMap::new()),
                notifier: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The state, for flushing at unmount.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs `f` on the runtime.
    fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = f(self.shared.clone());
        self.shared.rt.spawn(fut);
    }

    fn path(&self, ino: INodeNo) -> Result<String, Errno> {
        self.shared.inodes.path(ino.0).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<(String, String), Errno> {
        let name = name.to_str().ok_or(Errno::EINVAL)?.to_string();
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let path = self
            .shared
            .inodes
            .child_path(parent.0, &name)
            .ok_or(Errno::ENOENT)?;
        Ok((path, name))
    }

    /// For an operation that changes `name` in `parent`: refused on a read-only mount,
    /// else the cluster path and the name.
    fn changing(&self, parent: INodeNo, name: &OsStr) -> Result<(String, String), Errno> {
        self.writable()?;
        self.child(parent, name)
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.shared.opts.readonly {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    fn open_flags(&self) -> FopenFlags {
        if self.shared.opts.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }
}

/// Replies with a new entry and records the kernel's lookup of it.
fn reply_entry(shared: &Shared, parent: u64, name: &str, status: &FileStatus, reply: ReplyEntry) {
    let attr = shared.attr(status);
    shared.inodes.remember(parent, name, attr.ino.0);
    reply.entry_with_ttls(
        &shared.opts.attr_ttl,
        &shared.opts.entry_ttl,
        &attr,
        Generation(0),
    );
}

fn owner(req: &Request, mode: u32, umask: u32) -> Owner {
    Owner {
        mode: mode & !umask & 0o7777,
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_ms(t: TimeOrNow) -> i64 {
    match t {
        TimeOrNow::SpecificTime(t) => millis(t),
        TimeOrNow::Now => millis(SystemTime::now()),
    }
}

impl Filesystem for CurvineFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
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
        if self.shared.opts.write_back_cache {
            if let Err(missing) = config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE) {
                warn!(?missing, "the kernel does not offer the write-back cache");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (path, name) = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|s| async move {
            match s.client.stat(&path).await {
                Ok(st) => reply_entry(&s, parent.0, &name, &st, reply),
                Err(FsError::NotFound(_)) if !s.opts.negative_ttl.is_zero() => {
                    let mut attr = file_attr(0, &FileStatus::default(), None);
                    attr.ino = INodeNo(0);
                    reply.entry(&s.opts.negative_ttl, &attr, Generation(0));
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.inodes.forget(ino.0, nlookup);
        if self.shared.inodes.path(ino.0).is_none() {
            lock(&self.shared.told_sizes).remove(&ino.0);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|s| async move {
            match s.client.stat(&path).await {
                Ok(st) => {
                    let mut attr = s.attr(&st);
                    attr.ino = ino;
                    reply.attr(&s.opts.attr_ttl, &attr);
                }
                Err(e) => reply.error(errno(&e)),
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
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let writes = self.shared.writes_of(ino.0);
        self.spawn(|s| async move {
            let mut req = pb::SetAttrRequest {
                path: path.clone(),
                mode: mode.map(|m| m & 0o7777),
                uid,
                gid,
                atime_ms: atime.map(time_ms),
                mtime_ms: mtime.map(time_ms),
                size,
            };
            let mut status = None;
            if let (Some(size), Some(w)) = (size, &writes) {
                // The file's write task owns its length while it is open for writing.
                match w.truncate(path.clone(), size).wait().await {
                    Ok(st) => status = Some(st),
                    Err(e) => return reply.error(errno(&e)),
                }
                req.size = None;
            }
            let changes_more = req.mode.is_some()
                || req.uid.is_some()
                || req.gid.is_some()
                || req.atime_ms.is_some()
                || req.mtime_ms.is_some()
                || req.size.is_some();
            if changes_more || status.is_none() {
                match s.client.set_attr(req).await {
                    Ok(st) => status = Some(st),
                    Err(e) => return reply.error(errno(&e)),
                }
            }
            if let Some(st) = status {
                let mut attr = s.attr(&st);
                attr.ino = ino;
                reply.attr(&s.opts.attr_ttl, &attr);
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|s| async move {
            match s.client.stat(&path).await {
                Ok(st) if file_type(&st) == fuser::FileType::Symlink => {
                    reply.data(st.symlink_target.as_bytes())
                }
                Ok(_) => reply.error(Errno::EINVAL),
                Err(e) => reply.error(errno(&e)),
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
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            // Devices, fifos and sockets have no meaning in a shared cache.
            return reply.error(Errno::EPERM);
        }
        let (path, name) = match self.changing(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let owner = owner(req, mode, umask);
        self.spawn(|s| async move {
            match s.client.create_file(&path, false, false, owner).await {
                Ok(st) => reply_entry(&s, parent.0, &name, &st, reply),
                Err(e) => reply.error(errno(&e)),
            }
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
        let (path, name) = match self.changing(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let owner = owner(req, mode, umask);
        self.spawn(|s| async move {
            match s.client.mkdir_as(&path, false, owner).await {
                Ok(st) => reply_entry(&s, parent.0, &name, &st, reply),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (path, name) = match self.changing(parent, link_name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let Some(target) = target.to_str().map(str::to_string) else {
            return reply.error(Errno::EINVAL);
        };
        let owner = owner(req, 0o777, 0);
        self.spawn(|s| async move {
            match s.client.symlink_as(&target, &path, owner).await {
                Ok(st) => reply_entry(&s, parent.0, &name, &st, reply),
                Err(e) => reply.error(errno(&e)),
            }
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
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let ((src, name), (dst, newname)) =
            match (self.child(parent, name), self.child(newparent, newname)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return reply.error(e),
            };
        self.spawn(|s| async move {
            match s.client.rename(&src, &dst, no_replace).await {
                Ok(()) => {
                    s.inodes.renamed(parent.0, &name, newparent.0, &newname);
                    reply.ok()
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mode = flags.acc_mode();
        let writing = mode != OpenAccMode::O_RDONLY;
        if writing {
            if let Err(e) = self.writable() {
                return reply.error(e);
            }
        }
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let fopen = self.open_flags();
        self.spawn(|s| async move {
            let located = match s.client.locate(&path).await {
                Ok(l) => l,
                Err(e) => return reply.error(errno(&e)),
            };
            let status = located.status.clone().unwrap_or_default();
            s.revalidate(ino.0, status.size);
            let reader = if mode != OpenAccMode::O_WRONLY {
                match FileReader::new(s.client.clone(), located) {
                    Ok(r) => Some(HandleReader::start(&s.rt, r)),
                    Err(e) => return reply.error(errno(&e)),
                }
            } else {
                None
            };
            let fh = s.new_fh();
            let handle = Handle::new(reader, writing.then_some(status));
            lock(&s.files).insert(fh, Arc::new(handle));
            reply.opened(FileHandle(fh), fopen);
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
        let size = size as usize;
        let handle = lock(&self.shared.files).get(&fh.0).cloned();
        // A file with writes in this mount is read through its write task, which sees
        // them; so is a write-only handle (the kernel reads pages around partial writes
        // with the write-back cache).
        let writes = self.shared.writes_of(ino.0).or_else(|| {
            let h = handle.as_ref()?;
            if h.reader.is_some() {
                return None;
            }
            let status = h.write_from.as_ref()?;
            Some(
                h.writes
                    .get_or_init(|| self.shared.start_writes(ino.0, status.clone()))
                    .clone(),
            )
        });
        if let Some(w) = writes {
            let path = match self.path(ino) {
                Ok(p) => p,
                Err(e) => return reply.error(e),
            };
            let pending = w.read(path, offset, size);
            return self.spawn(|_| async move {
                match pending.wait().await {
                    Ok(data) => reply.data(&data),
                    Err(e) => reply.error(errno(&e)),
                }
            });
        }
        let Some(reader) = handle.and_then(|h| h.reader.clone()) else {
            return reply.error(Errno::EBADF);
        };
        reader.read(
            offset,
            size,
            Box::new(move |result: super::read::ReadResult| match result {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(&e)),
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
        let handle = lock(&self.shared.files).get(&fh.0).cloned();
        let Some(handle) = handle else {
            return reply.error(Errno::EBADF);
        };
        let Some(status) = &handle.write_from else {
            return reply.error(Errno::EBADF);
        };
        let writes = handle
            .writes
            .get_or_init(|| self.shared.start_writes(ino.0, status.clone()))
            .clone();
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        // Queued here, on the FUSE thread, so writes keep the kernel's order.
        writes.write(
            path,
            offset,
            Bytes::copy_from_slice(data),
            Box::new(move |result: Result<u32, FsError>| match result {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
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
        self.commit(ino, reply);
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
        let handle = lock(&self.shared.files).remove(&fh.0);
        let Some(writes) = handle.and_then(|h| h.writes.get().cloned()) else {
            return reply.ok();
        };
        if !writes.released() {
            return reply.ok();
        }
        {
            let mut open = lock(&self.shared.writes);
            if open.get(&ino.0).is_some_and(|w| Arc::ptr_eq(w, &writes)) {
                open.remove(&ino.0);
            }
        }
        let path = self.path(ino).unwrap_or_default();
        let pending = writes.close(path.clone());
        self.spawn(|_| async move {
            match pending.wait().await {
                Ok(()) => reply.ok(),
                Err(e) => {
                    warn!(path = %path, error = %e, "last close of a written file failed");
                    reply.error(errno(&e))
                }
            }
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.commit(ino, reply);
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fh = self.shared.new_fh();
        lock(&self.shared.dirs).insert(fh, Arc::new(DirHandle::default()));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some((dir, path)) = self.dir(ino, fh) else {
            return reply.error(Errno::EBADF);
        };
        self.spawn(|s| async move {
            let entries = match s.listing(&dir, &path, offset).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            for (next, name, st) in dir_entries(offset, &entries) {
                let (child, kind) = match st {
                    Some(st) => (s.inodes.ino(st.id), file_type(st)),
                    None => (ino.0, fuser::FileType::Directory),
                };
                if reply.add(INodeNo(child), next, kind, name) {
                    break;
                }
            }
            reply.ok();
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
        let Some((dir, path)) = self.dir(ino, fh) else {
            return reply.error(Errno::EBADF);
        };
        self.spawn(|s| async move {
            let entries = match s.listing(&dir, &path, offset).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            let ttl = s.opts.attr_ttl;
            for (next, name, st) in dir_entries(offset, &entries) {
                let full = match st {
                    // "." and ".." carry no lookup; the kernel skips their attributes.
                    None => {
                        let mut attr = file_attr(ino.0, &dir_status(), None);
                        attr.ino = ino;
                        reply.add(ino, next, name, &Duration::ZERO, &attr, Generation(0))
                    }
                    Some(st) => {
                        let attr = s.attr(st);
                        let full = reply.add(attr.ino, next, name, &ttl, &attr, Generation(0));
                        if !full {
                            s.inodes.remember(ino.0, name, attr.ino.0);
                        }
                        full
                    }
                };
                if full {
                    break;
                }
            }
            reply.ok();
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
        lock(&self.shared.dirs).remove(&fh.0);
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
        self.spawn(|s| async move {
            match s.client.statfs().await {
                Ok(st) => {
                    const BSIZE: u64 = 4096;
                    let files = st.files + st.dirs;
                    let ffree = u64::from(u32::MAX).saturating_sub(files);
                    reply.statfs(
                        st.capacity / BSIZE,
                        st.available / BSIZE,
                        st.available / BSIZE,
                        files + ffree,
                        ffree,
                        BSIZE as u32,
                        255,
                        BSIZE as u32,
                    )
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) && self.shared.opts.readonly {
            return reply.error(Errno::EROFS);
        }
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        // Permission bits are checked by the kernel (default_permissions); this says
        // whether the file exists.
        self.spawn(|s| async move {
            match s.client.stat(&path).await {
                Ok(_) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        // No extended attributes: ENOSYS makes the kernel stop asking.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        // Space is taken when blocks are written; programs fall back to plain writes.
        reply.error(Errno::ENOSYS);
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
        let (path, name) = match self.changing(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let owner = owner(req, mode, umask);
        let acc = OpenFlags(flags).acc_mode();
        let exclusive = flags & libc::O_EXCL != 0;
        let fopen = self.open_flags();
        self.spawn(|s| async move {
            let status = match s.client.create_file(&path, false, false, owner).await {
                Ok(st) => st,
                Err(FsError::AlreadyExists(_)) if !exclusive => match s.client.stat(&path).await {
                    Ok(st) => st,
                    Err(e) => return reply.error(errno(&e)),
                },
                Err(e) => return reply.error(errno(&e)),
            };
            let reader = (acc != OpenAccMode::O_WRONLY).then(|| {
                let located = pb::FileBlocks {
                    status: Some(status.clone()),
                    blocks: Vec::new(),
                };
                FileReader::new(s.client.clone(), located).map(|r| HandleReader::start(&s.rt, r))
            });
            let reader = match reader.transpose() {
                Ok(r) => r,
                Err(e) => return reply.error(errno(&e)),
            };
            let fh = s.new_fh();
            let handle = Handle::new(reader, Some(status.clone()));
            lock(&s.files).insert(fh, Arc::new(handle));
            let attr = s.attr(&status);
            s.inodes.remember(parent.0, &name, attr.ino.0);
            reply.created(
                &s.opts.entry_ttl,
                &attr,
                Generation(0),
                FileHandle(fh),
                fopen,
            );
        });
    }
}

impl Shared {
    /// The write task of an inode, started by its first writer.
    fn start_writes(&self, ino: u64, status: FileStatus) -> Arc<FileWrites> {
        let mut open = lock(&self.writes);
        if let Some(w) = open.get(&ino) {
            w.opened();
            return w.clone();
        }
        let w = FileWrites::start(
            &self.rt,
            self.client.clone(),
            status,
            self.opts.staging.clone(),
        );
        open.insert(ino, w.clone());
        w
    }

    /// The directory listing of an open directory; fetched again when read from the start.
    async fn listing(
        &self,
        dir: &DirHandle,
        path: &str,
        offset: u64,
    ) -> Result<Arc<Vec<FileStatus>>, FsError> {
        let mut cached = dir.entries.lock().await;
        if offset == 0 || cached.is_none() {
            *cached = Some(Arc::new(self.client.list(path).await?));
        }
        Ok(cached.clone().unwrap_or_default())
    }
}

/// A directory status for "." and "..".
fn dir_status() -> FileStatus {
    FileStatus {
        kind: pb::FileKind::Directory as i32,
        mode: 0o755,
        ..Default::default()
    }
}

/// Directory entries from `offset`: ".", ".." (no status), then the listing; each with
/// the offset of the entry after it, which the kernel passes back to continue.
fn dir_entries(
    offset: u64,
    entries: &[FileStatus],
) -> impl Iterator<Item = (u64, &str, Option<&FileStatus>)> {
    let dots = [(".", None), ("..", None)].into_iter();
    let rest = entries.iter().map(|st| (st.name.as_str(), Some(st)));
    dots.chain(rest)
        .enumerate()
        .skip(offset as usize)
        .map(|(i, (name, st))| (i as u64 + 1, name, st))
}

impl CurvineFs {
    fn remove(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (path, name) = match self.changing(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        self.spawn(|s| async move {
            match s.client.delete(&path, false).await {
                Ok(()) => {
                    s.inodes.removed(parent.0, &name);
                    reply.ok()
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn commit(&self, ino: INodeNo, reply: ReplyEmpty) {
        let Some(writes) = self.shared.writes_of(ino.0) else {
            return reply.ok();
        };
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let pending = writes.flush(path.clone());
        self.spawn(|_| async move {
            match pending.wait().await {
                Ok(()) => reply.ok(),
                Err(e) => {
                    debug!(path = %path, error = %e, "commit failed");
                    reply.error(errno(&e))
                }
            }
        });
    }

    fn dir(&self, ino: INodeNo, fh: FileHandle) -> Option<(Arc<DirHandle>, String)> {
        let dir = lock(&self.shared.dirs).get(&fh.0).cloned()?;
        let path = self.shared.inodes.path(ino.0)?;
        Some((dir, path))
    }
}
