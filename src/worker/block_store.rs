//! The worker's block store: cache blocks kept as files in tiered data dirs, with capacity
//! accounting and least-recently-used eviction.
//!
//! A block is an opaque byte blob named by a `u64` id. Each data dir holds
//!
//! ```text
//! <dir>/blocks/<block_id>            committed blocks, readable
//! <dir>/tmp/<block_id>.<unique>      blocks being written (and blocks being deleted)
//! ```
//!
//! Writing goes through a [`BlockWriter`]: [`BlockStore::create`] reserves room for the
//! block's expected length in the first data dir (fastest medium first) that has it,
//! evicting old blocks if none has; [`BlockWriter::commit`] renames the temp file into
//! `blocks/` and makes the block visible. A writer dropped without commit removes its
//! temp file and gives its reservation back.
//!
//! A writer can also be *published open* ([`BlockWriter::publish_open`], a client's
//! checkpoint on fsync): the block becomes visible at the length written so far, durable
//! (fdatasync of the file, fsync of `blocks/`), and the writer keeps writing the same
//! file in place; each later checkpoint publishes the new length. Such a block is pinned:
//! eviction never takes it while its writer holds it. The final commit publishes the last
//! length and unpins it; a writer dropped before that unpins it and cuts the file back to
//! its last published length (published data is committed data, it stays).
//!
//! A block's bytes change under its id only while it is published open, and only through
//! the one writer that holds it; once committed (or its writer gone) they never change.
//!
//! Every read and every commit stamps the block with the next value of one counter; the
//! blocks with the lowest stamps are evicted first. A commit that takes its dir above the
//! high watermark evicts that dir's oldest blocks down to the low watermark.
//!
//! One mutex guards the index (which block lives where, how long it is, its stamp) and the
//! space accounting. File data is read and written outside it: a read looks up the path
//! under the lock and reads the file after releasing it, so a block deleted meanwhile makes
//! that read fail with [`StoreError::NotFound`]. Deleting and evicting rename the block file
//! into `tmp/` under the lock (cheap, and a later commit of the same id cannot be hit) and
//! unlink it after the lock is released.
//!
//! Which dir a block goes to, how much room a dir has, when the watermarks call for
//! eviction and which blocks go are decided in `block_policy` (pure); this module does
//! the file I/O and applies those decisions.

use super::block_policy::{self, Limits, Space};
use crate::config::{DataDir, Medium};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;
use tracing::{info, warn};

/// Subdirectory of a data dir that holds committed blocks.
const BLOCKS_SUBDIR: &str = "blocks";
/// Subdirectory of a data dir that holds blocks being written or deleted.
const TMP_SUBDIR: &str = "tmp";

/// How the store is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// The data dirs, as configured in `worker.data_dir`.
    pub dirs: Vec<DataDir>,
    /// Bytes kept free in each directory (worker.dir_reserved).
    pub reserved: u64,
    /// Used fraction of a directory's capacity above which eviction starts (e.g. 0.95).
    pub high_watermark: f64,
    /// Used fraction eviction brings a directory down to (e.g. 0.8).
    pub low_watermark: f64,
    /// Wipe every block at open (format_worker = true).
    pub format: bool,
}

/// Why a block store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The block is not in the store (never written, deleted or evicted).
    #[error("block {0} not found")]
    NotFound(u64),
    /// The block is already committed; blocks are written once.
    #[error("block {0} already exists")]
    AlreadyExists(u64),
    /// No data dir has room for the block, even after evicting what can be evicted.
    #[error("no data dir has room for {needed} bytes, even after evicting cached blocks")]
    NoSpace {
        /// The bytes that were asked for.
        needed: u64,
    },
    /// A file system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the block and path.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The store's configuration cannot work.
    #[error("invalid block store config: {0}")]
    InvalidConfig(String),
}

/// Builds a [`StoreError::Io`] from what was being done and the error.
fn io_error(context: impl Into<String>, source: io::Error) -> StoreError {
    StoreError::Io {
        context: context.into(),
        source,
    }
}

/// How full one data dir is, as [`BlockStore::usage`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierUsage {
    /// The dir's medium.
    pub medium: Medium,
    /// The dir's path, as configured.
    pub path: String,
    /// The dir's capacity in bytes (configured, or the file system's size).
    pub capacity: u64,
    /// Bytes of committed blocks (blocks being written are not counted).
    pub used: u64,
    /// Number of committed blocks.
    pub blocks: u64,
}

/// Cache blocks on local data dirs. `Send + Sync`; share it with an `Arc`.
pub struct BlockStore {
    /// The index and accounting, shared with the open writers.
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore").finish_non_exhaustive()
    }
}

/// A block being written. Commit it with [`BlockWriter::commit`]; dropping it without
/// commit deletes its temp file and gives its reserved room back.
pub struct BlockWriter {
    /// The store's state, to publish the block and release the reservation.
    state: Arc<Mutex<State>>,
    /// The block being written.
    block_id: u64,
    /// Index of the data dir the block goes to.
    dir: usize,
    /// The temp file, `<dir>/tmp/<block_id>.<unique>`.
    tmp_path: PathBuf,
    /// The open temp file.
    file: File,
    /// Bytes written so far.
    len: u64,
    /// Bytes this writer holds in its dir's in-flight reservation.
    reserved: u64,
    /// A write failed part-way, so the file may hold bytes past `len`.
    torn: bool,
    /// The block was committed; nothing to clean up on drop.
    committed: bool,
    /// The length last published while the writer stays open (the block is then in
    /// `blocks/`, indexed and pinned); `None` until [`BlockWriter::publish_open`].
    published: Option<u64>,
}

/// One data dir and its accounting.
#[derive(Debug)]
struct Dir {
    /// The medium, for tier order.
    medium: Medium,
    /// The path as configured, for reports.
    path: String,
    /// The path to open files under.
    root: PathBuf,
    /// Capacity, committed and in-flight bytes.
    space: Space,
    /// Committed blocks of this dir by recency stamp, oldest first.
    lru: BTreeMap<u64, u64>,
}

/// Where a committed block lives.
#[derive(Debug, Clone, Copy)]
struct Block {
    /// Index of its data dir.
    dir: usize,
    /// Its length in bytes.
    len: u64,
    /// Its recency stamp (higher is more recent).
    stamp: u64,
}

/// Everything the mutex guards.
#[derive(Debug)]
struct State {
    /// The data dirs, in config order.
    dirs: Vec<Dir>,
    /// Dir indexes in the order new blocks try them: by medium, then config order.
    tier_order: Vec<usize>,
    /// Reservation and watermark limits.
    limits: Limits,
    /// Every committed block.
    blocks: HashMap<u64, Block>,
    /// The last recency stamp handed out.
    clock: u64,
    /// Evicted block ids not yet taken by [`BlockStore::take_evicted`].
    evicted: Vec<u64>,
    /// Blocks evicted since open.
    evicted_total: u64,
    /// Blocks published open: their writers still patch them, eviction skips them.
    pinned: HashSet<u64>,
}

/// A block file found in `blocks/` at open.
#[derive(Debug)]
struct FoundBlock {
    /// Index of its data dir.
    dir: usize,
    /// Its id.
    id: u64,
    /// Its length in bytes.
    len: u64,
    /// When it was last written, to restore the LRU order approximately.
    modified: SystemTime,
}

/// Size and free space of a file system.
#[derive(Debug, Clone, Copy)]
struct FsSpace {
    /// Total bytes.
    total: u64,
    /// Bytes available to unprivileged users.
    available: u64,
}

