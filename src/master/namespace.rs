//! The file system namespace: directories, files, symlinks and special files with their
//! attributes and block lists, and the registered workers. It is the master's replicated
//! state: every change is a [`Command`] applied in log order, so all masters hold the same
//! namespace. Submodules: `links` (hard links, orphans), `xattrs` (extended attributes),
//! `mounts` (Fluid's mount table), `ufs` (listings of under storage, cached blocks).
//!
//! Pure and deterministic: times come inside the commands (the leader's clock), and the
//! namespace records which inodes and workers changed so the state machine can persist
//! exactly those.

use super::retry_cache::{CachedCall, CallKey, Changes as RetryChanges, RetryCache};
use crate::fs_error::FsError;
use serde::{Deserialize, Serialize};
pub use sparse::Sparse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod links;
mod mounts;
mod sparse;
mod ufs;
mod xattrs;
pub use mounts::MountRecord;
pub use ufs::{UfsItem, UfsMeta};
pub use xattrs::{check_xattr_name, XattrMode, MAX_XATTR_NAME, MAX_XATTR_TOTAL, MAX_XATTR_VALUE};

/// An inode number. The root directory is [`ROOT_ID`].
pub type InodeId = u64;
/// The root directory's inode number.
pub const ROOT_ID: InodeId = 1;
/// Longest file name, as in Linux.
pub const MAX_NAME_LEN: usize = 255;
/// Most names one file may have (as ext4's limit): more links answer EMLINK.
pub const MAX_LINKS: usize = 65_000;
/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe (`mkfifo`): metadata only, the kernel serves its data.
    Fifo,
    /// A Unix socket's name: metadata only.
    Socket,
    /// A character device node (`rdev`); the mount is `nodev`, so it only holds metadata.
    CharDevice,
    /// A block device node (`rdev`); metadata only, as for character devices.
    BlockDevice,
}

impl InodeKind {
    /// FIFOs, sockets and device nodes: names with attributes and no data of ours.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            InodeKind::Fifo | InodeKind::Socket | InodeKind::CharDevice | InodeKind::BlockDevice
        )
    }
}

/// A block of a file: `len` bytes at `offset`, stored on `worker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Block id, unique in the cluster.
    pub id: u64,
    /// Where the block's bytes start in the file.
    pub offset: u64,
    /// How many bytes of the file it holds.
    pub len: u64,
    /// The worker holding it; `None` once evicted or lost.
    pub worker: Option<u32>,
}

/// A directory, file or symlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    /// Inode number.
    pub id: InodeId,
    /// Parent directory (the root is its own parent).
    pub parent: InodeId,
    /// Name in the parent.
    pub name: String,
    /// Directory, file or symlink.
    pub kind: InodeKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Length in bytes (files), target length (symlinks), 0 for directories.
    pub size: u64,
    /// Access time, milliseconds since the epoch.
    pub atime: i64,
    /// Modification time, milliseconds since the epoch.
    pub mtime: i64,
    /// Change time, milliseconds since the epoch.
    pub ctime: i64,
    /// Symlink target.
    #[serde(default)]
    pub target: Sparse<String>,
    /// A file's blocks, sorted by offset, not overlapping. Gaps read as zeros.
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// Blocks allocated by a writer and not yet part of the file: (block id, worker).
    #[serde(default)]
    pub pending: Sparse<Vec<(u64, u32)>>,
    /// A file is complete once its writer closed it.
    pub complete: bool,
    /// A device node's device number.
    #[serde(default)]
    pub rdev: u32,
    /// Names besides (`parent`, `name`) of a file with hard links: (directory, name).
    /// `nlink` is one more than their count.
    #[serde(default)]
    pub links: Sparse<Vec<(InodeId, String)>>,
    /// Extended attributes (`user.` and `security.` names) and their values.
    #[serde(default)]
    pub xattrs: Sparse<BTreeMap<String, Vec<u8>>>,
    /// Under an under-storage mount: the version of the entry the storage listed
    /// (`None`: an entry made here and not written to the storage yet).
    #[serde(default)]
    pub ufs: Option<Box<UfsMeta>>,
}

impl Inode {
    /// The number of names of a file (directories count their subdirectories instead).
    pub fn names(&self) -> u32 {
        1 + self.links.len() as u32
    }
}

/// One entry of a directory: its name there and its inode.
pub type DirEntry<'a> = (&'a str, &'a Inode);

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Worker id.
    pub id: u32,
    /// DNS name or address.
    pub hostname: String,
    /// Block data port.
    pub rpc_port: u16,
    /// HTTP port.
    pub web_port: u16,
}

/// A change to the namespace, replicated through the Raft log.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Mkdir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        parents: bool,
        now: i64,
    },
    Create {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        overwrite: bool,
        parents: bool,
        now: i64,
    },
    AddBlock {
        file_id: InodeId,
        worker: u32,
    },
    Complete {
        file_id: InodeId,
        length: u64,
        blocks: Vec<BlockRange>,
        now: i64,
    },
    Rename {
        src: String,
        dst: String,
        no_replace: bool,
        now: i64,
    },
    Delete {
        path: String,
        recursive: bool,
        now: i64,
        /// The caller has the file open: its last name going keeps it as an orphan.
        #[serde(default)]
        keep_open: bool,
    },
    SetAttr {
        path: String,
        attrs: SetAttrs,
        now: i64,
        /// When not 0, the inode with this id instead of the path.
        #[serde(default)]
        id: InodeId,
    },
    /// The last close of a file unlinked while open: its data goes.
    ReleaseOrphan {
        id: InodeId,
    },
    Symlink {
        target: String,
        link: String,
        uid: u32,
        gid: u32,
        now: i64,
    },
    RegisterWorker {
        hostname: String,
        rpc_port: u16,
        web_port: u16,
    },
    RemoveReplicas {
        worker: u32,
        blocks: Vec<u64>,
    },
    /// A FIFO, socket or device node (`mknod`).
    Mknod {
        path: String,
        kind: InodeKind,
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
        now: i64,
    },
    /// A new name `dst` for the file at `src` (`link`).
    Link {
        src: String,
        dst: String,
        now: i64,
    },
    /// Sets an extended attribute.
    SetXattr {
        path: String,
        name: String,
        value: Vec<u8>,
        mode: XattrMode,
        now: i64,
    },
    /// Removes an extended attribute.
    RemoveXattr {
        path: String,
        name: String,
        now: i64,
    },
    /// Makes the mount table exactly this (see `namespace/mounts.rs`).
    SetMounts {
        mounts: Vec<MountRecord>,
        now: i64,
    },
    /// A page of an under-storage directory's listing (see `namespace/ufs.rs`).
    UfsSync {
        dir: String,
        items: Vec<UfsItem>,
        /// The listing's number: the last page removes entries another listing saw.
        gen: u64,
        last: bool,
        block_size: u64,
        now: i64,
    },
    /// Blocks of under-storage files a worker fetched and holds.
    CacheBlocks {
        worker: u32,
        blocks: Vec<u64>,
    },
    /// A file was written through to under storage as this version.
    UfsPersisted {
        file_id: InodeId,
        etag: String,
        mtime: i64,
        size: u64,
    },
    /// The directories under `path` list the storage again on next use.
    UfsStale {
        path: String,
    },
    /// `command` as client call `call` of client `client`, stamped `now` by the leader:
    /// applied once; a repeat gets the first result from the retry cache. The client's
    /// calls below `answered_below` have their answers: the cache forgets them.
    Once {
        client: u64,
        call: u64,
        now: i64,
        #[serde(default)]
        answered_below: u64,
        command: Box<Command>,
    },
}

