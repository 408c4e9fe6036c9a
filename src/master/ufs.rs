//! Under storage as the leader sees it: keeps the namespace's view of `s3://` and
//! `local://` mounts fresh (a directory is listed again when its freshness interval
//! passed; one listing per directory at a time, one Raft command per page), writes files
//! through to the storage before their writer is answered, and makes moves and deletes
//! in the storage before the namespace. Clients never talk to the storage: they have no
//! credentials; the leader and the workers do.

use super::namespace::{Command, InodeKind, MountRecord, UfsItem};
use super::state::{now_ms, MasterState};
use crate::client::{Client, FileReader};
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use crate::ufs::{Ufs, UfsEntry, UfsError, UfsSpec};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Bytes read from the workers per write to the storage when writing a file through.
const PERSIST_CHUNK: usize = 8 << 20;

/// How the freshness of one request is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// A path's status: its parent directory must be fresh.
    Parent,
    /// A directory's listing: the directory itself; `force` lists it again whatever the
    /// interval (DataLoad's metadata refresh).
    Dir {
        /// List again now.
        force: bool,
    },
}

/// A mount's connection and its freshness interval.
#[derive(Clone)]
struct Handle {
    spec_json: String,
    ufs: Ufs,
    interval_ms: i64,
}

/// The leader's side of under storage.
pub struct UfsLayer {
    handles: Mutex<HashMap<String, Handle>>,
    listing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    default_interval_ms: i64,
    block_size: u64,
    generation: AtomicU64,
    client: Option<Client>,
}

impl std::fmt::Debug for UfsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UfsLayer")
            .field("default_interval_ms", &self.default_interval_ms)
            .field("block_size", &self.block_size)
            .finish_non_exhaustive()
    }
}

/// A storage error as the file system error a client sees, naming the mount.
pub fn fs_error(source: &str, e: UfsError) -> FsError {
    match e {
        UfsError::NotFound(m) => FsError::NotFound(m),
        UfsError::Unreachable(m) => FsError::Unavailable(format!("{source}: {m}")),
        other => FsError::Io(other.to_string()),
    }
}

/// Whether a directory last listed at `synced` must be listed again for a request that
/// started at `started`. Directories on the way (`on_the_way`) only need one listing.
fn needs_listing(
    synced: i64,
    interval_ms: i64,
    on_the_way: bool,
    force: bool,
    started: i64,
    now: i64,
) -> bool {
    if synced == 0 {
        return true;
    }
    if on_the_way {
        return interval_ms > 0 && now - synced >= interval_ms;
    }
    if force || interval_ms == 0 {
        // A listing that began after this request did not miss anything it must see.
        return synced < started;
    }
    interval_ms > 0 && now - synced >= interval_ms
}

impl UfsLayer {
    /// `default_interval_ms` applies to mounts that set none; `client` reads files from
    /// the workers when they are written through (none: writes to the storage fail).
    pub fn new(default_interval_ms: i64, block_size: u64, client: Option<Client>) -> UfsLayer {
        UfsLayer {
            handles: Mutex::new(HashMap::new()),
            listing: Mutex::new(HashMap::new()),
            default_interval_ms,
            block_size: block_size.max(1 << 20),
            generation: AtomicU64::new((now_ms().max(0) as u64) << 10),
            client,
        }
    }

    fn handle(&self, m: &MountRecord) -> Result<Handle, FsError> {
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = handles.get(&m.path).filter(|h| h.spec_json == m.ufs) {
            return Ok(h.clone());
        }
        let spec: UfsSpec = serde_json::from_str(&m.ufs).map_err(|e| {
            FsError::Io(format!(
                "mount {}: its stored spec does not parse: {e}",
                m.path
            ))
        })?;
        let ufs = Ufs::open(&spec).map_err(|e| fs_error(&m.source, e))?;
        let h = Handle {
            spec_json: m.ufs.clone(),
            ufs,
            interval_ms: spec.sync_interval_ms.unwrap_or(self.default_interval_ms),
        };
        handles.insert(m.path.clone(), h.clone());
        Ok(h)
    }

    /// The under-storage mount holding `path`, its connection and `path` relative to it.
    fn mount_of(
        &self,
        st: &MasterState,
        path: &str,
    ) -> Result<Option<(MountRecord, Handle, String)>, FsError> {
        let found = st
            .ns
            .read()
            .ufs_mount_of(path)
            .map(|(m, rel)| (m.clone(), rel));
        match found {
            None => Ok(None),
            Some((m, rel)) => {
                let h = self.handle(&m)?;
                Ok(Some((m, h, rel)))
            }
        }
    }