impl BlockStore {
    /// Opens the store: creates `blocks/` and `tmp/` in every data dir, deletes leftover
    /// temp files, wipes the blocks when `cfg.format` is set, and indexes the blocks found.
    pub fn open(cfg: StoreConfig) -> Result<BlockStore, StoreError> {
        let limits = validate(&cfg)?;
        let dirs = cfg
            .dirs
            .iter()
            .map(open_dir)
            .collect::<Result<Vec<_>, _>>()?;
        check_distinct(&dirs)?;
        let media: Vec<Medium> = dirs.iter().map(|d| d.medium).collect();
        let tier_order = block_policy::tier_order(&media);
        let found = scan_blocks(&dirs, &tier_order, cfg.format)?;
        let mut state = State {
            dirs,
            tier_order,
            limits,
            blocks: HashMap::new(),
            clock: 0,
            evicted: Vec::new(),
            evicted_total: 0,
            pinned: HashSet::new(),
        };
        for block in &found {
            state.insert_block(block.id, block.dir, block.len);
        }
        info!(
            blocks = state.blocks.len(),
            dirs = state.dirs.len(),
            format = cfg.format,
            "block store opened"
        );
        Ok(BlockStore {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// Starts writing a new block; `expected_len` is the most it will hold (used to pick a directory with room).
    pub fn create(&self, block_id: u64, expected_len: u64) -> Result<BlockWriter, StoreError> {
        let mut trash = Vec::new();
        let placed = {
            let mut state = lock(&self.state);
            state.reserve(block_id, expected_len, &mut trash)
        };
        remove_files(&trash);
        let (dir, tmp_path) = placed?;
        let file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
        {
            Ok(file) => file,
            Err(source) => {
                lock(&self.state).release(dir, expected_len);
                return Err(io_error(
                    format!(
                        "create temp file {} for block {block_id}",
                        tmp_path.display()
                    ),
                    source,
                ));
            }
        };
        Ok(BlockWriter {
            state: Arc::clone(&self.state),
            block_id,
            dir,
            tmp_path,
            file,
            len: 0,
            reserved: expected_len,
            torn: false,
            committed: false,
            published: None,
        })
    }

    /// Starts a new block as a copy of the first `len` bytes of the committed block
    /// `source` (a rewrite of part of a block): the kernel copies the bytes
    /// (`copy_file_range`, sharing extents where the file system can), falling back to
    /// a read and write loop where it cannot. The writer then patches ranges in place
    /// ([`BlockWriter::write_at`]) and commits as any other.
    pub fn create_copy(
        &self,
        block_id: u64,
        expected_len: u64,
        source: u64,
        len: u64,
    ) -> Result<BlockWriter, StoreError> {
        let (path, source_len) = self.touch(source)?;
        if len > source_len {
            return Err(io_error(
                format!("copy of block {source} into block {block_id}"),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{len} bytes asked, the block holds {source_len}"),
                ),
            ));
        }
        let from = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(source))
            }
            Err(e) => return Err(io_error(format!("open block {source}"), e)),
        };
        let mut writer = self.create(block_id, expected_len.max(len))?;
        if let Err(e) = copy_range(&from, &writer.file, len) {
            writer.torn = true;
            return Err(io_error(
                format!("copy block {source} into {}", writer.tmp_path.display()),
                e,
            ));
        }
        writer.len = len;
        Ok(writer)
    }

    /// Makes committed blocks durable: `fdatasync` of each block file, then `fsync` of
    /// the `blocks/` directories holding them (their names, after the commit's rename).
    /// Blocks not in the store are skipped (deleted or replaced: part of no file now).
    /// Returns how many were synced.
    pub fn sync(&self, block_ids: &[u64]) -> Result<u64, StoreError> {
        let paths: Vec<PathBuf> = {
            let state = lock(&self.state);
            block_ids
                .iter()
                .filter_map(|id| {
                    let b = state.blocks.get(id)?;
                    Some(state.dirs[b.dir].block_path(*id))
                })
                .collect()
        };
        let mut dirs = std::collections::BTreeSet::new();
        let mut synced = 0;
        for path in &paths {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(format!("open {}", path.display()), e)),
            };
            file.sync_data()
                .map_err(|e| io_error(format!("fdatasync {}", path.display()), e))?;
            synced += 1;
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        for dir in dirs {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(format!("fsync {}", dir.display()), e))?;
        }
        Ok(synced)
    }

    /// Reads up to `len` bytes at `offset` (short at the end; empty past the end); marks the block recently read.
    pub fn read(&self, block_id: u64, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let (path, block_len) = self.touch(block_id)?;
        let available = block_len.saturating_sub(offset);
        let wanted = usize::try_from(available).map_or(len, |available| available.min(len));
        let mut buf = vec![0; wanted];
        let read = read_file_at(block_id, &path, offset, &mut buf)?;
        buf.truncate(read);
        Ok(buf)
    }

    /// Like read, but into a caller buffer; returns bytes read.
    pub fn read_into(
        &self,
        block_id: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, StoreError> {
        let (path, block_len) = self.touch(block_id)?;
        if offset >= block_len || buf.is_empty() {
            return Ok(0);
        }
        read_file_at(block_id, &path, offset, buf)
    }

    /// Opens a committed block's file for reading (short-circuit reads) and marks the
    /// block recently read; returns the file and the block's length.
    ///
    /// The file stays readable while open even if the block is evicted or deleted
    /// meanwhile (its name is unlinked, its inode lives on). A committed block's bytes
    /// never change under an id: blocks are written once, and a block fetched again after
    /// eviction is a new file renamed into place, so an open reader keeps the old,
    /// identical bytes. The one exception is a block published open
    /// ([`BlockWriter::publish_open`]): its writer patches it in place until its final
    /// commit, and a reader of the file sees those patches (the data of the file it
    /// belongs to, as that file's writer has it).
    pub fn open_block(&self, block_id: u64) -> Result<(File, u64), StoreError> {
        let (path, len) = self.touch(block_id)?;
        match File::open(&path) {
            Ok(file) => Ok((file, len)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound(block_id)),
            Err(source) => Err(io_error(
                format!("open block {block_id} at {}", path.display()),
                source,
            )),
        }
    }

    /// The length of a committed block, or `None` when it is not in the store.
    pub fn block_len(&self, block_id: u64) -> Option<u64> {
        lock(&self.state).blocks.get(&block_id).map(|b| b.len)
    }

    /// Whether a block is committed in the store.
    pub fn contains(&self, block_id: u64) -> bool {
        lock(&self.state).blocks.contains_key(&block_id)
    }

    /// Removes a block; Ok(false) when it was not there.
    pub fn delete(&self, block_id: u64) -> Result<bool, StoreError> {
        let trash = {
            let mut state = lock(&self.state);
            if !state.blocks.contains_key(&block_id) {
                return Ok(false);
            }
            state.detach(block_id)?
        };
        remove_files(trash.as_slice());
        Ok(true)
    }

    /// The ids of every committed block, in ascending order.
    pub fn block_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = lock(&self.state).blocks.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// How full each data dir is, in config order.
    pub fn usage(&self) -> Vec<TierUsage> {
        lock(&self.state)
            .dirs
            .iter()
            .map(|dir| TierUsage {
                medium: dir.medium,
                path: dir.path.clone(),
                capacity: dir.space.capacity,
                used: dir.space.used,
                blocks: dir.lru.len() as u64,
            })
            .collect()
    }

    /// Block ids evicted since the previous call (the worker reports them to the master).
    pub fn take_evicted(&self) -> Vec<u64> {
        std::mem::take(&mut lock(&self.state).evicted)
    }

    /// Blocks evicted since open.
    pub fn evicted_total(&self) -> u64 {
        lock(&self.state).evicted_total
    }

    /// Marks a block as just read; returns its path and length.
    fn touch(&self, block_id: u64) -> Result<(PathBuf, u64), StoreError> {
        lock(&self.state)
            .touch(block_id)
            .ok_or(StoreError::NotFound(block_id))
    }
}

