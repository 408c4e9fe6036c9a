//! The master's client and worker API. Writes go through the Raft log (`client_write`);
//! reads are linearizable (`ensure_linearizable`, then the in-memory namespace). A master
//! that is not the leader answers `NotLeader` with the leader's journal address, which
//! serves this API too.

use super::namespace::{
    self, Applied, BlockRange, Command, Inode, InodeKind, MountRecord, Namespace, Outcome, SetAttrs,
};
use super::state_machine::SharedNamespace;
use super::types::{Raft, RaftError};
use super::workers::{WorkerRegistry, WorkerReport};
use crate::fs_error::FsError;
use crate::metrics::RpcMetrics;
use crate::rpc::pb::master as pb;
use crate::rpc::pb::master::master_service_server::MasterService;
use crate::rpc::status::to_status;
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader};
use openraft::BasicNode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::{Request, Response, Status};

/// The file ranges of a completed file's blocks: explicit offsets when the client sent
/// them (all or none), else one block after the other from offset 0.
fn block_ranges(blocks: &[pb::BlockInfo]) -> Result<Vec<BlockRange>, FsError> {
    let explicit = blocks.iter().filter(|b| b.offset.is_some()).count();
    if explicit != 0 && explicit != blocks.len() {
        return Err(FsError::InvalidArgument(
            "either every block of a completed file has an offset or none has".into(),
        ));
    }
    let mut next = 0;
    Ok(blocks
        .iter()
        .map(|b| {
            let offset = b.offset.unwrap_or(next);
            next = offset + b.len;
            BlockRange {
                id: b.id,
                offset,
                len: b.len,
            }
        })
        .collect())
}

/// Everything the master's services share.
pub struct MasterState {
    /// This node's Raft id.
    pub node_id: u64,
    /// This node's journal address.
    pub address: String,
    /// The Raft instance.
    pub raft: Raft,
    /// The namespace (read side).
    pub ns: Arc<SharedNamespace>,
    /// Live workers.
    pub workers: WorkerRegistry,
    /// Cluster name.
    pub cluster_id: String,
    /// Block size clients use (for statfs).
    pub block_size: u64,
    /// RPC metrics.
    pub rpc_metrics: RpcMetrics,
    /// Metrics registry of this master.
    pub registry: prometheus::Registry,
    /// Coalesces concurrent writes into shared log entries.
    pub batcher: Batcher,
    /// Lets the leader serve reads without a Raft round.
    pub lease: Arc<super::lease::ReadLease>,
}

/// A write waiting for its batch.
type Pending = (
    Command,
    tokio::sync::oneshot::Sender<Result<Applied, FsError>>,
);

/// Coalesces concurrent commands into one Raft entry. openraft 0.9 waits for each
/// append's fsync before the next, so one command per entry would cap writes at one
/// fsync each; a batch shares it. A few batches are in flight, so the next one appends
/// while the previous is applied.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: tokio::sync::mpsc::Sender<Pending>,
}

/// Most commands in one log entry.
const MAX_BATCH: usize = 512;
/// Batches submitted to Raft at once.
const BATCHES_IN_FLIGHT: usize = 4;

impl Batcher {
    /// Starts the batching task for `raft`.
    pub fn start(raft: Raft) -> Batcher {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(4096);
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
            while let Some(first) = rx.recv().await {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let raft = raft.clone();
                tokio::spawn(async move {
                    let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
                    match write_entry(&raft, commands).await {
                        Ok(results) => {
                            for (reply, applied) in replies.into_iter().zip(results) {
                                let _ = reply.send(Ok(applied));
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                    drop(permit);
                });
            }
        });
        Batcher { tx }
    }

    /// Submits a command and waits for its result.
    pub async fn write(&self, command: Command) -> Result<Applied, FsError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send((command, tx))
            .await
            .map_err(|_| FsError::Unavailable("this master is stopping".into()))?;
        rx.await
            .map_err(|_| FsError::Unavailable("this master is stopping".into()))?
    }
}

