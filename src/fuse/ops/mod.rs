//! The file system's semantics, free of fuser's request and reply types: [`Ops`] holds
//! the state of one mount (client, inodes, handles, options) and each operation is a
//! method answering `Result<_, Errno>`, so it can be tested without a mount.
//!
//! - [`names`]: names and attributes (lookup, getattr, setattr, create a name, remove,
//!   rename, links, access, statfs).
//! - [`dirs`]: open directories and their listings.
//! - [`files`]: open files: open, create, read, write, flush, release.
//! - [`xattrs`]: extended attributes and fallocate.
//!
//! Reads, writes, commits and releases are queued when they are called (the kernel's
//! order is kept) and answer through a [`Completion`]; the other operations are async.

pub mod dirs;
pub mod files;
pub mod names;
#[cfg(test)]
mod testkit;
pub mod xattrs;

use super::attr::{errno, file_attr};
use super::handles::{lock, Handles};
use super::inodes::{Inodes, ROOT};
use super::page_cache::CachedVersions;
use crate::client::{Client, FileStatus, Owner};
use crate::fs_error::FsError;
use fuser::{Errno, FileAttr, INodeNo};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tracing::debug;

pub use dirs::{DirEntry, DirEntryPlus};
pub use files::{Created, Opened};
pub use names::{SetAttr, Statfs};

/// Largest read and write request.
pub const MAX_IO: u32 = 1 << 20;

/// Longest name in a directory.
pub const NAME_MAX: usize = 255;

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
    /// Keep the kernel's page cache of a file across opens while the file is unchanged.
    pub kernel_cache: bool,
}

/// Where the answer to a queued operation goes (for reads and writes: straight back to
/// the kernel, from the task that did the work).
pub type Completion<T> = Box<dyn FnOnce(Result<T, Errno>) + Send>;

