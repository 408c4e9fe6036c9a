//! What the namespace keeps of under storage (an `s3://` or `local://` mount): the
//! listing of each directory as inodes stamped with the object's version, and which
//! worker caches each block. The storage is the truth; these commands bring the cached
//! view in line with a listing the leader made, one page at a time:
//!
//! - [`Command::UfsSync`] upserts a page of a directory's listing (new entries appear,
//!   changed files drop their cached blocks and get new block ids) and, on the last
//!   page, removes the entries the listing no longer has and stamps the directory;
//! - [`Command::CacheBlocks`] records blocks a worker fetched;
//! - [`Command::UfsPersisted`] stamps a file written through to the storage;
//! - [`Command::UfsStale`] makes a subtree list again on next use (after a move).
//!
//! A file under a mount without a stamp (`ufs: None`) exists only here so far (being
//! written): listings leave it alone.

use super::{Block, Command, Inode, InodeId, InodeKind, Namespace, Outcome, ROOT_ID};
use crate::fs_error::FsError;
use serde::{Deserialize, Serialize};

/// The version of an under-storage entry as the namespace last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UfsMeta {
    /// The storage's etag ("" when it gives none).
    #[serde(default)]
    pub etag: String,
    /// The storage's modification time, ms (files).
    #[serde(default)]
    pub mtime: i64,
    /// When the directory was last listed, ms (0: never; directories).
    #[serde(default)]
    pub synced: i64,
    /// The listing that last saw the entry.
    #[serde(default)]
    pub gen: u64,
}

/// One entry of a listing, as a command carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UfsItem {
    /// The entry's name in the directory.
    pub name: String,
    /// A directory (a key prefix, with or without a marker object).
    pub dir: bool,
    /// A file's length.
    pub size: u64,
    /// A file's modification time, ms.
    pub mtime: i64,
    /// A file's etag ("" when unknown).
    pub etag: String,
}

/// Most blocks a file listed by under storage may have: 4 Mi blocks (4 TiB at the
/// smallest block size of 1 MiB, 256 TiB at 64 MiB); a listed size asking for more is
/// not a real object and is left out rather than allocated.
pub const MAX_UFS_FILE_BLOCKS: u64 = 4 << 20;

impl Namespace {
    /// The mount whose directory holds `path` when it is an under-storage mount, and
    /// `path` relative to it ("" for the mount itself).
    pub fn ufs_mount_of(&self, path: &str) -> Option<(&super::MountRecord, String)> {
        self.mounts.values().filter(|m| m.is_ufs()).find_map(|m| {
            if path == m.path {
                Some((m, String::new()))
            } else {
                let rel = path.strip_prefix(&m.path)?.strip_prefix('/')?;
                Some((m, rel.to_string()))
            }
        })
    }

    /// The path of an inode from its names (its first name for a file with links);
    /// `None` for an orphan or an unknown id.
    pub fn path_of(&self, id: InodeId) -> Option<String> {
        let mut names = Vec::new();
        let mut cur = id;
        while cur != ROOT_ID {
            let inode = self.inodes.get(&cur)?;
            if inode.name.is_empty() {
                return None;
            }
            names.push(inode.name.as_str());
            cur = inode.parent;
        }
        names.reverse();
        Some(format!("/{}", names.join("/")))
    }

    pub(super) fn apply_ufs(&mut self, command: &Command) -> Result<Outcome, FsError> {
        match command {
            Command::UfsSync {
                dir,
                items,
                gen,
                last,
                block_size,
                now,
            } => self.ufs_sync(dir, items, *gen, *last, *block_size, *now),
            Command::CacheBlocks { worker, blocks } => {
                self.cache_blocks(*worker, blocks);
                Ok(Outcome::Done)
            }
            Command::UfsPersisted {
                file_id,
                etag,
                mtime,
                size,
            } => self.ufs_persisted(*file_id, etag, *mtime, *size),
            Command::UfsStale { path } => self.ufs_stale(path),
            other => Err(FsError::Io(format!(
                "not an under-storage command: {other:?}"
            ))),
        }
    }

    /// Mode bits of what a listing creates: writable mounts let every user write.
    fn ufs_mode(&self, dir_path: &str, is_dir: bool) -> u32 {
        let writable = self
            .ufs_mount_of(dir_path)
            .is_some_and(|(m, _)| !m.read_only);
        match (is_dir, writable) {
            (true, true) => 0o777,
            (true, false) => 0o755,
            (false, true) => 0o666,
            (false, false) => 0o644,
        }
    }