/// Appends one entry with `commands` and waits until it is applied here.
async fn write_entry(raft: &Raft, commands: Vec<Command>) -> Result<Vec<Applied>, FsError> {
    let n = commands.len();
    match raft.client_write(commands).await {
        Ok(resp) if resp.data.len() == n => Ok(resp.data),
        Ok(resp) => Err(FsError::Io(format!(
            "{} results for {n} commands",
            resp.data.len()
        ))),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(not_leader(f)),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(FsError::Unavailable(e.to_string()))
        }
        Err(RaftError::Fatal(f)) => Err(FsError::Unavailable(format!("this master stopped: {f}"))),
    }
}

impl std::fmt::Debug for MasterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterState")
            .field("node_id", &self.node_id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn not_leader(f: ForwardToLeader<u64, BasicNode>) -> FsError {
    FsError::NotLeader {
        leader: f.leader_node.map(|n| n.addr),
    }
}

impl MasterState {
    /// Appends a command to the log (batched with concurrent ones) and waits until it
    /// is applied here.
    pub async fn write(&self, command: Command) -> Result<Applied, FsError> {
        self.batcher.write(command).await
    }

    /// Applies a command and returns its outcome; blocks it freed are queued for deletion.
    pub async fn command(&self, command: Command) -> Result<Outcome, FsError> {
        let applied = self.write(command).await?;
        self.workers.queue_deletes(&applied.freed);
        applied.result
    }

    /// Waits until this master may serve a linearizable read.
    pub async fn linearizable(&self) -> Result<(), FsError> {
        if self.lease.holds(&self.raft) {
            return Ok(());
        }
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(not_leader(f)),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(FsError::Unavailable(format!("no quorum of masters: {e}")))
            }
            Err(RaftError::Fatal(f)) => {
                Err(FsError::Unavailable(format!("this master stopped: {f}")))
            }
        }
    }

    /// Whether this node leads now (from metrics; no network round).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// The leader's journal address, when known.
    pub fn leader_address(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    fn require_leader(&self) -> Result<(), FsError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(FsError::NotLeader {
                leader: self.leader_address(),
            })
        }
    }
}