impl BlockWriter {
    /// Appends `data` to the block. Writing past the expected length first reserves the
    /// extra bytes in the block's dir, and fails with [`StoreError::NoSpace`] if it has no
    /// room for them (no eviction happens here).
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let new_len = self.len.saturating_add(data.len() as u64);
        if new_len > self.reserved {
            lock(&self.state).grow(self.dir, self.reserved, new_len)?;
            self.reserved = new_len;
        }
        if let Err(source) = self.file.write_all_at(data, self.len) {
            self.torn = true;
            return Err(io_error(
                format!(
                    "write block {} to {}",
                    self.block_id,
                    self.tmp_path.display()
                ),
                source,
            ));
        }
        self.len = new_len;
        Ok(())
    }

    /// Writes `data` at `offset` of the block (a patch of a copied block, or past its end,
    /// the gap reading as zeros). Room past the reservation is reserved as
    /// [`BlockWriter::write`] does.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let end = offset.saturating_add(data.len() as u64);
        if end > self.reserved {
            lock(&self.state).grow(self.dir, self.reserved, end)?;
            self.reserved = end;
        }
        if let Err(source) = self.file.write_all_at(data, offset) {
            self.torn = true;
            return Err(io_error(
                format!(
                    "write block {} at {offset} to {}",
                    self.block_id,
                    self.tmp_path.display()
                ),
                source,
            ));
        }
        self.len = self.len.max(end);
        Ok(())
    }

    /// Another handle on the temp file, for a client that writes the block itself
    /// (short-circuit writes); finish with [`BlockWriter::commit_written`].
    pub fn share_file(&self) -> Result<File, StoreError> {
        self.file.try_clone().map_err(|source| {
            io_error(
                format!(
                    "share {} of block {}",
                    self.tmp_path.display(),
                    self.block_id
                ),
                source,
            )
        })
    }

    /// Commits a block someone else wrote through [`BlockWriter::share_file`]: the file
    /// must hold exactly `len` bytes (what the writer says it wrote), and bytes beyond the
    /// reservation must fit in the dir as [`BlockWriter::write`] would require.
    pub fn commit_written(mut self, len: u64) -> Result<u64, StoreError> {
        self.check_held(len)?;
        if self.published.is_none() && len > self.reserved {
            lock(&self.state).grow(self.dir, self.reserved, len)?;
            self.reserved = len;
        }
        self.len = len;
        self.torn = false;
        self.commit()
    }

    /// Checks the file holds exactly `len` bytes (what its writer says it wrote).
    fn check_held(&self, len: u64) -> Result<(), StoreError> {
        let held = self
            .file
            .metadata()
            .map_err(|source| io_error(format!("stat {}", self.path().display()), source))?
            .len();
        if held != len {
            return Err(io_error(
                format!("commit block {}", self.block_id),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the writer says {len} bytes, the block file holds {held}"),
                ),
            ));
        }
        Ok(())
    }

    /// Where the block file is now: its temp path, or its place in `blocks/` once
    /// published.
    fn path(&self) -> PathBuf {
        match self.published {
            Some(_) => lock(&self.state).dirs[self.dir].block_path(self.block_id),
            None => self.tmp_path.clone(),
        }
    }

    /// A checkpoint of a block someone writes through [`BlockWriter::share_file`]: the
    /// file must hold exactly `len` bytes; they are made durable (fdatasync of the file;
    /// the first time also fsync of `blocks/`, once the block is renamed into it) and the
    /// block is published at that length, pinned, while this writer stays open and keeps
    /// patching the same file. Later checkpoints and the final commit publish the new
    /// length. Returns the published length.
    pub fn publish_open(&mut self, len: u64) -> Result<u64, StoreError> {
        self.check_held(len)?;
        self.len = len;
        self.torn = false;
        let path = self.path();
        self.file
            .sync_data()
            .map_err(|source| io_error(format!("fdatasync {}", path.display()), source))?;
        let shared = Arc::clone(&self.state);
        // The block's name needs making durable once, when it first moves into `blocks/`.
        let first = self.published.is_none();
        let (blocks_dir, trash) = {
            let mut state = lock(&shared);
            if first {
                if state.blocks.contains_key(&self.block_id) {
                    return Err(StoreError::AlreadyExists(self.block_id));
                }
                let final_path = state.dirs[self.dir].block_path(self.block_id);
                self.rename_into(&final_path)?;
                state.insert_block(self.block_id, self.dir, 0);
                state.pinned.insert(self.block_id);
                self.published = Some(0);
            }
            self.publish_len(&mut state, len)?;
            let mut trash = Vec::new();
            if let Err(error) = state.enforce_watermark(self.dir, self.block_id, &mut trash) {
                warn!(%error, dir = %state.dirs[self.dir].path, "eviction after a checkpoint stopped");
            }
            (state.dirs[self.dir].root.join(BLOCKS_SUBDIR), trash)
        };
        remove_files(&trash);
        if first {
            File::open(&blocks_dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| io_error(format!("fsync {}", blocks_dir.display()), source))?;
        }
        Ok(len)
    }

    /// Under the lock: the published block now holds `len` bytes; its index entry and
    /// its dir's accounting follow (bytes past the last published length move from this
    /// writer's reservation, grown if needed, to the dir's used bytes).
    fn publish_len(&mut self, state: &mut State, len: u64) -> Result<(), StoreError> {
        let before = self.published.unwrap_or(0);
        let Some(block) = state.blocks.get_mut(&self.block_id) else {
            // Deleted meanwhile (its file was removed or replaced): nothing to publish.
            return Err(StoreError::NotFound(self.block_id));
        };
        block.len = len;
        let extra = len.saturating_sub(before);
        if extra > self.reserved {
            state.grow(self.dir, self.reserved, extra)?;
            self.reserved = extra;
        }
        state.release(self.dir, extra);
        self.reserved -= extra;
        let space = &mut state.dirs[self.dir].space;
        space.used = (space.used + len).saturating_sub(before);
        self.published = Some(len);
        Ok(())
    }

    /// Renames the temp file to `final_path` (under the lock).
    fn rename_into(&self, final_path: &Path) -> Result<(), StoreError> {
        fs::rename(&self.tmp_path, final_path).map_err(|source| {
            io_error(
                format!(
                    "commit block {}: rename {} to {}",
                    self.block_id,
                    self.tmp_path.display(),
                    final_path.display()
                ),
                source,
            )
        })
    }

    /// The length last published by [`BlockWriter::publish_open`], if it was.
    pub fn published_len(&self) -> Option<u64> {
        self.published
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the block visible; returns its length. Runs eviction on that directory if above the high watermark.
    ///
    /// Fails with [`StoreError::AlreadyExists`] when another writer committed the same
    /// block id first; this writer's data is then discarded.
    pub fn commit(mut self) -> Result<u64, StoreError> {
        if self.torn {
            self.file.set_len(self.len).map_err(|source| {
                io_error(
                    format!("truncate {} after a failed write", self.tmp_path.display()),
                    source,
                )
            })?;
        }
        let trash = match self.published {
            Some(_) => self.finish_published()?,
            None => self.publish()?,
        };
        remove_files(&trash);
        Ok(self.len)
    }

    /// Under the lock: the final commit of a block published open: its last length,
    /// unpinned, evicting as a commit does.
    fn finish_published(&mut self) -> Result<Vec<PathBuf>, StoreError> {
        let shared = Arc::clone(&self.state);
        let mut state = lock(&shared);
        state.pinned.remove(&self.block_id);
        self.committed = true;
        let len = self.len;
        self.publish_len(&mut state, len)?;
        state.release(self.dir, self.reserved);
        self.reserved = 0;
        let mut trash = Vec::new();
        if let Err(error) = state.enforce_watermark(self.dir, self.block_id, &mut trash) {
            warn!(%error, dir = %state.dirs[self.dir].path, "eviction after commit stopped");
        }
        Ok(trash)
    }

    /// Under the lock: moves the temp file into `blocks/`, indexes the block, and evicts
    /// if the dir went above the high watermark. Returns the evicted files to unlink.
    fn publish(&mut self) -> Result<Vec<PathBuf>, StoreError> {
        let mut state = lock(&self.state);
        if state.blocks.contains_key(&self.block_id) {
            return Err(StoreError::AlreadyExists(self.block_id));
        }
        let final_path = state.dirs[self.dir].block_path(self.block_id);
        self.rename_into(&final_path)?;
        self.committed = true;
        state.release(self.dir, self.reserved);
        self.reserved = 0;
        state.insert_block(self.block_id, self.dir, self.len);
        let mut trash = Vec::new();
        if let Err(error) = state.enforce_watermark(self.dir, self.block_id, &mut trash) {
            warn!(%error, dir = %state.dirs[self.dir].path, "eviction after commit stopped");
        }
        Ok(trash)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if let (Some(published), false) = (self.published, self.committed) {
            // Published data is committed data: the block stays at its last published
            // length, without the writes that followed it.
            lock(&self.state).pinned.remove(&self.block_id);
            if let Err(error) = self.file.set_len(published) {
                warn!(%error, block = self.block_id, "cannot cut a block back to its published length");
            }
        } else if !self.committed {
            remove_files(std::slice::from_ref(&self.tmp_path));
        }
        if self.reserved > 0 {
            lock(&self.state).release(self.dir, self.reserved);
        }
    }
}