    fn ufs_sync(
        &mut self,
        dir_path: &str,
        items: &[super::ufs::UfsItem],
        gen: u64,
        last: bool,
        block_size: u64,
        now: i64,
    ) -> Result<Outcome, FsError> {
        if block_size == 0 {
            return Err(FsError::InvalidArgument("block size 0".into()));
        }
        let dir = self.lookup(dir_path)?;
        if dir.kind != InodeKind::Dir {
            return Err(FsError::NotADirectory(dir_path.to_string()));
        }
        let dir_id = dir.id;
        for item in items {
            // Names no path can reach, and objects claiming more blocks than a file may
            // have (a listing saying u64::MAX bytes), stay out of the namespace.
            if item.name.is_empty()
                || item.name.contains('/')
                || item.name.contains('\0')
                || item.name.len() > super::MAX_NAME_LEN
                || item.name == "."
                || item.name == ".."
                || (!item.dir && item.size.div_ceil(block_size) > MAX_UFS_FILE_BLOCKS)
            {
                continue;
            }
            self.ufs_upsert(dir_id, dir_path, item, gen, block_size, now);
        }
        if last {
            // Entries of the storage the listing no longer has go (not local ones).
            let stale: Vec<(String, InodeId)> = self
                .children
                .get(&dir_id)
                .into_iter()
                .flatten()
                .filter(|(_, id)| {
                    self.inodes
                        .get(id)
                        .and_then(|i| i.ufs.as_ref())
                        .is_some_and(|u| u.gen != gen)
                })
                .map(|(n, id)| (n.to_string(), *id))
                .collect();
            for (name, _) in stale {
                let path = super::join_path(dir_path, &name);
                self.delete(&path, true, false, now)?;
            }
            if let Some(d) = self.inodes.get_mut(&dir_id) {
                let meta = d.ufs.get_or_insert_with(Default::default);
                meta.synced = now;
                meta.gen = gen;
                self.dirty.inodes.insert(dir_id);
            }
        }
        Ok(Outcome::Done)
    }

    fn ufs_upsert(
        &mut self,
        dir_id: InodeId,
        dir_path: &str,
        item: &UfsItem,
        gen: u64,
        block_size: u64,
        now: i64,
    ) {
        let path = super::join_path(dir_path, &item.name);
        if let Some(id) = self.child(dir_id, &item.name) {
            let Some(inode) = self.inodes.get(&id) else {
                return;
            };
            let same_kind = (inode.kind == InodeKind::Dir) == item.dir;
            let unchanged = match &inode.ufs {
                // A local file (being written, not in the storage yet): left alone.
                None if inode.kind != InodeKind::Dir => return,
                // A directory made here: now the storage shows it too.
                None => true,
                Some(_) if !same_kind => {
                    // A file became a directory or the other way round.
                    if self.delete(&path, true, false, now).is_ok() {
                        self.ufs_create(dir_id, dir_path, item, gen, block_size, now);
                    }
                    return;
                }
                Some(_) if item.dir => true,
                Some(meta) => {
                    meta.etag == item.etag && meta.mtime == item.mtime && inode.size == item.size
                }
            };
            if !unchanged {
                // The object changed: its cached blocks go, new ids for the new data.
                let old = self
                    .inodes
                    .get_mut(&id)
                    .map(|i| std::mem::take(&mut i.blocks));
                let freed = self.release_blocks(&old.unwrap_or_default(), &[]);
                self.freed.extend(freed);
                let blocks = self.ufs_blocks(id, item.size, block_size);
                if let Some(i) = self.inodes.get_mut(&id) {
                    i.blocks = blocks;
                    i.size = item.size;
                    i.mtime = item.mtime;
                    i.ctime = now;
                    i.ufs = Some(Box::new(UfsMeta {
                        etag: item.etag.clone(),
                        mtime: item.mtime,
                        synced: 0,
                        gen,
                    }));
                }
                self.dirty.inodes.insert(id);
                return;
            }
            if inode.ufs.as_ref().is_some_and(|m| m.gen == gen) {
                return;
            }
            if let Some(i) = self.inodes.get_mut(&id) {
                i.ufs.get_or_insert_with(Default::default).gen = gen;
                self.dirty.inodes.insert(id);
            }
            return;
        }
        self.ufs_create(dir_id, dir_path, item, gen, block_size, now);
    }

