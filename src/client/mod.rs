//! The client library the CLI, the FUSE client and the execution entries use: file system
//! metadata through the masters, file data streamed to and from workers.
//!
//! - [`master`]: the leader-following master connection.
//! - [`writer`]: [`FileWriter`], writing a file block by block.
//! - [`reader`]: [`FileReader`], sequential reads with prefetch and ranged reads.
//! - [`short_circuit`]: block files of a worker on this node, read and written directly.
//! - [`block_upload`]: one new block that rewrites part of an existing one (copied by
//!   its worker, then patched in place).

pub mod block_upload;
pub mod master;
pub mod reader;
pub mod short_circuit;
pub mod writer;

pub use block_upload::BlockUpload;
pub use reader::FileReader;
pub use writer::{FileWriter, WrittenBlock};

use crate::config::ClusterConfig;
use crate::fs_error::FsError;
use crate::rpc::auth::{AuthChannel, Token};
use crate::rpc::pb::master as pb;
use crate::rpc::pb::worker::worker_service_client::WorkerServiceClient;
use crate::rpc::status::from_status;
use crate::rpc::tls::{ClientTls, TlsSettings};
use crate::rpc::{host_port, MAX_MESSAGE};
use master::{MasterClient, MasterClientConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes per data message between clients and workers.
pub const CHUNK_SIZE: usize = 1 << 20;

/// A connection to a Curvine cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    master: MasterClient,
    workers: Mutex<HashMap<String, WorkerServiceClient<AuthChannel>>>,
    block_size: u64,
    connect_timeout: Duration,
    token: Option<Token>,
    tls: Option<ClientTls>,
    short_circuit: short_circuit::ShortCircuit,
    /// How far before a block's end a sequential gRPC reader opens the next block's
    /// stream; `None`: it does not (`client.enable_read_ahead = false`).
    read_ahead: Option<u64>,
}

/// The read-ahead distance when `client.read_ahead_len` is 0: one HTTP/2 stream window,
/// what a worker sends ahead of a reader on one stream.
pub const DEFAULT_READ_AHEAD: u64 = crate::rpc::STREAM_WINDOW as u64;

/// A directory entry or file status.
pub type FileStatus = pb::FileStatus;

/// Permission bits and owner of a new file, directory or symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Permission bits.
    pub mode: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// Root's, with `mode`.
    pub fn root(mode: u32) -> Owner {
        Owner {
            mode,
            uid: 0,
            gid: 0,
        }
    }
}

impl Client {
    /// A client of the cluster in `config` (`client.master_addrs`, timeouts, block size,
    /// the token from `security.token_file`, TLS from `security.tls_ca_file`).
    pub fn new(config: &ClusterConfig) -> Result<Client, FsError> {
        let token = Token::from_config(config).map_err(FsError::InvalidArgument)?;
        Client::with_token(config, token)
    }

