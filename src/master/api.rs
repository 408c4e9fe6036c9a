//! The master's gRPC handlers for clients and workers: decode the request, check or
//! write through the shared state, encode the answer. Writes go through the Raft log;
//! reads are linearizable. A master that is not the leader answers `NotLeader` with the
//! leader's journal address, which serves this API too.

use super::convert::{block_ranges, file_status, join, mount_record, mount_table, special_kind};
use super::namespace::{self, Command, InodeKind, Outcome, SetAttrs, XattrMode};
use super::report::{build_report, own_view, peer_views};
use super::state::{now_ms, MasterState};
use super::ufs::Fresh;
use super::workers::WorkerReport;
use crate::fs_error::FsError;
use crate::rpc::call::CallId;
use crate::rpc::pb::master as pb;
use crate::rpc::pb::master::master_service_server::MasterService;
use crate::rpc::status::to_status;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// The normalised path of a request, which may be empty when it names its inode by id.
fn target_path(path: &str, id: u64) -> Result<String, FsError> {
    if id != 0 && path.is_empty() {
        Ok(String::new())
    } else {
        namespace::normalize(path)
    }
}

/// The live worker that fetches an uncached under-storage block: the highest
/// rendezvous hash of block and worker, so every client and every leader picks the
/// same one while the live set stays the same.
fn fetcher_for(block: u64, live: &[u32]) -> Option<u32> {
    let mix = |mut x: u64| {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    live.iter()
        .copied()
        .max_by_key(|w| mix(block ^ mix(u64::from(*w))))
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct MasterApi {
    state: Arc<MasterState>,
}

impl MasterApi {
    /// Serves `state`.
    pub fn new(state: Arc<MasterState>) -> Self {
        MasterApi { state }
    }

    async fn timed<T>(
        &self,
        method: &str,
        fut: impl std::future::Future<Output = Result<T, FsError>>,
    ) -> Result<Response<T>, Status> {
        let start = Instant::now();
        let result = fut.await;
        self.state
            .rpc_metrics
            .observe(method, result.is_ok(), start.elapsed());
        result.map(Response::new).map_err(to_status)
    }

    fn node_status(&self, path: &str, outcome: Outcome) -> Result<pb::FileStatus, FsError> {
        match outcome {
            Outcome::Node(inode) => Ok(file_status(path, &inode, &self.state.ns.read())),
            other => Err(FsError::Io(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn stat(&self, path: &str, id: u64) -> Result<pb::FileStatus, FsError> {
        let path = target_path(path, id)?;
        if id == 0 {
            self.fresh(&path, Fresh::Parent).await?;
        }
        self.state.linearizable().await?;
        let ns = self.state.ns.read();
        let inode = ns.target(&path, id)?;
        Ok(file_status(&path, inode, &ns))
    }

    async fn add_block(
        &self,
        req: pb::AddBlockRequest,
        call: Option<CallId>,
    ) -> Result<pb::AddBlockResponse, FsError> {
        let outcome = match self.repeated(call, &[]).await? {
            Some(first) => first?,
            None => {
                self.state.require_leader()?;
                let worker = self
                    .state
                    .workers
                    .pick_near(req.near_worker)
                    .ok_or_else(|| {
                        FsError::Unavailable("no live worker can take a block".into())
                    })?;
                self.state
                    .command_once(
                        call,
                        Command::AddBlock {
                            file_id: req.file_id,
                            worker,
                        },
                    )
                    .await?
            }
        };
        let block_id = match outcome {
            Outcome::Block(id) => id,
            other => return Err(FsError::Io(format!("unexpected outcome {other:?}"))),
        };
        let ns = self.state.ns.read();
        // The worker the block went to (a repeated call's was picked the first time).
        let worker = ns
            .inode(req.file_id)
            .and_then(|inode| {
                let pending = inode.pending.iter().find(|(b, _)| *b == block_id);
                pending.map(|(_, w)| *w).or_else(|| {
                    inode
                        .blocks
                        .iter()
                        .find(|b| b.id == block_id)
                        .and_then(|b| b.worker)
                })
            })
            .ok_or_else(|| {
                FsError::NotFound(format!(
                    "block {block_id} of inode {}: the file no longer holds it",
                    req.file_id
                ))
            })?;
        let record = ns
            .worker(worker)
            .ok_or_else(|| FsError::Unavailable(format!("worker {worker} is not registered")))?;
        Ok(pb::AddBlockResponse {
            block_id,
            worker: Some(pb::WorkerAddress {
                id: worker,
                hostname: record.hostname.clone(),
                rpc_port: u32::from(record.rpc_port),
            }),
            block_token: self.state.block_tokens.write(block_id),
        })
    }

    /// The first result of `call` when it is a repeat that this master applied already,
    /// for a handler to answer before its own steps (which may fail or act twice on a
    /// repeat). Under an under-storage mount (`paths`), where those steps change the
    /// storage, only after this master applied everything committed.
    async fn repeated(
        &self,
        call: Option<CallId>,
        paths: &[&str],
    ) -> Result<Option<Result<Outcome, FsError>>, FsError> {
        if call.is_none() {
            return Ok(None);
        }
        let under_storage = {
            let ns = self.state.ns.read();
            paths
                .iter()
                .any(|p| !p.is_empty() && ns.ufs_mount_of(p).is_some())
        };
        if under_storage {
            self.state.first_result_applied(call).await
        } else {
            Ok(self.state.first_result(call))
        }
    }

    /// Lists under storage first when `path` is under an under-storage mount and its
    /// view is older than the mount's freshness interval (leader only).
    async fn fresh(&self, path: &str, what: Fresh) -> Result<(), FsError> {
        if path.is_empty() {
            return Ok(());
        }
        self.state.ufs.fresh(&self.state, path, what).await
    }

    async fn block_locations(&self, path: &str, id: u64) -> Result<pb::FileBlocks, FsError> {
        let path = target_path(path, id)?;
        if id == 0 {
            self.fresh(&path, Fresh::Parent).await?;
        }
        self.state.linearizable().await?;
        let ns = self.state.ns.read();
        let inode = ns.target(&path, id)?;
        if inode.kind == InodeKind::Dir {
            return Err(FsError::IsADirectory(path));
        }
        Ok(self.file_blocks(&ns, inode, &path, &inode.blocks))
    }

    /// `blocks` of `inode` located, with its status as seen at `path` ("": the inode
    /// was named by id; its first name then locates under-storage blocks).
    fn file_blocks(
        &self,
        ns: &namespace::Namespace,
        inode: &namespace::Inode,
        path: &str,
        blocks: &[namespace::Block],
    ) -> pb::FileBlocks {
        let name = if path.is_empty() {
            ns.path_of(inode.id)
        } else {
            Some(path.to_string())
        };
        pb::FileBlocks {
            status: Some(file_status(path, inode, ns)),
            blocks: self.located(ns, inode, name.as_deref(), blocks),
        }
    }

    /// Where to read each of `blocks` of `inode` (at `path`): its
    /// worker when live; a block of an under-storage file on no live worker goes to the
    /// worker that fetches it (the same for every client: one fetch per block). Each
    /// carries a read token for itself (and its under-storage source).
    fn located(
        &self,
        ns: &namespace::Namespace,
        inode: &namespace::Inode,
        path: Option<&str>,
        blocks: &[namespace::Block],
    ) -> Vec<pb::LocatedBlock> {
        let source = match (&inode.ufs, path.and_then(|p| ns.ufs_mount_of(p))) {
            (Some(meta), Some((m, rel))) => Some((m.path.clone(), rel, meta.etag.clone())),
            _ => None,
        };
        let live: Vec<u32> = if source.is_some() {
            self.state
                .workers
                .live()
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        } else {
            Vec::new()
        };
        let address = |id: u32| {
            ns.worker(id).map(|w| pb::WorkerAddress {
                id: w.id,
                hostname: w.hostname.clone(),
                rpc_port: u32::from(w.rpc_port),
            })
        };
        blocks
            .iter()
            .map(|b| {
                let (block, offset, len, holder) = (b.id, b.offset, b.len, b.worker);
                let ufs =
                    source
                        .as_ref()
                        .map(|(mount, rel, etag)| crate::rpc::pb::worker::UfsSource {
                            mount: mount.clone(),
                            path: rel.clone(),
                            etag: etag.clone(),
                            offset,
                            len,
                            file_len: inode.size,
                        });
                let live_holder = holder.filter(|w| self.state.workers.is_live(*w));
                let (worker, unavailable) = match (live_holder, holder, &ufs) {
                    (Some(w), _, _) => (address(w), String::new()),
                    (None, _, Some(_)) => match fetcher_for(block, &live) {
                        Some(w) => (address(w), String::new()),
                        None => (
                            None,
                            format!("block {block} is not cached and no live worker can fetch it"),
                        ),
                    },
                    (None, Some(w), None) => (
                        None,
                        match ns.worker(w) {
                            Some(r) => format!(
                                "block {block} is only on worker {} ({}:{}), which is lost",
                                r.id, r.hostname, r.rpc_port
                            ),
                            None => format!("block {block} is on an unknown worker {w}"),
                        },
                    ),
                    (None, None, None) => (
                        None,
                        format!(
                            "block {block} is no longer cached (evicted or its worker was removed)"
                        ),
                    ),
                };
                pb::LocatedBlock {
                    id: block,
                    offset,
                    len,
                    block_token: self.state.block_tokens.read(block, ufs.as_ref()),
                    worker,
                    unavailable,
                    ufs,
                }
            })
            .collect()
    }

    /// A move: inside one under-storage mount the storage moves first (copy, then
    /// delete); between a mount and elsewhere it is EXDEV (the caller copies).
    async fn rename_paths(
        &self,
        src: String,
        dst: String,
        no_replace: bool,
        call: Option<CallId>,
    ) -> Result<(), FsError> {
        if let Some(first) = self.repeated(call, &[&src, &dst]).await? {
            return first.map(|_| ());
        }
        self.fresh(&src, Fresh::Parent).await?;
        self.fresh(&dst, Fresh::Parent).await?;
        let from = self.state.ufs.writable(&self.state, &src)?;
        let to = self.state.ufs.writable(&self.state, &dst)?;
        let mut moved = None;
        match (&from, &to) {
            (None, None) => {}
            (Some((m, ufs, src_rel)), Some((other, _, dst_rel))) if m.path == other.path => {
                if src_rel.is_empty() || dst_rel.is_empty() {
                    return Err(FsError::NotPermitted(format!(
                        "{src} -> {dst}: the directory of mount {} cannot move",
                        m.path
                    )));
                }
                let (id, is_dir, stored) = {
                    let ns = self.state.ns.read();
                    let inode = ns.lookup(&src)?;
                    let is_dir = inode.kind == InodeKind::Dir;
                    // Refuse here what the namespace would refuse, before the storage moves.
                    if let Ok(existing) = ns.lookup(&dst) {
                        if existing.id == inode.id {
                            return Ok(());
                        }
                        let existing_dir = existing.kind == InodeKind::Dir;
                        if no_replace {
                            return Err(FsError::AlreadyExists(dst));
                        }
                        match (is_dir, existing_dir) {
                            (true, false) => return Err(FsError::NotADirectory(dst)),
                            (false, true) => return Err(FsError::IsADirectory(dst)),
                            (true, true) if ns.child_count(existing.id) > 0 => {
                                return Err(FsError::NotEmpty(dst))
                            }
                            _ => {}
                        }
                    }
                    (inode.id, is_dir, inode.ufs.is_some())
                };
                if is_dir || stored {
                    let entry = self
                        .state
                        .ufs
                        .move_in_storage(m, ufs, src_rel, dst_rel, is_dir)
                        .await?;
                    moved = Some((id, is_dir, entry));
                }
            }
            _ => {
                return Err(FsError::CrossDevice(format!(
                    "{src} -> {dst} crosses an under-storage mount"
                )))
            }
        }
        self.state
            .command_once(
                call,
                Command::Rename {
                    src,
                    dst: dst.clone(),
                    no_replace,
                    now: now_ms(),
                },
            )
            .await?;
        match moved {
            Some((id, false, Some(entry))) => {
                self.stamp_persisted(id, entry).await?;
            }
            Some((_, true, _)) => {
                self.state.command(Command::UfsStale { path: dst }).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Under a writable under-storage mount, deletes in the storage what the namespace
    /// is about to delete (a directory must be empty there too unless `recursive`).
    async fn delete_in_storage(&self, path: &str, recursive: bool) -> Result<(), FsError> {
        self.fresh(path, Fresh::Parent).await?;
        let Some((m, ufs, rel)) = self.state.ufs.writable(&self.state, path)? else {
            return Ok(());
        };
        if rel.is_empty() {
            return Err(FsError::NotPermitted(format!(
                "{path} is the directory of mount {}: change the Dataset's mounts instead",
                m.source
            )));
        }
        let (is_dir, stored) = {
            let ns = self.state.ns.read();
            let inode = ns.lookup(path)?;
            (inode.kind == InodeKind::Dir, inode.ufs.is_some())
        };
        let err = |e| super::ufs::fs_error(&m.source, e);
        if is_dir {
            if !recursive {
                self.fresh(path, Fresh::Dir { force: false }).await?;
                let ns = self.state.ns.read();
                let dir = ns.lookup(path)?;
                if ns.child_count(dir.id) > 0 {
                    return Err(FsError::NotEmpty(path.to_string()));
                }
            }
            ufs.delete_dir_all(&rel).await.map_err(err)?;
        } else if stored {
            ufs.delete(&rel).await.map_err(err)?;
        }
        Ok(())
    }

    /// The writable under-storage mount a file (by id) is under, if any.
    fn storage_of_file(
        &self,
        file_id: u64,
    ) -> Result<Option<(namespace::MountRecord, crate::ufs::Ufs, String)>, FsError> {
        let path = self.state.ns.read().path_of(file_id);
        match path {
            Some(p) => self.state.ufs.writable(&self.state, &p),
            None => Ok(None),
        }
    }

    /// A file as its writer completes it: `ranges` of its blocks, at `length`.
    fn completed_blocks(
        &self,
        file_id: u64,
        length: u64,
        ranges: &[namespace::BlockRange],
    ) -> Result<pb::FileBlocks, FsError> {
        let ns = self.state.ns.read();
        let inode = ns
            .inode(file_id)
            .ok_or_else(|| FsError::NotFound(format!("inode {file_id}")))?;
        let mut holders: std::collections::HashMap<u64, Option<u32>> =
            inode.blocks.iter().map(|b| (b.id, b.worker)).collect();
        holders.extend(inode.pending.iter().map(|(b, w)| (*b, Some(*w))));
        let blocks: Vec<namespace::Block> = ranges
            .iter()
            .map(|r| namespace::Block {
                id: r.id,
                offset: r.offset,
                len: r.len,
                worker: holders.get(&r.id).copied().flatten(),
            })
            .collect();
        let path = ns.path_of(file_id).unwrap_or_default();
        let mut located = self.file_blocks(&ns, inode, &path, &blocks);
        if let Some(status) = located.status.as_mut() {
            status.size = length;
        }
        Ok(located)
    }

    /// Writes a complete file of the namespace to its storage and stamps the version.
    async fn write_through(
        &self,
        m: &namespace::MountRecord,
        ufs: &crate::ufs::Ufs,
        rel: &str,
        file_id: u64,
    ) -> Result<(), FsError> {
        let located = {
            let ns = self.state.ns.read();
            let inode = ns
                .inode(file_id)
                .ok_or_else(|| FsError::NotFound(format!("inode {file_id}")))?;
            let path = ns.path_of(file_id).unwrap_or_default();
            self.file_blocks(&ns, inode, &path, &inode.blocks)
        };
        let entry = self.state.ufs.persist(m, ufs, rel, located).await?;
        self.stamp_persisted(file_id, entry).await?;
        Ok(())
    }

    /// Records the version of a file the storage now holds.
    async fn stamp_persisted(
        &self,
        file_id: u64,
        entry: crate::ufs::UfsEntry,
    ) -> Result<Outcome, FsError> {
        self.state
            .command(Command::UfsPersisted {
                file_id,
                etag: entry.etag,
                mtime: entry.mtime_ms,
                size: entry.size,
            })
            .await
    }

    fn report_of(&self, req: &pb::HeartbeatRequest) -> WorkerReport {
        WorkerReport {
            seen: Instant::now(),
            tiers: req.tiers.clone(),
            blocks: req.blocks,
            bytes_read: req.bytes_read,
            bytes_written: req.bytes_written,
            reads_hit: req.reads_hit,
            reads_miss: req.reads_miss,
            bytes_hit: req.bytes_hit,
            bytes_fetched: req.bytes_fetched,
        }
    }
}

#[tonic::async_trait]
impl MasterService for MasterApi {
    async fn mkdir(
        &self,
        req: Request<pb::MkdirRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("mkdir", async {
            let call = call?;
            let path = namespace::normalize(&r.path)?;
            let mode = r.mode.unwrap_or(0o755);
            if let Some(first) = self.repeated(call, &[&path]).await? {
                return self.node_status(&path, first?);
            }
            self.fresh(&path, Fresh::Parent).await?;
            if let Some((m, ufs, rel)) = self.state.ufs.writable(&self.state, &path)? {
                if self.state.ns.read().lookup(&path).is_err() {
                    ufs.create_dir(&rel)
                        .await
                        .map_err(|e| super::ufs::fs_error(&m.source, e))?;
                }
            }
            let out = self
                .state
                .command_once(
                    call,
                    Command::Mkdir {
                        path: path.clone(),
                        mode,
                        uid: r.uid,
                        gid: r.gid,
                        parents: r.parents,
                        now: now_ms(),
                    },
                )
                .await?;
            self.node_status(&path, out)
        })
        .await
    }

    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("create", async {
            let call = call?;
            let path = namespace::normalize(&r.path)?;
            let mode = r.mode.unwrap_or(0o644);
            if let Some(first) = self.repeated(call, &[&path]).await? {
                return self.node_status(&path, first?);
            }
            self.fresh(&path, Fresh::Parent).await?;
            self.state.ufs.writable(&self.state, &path)?;
            let out = self
                .state
                .command_once(
                    call,
                    Command::Create {
                        path: path.clone(),
                        mode,
                        uid: r.uid,
                        gid: r.gid,
                        overwrite: r.overwrite,
                        parents: r.create_parents,
                        now: now_ms(),
                    },
                )
                .await?;
            self.node_status(&path, out)
        })
        .await
    }

    async fn get_status(
        &self,
        req: Request<pb::PathRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let r = req.into_inner();
        self.timed("get_status", self.stat(&r.path, r.id)).await
    }

    async fn list_status(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = req.into_inner();
        self.timed("list_status", async {
            let path = namespace::normalize(&r.path)?;
            if r.start_after.is_empty() {
                self.fresh(&path, Fresh::Dir { force: r.refresh }).await?;
            }
            self.state.linearizable().await?;
            let limit = if r.limit == 0 {
                1000
            } else {
                r.limit.min(10_000)
            } as usize;
            let ns = self.state.ns.read();
            let (entries, has_more) = ns.list(&path, &r.start_after, limit)?;
            Ok(pb::ListResponse {
                entries: entries
                    .iter()
                    .map(|(name, i)| file_status(&join(&path, name), i, &ns))
                    .collect(),
                has_more,
            })
        })
        .await
    }

    async fn rename(&self, req: Request<pb::RenameRequest>) -> Result<Response<pb::Empty>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("rename", async {
            let call = call?;
            let (src, dst) = (namespace::normalize(&r.src)?, namespace::normalize(&r.dst)?);
            self.rename_paths(src, dst, r.no_replace, call).await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::Empty>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("delete", async {
            let call = call?;
            let path = namespace::normalize(&r.path)?;
            if let Some(first) = self.repeated(call, &[&path]).await? {
                return first.map(|_| pb::Empty {});
            }
            self.delete_in_storage(&path, r.recursive).await?;
            self.state
                .command_once(
                    call,
                    Command::Delete {
                        path,
                        recursive: r.recursive,
                        now: now_ms(),
                        keep_open: r.keep_open,
                    },
                )
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn set_attr(
        &self,
        req: Request<pb::SetAttrRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("set_attr", async {
            let call = call?;
            let path = target_path(&r.path, r.id)?;
            let named = if r.id == 0 {
                path.clone()
            } else {
                self.state.ns.read().path_of(r.id).unwrap_or_default()
            };
            if let Some(first) = self.repeated(call, &[&named]).await? {
                return self.node_status(&path, first?);
            }
            let storage = if named.is_empty() {
                None
            } else {
                self.state.ufs.writable(&self.state, &named)?
            };
            let attrs = SetAttrs {
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                atime: r.atime_ms,
                mtime: r.mtime_ms,
                size: r.size,
            };
            let resized = attrs.size.is_some();
            let out = self
                .state
                .command_once(
                    call,
                    Command::SetAttr {
                        path: path.clone(),
                        attrs,
                        now: now_ms(),
                        id: r.id,
                    },
                )
                .await?;
            if let (true, Some((m, ufs, rel)), Outcome::Node(inode)) = (resized, &storage, &out) {
                // A truncated file of the storage is written back at its new length.
                if inode.complete && inode.kind == InodeKind::File {
                    self.write_through(m, ufs, rel, inode.id).await?;
                }
            }
            self.node_status(&path, out)
        })
        .await
    }

    async fn symlink(
        &self,
        req: Request<pb::SymlinkRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("symlink", async {
            let call = call?;
            let link = namespace::normalize(&r.link)?;
            self.state
                .ufs
                .refuse_under_storage(&self.state, &link, "a symbolic link")?;
            let out = self
                .state
                .command_once(
                    call,
                    Command::Symlink {
                        target: r.target,
                        link: link.clone(),
                        uid: r.uid,
                        gid: r.gid,
                        now: now_ms(),
                    },
                )
                .await?;
            self.node_status(&link, out)
        })
        .await
    }

    async fn mknod(
        &self,
        req: Request<pb::MknodRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("mknod", async {
            let call = call?;
            let path = namespace::normalize(&r.path)?;
            self.state
                .ufs
                .refuse_under_storage(&self.state, &path, "a special file")?;
            let out = self
                .state
                .command_once(
                    call,
                    Command::Mknod {
                        path: path.clone(),
                        kind: special_kind(r.kind)?,
                        mode: r.mode,
                        rdev: r.rdev,
                        uid: r.uid,
                        gid: r.gid,
                        now: now_ms(),
                    },
                )
                .await?;
            self.node_status(&path, out)
        })
        .await
    }

    async fn link(
        &self,
        req: Request<pb::LinkRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("link", async {
            let call = call?;
            let (src, dst) = (namespace::normalize(&r.src)?, namespace::normalize(&r.dst)?);
            for p in [&src, &dst] {
                self.state
                    .ufs
                    .refuse_under_storage(&self.state, p, "a hard link")?;
            }
            let out = self
                .state
                .command_once(
                    call,
                    Command::Link {
                        src,
                        dst: dst.clone(),
                        now: now_ms(),
                    },
                )
                .await?;
            self.node_status(&dst, out)
        })
        .await
    }

    async fn release_orphan(
        &self,
        req: Request<pb::InodeRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("release_orphan", async {
            let call = call?;
            self.state
                .command_once(call, Command::ReleaseOrphan { id: r.id })
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn set_xattr(
        &self,
        req: Request<pb::SetXattrRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("set_xattr", async {
            let call = call?;
            let mode = match r.flags {
                0 => XattrMode::Any,
                1 => XattrMode::Create,
                2 => XattrMode::Replace,
                f => return Err(FsError::InvalidArgument(format!("setxattr flags {f}"))),
            };
            let path = namespace::normalize(&r.path)?;
            self.state
                .ufs
                .refuse_under_storage(&self.state, &path, "an extended attribute")?;
            self.state
                .command_once(
                    call,
                    Command::SetXattr {
                        path,
                        name: r.name,
                        value: r.value.to_vec(),
                        mode,
                        now: now_ms(),
                    },
                )
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn get_xattr(
        &self,
        req: Request<pb::XattrRequest>,
    ) -> Result<Response<pb::XattrValue>, Status> {
        let r = req.into_inner();
        self.timed("get_xattr", async {
            let path = namespace::normalize(&r.path)?;
            namespace::check_xattr_name(&r.name)?;
            self.state.linearizable().await?;
            let ns = self.state.ns.read();
            let value = ns
                .lookup(&path)?
                .xattrs
                .get(&r.name)
                .cloned()
                .ok_or_else(|| FsError::NoAttribute(format!("{path}: attribute {}", r.name)))?;
            Ok(pb::XattrValue {
                value: value.into(),
            })
        })
        .await
    }

    async fn list_xattr(
        &self,
        req: Request<pb::PathRequest>,
    ) -> Result<Response<pb::XattrNames>, Status> {
        let r = req.into_inner();
        self.timed("list_xattr", async {
            let path = namespace::normalize(&r.path)?;
            self.state.linearizable().await?;
            let ns = self.state.ns.read();
            let names = ns.lookup(&path)?.xattrs.keys().cloned().collect();
            Ok(pb::XattrNames { names })
        })
        .await
    }

    async fn remove_xattr(
        &self,
        req: Request<pb::XattrRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("remove_xattr", async {
            let call = call?;
            let path = namespace::normalize(&r.path)?;
            self.state
                .ufs
                .refuse_under_storage(&self.state, &path, "an extended attribute")?;
            self.state
                .command_once(
                    call,
                    Command::RemoveXattr {
                        path,
                        name: r.name,
                        now: now_ms(),
                    },
                )
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn add_block(
        &self,
        req: Request<pb::AddBlockRequest>,
    ) -> Result<Response<pb::AddBlockResponse>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("add_block", async { self.add_block(r, call?).await })
            .await
    }

    async fn complete_file(
        &self,
        req: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("complete_file", async {
            let call = call?;
            let named = self.state.ns.read().path_of(r.file_id).unwrap_or_default();
            if let Some(first) = self.repeated(call, &[&named]).await? {
                return self.node_status(&r.path, first?);
            }
            let blocks = block_ranges(&r.blocks)?;
            // Under storage: written through before the writer hears success.
            let persisted = match self.storage_of_file(r.file_id)? {
                Some((m, ufs, rel)) => {
                    let located = self.completed_blocks(r.file_id, r.length, &blocks)?;
                    Some(self.state.ufs.persist(&m, &ufs, &rel, located).await?)
                }
                None => None,
            };
            let mut out = self
                .state
                .command_once(
                    call,
                    Command::Complete {
                        file_id: r.file_id,
                        length: r.length,
                        blocks,
                        now: now_ms(),
                    },
                )
                .await?;
            if let Some(entry) = persisted {
                out = self.stamp_persisted(r.file_id, entry).await?;
            }
            self.node_status(&r.path, out)
        })
        .await
    }

    async fn get_block_locations(
        &self,
        req: Request<pb::PathRequest>,
    ) -> Result<Response<pb::FileBlocks>, Status> {
        let r = req.into_inner();
        self.timed("get_block_locations", self.block_locations(&r.path, r.id))
            .await
    }

    async fn stat_fs(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::StatFsResponse>, Status> {
        self.timed("stat_fs", async {
            self.state.linearizable().await?;
            let (capacity, used) = super::report::usage(&self.state);
            let (files, dirs) = self.state.ns.read().counts();
            Ok(pb::StatFsResponse {
                capacity,
                used,
                available: capacity.saturating_sub(used),
                files,
                dirs,
                block_size: self.state.block_size,
            })
        })
        .await
    }

    async fn register_worker(
        &self,
        req: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let r = req.into_inner();
        self.timed("register_worker", async {
            let call = call?;
            let port = |p: u32, what: &str| {
                u16::try_from(p).map_err(|_| FsError::InvalidArgument(format!("{what} {p}")))
            };
            let (rpc_port, web_port) =
                (port(r.rpc_port, "rpc port")?, port(r.web_port, "web port")?);
            let id = match self
                .state
                .command_once(
                    call,
                    Command::RegisterWorker {
                        hostname: r.hostname.clone(),
                        rpc_port,
                        web_port,
                    },
                )
                .await?
            {
                Outcome::Worker(id) => id,
                other => return Err(FsError::Io(format!("unexpected outcome {other:?}"))),
            };
            let heartbeat = pb::HeartbeatRequest {
                worker_id: id,
                tiers: r.tiers,
                blocks: r.block_ids.len() as u64,
                ..Default::default()
            };
            self.state.workers.heartbeat(id, self.report_of(&heartbeat));
            let ns = self.state.ns.read();
            let delete_blocks = r
                .block_ids
                .into_iter()
                .filter(|b| !ns.knows_block(*b))
                .collect();
            tracing::info!(worker = id, host = %r.hostname, rpc_port, "worker registered");
            Ok(pb::RegisterWorkerResponse {
                worker_id: id,
                delete_blocks,
            })
        })
        .await
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = req.into_inner();
        self.timed("heartbeat", async {
            self.state.require_leader()?;
            if self.state.ns.read().worker(r.worker_id).is_none() {
                return Ok(pb::HeartbeatResponse {
                    delete_blocks: Vec::new(),
                    register_again: true,
                });
            }
            let was_live = self.state.workers.is_live(r.worker_id);
            self.state
                .workers
                .heartbeat(r.worker_id, self.report_of(&r));
            if !was_live {
                tracing::info!(worker = r.worker_id, "worker is live");
            }
            if !r.cached.is_empty() {
                self.state
                    .command(Command::CacheBlocks {
                        worker: r.worker_id,
                        blocks: r.cached.clone(),
                    })
                    .await?;
            }
            if !r.evicted.is_empty() {
                self.state
                    .command(Command::RemoveReplicas {
                        worker: r.worker_id,
                        blocks: r.evicted.clone(),
                    })
                    .await?;
            }
            Ok(pb::HeartbeatResponse {
                delete_blocks: self.state.workers.take_deletes(r.worker_id),
                register_again: false,
            })
        })
        .await
    }

    async fn report(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterReport>, Status> {
        self.timed("report", async {
            self.state.linearizable().await?;
            let mut report = build_report(&self.state);
            // A walk over every file: done for this RPC (report-summary, `report`), not
            // for /metrics and /api/overview, which share build_report.
            let (file_bytes, cached_bytes) = self
                .state
                .ns
                .read()
                .cached_bytes(|w| self.state.workers.is_live(w));
            report.file_bytes = file_bytes;
            report.cached_bytes = cached_bytes;
            peer_views(&self.state, &mut report.masters).await;
            Ok(report)
        })
        .await
    }

    async fn node_status(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::MasterInfo>, Status> {
        Ok(Response::new(own_view(&self.state)))
    }

    async fn set_mounts(
        &self,
        req: Request<pb::MountTable>,
    ) -> Result<Response<pb::MountTable>, Status> {
        let call = CallId::from_metadata(req.metadata());
        let wanted = req
            .into_inner()
            .mounts
            .into_iter()
            .map(mount_record)
            .collect();
        self.timed("set_mounts", async {
            match self
                .state
                .command_once(
                    call?,
                    Command::SetMounts {
                        mounts: wanted,
                        now: now_ms(),
                    },
                )
                .await?
            {
                Outcome::Mounts(table) => Ok(mount_table(table.iter())),
                other => Err(FsError::Io(format!("unexpected outcome {other:?}"))),
            }
        })
        .await
    }

    async fn list_mounts(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::MountTable>, Status> {
        self.timed("list_mounts", async {
            self.state.linearizable().await?;
            Ok(mount_table(self.state.ns.read().mounts()))
        })
        .await
    }
}