/// Converts an inode to its wire status.
pub fn file_status(path: &str, inode: &Inode, ns: &Namespace) -> pb::FileStatus {
    let kind = match inode.kind {
        InodeKind::File => pb::FileKind::File,
        InodeKind::Dir => pb::FileKind::Directory,
        InodeKind::Symlink => pb::FileKind::Symlink,
    };
    let children = if inode.kind == InodeKind::Dir {
        ns.child_count(inode.id)
    } else {
        0
    };
    pb::FileStatus {
        id: inode.id,
        path: path.to_string(),
        name: inode.name.clone(),
        kind: kind as i32,
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        size: inode.size,
        atime_ms: inode.atime,
        mtime_ms: inode.mtime,
        ctime_ms: inode.ctime,
        nlink: if inode.kind == InodeKind::Dir { 2 } else { 1 },
        symlink_target: inode.target.clone(),
        complete: inode.complete,
        children,
        parent: inode.parent,
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
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

    async fn stat(&self, path: &str) -> Result<pb::FileStatus, FsError> {
        let path = namespace::normalize(path)?;
        self.state.linearizable().await?;
        let ns = self.state.ns.read();
        let inode = ns.lookup(&path)?;
        Ok(file_status(&path, inode, &ns))
    }

    async fn add_block(&self, req: pb::AddBlockRequest) -> Result<pb::AddBlockResponse, FsError> {
        self.state.require_leader()?;
        let worker = self
            .state
            .workers
            .pick_for_write()
            .ok_or_else(|| FsError::Unavailable("no live worker can take a block".into()))?;
        let block_id = match self
            .state
            .command(Command::AddBlock {
                file_id: req.file_id,
                worker,
            })
            .await?
        {
            Outcome::Block(id) => id,
            other => return Err(FsError::Io(format!("unexpected outcome {other:?}"))),
        };
        let ns = self.state.ns.read();
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
        })
    }

    async fn block_locations(&self, path: &str) -> Result<pb::FileBlocks, FsError> {
        let path = namespace::normalize(path)?;
        self.state.linearizable().await?;
        let ns = self.state.ns.read();
        let inode = ns.lookup(&path)?;
        if inode.kind == InodeKind::Dir {
            return Err(FsError::IsADirectory(path));
        }
        let blocks = inode
            .blocks
            .iter()
            .map(|b| {
                let (worker, unavailable) = match b.worker.and_then(|w| ns.worker(w)) {
                    Some(w) if self.state.workers.is_live(w.id) => (
                        Some(pb::WorkerAddress {
                            id: w.id,
                            hostname: w.hostname.clone(),
                            rpc_port: u32::from(w.rpc_port),
                        }),
                        String::new(),
                    ),
                    Some(w) => (
                        None,
                        format!(
                            "block {} is only on worker {} ({}:{}), which is lost",
                            b.id, w.id, w.hostname, w.rpc_port
                        ),
                    ),
                    None => (
                        None,
                        format!(
                            "block {} is no longer cached (evicted or its worker was removed)",
                            b.id
                        ),
                    ),
                };
                pb::LocatedBlock {
                    id: b.id,
                    offset: b.offset,
                    len: b.len,
                    worker,
                    unavailable,
                }
            })
            .collect();
        Ok(pb::FileBlocks {
            status: Some(file_status(&path, inode, &ns)),
            blocks,
        })
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
        }
    }

    /// Capacity and usage summed over live workers.
    pub fn usage(&self) -> (u64, u64) {
        self.state
            .workers
            .live()
            .iter()
            .fold((0, 0), |(c, u), (_, r)| (c + r.capacity(), u + r.used()))
    }

    /// The cluster report, as this master sees it.
    pub fn report(&self) -> pb::ClusterReport {
        build_report(&self.state)
    }
}

/// The cluster report: masters (from Raft metrics), workers (from heartbeats), totals.
pub fn build_report(state: &MasterState) -> pb::ClusterReport {
    let m = state.raft.metrics().borrow().clone();
    let leader = m.current_leader;
    let replication = m.replication.clone().unwrap_or_default();
    let membership = m.membership_config.membership().clone();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let masters = membership
        .nodes()
        .map(|(id, node)| {
            let (last_applied, reachable) = if *id == state.node_id {
                (m.last_applied.map_or(0, |l| l.index), true)
            } else {
                match replication.get(id) {
                    Some(Some(matched)) => (matched.index, true),
                    _ => (0, false),
                }
            };
            let role = if Some(*id) == leader {
                "leader"
            } else if voters.contains(id) {
                "follower"
            } else {
                "learner"
            };
            pb::MasterInfo {
                id: *id,
                address: node.addr.clone(),
                role: role.to_string(),
                term: m.current_term,
                last_applied,
                reachable,
            }
        })
        .collect();
    let ns = state.ns.read();
    let (files, dirs) = ns.counts();
    let mut report = pb::ClusterReport {
        cluster_id: state.cluster_id.clone(),
        leader_id: leader.unwrap_or(0),
        leader_address: leader
            .and_then(|l| membership.get_node(&l))
            .map(|n| n.addr.clone())
            .unwrap_or_default(),
        term: m.current_term,
        last_applied: m.last_applied.map_or(0, |l| l.index),
        masters,
        files,
        dirs,
        ..Default::default()
    };
    for w in ns.workers() {
        let last = state.workers.report(w.id);
        let live = state.workers.is_live(w.id);
        let mut info = pb::WorkerInfo {
            id: w.id,
            hostname: w.hostname.clone(),
            rpc_port: u32::from(w.rpc_port),
            web_port: u32::from(w.web_port),
            live,
            ..Default::default()
        };
        if let Some(r) = last {
            info.capacity = r.capacity();
            info.used = r.used();
            info.blocks = r.blocks;
            info.last_heartbeat_ms = r.seen.elapsed().as_millis() as u64;
            info.tiers = r.tiers.clone();
            if live {
                report.capacity += info.capacity;
                report.used += info.used;
            }
            report.bytes_read += r.bytes_read;
            report.bytes_written += r.bytes_written;
            report.reads_hit += r.reads_hit;
            report.reads_miss += r.reads_miss;
        }
        if live {
            report.live_workers += 1;
        } else {
            report.lost_workers += 1;
        }
        report.workers.push(info);
    }
    report
}