    /// A client of the cluster in `config` sending `token` (read by the caller).
    pub fn with_token(config: &ClusterConfig, token: Option<Token>) -> Result<Client, FsError> {
        let tls = TlsSettings::from_config(config)
            .map_err(FsError::InvalidArgument)?
            .client;
        let addrs = config.master_endpoints();
        let c = &config.client;
        let master = MasterClient::new(MasterClientConfig {
            addrs,
            rpc_timeout: Duration::from_millis(c.rpc_timeout_ms.max(100)),
            connect_timeout: Duration::from_millis(c.conn_timeout_ms.max(50)),
            retry_for: Duration::from_millis(c.rpc_retry_max_duration_ms),
            token: token.clone(),
            tls: tls.clone(),
        })?;
        let block_size = c.block_size.0.max(CHUNK_SIZE as u64);
        let socket_dir = &config.worker.domain_socket_path;
        let short_circuit = short_circuit::ShortCircuit::new(
            (c.short_circuit && !socket_dir.is_empty()).then(|| socket_dir.into()),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                master,
                workers: Mutex::new(HashMap::new()),
                block_size,
                connect_timeout: Duration::from_millis(c.conn_timeout_ms.max(50)),
                token,
                tls,
                short_circuit,
                read_ahead: c.enable_read_ahead.then_some(match c.read_ahead_len.0 {
                    0 => DEFAULT_READ_AHEAD,
                    len => len,
                }),
            }),
        })
    }

    /// Short-circuit I/O with the workers on this node (and its counters).
    pub fn short_circuit(&self) -> &short_circuit::ShortCircuit {
        &self.inner.short_circuit
    }

    /// How far before a block's end a sequential reader over gRPC opens the next
    /// block's stream (`None`: read-ahead is off).
    pub fn read_ahead(&self) -> Option<u64> {
        self.inner.read_ahead
    }

    /// The master connection.
    pub fn master(&self) -> &MasterClient {
        &self.inner.master
    }

    /// The cluster token requests carry (none: the cluster is open).
    pub fn token(&self) -> Option<&Token> {
        self.inner.token.as_ref()
    }

    /// Block size of new files.
    pub fn block_size(&self) -> u64 {
        self.inner.block_size
    }

    pub(crate) fn worker(
        &self,
        addr: &pb::WorkerAddress,
    ) -> Result<WorkerServiceClient<AuthChannel>, FsError> {
        let key = host_port(&addr.hostname, addr.rpc_port as u16);
        let mut workers = self.inner.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = workers.get(&key) {
            return Ok(c.clone());
        }
        let channel = crate::rpc::channel(
            &key,
            self.inner.connect_timeout,
            None,
            self.inner.tls.as_ref(),
        )?;
        let client = WorkerServiceClient::new(crate::rpc::auth::attach(channel, &self.inner.token))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        workers.insert(key, client.clone());
        Ok(client)
    }

    /// Creates a directory (with its parents when `parents`).
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<FileStatus, FsError> {
        self.mkdir_as(path, parents, Owner::root(0o755)).await
    }

    /// Creates a directory with the given mode and owner.
    pub async fn mkdir_as(
        &self,
        path: &str,
        parents: bool,
        owner: Owner,
    ) -> Result<FileStatus, FsError> {
        let req = pb::MkdirRequest {
            path: path.into(),
            mode: Some(owner.mode),
            parents,
            uid: owner.uid,
            gid: owner.gid,
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.mkdir(r).await }
            })
            .await
    }

    /// The status of a path.
    pub async fn stat(&self, path: &str) -> Result<FileStatus, FsError> {
        self.stat_target(path, 0).await
    }

    /// The status of the inode with id `id` (an open file, wherever its names went).
    pub async fn stat_id(&self, id: u64) -> Result<FileStatus, FsError> {
        self.stat_target("", id).await
    }

    async fn stat_target(&self, path: &str, id: u64) -> Result<FileStatus, FsError> {
        let req = pb::PathRequest {
            path: path.into(),
            id,
        };
        self.master()
            .call(|mut c| {
                let r = req.clone();
                async move { c.get_status(r).await }
            })
            .await
    }

    /// One page of a directory listing.
    pub async fn list_page(
        &self,
        path: &str,
        start_after: &str,
        limit: u32,
    ) -> Result<(Vec<FileStatus>, bool), FsError> {
        self.list_page_with(path, start_after, limit, false).await
    }

    /// One page of a listing; `refresh` lists under storage again first (first page).
    async fn list_page_with(
        &self,
        path: &str,
        start_after: &str,
        limit: u32,
        refresh: bool,
    ) -> Result<(Vec<FileStatus>, bool), FsError> {
        let req = pb::ListRequest {
            path: path.into(),
            start_after: start_after.into(),
            limit,
            refresh,
        };
        let resp = self
            .master()
            .call(|mut c| {
                let r = req.clone();
                async move { c.list_status(r).await }
            })
            .await?;
        Ok((resp.entries, resp.has_more))
    }

    /// The whole listing of a directory, fetched page by page.
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>, FsError> {
        self.list_with(path, false).await
    }

    /// The whole listing; `refresh`: under storage is listed again first, whatever
    /// the mount's freshness interval.
    pub async fn list_with(&self, path: &str, refresh: bool) -> Result<Vec<FileStatus>, FsError> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let first = after.is_empty();
            let (page, more) = self
                .list_page_with(path, &after, 1000, refresh && first)
                .await?;
            if let Some(last) = page.last() {
                after = last.name.clone();
            }
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }

    /// Renames `src` to `dst` (POSIX semantics; `no_replace` refuses an existing target).
    pub async fn rename(&self, src: &str, dst: &str, no_replace: bool) -> Result<(), FsError> {
        let req = pb::RenameRequest {
            src: src.into(),
            dst: dst.into(),
            no_replace,
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.rename(r).await }
            })
            .await?;
        Ok(())
    }

    /// Deletes a file or an empty directory; a non-empty directory only with `recursive`.
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<(), FsError> {
        self.delete_with(path, recursive, false).await
    }

    /// Removes the name of a file this client has open: when it was the file's last
    /// name, its data stays until [`Client::release_orphan`].
    pub async fn delete_open(&self, path: &str) -> Result<(), FsError> {
        self.delete_with(path, false, true).await
    }

    /// The last close of a file unlinked while open: its data goes.
    pub async fn release_orphan(&self, id: u64) -> Result<(), FsError> {
        let req = pb::InodeRequest { id };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req);
                async move { c.release_orphan(r).await }
            })
            .await?;
        Ok(())
    }

    async fn delete_with(
        &self,
        path: &str,
        recursive: bool,
        keep_open: bool,
    ) -> Result<(), FsError> {
        let req = pb::DeleteRequest {
            path: path.into(),
            recursive,
            keep_open,
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.delete(r).await }
            })
            .await?;
        Ok(())
    }

    /// Changes attributes; `size` truncates or extends.
    pub async fn set_attr(&self, req: pb::SetAttrRequest) -> Result<FileStatus, FsError> {
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.set_attr(r).await }
            })
            .await
    }

    /// Creates a symlink `link` pointing at `target`.
    pub async fn symlink(&self, target: &str, link: &str) -> Result<FileStatus, FsError> {
        self.symlink_as(target, link, Owner::root(0o777)).await
    }

    /// Makes a FIFO, socket or device node (`kind`) owned by `owner`.
    pub async fn mknod_as(
        &self,
        path: &str,
        kind: pb::FileKind,
        rdev: u32,
        owner: Owner,
    ) -> Result<FileStatus, FsError> {
        let req = pb::MknodRequest {
            path: path.into(),
            kind: kind as i32,
            mode: owner.mode,
            rdev,
            uid: owner.uid,
            gid: owner.gid,
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.mknod(r).await }
            })
            .await
    }

    /// Gives the file at `src` the new name `dst` (a hard link); its status after.
    pub async fn link(&self, src: &str, dst: &str) -> Result<FileStatus, FsError> {
        let req = pb::LinkRequest {
            src: src.into(),
            dst: dst.into(),
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.link(r).await }
            })
            .await
    }

    /// Sets the extended attribute `name` of `path`; `flags` as setxattr(2) (1: create
    /// only, 2: replace only).
    pub async fn set_xattr(
        &self,
        path: &str,
        name: &str,
        value: &[u8],
        flags: u32,
    ) -> Result<(), FsError> {
        let req = pb::SetXattrRequest {
            path: path.into(),
            name: name.into(),
            value: bytes::Bytes::copy_from_slice(value),
            flags,
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.set_xattr(r).await }
            })
            .await
            .map(|_| ())
    }

    /// The value of the extended attribute `name` of `path`.
    pub async fn get_xattr(&self, path: &str, name: &str) -> Result<Vec<u8>, FsError> {
        let req = pb::XattrRequest {
            path: path.into(),
            name: name.into(),
        };
        self.master()
            .call(|mut c| {
                let r = req.clone();
                async move { c.get_xattr(r).await }
            })
            .await
            .map(|v| v.value.to_vec())
    }

    /// The names of the extended attributes of `path`.
    pub async fn list_xattr(&self, path: &str) -> Result<Vec<String>, FsError> {
        let req = pb::PathRequest {
            path: path.into(),
            id: 0,
        };
        self.master()
            .call(|mut c| {
                let r = req.clone();
                async move { c.list_xattr(r).await }
            })
            .await
            .map(|v| v.names)
    }

    /// Removes the extended attribute `name` of `path`.
    pub async fn remove_xattr(&self, path: &str, name: &str) -> Result<(), FsError> {
        let req = pb::XattrRequest {
            path: path.into(),
            name: name.into(),
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.remove_xattr(r).await }
            })
            .await
            .map(|_| ())
    }

    /// Creates a symlink owned by `owner`.
    pub async fn symlink_as(
        &self,
        target: &str,
        link: &str,
        owner: Owner,
    ) -> Result<FileStatus, FsError> {
        let req = pb::SymlinkRequest {
            target: target.into(),
            link: link.into(),
            uid: owner.uid,
            gid: owner.gid,
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.symlink(r).await }
            })
            .await
    }

    /// Capacity, usage and counts.
    pub async fn statfs(&self) -> Result<pb::StatFsResponse, FsError> {
        self.master()
            .call(|mut c| async move { c.stat_fs(pb::Empty {}).await })
            .await
    }

    /// The cluster report from the leader.
    pub async fn report(&self) -> Result<pb::ClusterReport, FsError> {
        self.master()
            .call(|mut c| async move { c.report(pb::Empty {}).await })
            .await
    }

    /// Makes the cluster's mount table exactly `mounts`; returns the table.
    pub async fn set_mounts(&self, mounts: Vec<pb::MountEntry>) -> Result<pb::MountTable, FsError> {
        let table = pb::MountTable { mounts };
        self.master()
            .call_once(|mut c, id| {
                let table = id.request(table.clone());
                async move { c.set_mounts(table).await }
            })
            .await
    }

    /// The cluster's mount table.
    pub async fn mounts(&self) -> Result<pb::MountTable, FsError> {
        self.master()
            .call(|mut c| async move { c.list_mounts(pb::Empty {}).await })
            .await
    }

    /// Creates a file for writing (`overwrite` truncates an existing one).
    pub async fn create(&self, path: &str, overwrite: bool) -> Result<FileWriter, FsError> {
        let status = self
            .create_file(path, overwrite, true, Owner::root(0o644))
            .await?;
        Ok(FileWriter::new(self.clone(), status))
    }

    /// Creates an empty file (`overwrite` truncates an existing one; `parents` creates
    /// missing parent directories).
    pub async fn create_file(
        &self,
        path: &str,
        overwrite: bool,
        parents: bool,
        owner: Owner,
    ) -> Result<FileStatus, FsError> {
        let req = pb::CreateRequest {
            path: path.into(),
            mode: Some(owner.mode),
            overwrite,
            create_parents: parents,
            uid: owner.uid,
            gid: owner.gid,
        };
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.create(r).await }
            })
            .await
    }

    /// A file's status and blocks, with the worker holding each.
    pub async fn locate(&self, path: &str) -> Result<pb::FileBlocks, FsError> {
        self.locate_target(path, 0).await
    }

    /// The blocks of the inode with id `id` (an open file, wherever its names went).
    pub async fn locate_id(&self, id: u64) -> Result<pb::FileBlocks, FsError> {
        self.locate_target("", id).await
    }

    async fn locate_target(&self, path: &str, id: u64) -> Result<pb::FileBlocks, FsError> {
        let req = pb::PathRequest {
            path: path.into(),
            id,
        };
        self.master()
            .call(|mut c| {
                let r = req.clone();
                async move { c.get_block_locations(r).await }
            })
            .await
    }

    /// Records a file's blocks and length with the master (the end of a write).
    pub async fn complete(&self, req: pb::CompleteRequest) -> Result<FileStatus, FsError> {
        self.master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.complete_file(r).await }
            })
            .await
    }

    /// Makes `blocks` durable on their workers (one `SyncBlocks` call per worker).
    /// Blocks a worker no longer holds are part of no file any more and are skipped.
    pub async fn sync_blocks(&self, blocks: &[WrittenBlock]) -> Result<(), FsError> {
        let mut by_worker: HashMap<String, (pb::WorkerAddress, Vec<u64>)> = HashMap::new();
        for (worker, id) in blocks {
            let key = host_port(&worker.hostname, worker.rpc_port as u16);
            by_worker
                .entry(key)
                .or_insert_with(|| (worker.clone(), Vec::new()))
                .1
                .push(*id);
        }
        for (key, (worker, block_ids)) in by_worker {
            let mut c = self.worker(&worker)?;
            let req = crate::rpc::pb::worker::SyncBlocksRequest { block_ids };
            c.sync_blocks(req)
                .await
                .map_err(|s| match from_status(&s) {
                    FsError::Unavailable(why) => {
                        FsError::Unavailable(format!("worker {key}: {why}"))
                    }
                    other => other,
                })?;
        }
        Ok(())
    }

    /// Opens a file for reading.
    pub async fn open(&self, path: &str) -> Result<FileReader, FsError> {
        let blocks = self.locate(path).await?;
        FileReader::new(self.clone(), blocks)
    }

    /// Writes a whole file.
    pub async fn write_file(&self, path: &str, data: &[u8]) -> Result<FileStatus, FsError> {
        let mut w = self.create(path, true).await?;
        w.write(data).await?;
        w.close().await
    }

    /// Reads a whole file.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let mut r = self.open(path).await?;
        let mut out = Vec::with_capacity(r.len() as usize);
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
}