    fn ufs_create(
        &mut self,
        dir_id: InodeId,
        dir_path: &str,
        item: &UfsItem,
        gen: u64,
        block_size: u64,
        now: i64,
    ) {
        let kind = if item.dir {
            InodeKind::Dir
        } else {
            InodeKind::File
        };
        let mode = self.ufs_mode(dir_path, item.dir);
        let mut inode: Inode = self.new_inode(dir_id, &item.name, kind, mode, 0, 0, now);
        inode.ufs = Some(Box::new(UfsMeta {
            etag: item.etag.clone(),
            mtime: item.mtime,
            synced: 0,
            gen,
        }));
        if !item.dir {
            inode.size = item.size;
            inode.mtime = item.mtime;
            inode.ctime = item.mtime;
            inode.blocks = self.ufs_blocks(inode.id, item.size, block_size);
        }
        self.insert(inode);
    }

    /// Block ids for a file of `size` bytes in the storage, none cached yet.
    fn ufs_blocks(&mut self, file_id: InodeId, size: u64, block_size: u64) -> Vec<Block> {
        let mut blocks = Vec::with_capacity(size.div_ceil(block_size) as usize);
        let mut offset = 0;
        while offset < size {
            let id = self.counters.next_block;
            self.counters.next_block += 1;
            self.block_owner.insert(id, file_id);
            let len = block_size.min(size - offset);
            blocks.push(Block {
                id,
                offset,
                len,
                worker: None,
            });
            offset += len;
        }
        blocks
    }

    /// A worker fetched these blocks from under storage: reads go to it from now on.
    fn cache_blocks(&mut self, worker: u32, blocks: &[u64]) {
        if !self.workers.contains_key(&worker) {
            return;
        }
        for block in blocks {
            let Some(owner) = self.block_owner.get(block).copied() else {
                continue;
            };
            if let Some(inode) = self.inodes.get_mut(&owner) {
                for b in inode.blocks.iter_mut().filter(|b| b.id == *block) {
                    if b.worker.is_none() {
                        b.worker = Some(worker);
                        self.dirty.inodes.insert(owner);
                    }
                }
            }
        }
    }

    fn ufs_persisted(
        &mut self,
        file_id: InodeId,
        etag: &str,
        mtime: i64,
        size: u64,
    ) -> Result<Outcome, FsError> {
        let inode = self
            .inodes
            .get_mut(&file_id)
            .ok_or_else(|| FsError::NotFound(format!("inode {file_id}")))?;
        if inode.size == size {
            let gen = inode.ufs.as_ref().map_or(0, |u| u.gen);
            inode.ufs = Some(Box::new(UfsMeta {
                etag: etag.to_string(),
                mtime,
                synced: 0,
                gen,
            }));
        }
        let out = inode.clone();
        self.dirty.inodes.insert(file_id);
        Ok(Outcome::Node(*out))
    }

    fn ufs_stale(&mut self, path: &str) -> Result<Outcome, FsError> {
        let root = self.lookup(path)?.id;
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            if let Some(i) = self.inodes.get_mut(&id) {
                if i.kind == InodeKind::Dir {
                    if let Some(u) = i.ufs.as_mut() {
                        u.synced = 0;
                    }
                    self.dirty.inodes.insert(id);
                }
            }
            if let Some(children) = self.children.get(&id) {
                todo.extend(children.values().copied());
            }
        }
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::namespace::tests::ok;
    use crate::master::namespace::MountRecord;

    fn ufs_ns(read_only: bool) -> Namespace {
        let mut ns = Namespace::default();
        ok(
            &mut ns,
            Command::SetMounts {
                mounts: vec![MountRecord {
                    path: "/ds".into(),
                    source: "s3://bucket/prefix".into(),
                    target: "/ds".into(),
                    read_only,
                    ufs: r#"{"kind":"s3"}"#.into(),
                }],
                now: 1,
            },
        );
        ns
    }

    fn file(name: &str, size: u64, etag: &str) -> UfsItem {
        UfsItem {
            name: name.into(),
            dir: false,
            size,
            mtime: 1000,
            etag: etag.into(),
        }
    }

    fn dir(name: &str) -> UfsItem {
        UfsItem {
            name: name.into(),
            dir: true,
            size: 0,
            mtime: 0,
            etag: String::new(),
        }
    }

    fn sync(
        ns: &mut Namespace,
        path: &str,
        items: Vec<UfsItem>,
        gen: u64,
        last: bool,
    ) -> Vec<(u64, u32)> {
        let applied = ns.apply(&Command::UfsSync {
            dir: path.into(),
            items,
            gen,
            last,
            block_size: 10,
            now: 50,
        });
        applied.result.unwrap();
        applied.freed
    }