/// Who asked: the owner of what a request creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Caller {
    /// The owner of a new file made with `mode` under `umask`.
    fn owner(self, mode: u32, umask: u32) -> Owner {
        Owner {
            mode: mode & !umask & 0o7777,
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// The state of one mount, shared by the FUSE threads and the tasks answering them.
#[derive(Debug)]
pub struct Ops {
    client: Client,
    rt: tokio::runtime::Handle,
    inodes: Inodes,
    opts: FsOptions,
    handles: Handles,
    /// The size each inode had when its attributes last went to the kernel.
    told_sizes: Mutex<HashMap<u64, u64>>,
    /// Tells the kernel to drop cached attributes.
    notifier: OnceLock<fuser::Notifier>,
    /// The root's own status when it shows several mounts (it is no cluster directory).
    root_status: Option<FileStatus>,
    /// Inodes whose last status had no extended attributes.
    no_xattrs: Mutex<std::collections::HashSet<u64>>,
    /// Files unlinked while open here, by kernel inode: their master ids. Their data stays
    /// until the last handle closes.
    orphans: Mutex<HashMap<u64, u64>>,
    /// The version of each file whose data the kernel may cache.
    cached: CachedVersions,
}

impl Ops {
    /// The operations over `client` on the mount laid out by `inodes` (one cluster
    /// directory at the root, or several mounts); their tasks run on `rt`.
    pub fn new(client: Client, rt: tokio::runtime::Handle, inodes: Inodes, opts: FsOptions) -> Ops {
        let root_status = inodes
            .root_is_view()
            .then(|| view_root_status(inodes.view().len()));
        Ops {
            client,
            rt,
            inodes,
            opts,
            handles: Handles::default(),
            told_sizes: Mutex::new(HashMap::new()),
            notifier: OnceLock::new(),
            root_status,
            no_xattrs: Mutex::new(std::collections::HashSet::new()),
            orphans: Mutex::new(HashMap::new()),
            cached: CachedVersions::default(),
        }
    }

    /// How the mount behaves.
    pub fn options(&self) -> &FsOptions {
        &self.opts
    }

    /// The runtime the operations run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    /// The kernel can talk back through this once the session exists.
    pub fn set_notifier(&self, notifier: fuser::Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Commits every file with uncommitted writes (before unmounting).
    pub async fn flush_all(&self) -> Vec<(String, FsError)> {
        let mut failed = Vec::new();
        for (ino, writes) in self.handles.all_writes() {
            let Some(path) = self.inodes.path(ino) else {
                continue;
            };
            if let Err(e) = writes.flush(path.clone(), false).wait().await {
                failed.push((path, e));
            }
        }
        failed
    }

    /// Files open for writing now.
    pub fn open_for_write(&self) -> usize {
        self.handles.open_for_write()
    }

    /// The kernel dropped `nlookup` lookups of `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        self.inodes.forget(ino, nlookup);
        if self.inodes.path(ino).is_none() {
            lock(&self.told_sizes).remove(&ino);
            lock(&self.no_xattrs).remove(&ino);
            self.cached.forget(ino);
        }
    }

    /// The kernel's attributes of a status (with this mount's unwritten length); records
    /// the size the kernel was told.
    fn attr(&self, status: &FileStatus) -> FileAttr {
        let ino = self.inodes.ino(status.id);
        let size = self.handles.writes_of(ino).map(|w| w.size());
        let attr = file_attr(ino, status, size);
        lock(&self.told_sizes).insert(ino, attr.size);
        let mut no_xattrs = lock(&self.no_xattrs);
        if status.xattrs == 0 {
            no_xattrs.insert(ino);
        } else {
            no_xattrs.remove(&ino);
        }
        attr
    }

    /// Whether the inode's last status (within the attribute cache's life) had no
    /// extended attributes.
    fn has_no_xattrs(&self, ino: u64) -> bool {
        lock(&self.no_xattrs).contains(&ino)
    }

    /// This mount changed the inode's extended attributes: ask the masters from now on.
    fn xattrs_changed(&self, ino: u64) {
        lock(&self.no_xattrs).remove(&ino);
    }

    /// Close-to-open consistency: when a file changed size since the kernel last saw its
    /// attributes (another client wrote it), the kernel drops its cached attributes, so
    /// reads see the new length at once instead of after `attr_timeout`.
    fn revalidate(&self, ino: u64, size: u64) {
        let told = lock(&self.told_sizes).get(&ino).copied();
        if told.is_some_and(|t| t != size) && self.handles.writes_of(ino).is_none() {
            if let Some(n) = self.notifier.get() {
                if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
                    debug!(ino, error = %e, "attribute invalidation refused");
                }
            }
            lock(&self.told_sizes).insert(ino, size);
        }
    }

    /// The cluster path of an inode the kernel knows. A root that shows several mounts
    /// has none: what reaches here for it is a change (getattr, access and listings
    /// answer it themselves), and the root is fixed by the Dataset.
    fn path(&self, ino: u64) -> Result<String, Errno> {
        if ino == ROOT && self.inodes.root_is_view() {
            return Err(Errno::EROFS);
        }
        self.inodes.path(ino).ok_or(Errno::ENOENT)
    }

    /// What names an inode to the masters: its path (with id 0), or for a file unlinked
    /// while open here an empty path and its master id.
    fn target(&self, ino: u64) -> Result<(String, u64), Errno> {
        if let Some(id) = lock(&self.orphans).get(&ino) {
            return Ok((String::new(), *id));
        }
        Ok((self.path(ino)?, 0))
    }

    /// The path a file's write task reports in its messages (it finds the file by id).
    fn io_path(&self, ino: u64) -> Result<String, Errno> {
        let (path, id) = self.target(ino)?;
        Ok(io_label(&path, id))
    }

    /// A file open here lost its last name: it stays readable and writable through its
    /// handles, and goes when the last one closes.
    fn orphaned(&self, ino: u64, master_id: u64) {
        lock(&self.orphans).insert(ino, master_id);
    }

    /// After a handle of `ino` closed: the master id of a file unlinked while open when no
    /// handle of it is left (it is then forgotten here).
    fn last_close_of_orphan(&self, ino: u64) -> Option<u64> {
        let mut orphans = lock(&self.orphans);
        if !orphans.contains_key(&ino) || self.handles.is_open(ino) {
            return None;
        }
        orphans.remove(&ino)
    }

    /// Lets the masters free the data of a file unlinked while open (in a task).
    fn release_orphan(&self, id: u64) {
        let client = self.client.clone();
        self.rt
            .spawn(async move { release_orphan(&client, id).await });
    }

    /// The cluster path of `name` in `parent`, and the name as text.
    fn child(&self, parent: u64, name: &OsStr) -> Result<(String, String), Errno> {
        let name = name.to_str().ok_or(Errno::EINVAL)?.to_string();
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let path = self.inodes.child_path(parent, &name).ok_or(Errno::ENOENT)?;
        Ok((path, name))
    }

    /// For an operation that changes `name` in `parent`: refused on a read-only mount,
    /// else the cluster path and the name.
    fn changing(&self, parent: u64, name: &OsStr) -> Result<(String, String), Errno> {
        self.writable(parent)?;
        self.child(parent, name)
    }

    /// EROFS when `ino` may not change: a read-only mount, a read-only dataset mount of
    /// a root of several, or that root itself.
    fn writable(&self, ino: u64) -> Result<(), Errno> {
        let view_root = ino == ROOT && self.inodes.root_is_view();
        let read_only_mount = self.inodes.mount_of(ino).is_some_and(|m| m.read_only);
        if self.opts.readonly || view_root || read_only_mount {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// EXDEV when `a` and `b` are under different mounts of a root of several (each is
    /// its own file system to the tools: `mv` copies instead).
    fn same_mount(&self, a: u64, b: u64) -> Result<(), Errno> {
        let name = |ino| self.inodes.mount_of(ino).map(|m| m.name.as_str());
        if name(a) != name(b) {
            Err(Errno::EXDEV)
        } else {
            Ok(())
        }
    }
}

/// The status of a root that shows `mounts` dataset mounts: a directory of root's, mode
/// 0755, made now.
fn view_root_status(mounts: usize) -> FileStatus {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    FileStatus {
        id: super::inodes::VIEW_ROOT_ID,
        path: "/".into(),
        kind: crate::rpc::pb::master::FileKind::Directory as i32,
        mode: 0o755,
        nlink: 2 + mounts as u32,
        atime_ms: now,
        mtime_ms: now,
        ctime_ms: now,
        complete: true,
        children: mounts as u64,
        ..Default::default()
    }
}

/// How a file's write task names it in messages: its path, or for a file unlinked while
/// open (`id` not 0) its inode.
fn io_label(path: &str, id: u64) -> String {
    if id == 0 {
        path.to_string()
    } else {
        format!("(unlinked inode {id})")
    }
}

/// Frees the data of a file unlinked while open; a failure is logged (the masters keep the
/// orphan, which costs space, not correctness).
async fn release_orphan(client: &Client, id: u64) {
    if let Err(e) = client.release_orphan(id).await {
        tracing::warn!(inode = id, error = %e, "cannot free a file unlinked while open");
    }
}

/// The errno of a cluster error, for `map_err`.
fn to_errno(e: FsError) -> Errno {
    errno(&e)
}