    /// Makes the namespace's view of `path` fresh enough to answer a request.
    pub async fn fresh(&self, st: &MasterState, path: &str, what: Fresh) -> Result<(), FsError> {
        let found = st
            .ns
            .read()
            .ufs_mount_of(path)
            .map(|(m, rel)| (m.clone(), rel));
        let Some((mount, rel)) = found else {
            return Ok(());
        };
        if !st.is_leader() {
            // A follower answers NotLeader next; only the leader lists.
            return Ok(());
        }
        let handle = self.handle(&mount)?;
        let started = now_ms();
        let names: Vec<&str> = rel.split('/').filter(|n| !n.is_empty()).collect();
        let (depth, force) = match what {
            Fresh::Parent if names.is_empty() => return Ok(()),
            Fresh::Parent => (names.len() - 1, false),
            Fresh::Dir { force } => (names.len(), force),
        };
        for d in 0..=depth {
            let dir_rel = names[..d].join("/");
            let dir_path = if d == 0 {
                mount.path.clone()
            } else {
                format!("{}/{}", mount.path, dir_rel)
            };
            let on_the_way = d < depth;
            let synced = || -> Option<i64> {
                let ns = st.ns.read();
                match ns.lookup(&dir_path) {
                    Ok(i) if i.kind == InodeKind::Dir => {
                        Some(i.ufs.as_ref().map_or(0, |u| u.synced))
                    }
                    _ => None,
                }
            };
            // Missing or not a directory: the request itself answers ENOENT / ENOTDIR.
            let Some(at) = synced() else { return Ok(()) };
            if !needs_listing(at, handle.interval_ms, on_the_way, force, started, now_ms()) {
                continue;
            }
            let lock = {
                let mut listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
                listing.entry(dir_path.clone()).or_default().clone()
            };
            let _one_at_a_time = lock.lock().await;
            let Some(at) = synced() else { return Ok(()) };
            if !needs_listing(at, handle.interval_ms, on_the_way, force, started, now_ms()) {
                continue;
            }
            self.list_into(st, &mount, &handle.ufs, &dir_path, &dir_rel)
                .await?;
        }
        Ok(())
    }

    /// Lists one directory of the storage into the namespace, a page per command.
    async fn list_into(
        &self,
        st: &MasterState,
        mount: &MountRecord,
        ufs: &Ufs,
        dir_path: &str,
        dir_rel: &str,
    ) -> Result<(), FsError> {
        let started = now_ms();
        let gen = self.generation.fetch_add(1, Ordering::Relaxed);
        let mut lister = match ufs.lister(dir_rel).await {
            Ok(l) => Some(l),
            Err(UfsError::NotFound(_)) => None,
            Err(e) => return Err(fs_error(&mount.source, e)),
        };
        let mut count = 0usize;
        loop {
            let page = match lister.as_mut() {
                Some(l) => match l.next_page().await {
                    Ok(p) => p,
                    Err(UfsError::NotFound(_)) => Vec::new(),
                    Err(e) => return Err(fs_error(&mount.source, e)),
                },
                None => Vec::new(),
            };
            let last = page.is_empty();
            count += page.len();
            st.command(Command::UfsSync {
                dir: dir_path.to_string(),
                items: items(page),
                gen,
                last,
                block_size: self.block_size,
                now: started,
            })
            .await?;
            if last {
                break;
            }
        }
        info!(
            dir = dir_path,
            entries = count,
            ms = now_ms() - started,
            "listed under storage"
        );
        Ok(())
    }

    /// Refuses a change under a read-only under-storage mount; the mount, its
    /// connection and the relative path otherwise (`None`: not under storage).
    pub fn writable(
        &self,
        st: &MasterState,
        path: &str,
    ) -> Result<Option<(MountRecord, Ufs, String)>, FsError> {
        match self.mount_of(st, path)? {
            None => Ok(None),
            Some((m, _, _)) if m.read_only => Err(FsError::ReadOnly(format!(
                "{path} (mount {} of {} is read-only)",
                m.path, m.source
            ))),
            Some((m, h, rel)) => Ok(Some((m, h.ufs, rel))),
        }
    }

    /// Refuses what under storage cannot hold (links, special files, attributes).
    pub fn refuse_under_storage(
        &self,
        st: &MasterState,
        path: &str,
        what: &str,
    ) -> Result<(), FsError> {
        match self.writable(st, path)? {
            None => Ok(()),
            Some((m, _, _)) => Err(FsError::NotSupported(format!(
                "{path}: {what} cannot be kept in {} (mount {})",
                m.source, m.path
            ))),
        }
    }

