//! Short-circuit I/O, the client's side: a block whose worker shares this node is read
//! and written through the block file's descriptor the worker hands over its Unix socket
//! (`worker.domain_socket_path`), not streamed through gRPC.
//!
//! A worker counts as local when its socket is in the configured directory and the
//! worker answering there says it is the one the master named (id, hostname, port).
//! Anything else — no directory configured, `client.short_circuit = false`, no socket
//! (a remote worker), a socket nobody answers, another worker, a refusal — means gRPC,
//! transparently; the first such fallback per worker is logged.
//!
//! Reads `pread` the descriptor the reader keeps per block while the file is open. A
//! write creates the block file through the worker (which reserves room and checks the
//! write token), `pwrite`s it, and commits through the worker on the same connection;
//! until then the block is invisible, and a writer dropped before its commit (or a
//! crashed client) closes the connection, which makes the worker discard the block.
//! A checkpoint ([`LocalWrite::checkpoint`], fsync of a rewritten file) makes the block
//! durable and visible at the length written so far and keeps it open for more writes
//! in place; once checkpointed, a dropped writer leaves the block at that length.

use crate::fs_error::FsError;
use crate::rpc::local::{self, socket_path};
use crate::rpc::pb::master as pb;
use crate::rpc::pb::worker::local_request::Kind;
use crate::rpc::pb::worker::{
    CopySource, LocalCheckpoint, LocalCommit, LocalHello, LocalOpen, LocalReply, LocalRequest,
    UfsSource,
};
use crate::rpc::status::from_status;
use bytes::Bytes;
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UnixStream;
use tracing::info;

/// The client's short-circuit switch and counters. Shared by all files of a client.
#[derive(Debug, Default)]
pub struct ShortCircuit {
    /// The directory of the workers' sockets; `None`: short circuit off.
    dir: Option<PathBuf>,
    /// Workers whose fallback to gRPC was logged.
    noted: Mutex<HashSet<String>>,
    /// Blocks opened for reading through the short circuit.
    read_opens: AtomicU64,
    /// Blocks written through the short circuit.
    write_opens: AtomicU64,
}

/// A block being written through the short circuit.
#[derive(Debug)]
pub struct LocalWrite {
    /// The connection the commit goes on; closing it abandons the block.
    stream: UnixStream,
    /// The block's temp file in the worker's cache.
    file: Arc<File>,
    block_id: u64,
    written: u64,
    /// Checkpointed: the file is the block in the worker's `blocks/`, patched in place
    /// only while the worker's side of the connection holds it.
    checkpointed: bool,
}

impl ShortCircuit {
    /// Short circuit through the sockets in `dir`, or off.
    pub fn new(dir: Option<PathBuf>) -> ShortCircuit {
        ShortCircuit {
            dir,
            ..ShortCircuit::default()
        }
    }

    /// Whether a socket directory is configured.
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// Blocks opened for reading through the short circuit so far.
    pub fn read_opens(&self) -> u64 {
        self.read_opens.load(Ordering::Relaxed)
    }

    /// Blocks written through the short circuit so far.
    pub fn write_opens(&self) -> u64 {
        self.write_opens.load(Ordering::Relaxed)
    }