#[tonic::async_trait]
impl MasterService for MasterApi {
    async fn mkdir(
        &self,
        req: Request<pb::MkdirRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let r = req.into_inner();
        self.timed("mkdir", async {
            let path = namespace::normalize(&r.path)?;
            let mode = if r.mode == 0 { 0o755 } else { r.mode };
            let out = self
                .state
                .command(Command::Mkdir {
                    path: path.clone(),
                    mode,
                    uid: r.uid,
                    gid: r.gid,
                    parents: r.parents,
                    now: now_ms(),
                })
                .await?;
            self.node_status(&path, out)
        })
        .await
    }

    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let r = req.into_inner();
        self.timed("create", async {
            let path = namespace::normalize(&r.path)?;
            let mode = if r.mode == 0 { 0o644 } else { r.mode };
            let out = self
                .state
                .command(Command::Create {
                    path: path.clone(),
                    mode,
                    uid: r.uid,
                    gid: r.gid,
                    overwrite: r.overwrite,
                    parents: r.create_parents,
                    now: now_ms(),
                })
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
        self.timed("get_status", self.stat(&r.path)).await
    }

    async fn list_status(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = req.into_inner();
        self.timed("list_status", async {
            let path = namespace::normalize(&r.path)?;
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
                    .map(|i| file_status(&join(&path, &i.name), i, &ns))
                    .collect(),
                has_more,
            })
        })
        .await
    }

    async fn rename(&self, req: Request<pb::RenameRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.timed("rename", async {
            let (src, dst) = (namespace::normalize(&r.src)?, namespace::normalize(&r.dst)?);
            self.state
                .command(Command::Rename {
                    src,
                    dst,
                    no_replace: r.no_replace,
                    now: now_ms(),
                })
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        self.timed("delete", async {
            let path = namespace::normalize(&r.path)?;
            self.state
                .command(Command::Delete {
                    path,
                    recursive: r.recursive,
                    now: now_ms(),
                })
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn set_attr(
        &self,
        req: Request<pb::SetAttrRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let r = req.into_inner();
        self.timed("set_attr", async {
            let path = namespace::normalize(&r.path)?;
            let attrs = SetAttrs {
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                atime: r.atime_ms,
                mtime: r.mtime_ms,
                size: r.size,
            };
            let out = self
                .state
                .command(Command::SetAttr {
                    path: path.clone(),
                    attrs,
                    now: now_ms(),
                })
                .await?;
            self.node_status(&path, out)
        })
        .await
    }

    async fn symlink(
        &self,
        req: Request<pb::SymlinkRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let r = req.into_inner();
        self.timed("symlink", async {
            let link = namespace::normalize(&r.link)?;
            let out = self
                .state
                .command(Command::Symlink {
                    target: r.target,
                    link: link.clone(),
                    uid: r.uid,
                    gid: r.gid,
                    now: now_ms(),
                })
                .await?;
            self.node_status(&link, out)
        })
        .await
    }

    async fn add_block(
        &self,
        req: Request<pb::AddBlockRequest>,
    ) -> Result<Response<pb::AddBlockResponse>, Status> {
        let r = req.into_inner();
        self.timed("add_block", self.add_block(r)).await
    }

    async fn complete_file(
        &self,
        req: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::FileStatus>, Status> {
        let r = req.into_inner();
        self.timed("complete_file", async {
            let blocks = block_ranges(&r.blocks)?;
            let out = self
                .state
                .command(Command::Complete {
                    file_id: r.file_id,
                    length: r.length,
                    blocks,
                    now: now_ms(),
                })
                .await?;
            self.node_status(&r.path, out)
        })
        .await
    }

    async fn get_block_locations(
        &self,
        req: Request<pb::PathRequest>,
    ) -> Result<Response<pb::FileBlocks>, Status> {
        let r = req.into_inner();
        self.timed("get_block_locations", self.block_locations(&r.path))
            .await
    }

    async fn stat_fs(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::StatFsResponse>, Status> {
        self.timed("stat_fs", async {
            self.state.linearizable().await?;
            let (capacity, used) = self.usage();
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
        let r = req.into_inner();
        self.timed("register_worker", async {
            let port = |p: u32, what: &str| {
                u16::try_from(p).map_err(|_| FsError::InvalidArgument(format!("{what} {p}")))
            };
            let (rpc_port, web_port) =
                (port(r.rpc_port, "rpc port")?, port(r.web_port, "web port")?);
            let id = match self
                .state
                .command(Command::RegisterWorker {
                    hostname: r.hostname.clone(),
                    rpc_port,
                    web_port,
                })
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
            let mut report = self.report();
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
        let wanted = req
            .into_inner()
            .mounts
            .into_iter()
            .map(mount_record)
            .collect();
        self.timed("set_mounts", async {
            match self
                .state
                .command(Command::SetMounts {
                    mounts: wanted,
                    now: now_ms(),
                })
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

fn mount_record(m: pb::MountEntry) -> MountRecord {
    MountRecord {
        path: m.path,
        source: m.source,
        target: m.target,
        read_only: m.read_only,
    }
}

fn mount_table<'a>(mounts: impl Iterator<Item = &'a MountRecord>) -> pb::MountTable {
    pb::MountTable {
        mounts: mounts
            .map(|m| pb::MountEntry {
                path: m.path.clone(),
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
            })
            .collect(),
    }
}

/// This master as it sees itself.
pub fn own_view(state: &MasterState) -> pb::MasterInfo {
    let m = state.raft.metrics().borrow().clone();
    pb::MasterInfo {
        id: state.node_id,
        address: state.address.clone(),
        role: super::server::role_name(m.state).to_string(),
        term: m.current_term,
        last_applied: m.last_applied.map_or(0, |l| l.index),
        reachable: true,
    }
}

/// Asks the master at `addr` for its own view; `None` when it does not answer in `timeout`.
pub async fn node_status(addr: &str, timeout: Duration) -> Option<pb::MasterInfo> {
    use crate::rpc::pb::master::master_service_client::MasterServiceClient;
    let channel = crate::rpc::channel(addr, timeout, Some(timeout)).ok()?;
    MasterServiceClient::new(channel)
        .node_status(pb::Empty {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Replaces the leader's idea of each peer with the peer's own answer (its role, term and
/// applied index); a peer that does not answer within half a second is unreachable.
pub async fn peer_views(state: &MasterState, masters: &mut [pb::MasterInfo]) {
    let asks = masters.iter().map(|info| {
        let (id, addr) = (info.id, info.address.clone());
        async move {
            if id == state.node_id {
                return (id, Some(own_view(state)));
            }
            (id, node_status(&addr, Duration::from_millis(500)).await)
        }
    });
    let answers: std::collections::HashMap<u64, Option<pb::MasterInfo>> =
        futures::future::join_all(asks).await.into_iter().collect();
    for info in masters.iter_mut() {
        match answers.get(&info.id) {
            Some(Some(seen)) => {
                info.role = seen.role.clone();
                info.term = seen.term;
                info.last_applied = seen.last_applied;
                info.reachable = true;
            }
            _ => info.reachable = false,
        }
    }
}

/// How long a worker may stay silent before it is lost, at least three heartbeats.
pub fn lost_after(configured: Duration) -> Duration {
    configured.max(Duration::from_millis(300))
}