impl State {
    /// Checks the id is new, picks a dir with room (evicting if needed) and reserves
    /// `expected_len` there. Returns the dir and a fresh temp path.
    fn reserve(
        &mut self,
        block_id: u64,
        expected_len: u64,
        trash: &mut Vec<PathBuf>,
    ) -> Result<(usize, PathBuf), StoreError> {
        if self.blocks.contains_key(&block_id) {
            return Err(StoreError::AlreadyExists(block_id));
        }
        let dir = self.place(expected_len, trash)?;
        self.dirs[dir].space.in_flight += expected_len;
        Ok((dir, self.dirs[dir].tmp_path(block_id)))
    }

    /// The first dir in tier order with room for `needed` bytes (file systems measured
    /// in that order, up to the first that fits). When none has room, evicts the oldest
    /// blocks of the dirs, in tier order, until one has; a dir is only evicted from when
    /// emptying it would make enough room.
    fn place(&mut self, needed: u64, trash: &mut Vec<PathBuf>) -> Result<usize, StoreError> {
        let reserved = self.limits.reserved;
        let mut fs_free = vec![0; self.dirs.len()];
        for &i in &self.tier_order {
            fs_free[i] = self.dirs[i].fs_available()?;
            if self.dirs[i].space.room(fs_free[i], reserved) >= needed {
                return Ok(i);
            }
        }
        let spaces: Vec<Space> = self.dirs.iter().map(|d| d.space).collect();
        let candidates = block_policy::eviction_candidates(
            &self.tier_order,
            &spaces,
            &fs_free,
            reserved,
            needed,
        );
        for i in candidates {
            if self.evict_for_room(i, fs_free[i], needed, trash)? {
                return Ok(i);
            }
        }
        Err(StoreError::NoSpace { needed })
    }

    /// Evicts the oldest blocks of dir `i` until it has room for `needed` bytes; returns
    /// whether it has. `fs_free` is the file system's free space before evicting.
    fn evict_for_room(
        &mut self,
        i: usize,
        fs_free: u64,
        needed: u64,
        trash: &mut Vec<PathBuf>,
    ) -> Result<bool, StoreError> {
        let (victims, enough) = block_policy::victims_for_room(
            self.dirs[i].space,
            fs_free,
            self.limits.reserved,
            needed,
            self.oldest_first(i),
        );
        for victim in victims {
            self.evict(victim, trash)?;
        }
        Ok(enough)
    }