    /// Opens `block_id` on `worker` for reading: `Ok(None)` when that worker is not
    /// local; an error when it is but refused (the caller may renew the token or have
    /// the block fetched, then try again, or read through gRPC).
    pub async fn open_read(
        &self,
        worker: &pb::WorkerAddress,
        block_id: u64,
        block_token: &Bytes,
        ufs: Option<&UfsSource>,
    ) -> Result<Option<Arc<File>>, FsError> {
        let open = LocalOpen {
            block_id,
            write: false,
            expected_len: 0,
            block_token: block_token.clone(),
            ufs: ufs.cloned(),
            copy_from: None,
        };
        let result = async {
            let Some(stream) = self.connect(worker).await? else {
                return Ok(None);
            };
            let (_, fd) = request(&stream, Kind::Open(open)).await?;
            Ok(Some(Arc::new(File::from(fd))))
        }
        .await;
        match &result {
            Ok(Some(_)) => {
                self.read_opens.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => self.note_fallback(worker, e),
        }
        result
    }

    /// Creates `block_id` on `worker` for writing, reserving `expected_len` bytes;
    /// `None` (write through gRPC) when that worker is not local or refused.
    pub async fn create(
        &self,
        worker: &pb::WorkerAddress,
        block_id: u64,
        expected_len: u64,
        block_token: &Bytes,
    ) -> Option<LocalWrite> {
        self.create_from(worker, block_id, expected_len, block_token, None)
            .await
    }

    /// [`ShortCircuit::create`], the new block starting as the worker's copy of
    /// `copy_from` (a rewrite): its bytes count as written.
    pub async fn create_from(
        &self,
        worker: &pb::WorkerAddress,
        block_id: u64,
        expected_len: u64,
        block_token: &Bytes,
        copy_from: Option<CopySource>,
    ) -> Option<LocalWrite> {
        let written = copy_from.as_ref().map_or(0, |c| c.len);
        let open = LocalOpen {
            block_id,
            write: true,
            expected_len,
            block_token: block_token.clone(),
            ufs: None,
            copy_from,
        };
        let result = async {
            let Some(stream) = self.connect(worker).await? else {
                return Ok(None);
            };
            let (_, fd) = request(&stream, Kind::Open(open)).await?;
            Ok(Some(LocalWrite {
                stream,
                file: Arc::new(File::from(fd)),
                block_id,
                written,
                checkpointed: false,
            }))
        }
        .await;
        match result {
            Ok(Some(write)) => {
                self.write_opens.fetch_add(1, Ordering::Relaxed);
                Some(write)
            }
            Ok(None) => None,
            Err(e) => {
                self.note_fallback(worker, &e);
                None
            }
        }
    }

    /// A connection to `worker`'s socket, checked to be that worker; `None` when it has
    /// no socket here (not on this node) or short circuit is off.
    async fn connect(&self, worker: &pb::WorkerAddress) -> Result<Option<UnixStream>, FsError> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let port = u16::try_from(worker.rpc_port).unwrap_or(0);
        let path = socket_path(dir, &worker.hostname, port);
        if !path.exists() {
            return Ok(None);
        }
        let stream = UnixStream::connect(&path)
            .await
            .map_err(|e| FsError::Unavailable(format!("connect to {}: {e}", path.display())))?;
        let hello: LocalHello = local::recv(&stream)
            .await
            .map_err(|e| FsError::Io(format!("hello on {}: {e}", path.display())))?
            .ok_or_else(|| FsError::Io(format!("{} closed before its hello", path.display())))?;
        let same = hello.hostname == worker.hostname
            && hello.rpc_port == worker.rpc_port
            && (worker.id == 0 || hello.worker_id == worker.id);
        if !same {
            return Err(FsError::Unavailable(format!(
                "{} is worker {} at {}:{}, not worker {} at {}:{}",
                path.display(),
                hello.worker_id,
                hello.hostname,
                hello.rpc_port,
                worker.id,
                worker.hostname,
                worker.rpc_port
            )));
        }
        Ok(Some(stream))
    }

    /// Logs the first fallback to gRPC of each worker.
    fn note_fallback(&self, worker: &pb::WorkerAddress, why: &FsError) {
        let key = format!("{}:{}", worker.hostname, worker.rpc_port);
        let first = self
            .noted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        if first {
            info!(
                worker = %key,
                %why,
                "short-circuit I/O with this worker failed; using gRPC for it (logged once per worker)"
            );
        }
    }
}

/// Sends one request and waits for its reply and descriptor (a refusal as its error).
async fn request(stream: &UnixStream, kind: Kind) -> Result<(LocalReply, OwnedFd), FsError> {
    let reply = exchange(stream, kind).await?;
    let (reply, fd) = reply;
    let fd = fd.ok_or_else(|| FsError::Io("the worker sent no block file".into()))?;
    Ok((reply, fd))
}