/// A block as a writer reports it when completing a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRange {
    /// Block id (allocated to this file).
    pub id: u64,
    /// Offset in the file.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// Attributes to change; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttrs {
    /// Permission bits.
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Access time (ms).
    pub atime: Option<i64>,
    /// Modification time (ms).
    pub mtime: Option<i64>,
    /// New length (truncate or extend).
    pub size: Option<u64>,
}

/// The result of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The inode created or changed.
    Node(Inode),
    /// A block was allocated.
    Block(u64),
    /// The worker's id.
    Worker(u32),
    /// Done; nothing to return.
    Done,
    /// The mount table after the change.
    Mounts(Vec<MountRecord>),
}

/// A command's result and the blocks it freed: (block id, worker) for deletion on the
/// workers (a deleted or truncated file, a file replaced by a rename).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The outcome or the error.
    pub result: Result<Outcome, FsError>,
    /// Blocks no file uses any more.
    pub freed: Vec<(u64, u32)>,
    /// The result is a repeated call's first, from the retry cache (nothing applied).
    #[serde(default)]
    pub repeated: bool,
}

/// What changed in the last commands, for persistence.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Inodes created or changed.
    pub inodes: BTreeSet<InodeId>,
    /// Inodes removed.
    pub removed: BTreeSet<InodeId>,
    /// Workers registered.
    pub workers: BTreeSet<u32>,
    /// The mount table changed.
    pub mounts: bool,
    /// Retry cache entries recorded and dropped.
    pub retries: RetryChanges,
}

/// Everything the namespace holds, as written in a snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Image {
    /// All inodes.
    pub inodes: Vec<Inode>,
    /// All workers.
    pub workers: Vec<WorkerRecord>,
    /// Id counters.
    pub counters: Counters,
    /// The mount table (absent in images written before it existed).
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
    /// The retry cache (absent in images written before it existed).
    #[serde(default)]
    pub retries: Vec<CachedCall>,
}

/// A namespace serialized exactly as its [`Image`] would be (same fields, same order,
/// inodes by id), borrowed instead of copied.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    ns: &'a Namespace,
}

impl Serialize for ImageView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let ns = self.ns;
        let mut inodes: Vec<&Inode> = ns.inodes.values().map(|i| &**i).collect();
        inodes.sort_unstable_by_key(|i| i.id);
        let mut image = serializer.serialize_struct("Image", 5)?;
        image.serialize_field("inodes", &inodes)?;
        image.serialize_field("workers", &Seq(ns.workers.values()))?;
        image.serialize_field("counters", &ns.counters)?;
        image.serialize_field("mounts", &Seq(ns.mounts.values()))?;
        image.serialize_field("retries", &ns.retries.image())?;
        image.end()
    }
}

/// An iterator serialized as a sequence (its length known up front, as bincode needs).
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: ExactSizeIterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone())
    }
}

/// The id counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Next inode number.
    pub next_inode: u64,
    /// Next block id.
    pub next_block: u64,
    /// Next worker id.
    pub next_worker: u32,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            next_inode: ROOT_ID + 1,
            next_block: 1,
            next_worker: 1,
        }
    }
}

/// The namespace.
#[derive(Debug)]
pub struct Namespace {
    /// Boxed: the map's slots stay small (a table sized for a million inodes has two
    /// million slots; an inode is ~240 bytes).
    inodes: HashMap<InodeId, Box<Inode>>,
    /// Names as `Box<str>` (16 bytes, not 24): a million names sit in these maps.
    children: HashMap<InodeId, BTreeMap<Box<str>, InodeId>>,
    /// Subdirectories of each directory (its `st_nlink` is 2 more).
    subdirs: HashMap<InodeId, u32>,
    /// Files without a name that a client still has open (unlinked while open).
    orphans: BTreeSet<InodeId>,
    workers: BTreeMap<u32, WorkerRecord>,
    /// Block id → the file holding it (blocks and pending blocks).
    block_owner: HashMap<u64, InodeId>,
    counters: Counters,
    mounts: BTreeMap<String, MountRecord>,
    files: u64,
    dirs: u64,
    dirty: Dirty,
    /// Blocks freed by the command being applied.
    freed: Vec<(u64, u32)>,
    /// The first results of recent client calls.
    retries: RetryCache,
}

impl Default for Namespace {
    fn default() -> Self {
        Self::from_image(Image::default())
    }
}

/// Splits an absolute path into its names, resolving `.` and `..`.
pub fn components(path: &str) -> Result<Vec<String>, FsError> {
    if !path.starts_with('/') {
        return Err(FsError::InvalidPath(format!("{path:?} is not absolute")));
    }
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(FsError::InvalidPath(format!("{path:?} escapes the root")));
                }
            }
            name => {
                if name.len() > MAX_NAME_LEN || name.contains('\0') {
                    return Err(FsError::InvalidPath(format!(
                        "{path:?} has an invalid name"
                    )));
                }
                out.push(name.to_string());
            }
        }
    }
    Ok(out)
}

/// The normalised form of a path (`/a/./b/../c` → `/a/c`).
pub fn normalize(path: &str) -> Result<String, FsError> {
    Ok(format!("/{}", components(path)?.join("/")))
}

fn root_inode() -> Inode {
    Inode {
        id: ROOT_ID,
        parent: ROOT_ID,
        name: String::new(),
        kind: InodeKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        atime: 0,
        mtime: 0,
        ctime: 0,
        target: Sparse::default(),
        blocks: Vec::new(),
        pending: Sparse::default(),
        complete: true,
        rdev: 0,
        links: Sparse::default(),
        xattrs: Sparse::default(),
        ufs: None,
    }
}

impl Namespace {
    /// Rebuilds a namespace from an image (a snapshot, or what the state machine stored).
    pub fn from_image(image: Image) -> Namespace {
        let mut ns = Namespace {
            inodes: HashMap::new(),
            children: HashMap::new(),
            subdirs: HashMap::new(),
            orphans: BTreeSet::new(),
            workers: image.workers.into_iter().map(|w| (w.id, w)).collect(),
            block_owner: HashMap::new(),
            counters: image.counters,
            mounts: image
                .mounts
                .into_iter()
                .map(|m| (m.path.clone(), m))
                .collect(),
            files: 0,
            dirs: 0,
            dirty: Dirty::default(),
            freed: Vec::new(),
            retries: RetryCache::from_calls(image.retries),
        };
        let mut inodes = image.inodes;
        if !inodes.iter().any(|i| i.id == ROOT_ID) {
            inodes.push(root_inode());
        }
        for inode in inodes {
            ns.index(&inode);
            ns.inodes.insert(inode.id, Box::new(inode));
        }
        ns
    }

    /// The whole namespace, for a snapshot.
    pub fn image(&self) -> Image {
        let mut inodes: Vec<Inode> = self.inodes.values().map(|i| (**i).clone()).collect();
        inodes.sort_by_key(|i| i.id);
        Image {
            inodes,
            workers: self.workers.values().cloned().collect(),
            counters: self.counters,
            mounts: self.mounts.values().cloned().collect(),
            retries: self.retries.image(),
        }
    }