    /// The committed blocks of dir `i` as `(id, len)`, least recently used first.
    /// Blocks published open (pinned) are left out: eviction never takes them.
    fn oldest_first(&self, i: usize) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.dirs[i]
            .lru
            .values()
            .filter(|id| !self.pinned.contains(id))
            .map(|&id| (id, self.blocks.get(&id).map_or(0, |b| b.len)))
    }

    /// After a commit to dir `i`: if it is above the high watermark, evicts its oldest
    /// blocks until it is at or below the low watermark. Never evicts `keep`, the block
    /// just committed.
    fn enforce_watermark(
        &mut self,
        i: usize,
        keep: u64,
        trash: &mut Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        let victims = block_policy::victims_for_watermark(
            self.dirs[i].space,
            &self.limits,
            self.oldest_first(i),
            keep,
        );
        for victim in victims {
            self.evict(victim, trash)?;
        }
        Ok(())
    }

    /// Evicts one committed block and records it for [`BlockStore::take_evicted`].
    fn evict(&mut self, block_id: u64, trash: &mut Vec<PathBuf>) -> Result<(), StoreError> {
        trash.extend(self.detach(block_id)?);
        self.evicted.push(block_id);
        self.evicted_total += 1;
        Ok(())
    }

    /// Removes a committed block from the index and moves its file into `tmp/`, where it
    /// can be unlinked after the lock is released. Returns that path (none when the file
    /// was already gone). On a rename error the block stays indexed.
    fn detach(&mut self, block_id: u64) -> Result<Option<PathBuf>, StoreError> {
        let Some(block) = self.blocks.get(&block_id).copied() else {
            return Ok(None);
        };
        let dir = &self.dirs[block.dir];
        let from = dir.block_path(block_id);
        let to = dir.trash_path(block_id);
        let trash = match fs::rename(&from, &to) {
            Ok(()) => Some(to),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(io_error(
                    format!(
                        "remove block {block_id}: rename {} to {}",
                        from.display(),
                        to.display()
                    ),
                    source,
                ))
            }
        };
        self.blocks.remove(&block_id);
        let dir = &mut self.dirs[block.dir];
        dir.space.used = dir.space.used.saturating_sub(block.len);
        dir.lru.remove(&block.stamp);
        Ok(trash)
    }

    /// Indexes a committed block as the most recently used.
    fn insert_block(&mut self, block_id: u64, dir: usize, len: u64) {
        let stamp = self.next_stamp();
        self.blocks.insert(block_id, Block { dir, len, stamp });
        let dir = &mut self.dirs[dir];
        dir.space.used += len;
        dir.lru.insert(stamp, block_id);
    }

    /// Marks a block as just used; returns its path and length, or `None` if unknown.
    fn touch(&mut self, block_id: u64) -> Option<(PathBuf, u64)> {
        let stamp = self.next_stamp();
        let block = self.blocks.get_mut(&block_id)?;
        let old = std::mem::replace(&mut block.stamp, stamp);
        let (i, len) = (block.dir, block.len);
        let dir = &mut self.dirs[i];
        dir.lru.remove(&old);
        dir.lru.insert(stamp, block_id);
        Some((dir.block_path(block_id), len))
    }

    /// Grows a writer's reservation in dir `i` from `current` to `wanted` bytes, if the
    /// dir has room for the difference.
    fn grow(&mut self, i: usize, current: u64, wanted: u64) -> Result<(), StoreError> {
        let extra = wanted.saturating_sub(current);
        let fs_free = self.dirs[i].fs_available()?;
        if self.dirs[i].space.room(fs_free, self.limits.reserved) < extra {
            return Err(StoreError::NoSpace { needed: wanted });
        }
        self.dirs[i].space.in_flight += extra;
        Ok(())
    }

    /// Gives `bytes` of a writer's reservation in dir `i` back.
    fn release(&mut self, i: usize, bytes: u64) {
        let dir = &mut self.dirs[i];
        dir.space.in_flight = dir.space.in_flight.saturating_sub(bytes);
    }

    /// The next recency stamp.
    fn next_stamp(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

impl Dir {
    /// Where block `block_id` lives once committed.
    fn block_path(&self, block_id: u64) -> PathBuf {
        self.root.join(BLOCKS_SUBDIR).join(block_id.to_string())
    }

    /// A fresh temp path for writing block `block_id`.
    fn tmp_path(&self, block_id: u64) -> PathBuf {
        self.root
            .join(TMP_SUBDIR)
            .join(format!("{block_id}.{}", unique_suffix()))
    }

    /// A fresh path in `tmp/` to move a removed block to before unlinking it.
    fn trash_path(&self, block_id: u64) -> PathBuf {
        self.root
            .join(TMP_SUBDIR)
            .join(format!("{block_id}.{}.removed", unique_suffix()))
    }

    /// The file system's available bytes under this dir.
    fn fs_available(&self) -> Result<u64, StoreError> {
        fs_space(&self.root)
            .map(|space| space.available)
            .map_err(|source| io_error(format!("statvfs {}", self.root.display()), source))
    }
}

/// Locks the state. A panic while it was held cannot leave it half-updated in a way that
/// matters more than refusing service would, so a poisoned lock is used as is.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks the config and extracts the limits.
fn validate(cfg: &StoreConfig) -> Result<Limits, StoreError> {
    if cfg.dirs.is_empty() {
        return Err(StoreError::InvalidConfig("no data dirs".to_string()));
    }
    let limits = Limits::new(cfg.reserved, cfg.high_watermark, cfg.low_watermark)
        .map_err(StoreError::InvalidConfig)?;
    if let Some(dir) = cfg.dirs.iter().find(|d| d.capacity == Some(0)) {
        return Err(StoreError::InvalidConfig(format!(
            "data dir {} has capacity 0",
            dir.path
        )));
    }
    Ok(limits)
}

/// Prepares one data dir: creates `blocks/` and `tmp/`, empties `tmp/`, works out the
/// capacity.
fn open_dir(cfg: &DataDir) -> Result<Dir, StoreError> {
    let root = PathBuf::from(&cfg.path);
    for sub in [BLOCKS_SUBDIR, TMP_SUBDIR] {
        let path = root.join(sub);
        fs::create_dir_all(&path)
            .map_err(|source| io_error(format!("create {}", path.display()), source))?;
    }
    clear_dir(&root.join(TMP_SUBDIR))?;
    let capacity = match cfg.capacity {
        Some(capacity) => capacity,
        None => {
            fs_space(&root)
                .map_err(|source| io_error(format!("statvfs {}", root.display()), source))?
                .total
        }
    };
    Ok(Dir {
        medium: cfg.medium,
        path: cfg.path.clone(),
        root,
        space: Space {
            capacity,
            used: 0,
            in_flight: 0,
        },
        lru: BTreeMap::new(),
    })
}

/// Deletes everything in `path` (leftover temp files).
fn clear_dir(path: &Path) -> Result<(), StoreError> {
    for entry in read_dir(path)? {
        let entry = entry.map_err(|source| io_error(format!("list {}", path.display()), source))?;
        let target = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&target)
        } else {
            fs::remove_file(&target)
        };
        removed.map_err(|source| io_error(format!("remove {}", target.display()), source))?;
    }
    Ok(())
}

/// Fails when two data dirs are the same directory (their blocks would be counted twice).
fn check_distinct(dirs: &[Dir]) -> Result<(), StoreError> {
    let mut seen: HashMap<PathBuf, &str> = HashMap::new();
    for dir in dirs {
        let real = fs::canonicalize(&dir.root)
            .map_err(|source| io_error(format!("resolve {}", dir.root.display()), source))?;
        if let Some(other) = seen.insert(real, &dir.path) {
            return Err(StoreError::InvalidConfig(format!(
                "data dirs {other} and {} are the same directory",
                dir.path
            )));
        }
    }
    Ok(())
}

/// Lists the committed blocks of every dir, oldest first by modification time. With
/// `format`, deletes them instead. A block id found in two dirs is kept in the first one
/// in tier order; the other copy is deleted.
fn scan_blocks(
    dirs: &[Dir],
    tier_order: &[usize],
    format: bool,
) -> Result<Vec<FoundBlock>, StoreError> {
    let mut found: Vec<FoundBlock> = Vec::new();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for &i in tier_order {
        for block in scan_dir(i, &dirs[i])? {
            let path = dirs[i].block_path(block.id);
            if format {
                remove_block_file(&path)?;
            } else if let Some(&first) = seen.get(&block.id) {
                warn!(
                    block_id = block.id,
                    kept = %dirs[first].path,
                    deleted = %path.display(),
                    "block found in two data dirs"
                );
                remove_block_file(&path)?;
            } else {
                seen.insert(block.id, i);
                found.push(block);
            }
        }
    }
    found.sort_by_key(|b| (b.modified, b.id));
    Ok(found)
}

/// The block files in one dir's `blocks/`; names that are not block ids are ignored.
fn scan_dir(i: usize, dir: &Dir) -> Result<Vec<FoundBlock>, StoreError> {
    let blocks_dir = dir.root.join(BLOCKS_SUBDIR);
    let mut found = Vec::new();
    for entry in read_dir(&blocks_dir)? {
        let entry =
            entry.map_err(|source| io_error(format!("list {}", blocks_dir.display()), source))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_block_id) else {
            continue;
        };
        let meta = entry
            .metadata()
            .map_err(|source| io_error(format!("stat {}", entry.path().display()), source))?;
        if !meta.is_file() {
            continue;
        }
        found.push(FoundBlock {
            dir: i,
            id,
            len: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    Ok(found)
}

/// The block id a file in `blocks/` is named after: a decimal `u64` written the way
/// [`Dir::block_path`] writes it (so `007` is not block 7).
fn parse_block_id(name: &str) -> Option<u64> {
    let id = name.parse::<u64>().ok()?;
    (id.to_string() == name).then_some(id)
}

/// Deletes a block file found at open.
fn remove_block_file(path: &Path) -> Result<(), StoreError> {
    fs::remove_file(path).map_err(|source| io_error(format!("remove {}", path.display()), source))
}

/// Lists a directory, with the path in the error.
fn read_dir(path: &Path) -> Result<fs::ReadDir, StoreError> {
    fs::read_dir(path).map_err(|source| io_error(format!("list {}", path.display()), source))
}

/// Unlinks files outside the lock; failures are logged (the files sit in `tmp/`, which
/// the next open empties).
fn remove_files(paths: &[PathBuf]) {
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => warn!(%error, path = %path.display(), "cannot remove file"),
        }
    }
}

/// Reads from a block file at `offset` until `buf` is full or the file ends; returns the
/// bytes read. A missing file means the block was removed meanwhile: `NotFound`.
fn read_file_at(
    block_id: u64,
    path: &Path,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize, StoreError> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            StoreError::NotFound(block_id)
        } else {
            io_error(
                format!("open block {block_id} at {}", path.display()),
                source,
            )
        }
    })?;
    let mut filled = 0;
    while filled < buf.len() {
        let at = offset.saturating_add(filled as u64);
        match file.read_at(&mut buf[filled..], at) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(io_error(
                    format!("read block {block_id} at {} offset {at}", path.display()),
                    source,
                ))
            }
        }
    }
    Ok(filled)
}