/// Sends one request and waits for its reply; a refusal is its error.
async fn exchange(
    stream: &UnixStream,
    kind: Kind,
) -> Result<(LocalReply, Option<OwnedFd>), FsError> {
    let req = LocalRequest { kind: Some(kind) };
    local::send(stream, &req, None)
        .await
        .map_err(|e| FsError::Io(format!("short-circuit request: {e}")))?;
    let (reply, fd): (LocalReply, _) = local::recv_with_fd(stream)
        .await
        .map_err(|e| FsError::Io(format!("short-circuit reply: {e}")))?
        .ok_or_else(|| FsError::Io("the worker closed the short-circuit socket".into()))?;
    if reply.code != 0 {
        let status = tonic::Status::new(tonic::Code::from(reply.code), reply.message);
        return Err(from_status(&status));
    }
    Ok((reply, fd))
}

/// Reads exactly `buf.len()` bytes of `file` at `offset`; a file that ends first is an
/// error naming the block.
pub fn read_block_at(
    file: &File,
    block_id: u64,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), FsError> {
    file.read_exact_at(buf, offset).map_err(|e| {
        FsError::Io(format!(
            "short-circuit read of block {block_id} at {offset}: {e}"
        ))
    })
}

impl LocalWrite {
    /// Appends `data` to the block file.
    pub async fn write(&mut self, data: Bytes) -> Result<(), FsError> {
        self.write_at(self.written, data).await
    }

    /// Writes `data` at `offset` of the block file (a patch of a copied block); the
    /// block is then at least `offset + data.len()` long.
    pub async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<(), FsError> {
        self.check_held()?;
        let (file, id) = (self.file.clone(), self.block_id);
        let end = offset + data.len() as u64;
        tokio::task::spawn_blocking(move || file.write_all_at(&data, offset))
            .await
            .map_err(|e| FsError::Io(format!("block write task: {e}")))?
            .map_err(|e| {
                FsError::Io(format!(
                    "short-circuit write of block {id} at {offset}: {e}"
                ))
            })?;
        self.written = self.written.max(end);
        Ok(())
    }

    /// Has the worker make the block durable and visible at the length written so far,
    /// keeping it open here for more writes in place; returns the stored length.
    pub async fn checkpoint(&mut self) -> Result<u64, FsError> {
        self.check_held()?;
        let length = self.written;
        let (reply, _) = exchange(&self.stream, Kind::Checkpoint(LocalCheckpoint { length }))
            .await
            .map_err(|e| with_block(e, self.block_id, "checkpoint"))?;
        self.checkpointed = true;
        Ok(reply.length)
    }

    /// A checkpointed block is written in place only while the worker still holds its
    /// writer: once the connection is gone (the worker stopped; a restarted one serves
    /// the block as committed), writing the file would change committed data.
    fn check_held(&self) -> Result<(), FsError> {
        if !self.checkpointed {
            return Ok(());
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Ok(0) => Err(FsError::Unavailable(format!(
                "the worker holding block {} closed its connection",
                self.block_id
            ))),
            Ok(_) => Err(FsError::Io(format!(
                "unexpected message from the worker holding block {}",
                self.block_id
            ))),
            Err(e) => Err(FsError::Io(format!(
                "connection of block {}: {e}",
                self.block_id
            ))),
        }
    }

    /// Closes the file and has the worker commit the block; returns its stored length.
    pub async fn commit(self) -> Result<u64, FsError> {
        let LocalWrite {
            stream,
            file,
            written,
            ..
        } = self;
        drop(file);
        let (reply, _) = exchange(&stream, Kind::Commit(LocalCommit { length: written })).await?;
        Ok(reply.length)
    }
}

/// `e` with the block and the request it came from named.
fn with_block(e: FsError, block_id: u64, what: &str) -> FsError {
    match e {
        FsError::Io(why) => FsError::Io(format!("{what} of block {block_id}: {why}")),
        other => other,
    }
}