    #[test]
    fn a_listing_creates_updates_and_prunes() {
        let mut ns = ufs_ns(true);
        assert_eq!(ns.ufs_mount_of("/ds/a/b").unwrap().1, "a/b");
        assert_eq!(ns.ufs_mount_of("/ds").unwrap().1, "");
        assert!(ns.ufs_mount_of("/dsx").is_none());

        sync(
            &mut ns,
            "/ds",
            vec![file("a.bin", 25, "e1"), dir("sub")],
            1,
            false,
        );
        sync(&mut ns, "/ds", vec![file("b.bin", 0, "e2")], 1, true);
        let a = ns.lookup("/ds/a.bin").unwrap().clone();
        assert_eq!(a.size, 25);
        assert_eq!(a.mode, 0o644);
        assert_eq!(
            a.blocks
                .iter()
                .map(|b| (b.offset, b.len))
                .collect::<Vec<_>>(),
            vec![(0, 10), (10, 10), (20, 5)]
        );
        assert!(a.blocks.iter().all(|b| b.worker.is_none()));
        assert_eq!(ns.lookup("/ds/sub").unwrap().kind, InodeKind::Dir);
        assert_eq!(ns.lookup("/ds").unwrap().ufs.as_ref().unwrap().synced, 50);
        assert_eq!(ns.path_of(a.id).as_deref(), Some("/ds/a.bin"));

        // A worker caches the first block; then the object changes: the block is freed.
        let w = match ns
            .apply(&Command::RegisterWorker {
                hostname: "w".into(),
                rpc_port: 1,
                web_port: 2,
            })
            .result
            .unwrap()
        {
            Outcome::Worker(w) => w,
            other => panic!("{other:?}"),
        };
        ok(
            &mut ns,
            Command::CacheBlocks {
                worker: w,
                blocks: vec![a.blocks[0].id],
            },
        );
        assert_eq!(ns.lookup("/ds/a.bin").unwrap().blocks[0].worker, Some(w));
        // A local file being written is left alone; b.bin and sub vanished from the storage.
        ok(
            &mut ns,
            crate::master::namespace::tests::create("/ds/local"),
        );
        let freed = sync(&mut ns, "/ds", vec![file("a.bin", 12, "e3")], 2, true);
        assert_eq!(freed, vec![(a.blocks[0].id, w)]);
        let a2 = ns.lookup("/ds/a.bin").unwrap().clone();
        assert_eq!(a2.size, 12);
        assert_eq!(a2.id, a.id);
        assert!(a2
            .blocks
            .iter()
            .all(|b| !a.blocks.iter().any(|o| o.id == b.id)));
        assert!(ns.lookup("/ds/b.bin").is_err());
        assert!(ns.lookup("/ds/sub").is_err());
        assert!(ns.lookup("/ds/local").is_ok());
        // Unchanged: nothing freed, same blocks.
        let again = sync(&mut ns, "/ds", vec![file("a.bin", 12, "e3")], 3, true);
        assert!(again.is_empty());
        assert_eq!(ns.lookup("/ds/a.bin").unwrap().blocks, a2.blocks.clone());
        // The image keeps the stamps.
        let back = Namespace::from_image(ns.image());
        assert_eq!(
            back.lookup("/ds/a.bin").unwrap().ufs,
            ns.lookup("/ds/a.bin").unwrap().ufs
        );
    }

    #[test]
    fn writable_mounts_make_writable_entries_and_stale_marks_subtrees() {
        let mut ns = ufs_ns(false);
        sync(&mut ns, "/ds", vec![dir("d"), file("f", 1, "")], 1, true);
        assert_eq!(ns.lookup("/ds/d").unwrap().mode, 0o777);
        assert_eq!(ns.lookup("/ds/f").unwrap().mode, 0o666);
        sync(&mut ns, "/ds/d", vec![file("g", 1, "")], 1, true);
        assert_eq!(ns.lookup("/ds/d").unwrap().ufs.as_ref().unwrap().synced, 50);
        ok(&mut ns, Command::UfsStale { path: "/ds".into() });
        assert_eq!(ns.lookup("/ds/d").unwrap().ufs.as_ref().unwrap().synced, 0);
        assert_eq!(ns.lookup("/ds").unwrap().ufs.as_ref().unwrap().synced, 0);
        // A file replaced by a directory of the same name.
        sync(&mut ns, "/ds", vec![dir("f"), dir("d")], 2, true);
        assert_eq!(ns.lookup("/ds/f").unwrap().kind, InodeKind::Dir);
        assert!(ns.lookup("/ds/d/g").is_ok());
    }
}