/// A suffix no other temp file of this process has.
/// Copies the first `len` bytes of `from` to the start of `to`, in the kernel where it can.
fn copy_range(from: &File, to: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (mut off_in, mut off_out): (libc::loff_t, libc::loff_t) = (0, 0);
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        // SAFETY: both descriptors are open files borrowed for the call, and the offsets
        // point to locals that outlive it.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                chunk,
                0,
            )
        };
        if n > 0 {
            left -= n as u64;
            continue;
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source ended {left} bytes early"),
            ));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            // Across file systems, or not supported here: copy through memory.
            Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                return copy_through_memory(from, to, off_in as u64, left)
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// The fallback of [`copy_range`]: `left` bytes from `offset` of `from` to the same
/// offset of `to`.
fn copy_through_memory(from: &File, to: &File, mut offset: u64, mut left: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        from.read_exact_at(&mut buf[..n], offset)?;
        to.write_all_at(&buf[..n], offset)?;
        offset += n as u64;
        left -= n as u64;
    }
    Ok(())
}

fn unique_suffix() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Size and available space of the file system holding `path` (`statvfs`).
// The statvfs field types differ between platforms (u32 on some 32-bit ones), so the
// casts are needed there even where they are no-ops.
#[allow(clippy::unnecessary_cast)]
fn fs_space(path: &Path) -> io::Result<FsSpace> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let fragment = stat.fragment_size() as u64;
    Ok(FsSpace {
        total: (stat.blocks() as u64).saturating_mul(fragment),
        available: (stat.blocks_available() as u64).saturating_mul(fragment),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::thread;
    use tempfile::TempDir;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;

    fn data_dir(medium: Medium, capacity: Option<u64>, path: &Path) -> DataDir {
        DataDir {
            medium,
            capacity,
            path: path.to_string_lossy().into_owned(),
        }
    }

    fn config(dirs: Vec<DataDir>) -> StoreConfig {
        StoreConfig {
            dirs,
            reserved: 0,
            high_watermark: 1.0,
            low_watermark: 1.0,
            format: false,
        }
    }

    /// One Disk dir of the given capacity, no watermark eviction.
    fn one_dir(root: &TempDir, capacity: u64) -> StoreConfig {
        config(vec![data_dir(Medium::Disk, Some(capacity), root.path())])
    }

    /// Bytes that say which block they belong to.
    fn pattern(block_id: u64, len: u64) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_add(block_id as u8))
            .collect()
    }

    fn put(store: &BlockStore, block_id: u64, len: u64) {
        let mut writer = store.create(block_id, len).unwrap();
        writer.write(&pattern(block_id, len)).unwrap();
        assert_eq!(writer.commit().unwrap(), len);
    }

    fn files_in(path: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<BlockStore>();
        check::<BlockWriter>();
    }

    #[test]
    fn a_copy_keeps_the_old_block_and_takes_patches_in_place() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        put(&store, 1, 1000);
        let old = pattern(1, 1000);
        // Keep the first 800 bytes, patch 10 inside and 30 past them.
        let mut writer = store.create_copy(2, 1000, 1, 800).unwrap();
        assert_eq!(writer.len(), 800);
        writer.write_at(100, &[0xAA; 10]).unwrap();
        writer.write_at(790, &[0xBB; 30]).unwrap();
        assert_eq!(writer.commit().unwrap(), 820);
        let mut want = old[..800].to_vec();
        want[100..110].fill(0xAA);
        want.resize(820, 0);
        want[790..820].fill(0xBB);
        assert_eq!(store.read(2, 0, 5000).unwrap(), want);
        assert_eq!(
            store.read(1, 0, 5000).unwrap(),
            old,
            "the old block is unchanged"
        );
        // A patch past the end leaves zeros between.
        let mut writer = store.create_copy(3, 1000, 1, 10).unwrap();
        writer.write_at(20, b"x").unwrap();
        assert_eq!(writer.commit().unwrap(), 21);
        let mut want = old[..10].to_vec();
        want.resize(20, 0);
        want.push(b'x');
        assert_eq!(store.read(3, 0, 100).unwrap(), want);
        // More than the source holds, or a source not here.
        assert!(matches!(
            store.create_copy(4, 1000, 1, 1001),
            Err(StoreError::Io { .. })
        ));
        assert!(matches!(
            store.create_copy(4, 1000, 99, 1),
            Err(StoreError::NotFound(99))
        ));
        assert_eq!(files_in(&root.path().join("tmp")), Vec::<String>::new());
    }

    #[test]
    fn sync_counts_the_blocks_held_and_skips_the_others() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        put(&store, 1, 100);
        put(&store, 2, 100);
        assert_eq!(store.sync(&[1, 2, 3]).unwrap(), 2);
        assert!(store.delete(2).unwrap());
        assert_eq!(store.sync(&[2]).unwrap(), 0);
    }

    #[test]
    fn round_trip_with_ranged_and_past_end_reads() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        let data = pattern(7, 1000);
        let mut writer = store.create(7, 1000).unwrap();
        writer.write(&data[..300]).unwrap();
        writer.write(&data[300..]).unwrap();
        assert_eq!(writer.len(), 1000);
        assert!(!store.contains(7), "not visible before commit");
        assert_eq!(writer.commit().unwrap(), 1000);

        assert!(store.contains(7));
        assert_eq!(store.block_len(7), Some(1000));
        assert_eq!(store.read(7, 0, 5000).unwrap(), data);
        assert_eq!(store.read(7, 100, 50).unwrap(), &data[100..150]);
        assert_eq!(store.read(7, 990, 50).unwrap(), &data[990..]);
        assert!(store.read(7, 1000, 10).unwrap().is_empty());
        assert!(store.read(7, u64::MAX, 10).unwrap().is_empty());

        let mut buf = [0u8; 64];
        assert_eq!(store.read_into(7, 960, &mut buf).unwrap(), 40);
        assert_eq!(&buf[..40], &data[960..]);
        assert_eq!(store.read_into(7, 2000, &mut buf).unwrap(), 0);
        assert!(root.path().join("blocks/7").is_file());
        assert_eq!(store.usage()[0].used, 1000);
        assert_eq!(store.usage()[0].blocks, 1);
    }

    #[test]
    fn reopen_finds_committed_blocks_and_drops_temp_files() {
        let root = TempDir::new().unwrap();
        {
            let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
            put(&store, 1, 100);
            put(&store, 2, 200);
        }
        fs::write(root.path().join("tmp/9.123"), b"half a block").unwrap();
        fs::write(root.path().join("blocks/notes.txt"), b"not a block").unwrap();
        fs::write(root.path().join("blocks/007"), b"not canonical").unwrap();

        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        assert_eq!(store.block_ids(), vec![1, 2]);
        assert_eq!(store.read(2, 0, 1000).unwrap(), pattern(2, 200));
        assert_eq!(store.usage()[0].used, 300);
        assert!(files_in(&root.path().join("tmp")).is_empty());
        assert!(root.path().join("blocks/notes.txt").exists(), "left alone");
    }

    #[test]
    fn format_wipes_blocks() {
        let root = TempDir::new().unwrap();
        {
            let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
            put(&store, 1, 100);
            put(&store, 2, 100);
        }
        let mut cfg = one_dir(&root, MIB);
        cfg.format = true;
        let store = BlockStore::open(cfg).unwrap();
        assert!(store.block_ids().is_empty());
        assert_eq!(store.usage()[0].used, 0);
        assert!(files_in(&root.path().join("blocks")).is_empty());
    }

    #[test]
    fn already_exists_and_not_found() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        put(&store, 1, 10);
        assert!(matches!(
            store.create(1, 10),
            Err(StoreError::AlreadyExists(1))
        ));
        assert!(matches!(store.read(2, 0, 1), Err(StoreError::NotFound(2))));
        assert!(matches!(
            store.read_into(2, 0, &mut [0; 4]),
            Err(StoreError::NotFound(2))
        ));
        assert_eq!(store.block_len(2), None);

        assert!(store.delete(1).unwrap());
        assert!(!store.delete(1).unwrap());
        assert!(matches!(store.read(1, 0, 1), Err(StoreError::NotFound(1))));
        assert_eq!(store.usage()[0].used, 0);
        assert!(files_in(&root.path().join("blocks")).is_empty());
        assert!(files_in(&root.path().join("tmp")).is_empty());
        assert_eq!(store.evicted_total(), 0, "a delete is not an eviction");
    }

    #[test]
    fn second_commit_of_the_same_block_loses() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        let mut first = store.create(5, 10).unwrap();
        let mut second = store.create(5, 10).unwrap();
        first.write(&[1; 10]).unwrap();
        second.write(&[2; 10]).unwrap();
        first.commit().unwrap();
        assert!(matches!(second.commit(), Err(StoreError::AlreadyExists(5))));
        assert_eq!(store.read(5, 0, 10).unwrap(), vec![1; 10]);
        assert!(files_in(&root.path().join("tmp")).is_empty());
    }

    #[test]
    fn blocks_fill_the_fastest_tier_first() {
        let disk = TempDir::new().unwrap();
        let mem = TempDir::new().unwrap();
        // Disk is listed first: the medium, not the config order, decides.
        let store = BlockStore::open(config(vec![
            data_dir(Medium::Disk, Some(MIB), disk.path()),
            data_dir(Medium::Mem, Some(MIB), mem.path()),
        ]))
        .unwrap();
        for id in 0..4 {
            put(&store, id, 256 * KIB);
        }
        put(&store, 4, 256 * KIB);
        assert_eq!(files_in(&mem.path().join("blocks")), ["0", "1", "2", "3"]);
        assert_eq!(files_in(&disk.path().join("blocks")), ["4"]);
        let usage = store.usage();
        assert_eq!(usage[0].medium, Medium::Disk);
        assert_eq!((usage[0].used, usage[0].blocks), (256 * KIB, 1));
        assert_eq!((usage[1].used, usage[1].blocks), (MIB, 4));
        assert_eq!(store.evicted_total(), 0);
    }

    #[test]
    fn capacity_is_respected_and_full_dirs_evict_the_oldest() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        for id in 0..4 {
            put(&store, id, 256 * KIB);
        }
        assert_eq!(store.usage()[0].used, MIB);
        store.read(0, 0, 1).unwrap();
        put(&store, 4, 256 * KIB);
        assert_eq!(store.take_evicted(), vec![1]);
        assert_eq!(store.block_ids(), vec![0, 2, 3, 4]);
        assert_eq!(store.usage()[0].used, MIB);
    }

    #[test]
    fn reserved_bytes_and_capacity_without_a_size() {
        let root = TempDir::new().unwrap();
        let mut cfg = one_dir(&root, MIB);
        cfg.reserved = 512 * KIB;
        let store = BlockStore::open(cfg).unwrap();
        put(&store, 0, 256 * KIB);
        put(&store, 1, 256 * KIB);
        put(&store, 2, 256 * KIB);
        assert_eq!(store.take_evicted(), vec![0], "only 512 KiB usable");

        let fs_sized = TempDir::new().unwrap();
        let store =
            BlockStore::open(config(vec![data_dir(Medium::Disk, None, fs_sized.path())])).unwrap();
        assert!(store.usage()[0].capacity > 0);
    }

    #[test]
    fn watermark_eviction_keeps_the_recently_read_blocks() {
        let root = TempDir::new().unwrap();
        let block = 64 * KIB;
        let mut cfg = one_dir(&root, 5 * block);
        cfg.high_watermark = 0.9;
        cfg.low_watermark = 0.5;
        let store = BlockStore::open(cfg).unwrap();
        for id in 0..4 {
            put(&store, id, block);
        }
        assert!(store.take_evicted().is_empty(), "4 of 5 is below 0.9");
        store.read(0, 0, 10).unwrap();
        store.read(1, 0, 10).unwrap();

        // The 5th block takes the dir to 100% > 90%: evict the least recently used
        // (2, 3, then 0) until at most 50% (2.5 blocks) is used.
        put(&store, 4, block);
        assert_eq!(store.take_evicted(), vec![2, 3, 0]);
        assert!(store.take_evicted().is_empty(), "reported once");
        assert_eq!(store.evicted_total(), 3);
        assert_eq!(store.block_ids(), vec![1, 4]);
        assert_eq!(store.usage()[0].used, 2 * block);
        assert_eq!(files_in(&root.path().join("blocks")), ["1", "4"]);
        assert!(files_in(&root.path().join("tmp")).is_empty());
    }

    #[test]
    fn watermark_eviction_never_removes_the_block_just_committed() {
        let root = TempDir::new().unwrap();
        let mut cfg = one_dir(&root, MIB);
        cfg.high_watermark = 0.9;
        cfg.low_watermark = 0.5;
        let store = BlockStore::open(cfg).unwrap();
        put(&store, 1, 960 * KIB);
        assert!(store.contains(1));
        assert!(store.take_evicted().is_empty());
    }

    #[test]
    fn no_space_when_nothing_can_be_evicted() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        put(&store, 1, 256 * KIB);
        assert!(matches!(
            store.create(2, 2 * MIB),
            Err(StoreError::NoSpace { needed }) if needed == 2 * MIB
        ));
        assert!(store.contains(1), "nothing evicted for a hopeless request");
        assert_eq!(store.evicted_total(), 0);
    }

    #[test]
    fn writing_past_the_expected_length_needs_room() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        let mut writer = store.create(1, 100).unwrap();
        writer.write(&[0; 512]).unwrap();
        assert!(matches!(
            writer.write(&vec![0; MIB as usize]),
            Err(StoreError::NoSpace { .. })
        ));
        assert_eq!(writer.len(), 512);
        assert_eq!(writer.commit().unwrap(), 512);
        assert_eq!(store.block_len(1), Some(512));
        // Only the committed bytes remain accounted.
        let mut rest = store.create(2, MIB - 512).unwrap();
        rest.write(&[1; 10]).unwrap();
    }

    #[test]
    fn dropping_an_uncommitted_writer_cleans_up() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        let mut writer = store.create(1, MIB).unwrap();
        writer.write(&[7; 1000]).unwrap();
        assert_eq!(files_in(&root.path().join("tmp")).len(), 1);
        assert!(matches!(
            store.create(2, 1),
            Err(StoreError::NoSpace { .. })
        ));
        drop(writer);
        assert!(files_in(&root.path().join("tmp")).is_empty());
        assert!(!store.contains(1));
        let whole = store.create(2, MIB).unwrap();
        drop(whole);
    }

    #[test]
    fn a_shared_file_commits_at_the_length_it_holds_and_only_then() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        let data = pattern(5, 3000);
        let writer = store.create(5, 1000).unwrap();
        let shared = writer.share_file().unwrap();
        shared.write_all_at(&data, 0).unwrap();
        assert!(!store.contains(5), "not visible before commit");
        // A writer claiming another length is refused, and the block stays invisible.
        let e = writer.commit_written(2999).unwrap_err();
        assert!(e.to_string().contains("holds 3000"), "{e}");
        assert!(!store.contains(5));
        assert!(files_in(&root.path().join("tmp")).is_empty());

        let writer = store.create(5, 1000).unwrap();
        writer.share_file().unwrap().write_all_at(&data, 0).unwrap();
        assert_eq!(writer.commit_written(3000).unwrap(), 3000);
        assert_eq!(store.read(5, 0, 5000).unwrap(), data);
        assert_eq!(store.usage()[0].used, 3000);
        assert_eq!(store.create(6, MIB - 3000).map(drop).ok(), Some(()));
    }

    #[test]
    fn a_block_published_open_takes_patches_and_survives_a_restart_at_its_last_length() {
        let root = TempDir::new().unwrap();
        let data = pattern(7, 3000);
        {
            let store = BlockStore::open(one_dir(&root, 10_000)).unwrap();
            let mut writer = store.create(7, 4000).unwrap();
            let shared = writer.share_file().unwrap();
            shared.write_all_at(&data[..2000], 0).unwrap();
            // A length the file does not hold is refused, nothing published.
            assert!(writer.publish_open(1999).is_err());
            assert!(!store.contains(7));
            assert_eq!(writer.publish_open(2000).unwrap(), 2000);
            assert_eq!(store.block_len(7), Some(2000));
            assert_eq!(store.read(7, 0, 5000).unwrap(), data[..2000]);
            assert_eq!(store.usage()[0].used, 2000);
            // Patched in place and grown, then checkpointed again: readers see it.
            shared.write_all_at(&[0xEE; 10], 100).unwrap();
            shared.write_all_at(&data[2000..], 2000).unwrap();
            assert_eq!(writer.publish_open(3000).unwrap(), 3000);
            let mut want = data.clone();
            want[100..110].fill(0xEE);
            assert_eq!(store.read(7, 0, 5000).unwrap(), want);
            assert_eq!(store.usage()[0].used, 3000);
            // Pinned: a block needing all the room cannot evict it.
            assert!(matches!(
                store.create(8, 9000),
                Err(StoreError::NoSpace { .. })
            ));
            assert!(store.contains(7));
            // Writes after the last checkpoint are not published; a writer dropped
            // without its final commit leaves the block at its last published length.
            shared.write_all_at(&[0xFF; 500], 3000).unwrap();
            drop(writer);
            assert_eq!(store.block_len(7), Some(3000));
            // Unpinned now: it can be evicted.
            assert_eq!(store.create(8, 9000).map(drop).ok(), Some(()));
            assert!(!store.contains(7));
        }
        {
            let store = BlockStore::open(one_dir(&root, 10_000)).unwrap();
            let mut writer = store.create(9, 4000).unwrap();
            let shared = writer.share_file().unwrap();
            shared.write_all_at(&data[..1000], 0).unwrap();
            assert_eq!(writer.publish_open(1000).unwrap(), 1000);
            shared.write_all_at(&data[1000..1500], 1000).unwrap();
            assert_eq!(writer.publish_open(1500).unwrap(), 1500);
            // The store goes away with the writer still open (a worker restart).
            std::mem::drop(store);
            drop(writer);
        }
        let store = BlockStore::open(one_dir(&root, 10_000)).unwrap();
        assert_eq!(store.block_len(9), Some(1500), "its last published length");
        assert_eq!(store.read(9, 0, 5000).unwrap(), data[..1500]);
        // A final commit after checkpoints: the last length, unpinned, accounted once.
        let mut writer = store.create(10, 4000).unwrap();
        let shared = writer.share_file().unwrap();
        shared.write_all_at(&data[..1200], 0).unwrap();
        assert_eq!(writer.publish_open(1200).unwrap(), 1200);
        shared.write_all_at(&data[1200..2500], 1200).unwrap();
        assert_eq!(writer.commit_written(2500).unwrap(), 2500);
        assert_eq!(store.read(10, 0, 5000).unwrap(), data[..2500]);
        assert_eq!(store.usage()[0].used, 1500 + 2500);
        assert!(files_in(&root.path().join("tmp")).is_empty());
        assert_eq!(
            store.create(11, 6000).map(drop).ok(),
            Some(()),
            "nothing left reserved"
        );
    }

    #[test]
    fn an_open_block_file_outlives_eviction_of_its_block() {
        let root = TempDir::new().unwrap();
        let store = BlockStore::open(one_dir(&root, MIB)).unwrap();
        put(&store, 9, 100);
        let (file, len) = store.open_block(9).unwrap();
        assert_eq!(len, 100);
        assert!(store.delete(9).unwrap());
        assert!(matches!(store.open_block(9), Err(StoreError::NotFound(9))));
        let mut buf = vec![0; 100];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, pattern(9, 100));
        // The id can be stored again (a block fetched anew): a new file, the open one
        // keeps its bytes.
        put(&store, 9, 50);
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, pattern(9, 100));
    }

    #[test]
    fn concurrent_creates_never_overcommit() {
        let root = TempDir::new().unwrap();
        let store = Arc::new(BlockStore::open(one_dir(&root, MIB)).unwrap());
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads as u64)
            .map(|id| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    let writer = store.create(id, 256 * KIB);
                    // Hold every writer until all creates are done.
                    barrier.wait();
                    let mut writer = writer.ok()?;
                    writer.write(&pattern(id, 256 * KIB)).unwrap();
                    Some(writer.commit().unwrap())
                })
            })
            .collect();
        let committed = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .count();
        assert_eq!(committed, 4);
        assert_eq!(store.usage()[0].used, MIB);
    }

    #[test]
    fn concurrent_writers_and_readers_stay_within_capacity() {
        let root = TempDir::new().unwrap();
        let mut cfg = one_dir(&root, MIB);
        cfg.high_watermark = 0.9;
        cfg.low_watermark = 0.5;
        let store = Arc::new(BlockStore::open(cfg).unwrap());
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    for n in 0..25u64 {
                        let id = t * 1000 + n;
                        if let Ok(mut writer) = store.create(id, 200 * KIB) {
                            writer.write(&pattern(id, 200 * KIB)).unwrap();
                            writer.commit().unwrap();
                        }
                        for other in store.block_ids() {
                            match store.read(other, 0, 16) {
                                Ok(data) => assert_eq!(data, pattern(other, 16)),
                                Err(StoreError::NotFound(_)) => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                        assert!(store.usage()[0].used <= MIB);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let usage = &store.usage()[0];
        assert!(usage.used <= MIB);
        assert_eq!(usage.blocks as usize, store.block_ids().len());
        assert!(store.evicted_total() > 0);
        assert!(files_in(&root.path().join("tmp")).is_empty());
    }

    #[test]
    fn invalid_configs_are_refused() {
        let root = TempDir::new().unwrap();
        assert!(matches!(
            BlockStore::open(config(vec![])),
            Err(StoreError::InvalidConfig(_))
        ));
        let mut cfg = one_dir(&root, MIB);
        cfg.low_watermark = 0.95;
        cfg.high_watermark = 0.8;
        assert!(matches!(
            BlockStore::open(cfg),
            Err(StoreError::InvalidConfig(_))
        ));
        let same = data_dir(Medium::Disk, Some(MIB), root.path());
        assert!(matches!(
            BlockStore::open(config(vec![same.clone(), same])),
            Err(StoreError::InvalidConfig(_))
        ));
    }

    #[test]
    fn errors_name_the_block_and_path() {
        assert_eq!(StoreError::NotFound(42).to_string(), "block 42 not found");
        let error = io_error(
            "read block 3 at /data/blocks/3",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(error
            .to_string()
            .starts_with("read block 3 at /data/blocks/3: "));
    }
}