    /// The namespace as an [`Image`] serializes, without copying it: a snapshot is
    /// streamed from this into its file.
    pub fn image_view(&self) -> ImageView<'_> {
        ImageView { ns: self }
    }

    /// Takes the record of what changed since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.retries = self.retries.take_changes();
        dirty
    }

    /// The first result of client call `key`, when the retry cache has it.
    pub fn first_result(&self, key: CallKey) -> Option<&Result<Outcome, FsError>> {
        self.retries.get(key)
    }

    /// Number of client calls the retry cache keeps.
    pub fn retry_calls(&self) -> usize {
        self.retries.len()
    }

    /// A retry cache entry by its sequence number (for persistence).
    pub fn retry_entry(&self, seq: u64) -> Option<&CachedCall> {
        self.retries.entry(seq)
    }

    /// The id counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// An inode by number.
    pub fn inode(&self, id: InodeId) -> Option<&Inode> {
        self.inodes.get(&id).map(|i| &**i)
    }

    /// A worker by id.
    pub fn worker(&self, id: u32) -> Option<&WorkerRecord> {
        self.workers.get(&id)
    }

    /// All workers.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerRecord> {
        self.workers.values()
    }

    /// Number of files (and symlinks) and of directories (root included).
    pub fn counts(&self) -> (u64, u64) {
        (self.files, self.dirs)
    }

    /// Whether a block belongs to a file (or a writer of one).
    pub fn knows_block(&self, block: u64) -> bool {
        self.block_owner.contains_key(&block)
    }

    /// The inode at `path`.
    pub fn lookup(&self, path: &str) -> Result<&Inode, FsError> {
        let names = components(path)?;
        let id = self.resolve(&names, path)?;
        self.inodes
            .get(&id)
            .map(|i| &**i)
            .ok_or_else(|| FsError::NotFound(path.to_string()))
    }

    /// Up to `limit` entries (name, inode) of the directory at `path` whose names sort
    /// after `start_after`. Returns the entries and whether more follow.
    pub fn list(
        &self,
        path: &str,
        start_after: &str,
        limit: usize,
    ) -> Result<(Vec<DirEntry<'_>>, bool), FsError> {
        let dir = self.lookup(path)?;
        if dir.kind != InodeKind::Dir {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        let Some(children) = self.children.get(&dir.id) else {
            return Ok((Vec::new(), false));
        };
        let range = children.range::<str, _>((
            std::ops::Bound::Excluded(start_after),
            std::ops::Bound::Unbounded,
        ));
        let mut out = Vec::new();
        let mut more = false;
        for (name, id) in range {
            if out.len() == limit {
                more = true;
                break;
            }
            if let Some(inode) = self.inodes.get(id) {
                // The entry's own name: a file with hard links has several.
                out.push((&**name, &**inode));
            }
        }
        Ok((out, more))
    }

    /// Bytes of all files, and of the blocks held by a worker `live` accepts.
    pub fn cached_bytes(&self, live: impl Fn(u32) -> bool) -> (u64, u64) {
        let mut total = 0;
        let mut cached = 0;
        for inode in self.inodes.values().filter(|i| i.kind == InodeKind::File) {
            total += inode.size;
            cached += inode
                .blocks
                .iter()
                .filter(|b| b.worker.is_some_and(&live))
                .map(|b| b.len)
                .sum::<u64>();
        }
        (total, cached)
    }

    /// Number of entries in a directory.
    pub fn child_count(&self, dir: InodeId) -> u64 {
        self.children.get(&dir).map_or(0, |c| c.len() as u64)
    }

    /// `st_nlink` of an inode: a directory's 2 plus its subdirectories, a file's names
    /// (0 for a file unlinked while open).
    pub fn nlink(&self, inode: &Inode) -> u32 {
        match inode.kind {
            InodeKind::Dir => 2 + self.subdirs.get(&inode.id).copied().unwrap_or(0),
            _ if self.orphans.contains(&inode.id) => 0,
            _ => inode.names(),
        }
    }

    /// The inode at `path`, or the one with id `id` when it is not 0 (an open file that
    /// was renamed or unlinked is still the same file).
    pub fn target(&self, path: &str, id: InodeId) -> Result<&Inode, FsError> {
        if id == 0 {
            return self.lookup(path);
        }
        self.inode(id)
            .ok_or_else(|| FsError::NotFound(format!("inode {id}")))
    }

    /// Applies one command. Errors leave the namespace unchanged.
    pub fn apply(&mut self, command: &Command) -> Applied {
        if let Command::Once {
            client,
            call,
            now,
            answered_below,
            command,
        } = command
        {
            let key = CallKey {
                client: *client,
                call: *call,
            };
            return self.apply_once(key, *now, *answered_below, command);
        }
        let result = self.apply_inner(command);
        let freed = std::mem::take(&mut self.freed);
        Applied {
            result,
            freed,
            repeated: false,
        }
    }

    /// Applies client call `key` once: a repeat answers with the first result. The
    /// client's calls below `answered_below` are forgotten first.
    fn apply_once(
        &mut self,
        key: CallKey,
        now: i64,
        answered_below: u64,
        command: &Command,
    ) -> Applied {
        self.retries
            .forget_answered(key.client, answered_below.min(key.call));
        if let Some(first) = self.retries.get(key) {
            return Applied {
                result: first.clone(),
                freed: Vec::new(),
                repeated: true,
            };
        }
        let applied = if matches!(command, Command::Once { .. }) {
            Applied {
                result: self.apply_inner(command),
                freed: Vec::new(),
                repeated: false,
            }
        } else {
            self.apply(command)
        };
        self.retries.record(key, now, &applied.result);
        applied
    }

    fn apply_inner(&mut self, command: &Command) -> Result<Outcome, FsError> {
        match command {
            Command::Mkdir {
                path,
                mode,
                uid,
                gid,
                parents,
                now,
            } => self.mkdir(path, *mode, *uid, *gid, *parents, *now),
            Command::Create {
                path,
                mode,
                uid,
                gid,
                overwrite,
                parents,
                now,
            } => self.create(path, *mode, *uid, *gid, *overwrite, *parents, *now),
            Command::AddBlock { file_id, worker } => self.add_block(*file_id, *worker),
            Command::Complete {
                file_id,
                length,
                blocks,
                now,
            } => self.complete(*file_id, *length, blocks, *now),
            Command::Rename {
                src,
                dst,
                no_replace,
                now,
            } => self.rename(src, dst, *no_replace, *now),
            Command::Delete {
                path,
                recursive,
                now,
                keep_open,
            } => self.delete(path, *recursive, *keep_open, *now),
            Command::SetAttr {
                path,
                attrs,
                now,
                id,
            } => self.set_attr(path, *id, attrs, *now),
            Command::ReleaseOrphan { id } => {
                if self.orphans.contains(id) {
                    let freed = self.remove(*id);
                    self.freed.extend(freed);
                }
                Ok(Outcome::Done)
            }
            Command::Symlink {
                target,
                link,
                uid,
                gid,
                now,
            } => self.symlink(target, link, *uid, *gid, *now),
            Command::RegisterWorker {
                hostname,
                rpc_port,
                web_port,
            } => Ok(Outcome::Worker(
                self.register_worker(hostname, *rpc_port, *web_port),
            )),
            Command::RemoveReplicas { worker, blocks } => {
                self.remove_replicas(*worker, blocks);
                Ok(Outcome::Done)
            }
            Command::Mknod {
                path,
                kind,
                mode,
                rdev,
                uid,
                gid,
                now,
            } => self.mknod(path, *kind, *mode, *rdev, (*uid, *gid), *now),
            Command::Link { src, dst, now } => self.link(src, dst, *now),
            Command::SetXattr {
                path,
                name,
                value,
                mode,
                now,
            } => self.set_xattr(path, name, value, *mode, *now),
            Command::RemoveXattr { path, name, now } => self.remove_xattr(path, name, *now),
            Command::SetMounts { mounts, now } => self.set_mounts(mounts, *now),
            Command::UfsSync { .. }
            | Command::CacheBlocks { .. }
            | Command::UfsPersisted { .. }
            | Command::UfsStale { .. } => self.apply_ufs(command),
            // `apply` answers these; one inside another is refused there too.
            Command::Once { .. } => Err(FsError::InvalidArgument(
                "a client call wraps another client call".into(),
            )),
        }
    }

    fn resolve(&self, names: &[String], path: &str) -> Result<InodeId, FsError> {
        let mut id = ROOT_ID;
        for (depth, name) in names.iter().enumerate() {
            let inode = self
                .inodes
                .get(&id)
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
            if inode.kind != InodeKind::Dir {
                return Err(FsError::NotADirectory(prefix(names, depth)));
            }
            id = *self
                .children
                .get(&id)
                .and_then(|c| c.get(name.as_str()))
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        }
        Ok(id)
    }

    /// The parent directory's id and the last name of `path`.
    fn parent_of(&self, path: &str) -> Result<(InodeId, String), FsError> {
        let mut names = components(path)?;
        let name = names.pop().ok_or_else(|| {
            FsError::InvalidArgument("the root cannot be created, renamed or removed".into())
        })?;
        let parent = self.resolve(&names, path)?;
        match self.inodes.get(&parent) {
            Some(p) if p.kind == InodeKind::Dir => Ok((parent, name)),
            _ => Err(FsError::NotADirectory(prefix(&names, names.len()))),
        }
    }

    fn child(&self, parent: InodeId, name: &str) -> Option<InodeId> {
        self.children
            .get(&parent)
            .and_then(|c| c.get(name))
            .copied()
    }

    fn index(&mut self, inode: &Inode) {
        match inode.kind {
            InodeKind::Dir => self.dirs += 1,
            _ => self.files += 1,
        }
        if inode.id != ROOT_ID && inode.name.is_empty() {
            self.orphans.insert(inode.id);
        } else if inode.id != ROOT_ID {
            self.children
                .entry(inode.parent)
                .or_default()
                .insert(inode.name.as_str().into(), inode.id);
            if inode.kind == InodeKind::Dir {
                *self.subdirs.entry(inode.parent).or_default() += 1;
            }
        }
        for (dir, name) in &inode.links {
            self.children
                .entry(*dir)
                .or_default()
                .insert(name.as_str().into(), inode.id);
        }
        for b in &inode.blocks {
            self.block_owner.insert(b.id, inode.id);
        }
        for (b, _) in &inode.pending {
            self.block_owner.insert(*b, inode.id);
        }
    }

    fn insert(&mut self, inode: Inode) {
        self.index(&inode);
        self.dirty.inodes.insert(inode.id);
        self.dirty.removed.remove(&inode.id);
        self.inodes.insert(inode.id, Box::new(inode));
    }

    /// Removes an inode (not its children) and returns the blocks it held.
    fn remove(&mut self, id: InodeId) -> Vec<(u64, u32)> {
        let Some(inode) = self.inodes.remove(&id) else {
            return Vec::new();
        };
        match inode.kind {
            InodeKind::Dir => {
                self.dirs -= 1;
                if let Some(n) = self.subdirs.get_mut(&inode.parent) {
                    *n = n.saturating_sub(1);
                }
            }
            _ => self.files -= 1,
        }
        for (dir, name) in std::iter::once(&(inode.parent, inode.name.clone())).chain(&inode.links)
        {
            if let Some(siblings) = self.children.get_mut(dir) {
                if siblings.get(name.as_str()) == Some(&id) {
                    siblings.remove(name.as_str());
                }
            }
        }
        self.children.remove(&id);
        self.subdirs.remove(&id);
        self.orphans.remove(&id);
        self.dirty.inodes.remove(&id);
        self.dirty.removed.insert(id);
        self.release_blocks(&inode.blocks, &inode.pending)
    }

    fn release_blocks(&mut self, blocks: &[Block], pending: &[(u64, u32)]) -> Vec<(u64, u32)> {
        let mut freed = Vec::new();
        for b in blocks {
            self.block_owner.remove(&b.id);
            if let Some(w) = b.worker {
                freed.push((b.id, w));
            }
        }
        for (b, w) in pending {
            self.block_owner.remove(b);
            freed.push((*b, *w));
        }
        freed
    }

    fn touch(&mut self, id: InodeId, now: i64) {
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.mtime = now;
            inode.ctime = now;
            self.dirty.inodes.insert(id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_inode(
        &mut self,
        parent: InodeId,
        name: &str,
        kind: InodeKind,
        mode: u32,
        uid: u32,
        gid: u32,
        now: i64,
    ) -> Inode {
        let id = self.counters.next_inode;
        self.counters.next_inode += 1;
        // A set-group-ID directory gives its group to what is made in it, and its
        // set-group-ID bit to new directories.
        let (mode, gid) = match self.inodes.get(&parent) {
            Some(p) if p.mode & 0o2000 != 0 => (
                if kind == InodeKind::Dir {
                    mode | 0o2000
                } else {
                    mode
                },
                p.gid,
            ),
            _ => (mode, gid),
        };
        Inode {
            id,
            parent,
            name: name.to_string(),
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            target: Sparse::default(),
            blocks: Vec::new(),
            pending: Sparse::default(),
            // An empty file is complete; a writer's blocks count once it completes.
            complete: true,
            rdev: 0,
            links: Sparse::default(),
            xattrs: Sparse::default(),
            ufs: None,
        }
    }

    fn mkdir(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        parents: bool,
        now: i64,
    ) -> Result<Outcome, FsError> {
        let names = components(path)?;
        if names.is_empty() {
            return if parents {
                Ok(Outcome::Node(
                    self.inodes
                        .get(&ROOT_ID)
                        .map(|i| (**i).clone())
                        .unwrap_or_else(root_inode),
                ))
            } else {
                Err(FsError::AlreadyExists("/".into()))
            };
        }
        // Check the whole path first so a failure changes nothing.
        let (mut id, missing_from) = self.existing_dirs(&names, path)?;
        if missing_from == names.len() {
            return if parents {
                Ok(Outcome::Node((*self.inodes[&id]).clone()))
            } else {
                Err(FsError::AlreadyExists(path.to_string()))
            };
        }
        if !parents && missing_from + 1 < names.len() {
            return Err(FsError::NotFound(prefix(&names, missing_from + 1)));
        }
        for name in &names[missing_from..] {
            let dir = self.new_inode(id, name, InodeKind::Dir, mode, uid, gid, now);
            self.touch(id, now);
            id = dir.id;
            self.insert(dir);
        }
        Ok(Outcome::Node((*self.inodes[&id]).clone()))
    }

    /// Walks `names` from the root while they exist: the last directory reached and the
    /// index of the first missing name (`names.len()` when all exist). An existing name
    /// that is not a directory is an error.
    fn existing_dirs(&self, names: &[String], path: &str) -> Result<(InodeId, usize), FsError> {
        let mut id = ROOT_ID;
        for (depth, name) in names.iter().enumerate() {
            let Some(child) = self.child(id, name) else {
                return Ok((id, depth));
            };
            let inode = self
                .inodes
                .get(&child)
                .ok_or_else(|| FsError::NotFound(path.to_string()))?;
            if inode.kind != InodeKind::Dir {
                return Err(FsError::NotADirectory(prefix(names, depth + 1)));
            }
            id = child;
        }
        Ok((id, names.len()))
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        overwrite: bool,
        parents: bool,
        now: i64,
    ) -> Result<Outcome, FsError> {
        let names = components(path)?;
        if names.is_empty() {
            return Err(FsError::IsADirectory("/".into()));
        }
        if parents && names.len() > 1 {
            let parent_path = prefix(&names, names.len() - 1);
            self.mkdir(&parent_path, 0o755, uid, gid, true, now)?;
        }
        let (parent, name) = self.parent_of(path)?;
        if let Some(existing) = self.child(parent, &name) {
            let inode = &self.inodes[&existing];
            if inode.kind == InodeKind::Dir {
                return Err(FsError::IsADirectory(path.to_string()));
            }
            if !overwrite || inode.kind != InodeKind::File {
                return Err(FsError::AlreadyExists(path.to_string()));
            }
            // O_TRUNC: keep the inode, drop its data. The old blocks are freed by the
            // service once this command is applied.
            let (blocks, pending) = {
                let inode = self
                    .inodes
                    .get_mut(&existing)
                    .ok_or_else(|| FsError::NotFound(path.to_string()))?;
                inode.size = 0;
                inode.complete = true;
                inode.mtime = now;
                inode.ctime = now;
                (
                    std::mem::take(&mut inode.blocks),
                    std::mem::take(&mut inode.pending),
                )
            };
            self.dirty.inodes.insert(existing);
            let freed = self.release_blocks(&blocks, &pending);
            self.freed.extend(freed);
            return Ok(Outcome::Node((*self.inodes[&existing]).clone()));
        }
        let file = self.new_inode(parent, &name, InodeKind::File, mode, uid, gid, now);
        self.touch(parent, now);
        let out = file.clone();
        self.insert(file);
        Ok(Outcome::Node(out))
    }

    fn add_block(&mut self, file_id: InodeId, worker: u32) -> Result<Outcome, FsError> {
        let inode = self
            .inodes
            .get_mut(&file_id)
            .ok_or_else(|| FsError::NotFound(format!("inode {file_id}")))?;
        if inode.kind != InodeKind::File {
            return Err(FsError::IsADirectory(format!("inode {file_id}")));
        }
        let id = self.counters.next_block;
        self.counters.next_block += 1;
        inode.pending.push((id, worker));
        self.block_owner.insert(id, file_id);
        self.dirty.inodes.insert(file_id);
        Ok(Outcome::Block(id))
    }

    fn complete(
        &mut self,
        file_id: InodeId,
        length: u64,
        ranges: &[BlockRange],
        now: i64,
    ) -> Result<Outcome, FsError> {
        let inode = self
            .inodes
            .get(&file_id)
            .ok_or_else(|| FsError::NotFound(format!("inode {file_id}")))?;
        if inode.kind != InodeKind::File {
            return Err(FsError::IsADirectory(format!("inode {file_id}")));
        }
        // Every range must be one of this file's blocks, in order, inside the length.
        let mut workers: HashMap<u64, Option<u32>> =
            inode.blocks.iter().map(|b| (b.id, b.worker)).collect();
        workers.extend(inode.pending.iter().map(|(b, w)| (*b, Some(*w))));
        let mut end = 0;
        let mut blocks = Vec::with_capacity(ranges.len());
        for r in ranges {
            let worker = workers.get(&r.id).copied().ok_or_else(|| {
                FsError::InvalidArgument(format!(
                    "block {} does not belong to inode {file_id}",
                    r.id
                ))
            })?;
            if r.offset < end || r.offset.checked_add(r.len).is_none_or(|e| e > length) {
                return Err(FsError::InvalidArgument(format!(
                    "block {} at {}+{} overlaps or passes the length {length}",
                    r.id, r.offset, r.len
                )));
            }
            end = r.offset + r.len;
            blocks.push(Block {
                id: r.id,
                offset: r.offset,
                len: r.len,
                worker,
            });
        }
        let kept: BTreeSet<u64> = blocks.iter().map(|b| b.id).collect();
        let inode = self
            .inodes
            .get_mut(&file_id)
            .ok_or_else(|| FsError::NotFound(format!("inode {file_id}")))?;
        let old_blocks: Vec<Block> = std::mem::take(&mut inode.blocks)
            .into_iter()
            .filter(|b| !kept.contains(&b.id))
            .collect();
        let old_pending: Vec<(u64, u32)> = std::mem::take(&mut inode.pending)
            .into_inner()
            .into_iter()
            .filter(|(b, _)| !kept.contains(b))
            .collect();
        inode.blocks = blocks;
        inode.size = length;
        inode.complete = true;
        // Strictly later than before, even within one millisecond: a complete that
        // keeps the length and block ids (blocks rewritten in place) still changes the
        // file's version, so no client keeps its cached pages of the old content.
        inode.mtime = now.max(inode.mtime.saturating_add(1));
        inode.ctime = inode.mtime;
        let out = inode.clone();
        self.dirty.inodes.insert(file_id);
        let freed = self.release_blocks(&old_blocks, &old_pending);
        self.freed.extend(freed);
        Ok(Outcome::Node(*out))
    }

    fn rename(
        &mut self,
        src: &str,
        dst: &str,
        no_replace: bool,
        now: i64,
    ) -> Result<Outcome, FsError> {
        let (src_parent, src_name) = self.parent_of(src)?;
        let src_id = self
            .child(src_parent, &src_name)
            .ok_or_else(|| FsError::NotFound(src.to_string()))?;
        let (dst_parent, dst_name) = self.parent_of(dst)?;
        if src_parent == dst_parent && src_name == dst_name {
            return Ok(Outcome::Node((*self.inodes[&src_id]).clone()));
        }
        let src_is_dir = self.inodes[&src_id].kind == InodeKind::Dir;
        if src_is_dir {
            // Refuse moving a directory into itself or below it.
            let mut cur = dst_parent;
            loop {
                if cur == src_id {
                    return Err(FsError::InvalidArgument(format!(
                        "cannot move {src} into itself ({dst})"
                    )));
                }
                if cur == ROOT_ID {
                    break;
                }
                cur = self.inodes.get(&cur).map_or(ROOT_ID, |i| i.parent);
            }
        }
        if let Some(existing) = self.child(dst_parent, &dst_name) {
            if no_replace {
                return Err(FsError::AlreadyExists(dst.to_string()));
            }
            if existing == src_id {
                // Two names of one file: rename does nothing (POSIX).
                return Ok(Outcome::Node((*self.inodes[&src_id]).clone()));
            }
            let existing_is_dir = self.inodes[&existing].kind == InodeKind::Dir;
            match (src_is_dir, existing_is_dir) {
                (true, false) => return Err(FsError::NotADirectory(dst.to_string())),
                (false, true) => return Err(FsError::IsADirectory(dst.to_string())),
                (true, true) if self.child_count(existing) > 0 => {
                    return Err(FsError::NotEmpty(dst.to_string()))
                }
                _ => {}
            }
            if existing_is_dir {
                let freed = self.remove(existing);
                self.freed.extend(freed);
            } else {
                self.unlink_name(dst_parent, &dst_name, existing, now);
            }
        }
        self.move_name(src_id, (src_parent, &src_name), (dst_parent, dst_name));
        if src_is_dir && src_parent != dst_parent {
            if let Some(n) = self.subdirs.get_mut(&src_parent) {
                *n = n.saturating_sub(1);
            }
            *self.subdirs.entry(dst_parent).or_default() += 1;
        }
        let inode = self
            .inodes
            .get_mut(&src_id)
            .ok_or_else(|| FsError::NotFound(src.to_string()))?;
        inode.ctime = now;
        let out = inode.clone();
        self.dirty.inodes.insert(src_id);
        self.touch(src_parent, now);
        self.touch(dst_parent, now);
        Ok(Outcome::Node(*out))
    }

    fn delete(
        &mut self,
        path: &str,
        recursive: bool,
        keep_open: bool,
        now: i64,
    ) -> Result<Outcome, FsError> {
        let (parent, name) = self.parent_of(path)?;
        let id = self
            .child(parent, &name)
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        let is_dir = self.inodes[&id].kind == InodeKind::Dir;
        if is_dir && self.child_count(id) > 0 && !recursive {
            return Err(FsError::NotEmpty(path.to_string()));
        }
        if !is_dir {
            self.unlink_name_of(parent, &name, id, keep_open, now);
            self.touch(parent, now);
            return Ok(Outcome::Done);
        }
        // Every name under it, parents before children; removed in reverse. A file with
        // names outside keeps them.
        let mut order = vec![(parent, name, id)];
        let mut i = 0;
        while i < order.len() {
            let dir = order[i].2;
            if let Some(children) = self.children.get(&dir) {
                order.extend(children.iter().map(|(n, c)| (dir, n.to_string(), *c)));
            }
            i += 1;
        }
        for (dir, name, victim) in order.into_iter().rev() {
            match self.inodes.get(&victim).map(|v| v.kind) {
                Some(InodeKind::Dir) => {
                    let freed = self.remove(victim);
                    self.freed.extend(freed);
                }
                Some(_) => self.unlink_name(dir, &name, victim, now),
                None => {}
            }
        }
        self.touch(parent, now);
        Ok(Outcome::Done)
    }

    fn set_attr(
        &mut self,
        path: &str,
        id: InodeId,
        attrs: &SetAttrs,
        now: i64,
    ) -> Result<Outcome, FsError> {
        let id = self.target(path, id)?.id;
        let inode = self
            .inodes
            .get_mut(&id)
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        if attrs.size.is_some() {
            match inode.kind {
                InodeKind::Dir => return Err(FsError::IsADirectory(path.to_string())),
                InodeKind::Symlink => {
                    return Err(FsError::InvalidArgument(format!("{path} is a symlink")))
                }
                kind if kind.is_special() => {
                    return Err(FsError::InvalidArgument(format!("{path} holds no data")))
                }
                _ => {}
            }
        }
        if let Some(mode) = attrs.mode {
            inode.mode = mode & 0o7777;
        }
        if let Some(uid) = attrs.uid {
            inode.uid = uid;
        }
        if let Some(gid) = attrs.gid {
            inode.gid = gid;
        }
        if let Some(atime) = attrs.atime {
            inode.atime = atime;
        }
        if let Some(mtime) = attrs.mtime {
            inode.mtime = mtime;
        }
        let mut dropped = Vec::new();
        if let Some(size) = attrs.size {
            if size < inode.size {
                // Keep what starts below the new length; trim the block that straddles it.
                let (keep, drop): (Vec<Block>, Vec<Block>) = std::mem::take(&mut inode.blocks)
                    .into_iter()
                    .partition(|b| b.offset < size);
                inode.blocks = keep;
                if let Some(last) = inode.blocks.last_mut() {
                    last.len = last.len.min(size - last.offset);
                }
                dropped = drop;
            }
            inode.size = size;
            if attrs.mtime.is_none() {
                inode.mtime = now;
            }
        }
        inode.ctime = now;
        let out = inode.clone();
        self.dirty.inodes.insert(id);
        let freed = self.release_blocks(&dropped, &[]);
        self.freed.extend(freed);
        Ok(Outcome::Node(*out))
    }

    fn symlink(
        &mut self,
        target: &str,
        link: &str,
        uid: u32,
        gid: u32,
        now: i64,
    ) -> Result<Outcome, FsError> {
        if target.is_empty() || target.contains('\0') || target.len() > 4096 {
            return Err(FsError::InvalidArgument(format!(
                "symlink target {target:?}"
            )));
        }
        let (parent, name) = self.parent_of(link)?;
        if self.child(parent, &name).is_some() {
            return Err(FsError::AlreadyExists(link.to_string()));
        }
        let mut inode = self.new_inode(parent, &name, InodeKind::Symlink, 0o777, uid, gid, now);
        inode.target = target.to_string().into();
        inode.size = target.len() as u64;
        self.touch(parent, now);
        let out = inode.clone();
        self.insert(inode);
        Ok(Outcome::Node(out))
    }

    fn mknod(
        &mut self,
        path: &str,
        kind: InodeKind,
        mode: u32,
        rdev: u32,
        (uid, gid): (u32, u32),
        now: i64,
    ) -> Result<Outcome, FsError> {
        if !kind.is_special() {
            return Err(FsError::InvalidArgument(format!(
                "mknod makes FIFOs, sockets and devices, not {kind:?}"
            )));
        }
        let (parent, name) = self.parent_of(path)?;
        if self.child(parent, &name).is_some() {
            return Err(FsError::AlreadyExists(path.to_string()));
        }
        let mut inode = self.new_inode(parent, &name, kind, mode, uid, gid, now);
        if matches!(kind, InodeKind::CharDevice | InodeKind::BlockDevice) {
            inode.rdev = rdev;
        }
        self.touch(parent, now);
        let out = inode.clone();
        self.insert(inode);
        Ok(Outcome::Node(out))
    }

    fn register_worker(&mut self, hostname: &str, rpc_port: u16, web_port: u16) -> u32 {
        if let Some(w) = self
            .workers
            .values_mut()
            .find(|w| w.hostname == hostname && w.rpc_port == rpc_port)
        {
            if w.web_port != web_port {
                w.web_port = web_port;
                self.dirty.workers.insert(w.id);
            }
            return w.id;
        }
        let id = self.counters.next_worker;
        self.counters.next_worker += 1;
        self.workers.insert(
            id,
            WorkerRecord {
                id,
                hostname: hostname.to_string(),
                rpc_port,
                web_port,
            },
        );
        self.dirty.workers.insert(id);
        id
    }

    fn remove_replicas(&mut self, worker: u32, blocks: &[u64]) {
        for block in blocks {
            let Some(owner) = self.block_owner.get(block).copied() else {
                continue;
            };
            if let Some(inode) = self.inodes.get_mut(&owner) {
                for b in inode
                    .blocks
                    .iter_mut()
                    .filter(|b| b.id == *block && b.worker == Some(worker))
                {
                    b.worker = None;
                    self.dirty.inodes.insert(owner);
                }
            }
        }
    }
}

/// `dir/name` for a normalised directory path.
pub fn join_path(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `/a/b` from the first `n` names.
fn prefix(names: &[String], n: usize) -> String {
    format!("/{}", names[..n.min(names.len())].join("/"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(super) fn ok(ns: &mut Namespace, c: Command) -> Outcome {
        let applied = ns.apply(&c);
        applied.result.unwrap_or_else(|e| panic!("{c:?}: {e}"))
    }
    pub(super) fn err(ns: &mut Namespace, c: Command) -> FsError {
        ns.apply(&c).result.expect_err("should fail")
    }
    pub(super) fn mkdir(path: &str, parents: bool) -> Command {
        Command::Mkdir {
            path: path.into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            parents,
            now: 1,
        }
    }
    pub(crate) fn create(path: &str) -> Command {
        Command::Create {
            path: path.into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            overwrite: false,
            parents: false,
            now: 1,
        }
    }
    pub(super) fn rename(src: &str, dst: &str) -> Command {
        Command::Rename {
            src: src.into(),
            dst: dst.into(),
            no_replace: false,
            now: 2,
        }
    }
    pub(super) fn delete(path: &str, recursive: bool) -> Command {
        Command::Delete {
            path: path.into(),
            recursive,
            now: 3,
            keep_open: false,
        }
    }
    pub(super) fn block(ns: &mut Namespace, file_id: InodeId, worker: u32) -> u64 {
        match ok(ns, Command::AddBlock { file_id, worker }) {
            Outcome::Block(id) => id,
            other => panic!("expected a block, got {other:?}"),
        }
    }

    pub(super) fn file_with_block(ns: &mut Namespace, path: &str, len: u64) -> (InodeId, u64) {
        let Outcome::Node(f) = ok(ns, create(path)) else {
            panic!()
        };
        let b = block(ns, f.id, 7);
        ok(
            ns,
            Command::Complete {
                file_id: f.id,
                length: len,
                blocks: vec![BlockRange {
                    id: b,
                    offset: 0,
                    len,
                }],
                now: 2,
            },
        );
        (f.id, b)
    }

    #[test]
    fn paths_normalise_and_never_escape_the_root() {
        assert_eq!(normalize("/a/./b/../c/").unwrap(), "/a/c");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(matches!(normalize("/.."), Err(FsError::InvalidPath(_))));
        assert!(matches!(
            normalize("/a/../.."),
            Err(FsError::InvalidPath(_))
        ));
        assert!(matches!(normalize("a/b"), Err(FsError::InvalidPath(_))));
        assert!(matches!(
            normalize(&format!("/{}", "x".repeat(256))),
            Err(FsError::InvalidPath(_))
        ));
    }

    #[test]
    fn mkdir_with_and_without_parents() {
        let mut ns = Namespace::default();
        assert!(matches!(err(&mut ns, mkdir("/a/b", false)), FsError::NotFound(p) if p == "/a"));
        ok(&mut ns, mkdir("/a/b/c", true));
        assert_eq!(ns.counts(), (0, 4));
        assert!(matches!(
            err(&mut ns, mkdir("/a/b", false)),
            FsError::AlreadyExists(_)
        ));
        ok(&mut ns, mkdir("/a/b", true));
        ok(&mut ns, create("/a/f"));
        assert!(
            matches!(err(&mut ns, mkdir("/a/f/g", true)), FsError::NotADirectory(p) if p == "/a/f")
        );
        assert_eq!(ns.counts(), (1, 4), "a failed mkdir changes nothing");
    }

    #[test]
    fn create_exclusive_overwrite_and_parents() {
        let mut ns = Namespace::default();
        let (id, block) = file_with_block(&mut ns, "/f", 10);
        assert!(matches!(
            err(&mut ns, create("/f")),
            FsError::AlreadyExists(_)
        ));
        let applied = ns.apply(&Command::Create {
            path: "/f".into(),
            mode: 0o600,
            uid: 1,
            gid: 1,
            overwrite: true,
            parents: false,
            now: 5,
        });
        let Ok(Outcome::Node(f)) = applied.result else {
            panic!()
        };
        assert_eq!((f.id, f.size, f.complete), (id, 0, true));
        assert_eq!(applied.freed, vec![(block, 7)]);
        assert!(!ns.knows_block(block));
        ok(
            &mut ns,
            Command::Create {
                path: "/x/y/z".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                overwrite: false,
                parents: true,
                now: 1,
            },
        );
        assert_eq!(ns.lookup("/x/y").unwrap().kind, InodeKind::Dir);
        ok(&mut ns, mkdir("/d", false));
        assert!(matches!(
            err(&mut ns, create("/d")),
            FsError::IsADirectory(_)
        ));
        assert!(matches!(
            err(&mut ns, create("/f/g")),
            FsError::NotADirectory(_)
        ));
        assert!(matches!(
            err(&mut ns, create("/")),
            FsError::IsADirectory(_)
        ));
    }

    #[test]
    fn complete_checks_blocks_and_frees_the_unused() {
        let mut ns = Namespace::default();
        let Outcome::Node(f) = ok(&mut ns, create("/f")) else {
            panic!()
        };
        let b1 = block(&mut ns, f.id, 1);
        let b2 = block(&mut ns, f.id, 2);
        let bad = Command::Complete {
            file_id: f.id,
            length: 5,
            blocks: vec![BlockRange {
                id: 999,
                offset: 0,
                len: 5,
            }],
            now: 2,
        };
        assert!(matches!(err(&mut ns, bad), FsError::InvalidArgument(_)));
        let past = Command::Complete {
            file_id: f.id,
            length: 5,
            blocks: vec![BlockRange {
                id: b1,
                offset: 0,
                len: 6,
            }],
            now: 2,
        };
        assert!(matches!(err(&mut ns, past), FsError::InvalidArgument(_)));
        let applied = ns.apply(&Command::Complete {
            file_id: f.id,
            length: 100,
            blocks: vec![BlockRange {
                id: b1,
                offset: 10,
                len: 5,
            }],
            now: 2,
        });
        let Ok(Outcome::Node(done)) = applied.result else {
            panic!()
        };
        assert_eq!(done.size, 100);
        assert_eq!(
            done.blocks,
            vec![Block {
                id: b1,
                offset: 10,
                len: 5,
                worker: Some(1)
            }]
        );
        assert_eq!(applied.freed, vec![(b2, 2)]);
    }

    #[test]
    fn a_complete_with_the_same_blocks_still_moves_mtime_forward() {
        let mut ns = Namespace::default();
        let Outcome::Node(f) = ok(&mut ns, create("/f")) else {
            panic!()
        };
        let b1 = block(&mut ns, f.id, 1);
        let complete = |now| Command::Complete {
            file_id: f.id,
            length: 5,
            blocks: vec![BlockRange {
                id: b1,
                offset: 0,
                len: 5,
            }],
            now,
        };
        let mut mtimes = Vec::new();
        // The same millisecond, then a clock that went back: still strictly later.
        for now in [50, 50, 40, 60] {
            let Outcome::Node(done) = ok(&mut ns, complete(now)) else {
                panic!()
            };
            mtimes.push(done.mtime);
        }
        assert_eq!(mtimes, vec![50, 51, 52, 60]);
    }

    #[test]
    fn list_pages_in_name_order() {
        let mut ns = Namespace::default();
        ok(&mut ns, mkdir("/d", false));
        for i in 0..25 {
            ok(&mut ns, create(&format!("/d/f{i:03}")));
        }
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let (page, more) = ns.list("/d", &after, 10).unwrap();
            seen.extend(page.iter().map(|(name, _)| name.to_string()));
            after = seen.last().cloned().unwrap_or_default();
            if !more {
                break;
            }
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert!(matches!(
            ns.list("/d/f001", "", 10),
            Err(FsError::NotADirectory(_))
        ));
    }

    #[test]
    fn rename_follows_posix() {
        let mut ns = Namespace::default();
        ok(&mut ns, mkdir("/a/b", true));
        ok(&mut ns, mkdir("/e", false));
        let (_, old_block) = file_with_block(&mut ns, "/old", 4);
        ok(&mut ns, create("/new"));
        // A file replaces a file; the replaced file's blocks are freed.
        let applied = ns.apply(&rename("/new", "/old"));
        assert!(applied.result.is_ok());
        assert_eq!(applied.freed, vec![(old_block, 7)]);
        assert!(ns.lookup("/new").is_err());
        // No-replace refuses an existing target.
        ok(&mut ns, create("/x"));
        assert!(matches!(
            err(
                &mut ns,
                Command::Rename {
                    src: "/x".into(),
                    dst: "/old".into(),
                    no_replace: true,
                    now: 1
                }
            ),
            FsError::AlreadyExists(_)
        ));
        // A directory cannot go into itself.
        assert!(matches!(
            err(&mut ns, rename("/a", "/a/b/c")),
            FsError::InvalidArgument(_)
        ));
        // A directory replaces only an empty directory.
        assert!(matches!(
            err(&mut ns, rename("/e", "/a")),
            FsError::NotEmpty(_)
        ));
        assert!(matches!(
            err(&mut ns, rename("/e", "/x")),
            FsError::NotADirectory(_)
        ));
        assert!(matches!(
            err(&mut ns, rename("/x", "/e")),
            FsError::IsADirectory(_)
        ));
        ok(&mut ns, rename("/a/b", "/e"));
        assert!(ns.lookup("/a/b").is_err());
        assert_eq!(ns.lookup("/e").unwrap().parent, ROOT_ID);
        assert!(matches!(
            err(&mut ns, rename("/nope", "/y")),
            FsError::NotFound(_)
        ));
        assert!(matches!(
            err(&mut ns, rename("/", "/y")),
            FsError::InvalidArgument(_)
        ));
        ok(&mut ns, rename("/x", "/x"));
    }

    #[test]
    fn delete_recursive_only_when_asked() {
        let mut ns = Namespace::default();
        ok(&mut ns, mkdir("/d/e", true));
        let (_, b) = file_with_block(&mut ns, "/d/e/f", 3);
        assert!(matches!(
            err(&mut ns, delete("/d", false)),
            FsError::NotEmpty(_)
        ));
        let applied = ns.apply(&delete("/d", true));
        assert!(applied.result.is_ok());
        assert_eq!(applied.freed, vec![(b, 7)]);
        assert_eq!(ns.counts(), (0, 1));
        assert!(matches!(
            err(&mut ns, delete("/d", true)),
            FsError::NotFound(_)
        ));
        assert!(matches!(
            err(&mut ns, delete("/", true)),
            FsError::InvalidArgument(_)
        ));
    }

    #[test]
    fn truncate_trims_and_frees_blocks() {
        let mut ns = Namespace::default();
        let Outcome::Node(f) = ok(&mut ns, create("/f")) else {
            panic!()
        };
        let b1 = block(&mut ns, f.id, 1);
        let b2 = block(&mut ns, f.id, 1);
        ok(
            &mut ns,
            Command::Complete {
                file_id: f.id,
                length: 20,
                blocks: vec![
                    BlockRange {
                        id: b1,
                        offset: 0,
                        len: 10,
                    },
                    BlockRange {
                        id: b2,
                        offset: 10,
                        len: 10,
                    },
                ],
                now: 2,
            },
        );
        let applied = ns.apply(&Command::SetAttr {
            path: "/f".into(),
            attrs: SetAttrs {
                size: Some(5),
                ..Default::default()
            },
            now: 9,
            id: 0,
        });
        let Ok(Outcome::Node(t)) = applied.result else {
            panic!()
        };
        assert_eq!(t.size, 5);
        assert_eq!(
            t.blocks,
            vec![Block {
                id: b1,
                offset: 0,
                len: 5,
                worker: Some(1)
            }]
        );
        assert_eq!(applied.freed, vec![(b2, 1)]);
        let Ok(Outcome::Node(t)) = ns
            .apply(&Command::SetAttr {
                path: "/f".into(),
                attrs: SetAttrs {
                    size: Some(50),
                    mode: Some(0o600),
                    ..Default::default()
                },
                now: 9,
                id: 0,
            })
            .result
        else {
            panic!()
        };
        assert_eq!((t.size, t.mode, t.blocks.len()), (50, 0o600, 1));
        ok(&mut ns, mkdir("/d", false));
        assert!(matches!(
            err(
                &mut ns,
                Command::SetAttr {
                    path: "/d".into(),
                    attrs: SetAttrs {
                        size: Some(1),
                        ..Default::default()
                    },
                    now: 1,
                    id: 0,
                }
            ),
            FsError::IsADirectory(_)
        ));
    }

    #[test]
    fn symlinks_workers_and_replicas() {
        let mut ns = Namespace::default();
        let Outcome::Node(l) = ok(
            &mut ns,
            Command::Symlink {
                target: "/t".into(),
                link: "/l".into(),
                uid: 0,
                gid: 0,
                now: 1,
            },
        ) else {
            panic!()
        };
        assert_eq!(
            (l.kind, l.target.as_str(), l.size),
            (InodeKind::Symlink, "/t", 2)
        );
        assert!(matches!(
            err(
                &mut ns,
                Command::Symlink {
                    target: "/t".into(),
                    link: "/l".into(),
                    uid: 0,
                    gid: 0,
                    now: 1
                }
            ),
            FsError::AlreadyExists(_)
        ));
        let reg = |h: &str, p: u16| Command::RegisterWorker {
            hostname: h.into(),
            rpc_port: p,
            web_port: 1,
        };
        assert_eq!(ok(&mut ns, reg("w", 1)), Outcome::Worker(1));
        assert_eq!(ok(&mut ns, reg("w", 2)), Outcome::Worker(2));
        assert_eq!(ok(&mut ns, reg("w", 1)), Outcome::Worker(1));
        let (id, b) = file_with_block(&mut ns, "/f", 3);
        ok(
            &mut ns,
            Command::RemoveReplicas {
                worker: 7,
                blocks: vec![b, 12345],
            },
        );
        assert_eq!(ns.inode(id).unwrap().blocks[0].worker, None);
    }

    #[test]
    fn image_round_trip_keeps_everything() {
        let mut ns = Namespace::default();
        ok(&mut ns, mkdir("/a/b", true));
        file_with_block(&mut ns, "/a/b/f", 3);
        ok(
            &mut ns,
            Command::RegisterWorker {
                hostname: "w".into(),
                rpc_port: 1,
                web_port: 2,
            },
        );
        let back = Namespace::from_image(ns.image());
        assert_eq!(back.image().inodes, ns.image().inodes);
        assert_eq!(back.counts(), ns.counts());
        assert_eq!(back.counters(), ns.counters());
        assert_eq!(back.lookup("/a/b/f").unwrap().size, 3);
        assert_eq!(back.workers().count(), 1);
    }

    #[test]
    fn a_set_group_id_directory_passes_its_group_on() {
        let mut ns = Namespace::default();
        let Outcome::Node(d) = ok(&mut ns, mkdir("/shared", false)) else {
            panic!()
        };
        ok(
            &mut ns,
            Command::SetAttr {
                path: "/shared".into(),
                attrs: SetAttrs {
                    mode: Some(0o2775),
                    gid: Some(50),
                    ..Default::default()
                },
                now: 2,
                id: 0,
            },
        );
        assert_eq!(d.id, ns.lookup("/shared").unwrap().id);
        let mut made = create("/shared/f");
        if let Command::Create { uid, gid, .. } = &mut made {
            (*uid, *gid) = (7, 7);
        }
        let Outcome::Node(f) = ok(&mut ns, made) else {
            panic!()
        };
        assert_eq!((f.gid, f.mode), (50, 0o644));
        let Outcome::Node(sub) = ok(&mut ns, mkdir("/shared/sub", false)) else {
            panic!()
        };
        assert_eq!((sub.gid, sub.mode), (50, 0o2755));
    }
}