    /// Writes the file described by `blocks` to `rel` in the storage: the object is
    /// complete there when this returns Ok; on an error nothing new is visible.
    pub async fn persist(
        &self,
        mount: &MountRecord,
        ufs: &Ufs,
        rel: &str,
        blocks: pb::FileBlocks,
    ) -> Result<UfsEntry, FsError> {
        let client = self.client.clone().ok_or_else(|| {
            FsError::Io(format!(
                "{}: this master cannot read blocks to write them to {}",
                mount.path, mount.source
            ))
        })?;
        let len = blocks.status.as_ref().map_or(0, |s| s.size);
        let started = now_ms();
        let mut reader = FileReader::new(client, blocks)?;
        let mut writer = ufs
            .writer(rel)
            .await
            .map_err(|e| fs_error(&mount.source, e))?;
        let mut buf = vec![0u8; PERSIST_CHUNK];
        loop {
            let mut filled = 0;
            let read = loop {
                match reader.read(&mut buf[filled..]).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            let step = match read {
                Ok(()) if filled == 0 => break,
                Ok(()) => writer
                    .write(bytes::Bytes::copy_from_slice(&buf[..filled]))
                    .await
                    .map_err(|e| fs_error(&mount.source, e)),
                Err(e) => Err(e),
            };
            if let Err(e) = step {
                if let Err(abort) = writer.abort().await {
                    warn!(path = rel, error = %abort, "cannot abort the upload");
                }
                return Err(FsError::Io(format!(
                    "{}/{rel}: writing to {} failed: {}",
                    mount.path, mount.source, e
                )));
            }
        }
        let entry = writer.finish().await.map_err(|e| {
            FsError::Io(format!(
                "{}/{rel}: writing to {} failed: {e}",
                mount.path, mount.source
            ))
        })?;
        info!(
            path = rel,
            mount = %mount.path,
            bytes = len,
            ms = now_ms() - started,
            "written through to under storage"
        );
        Ok(entry)
    }

    /// Copies a file or, recursively, a directory inside one mount's storage, then
    /// deletes the source (a move; the storage has no rename).
    pub async fn move_in_storage(
        &self,
        mount: &MountRecord,
        ufs: &Ufs,
        from: &str,
        to: &str,
        is_dir: bool,
    ) -> Result<Option<UfsEntry>, FsError> {
        let err = |e| fs_error(&mount.source, e);
        if !is_dir {
            let entry = ufs.copy(from, to).await.map_err(err)?;
            ufs.delete(from).await.map_err(err)?;
            return Ok(Some(entry));
        }
        ufs.create_dir(to).await.map_err(err)?;
        let mut dirs = vec![String::new()];
        while let Some(sub) = dirs.pop() {
            let src_dir = join_rel(from, &sub);
            let mut lister = ufs.lister(&src_dir).await.map_err(err)?;
            loop {
                let page = lister.next_page().await.map_err(err)?;
                if page.is_empty() {
                    break;
                }
                for e in page {
                    let rel = join_rel(&sub, &e.name);
                    if e.is_dir {
                        ufs.create_dir(&join_rel(to, &rel)).await.map_err(err)?;
                        dirs.push(rel);
                    } else {
                        ufs.copy(&join_rel(from, &rel), &join_rel(to, &rel))
                            .await
                            .map_err(err)?;
                    }
                }
            }
        }
        ufs.delete_dir_all(from).await.map_err(err)?;
        Ok(None)
    }
}

fn join_rel(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{name}"),
    }
}

/// A page of a listing as command items; a name that is both a file and a prefix shows
/// as the directory.
fn items(page: Vec<UfsEntry>) -> Vec<UfsItem> {
    let dirs: std::collections::HashSet<String> = page
        .iter()
        .filter(|e| e.is_dir)
        .map(|e| e.name.clone())
        .collect();
    page.into_iter()
        .filter(|e| e.is_dir || !dirs.contains(&e.name))
        .map(|e| UfsItem {
            name: e.name,
            dir: e.is_dir,
            size: e.size,
            mtime: e.mtime_ms,
            etag: e.etag,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_rules() {
        // Never listed: always.
        assert!(needs_listing(0, -1, true, false, 10, 10));
        // Load once: never again, unless forced on the directory itself.
        assert!(!needs_listing(5, -1, false, false, 10, 100));
        assert!(needs_listing(5, -1, false, true, 10, 100));
        // Every time: the directory itself unless a listing began after the request.
        assert!(needs_listing(5, 0, false, false, 10, 10));
        assert!(!needs_listing(12, 0, false, false, 10, 13));
        assert!(!needs_listing(5, 0, true, false, 10, 10));
        // An interval: once it passed, on the way too.
        assert!(!needs_listing(100, 1000, false, false, 150, 150));
        assert!(needs_listing(100, 1000, false, false, 1200, 1200));
        assert!(needs_listing(100, 1000, true, false, 1200, 1200));
    }

    #[test]
    fn a_name_that_is_a_file_and_a_prefix_is_a_directory() {
        let e = |name: &str, is_dir| UfsEntry {
            name: name.into(),
            is_dir,
            size: 1,
            mtime_ms: 0,
            etag: String::new(),
        };
        let got = items(vec![e("a", false), e("a", true), e("b", false)]);
        assert_eq!(
            got.iter()
                .map(|i| (i.name.as_str(), i.dir))
                .collect::<Vec<_>>(),
            vec![("a", true), ("b", false)]
        );
        assert_eq!(join_rel("", "x"), "x");
        assert_eq!(join_rel("a", "x"), "a/x");
        assert_eq!(join_rel("a", ""), "a");
    }
}
