//! Short-circuit I/O, the worker's side: a Unix socket in `worker.domain_socket_path`
//! where a client on the same node asks for a block's open file and reads or writes it
//! itself, instead of streaming every byte through gRPC.
//!
//! On each connection the worker first says who it is (id, hostname, RPC port), so a
//! client only uses the socket of the worker the master named. Then, per request:
//!
//! - open for read: the read token is checked as `ReadBlock` checks it; the block's file
//!   is opened read-only and its descriptor sent back (SCM_RIGHTS) with the block length.
//!   A block not held here is "unavailable" (the client then reads through gRPC, which
//!   fetches under-storage blocks).
//! - open for write: the write token is checked as `WriteBlock` checks it; a temp block
//!   file is created in a tier with room reserved for the expected length (evicting as
//!   the gRPC path does) and its descriptor sent back. The client writes it and sends a
//!   commit with the length it wrote; the worker checks the file holds exactly that,
//!   accounts it and makes the block visible. A connection that ends before the commit
//!   (the client dropped the writer or crashed) abandons the block: the temp file is
//!   removed and the room given back, and nothing was ever visible.
//! - checkpoint (a client's fsync or flush of a file it rewrites or appends to): the
//!   worker checks the file holds the length the client says, makes it durable
//!   (fdatasync, the first time also fsync of `blocks/`; counted as a block sync) and
//!   publishes the block at that length, pinned, keeping the writer on the connection:
//!   the client goes on writing the same file in place, later checkpoints publish the new length, and the commit ends it. A
//!   connection that ends after a checkpoint leaves the block at its last checkpointed
//!   length (`BlockWriter::publish_open`).
//!
//! Eviction and deletion only unlink a block's name, so a client's open descriptor keeps
//! reading the bytes it opened; see `BlockStore::open_block`.

use super::block_store::{BlockStore, BlockWriter};
use super::service::{create_block, fs_error, IoCounters};
use crate::fs_error::FsError;
use crate::rpc::block_token::{Checker, Mode};
use crate::rpc::local::{self, socket_path};
use crate::rpc::pb::worker::local_request::Kind;
use crate::rpc::pb::worker::{LocalHello, LocalOpen, LocalReply, LocalRequest};
use crate::rpc::status::to_status;
use crate::shutdown::Shutdown;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

/// What the socket serves with.
#[derive(Debug)]
pub struct LocalIo {
    /// The block store.
    pub store: Arc<BlockStore>,
    /// The worker's counters (short-circuit opens, bytes written).
    pub counters: Arc<IoCounters>,
    /// Checks block tokens.
    pub tokens: Checker,
    /// The worker's address as clients reach it.
    pub hostname: String,
    /// The worker's RPC port.
    pub rpc_port: u16,
    /// The id the master gave the worker (0 until registered).
    pub worker_id: Arc<AtomicU32>,
}

/// Binds the worker's socket in `dir` (created if missing). A socket file left by an
/// earlier run of the same worker is replaced.
pub fn bind(dir: &Path, hostname: &str, rpc_port: u16) -> io::Result<(UnixListener, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let path = socket_path(dir, hostname, rpc_port);
    match std::fs::remove_file(&path) {
        Ok(()) => debug!(path = %path.display(), "replaced a stale short-circuit socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    Ok((listener, path))
}

/// Accepts connections until shutdown, then removes the socket file.
pub async fn serve(listener: UnixListener, path: PathBuf, io: Arc<LocalIo>, shutdown: Shutdown) {
    info!(socket = %path.display(), "short-circuit socket serving");
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let io = io.clone();
                    let mut stop = shutdown.clone();
                    tokio::spawn(async move {
                        let ended = tokio::select! {
                            ended = io.converse(&stream) => ended,
                            _ = stop.wait() => Ok(()),
                        };
                        if let Err(e) = ended {
                            debug!(error = %e, "short-circuit connection ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, socket = %path.display(), "short-circuit accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// The outcome of an open.
enum Opened {
    Read(File, u64),
    Write(BlockWriter, File),
}

impl LocalIo {
    /// One connection: the hello, then requests until the client closes it.
    async fn converse(&self, stream: &UnixStream) -> io::Result<()> {
        let hello = LocalHello {
            worker_id: self.worker_id.load(Ordering::Relaxed),
            hostname: self.hostname.clone(),
            rpc_port: u32::from(self.rpc_port),
        };
        local::send(stream, &hello, None).await?;
        // The block being written on this connection, until its commit. Dropped with
        // the connection otherwise: the block is abandoned.
        let mut writing: Option<BlockWriter> = None;
        while let Some(req) = local::recv::<LocalRequest>(stream).await? {
            match req.kind {
                Some(Kind::Open(_)) if writing.is_some() => {
                    let e = FsError::InvalidArgument(
                        "commit the block being written on this connection first".into(),
                    );
                    local::send(stream, &refusal(e), None).await?;
                }
                Some(Kind::Open(open)) => match self.open(open).await {
                    Ok(Opened::Read(file, length)) => {
                        let reply = LocalReply {
                            length,
                            ..LocalReply::default()
                        };
                        local::send(stream, &reply, Some(file.as_fd())).await?;
                    }
                    Ok(Opened::Write(writer, file)) => {
                        local::send(stream, &LocalReply::default(), Some(file.as_fd())).await?;
                        writing = Some(writer);
                    }
                    Err(e) => local::send(stream, &refusal(e), None).await?,
                },
                Some(Kind::Commit(commit)) => {
                    let reply = match writing.take() {
                        None => refusal(FsError::InvalidArgument(
                            "no block is being written on this connection".into(),
                        )),
                        Some(writer) => match self.commit(writer, commit.length).await {
                            Ok(length) => LocalReply {
                                length,
                                ..LocalReply::default()
                            },
                            Err(e) => refusal(e),
                        },
                    };
                    local::send(stream, &reply, None).await?;
                }
                Some(Kind::Checkpoint(checkpoint)) => {
                    let reply = match writing.take() {
                        None => refusal(FsError::InvalidArgument(
                            "no block is being written on this connection".into(),
                        )),
                        Some(writer) => {
                            let (writer, published) =
                                self.checkpoint(writer, checkpoint.length).await;
                            writing = writer;
                            match published {
                                Ok(length) => LocalReply {
                                    length,
                                    ..LocalReply::default()
                                },
                                Err(e) => refusal(e),
                            }
                        }
                    };
                    local::send(stream, &reply, None).await?;
                }
                None => {
                    let e = FsError::InvalidArgument("an empty short-circuit request".into());
                    local::send(stream, &refusal(e), None).await?;
                }
            }
        }
        if let Some(writer) = writing {
            debug!(
                written = writer.len(),
                "short-circuit writer left without commit; block abandoned"
            );
        }
        Ok(())
    }

    /// Checks the token and opens the block's file.
    async fn open(&self, open: LocalOpen) -> Result<Opened, FsError> {
        let id = open.block_id;
        let store = self.store.clone();
        if open.write {
            self.tokens
                .check(&open.block_token, id, Mode::Write, None, None)?;
            let writer = create_block(
                &store,
                &self.tokens,
                &self.counters,
                id,
                open.expected_len,
                open.copy_from.as_ref(),
                None,
            )
            .await?;
            let opened = blocking(move || {
                let file = writer.share_file()?;
                Ok(Opened::Write(writer, file))
            })
            .await?;
            self.counters
                .short_circuit_writes
                .fetch_add(1, Ordering::Relaxed);
            Ok(opened)
        } else {
            self.tokens
                .check(&open.block_token, id, Mode::Read, open.ufs.as_ref(), None)?;
            let (file, len) = blocking(move || store.open_block(id)).await?;
            self.counters.reads_hit.fetch_add(1, Ordering::Relaxed);
            self.counters
                .short_circuit_reads
                .fetch_add(1, Ordering::Relaxed);
            Ok(Opened::Read(file, len))
        }
    }

    /// Publishes a block the client writes at `length` and keeps its writer (none back
    /// only when the blocking task died).
    async fn checkpoint(
        &self,
        mut writer: BlockWriter,
        length: u64,
    ) -> (Option<BlockWriter>, Result<u64, FsError>) {
        let before = writer.published_len().unwrap_or(0);
        let ran = tokio::task::spawn_blocking(move || {
            let r = writer.publish_open(length);
            (writer, r)
        })
        .await;
        match ran {
            Ok((writer, Ok(len))) => {
                self.counters.block_syncs.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_written
                    .fetch_add(len.saturating_sub(before), Ordering::Relaxed);
                (Some(writer), Ok(len))
            }
            Ok((writer, Err(e))) => (Some(writer), Err(fs_error(e))),
            Err(e) => (None, Err(FsError::Io(format!("block I/O task: {e}")))),
        }
    }

    /// Makes a block the client wrote visible.
    async fn commit(&self, writer: BlockWriter, length: u64) -> Result<u64, FsError> {
        let before = writer.published_len().unwrap_or(0);
        let len = blocking(move || writer.commit_written(length)).await?;
        self.counters
            .bytes_written
            .fetch_add(len.saturating_sub(before), Ordering::Relaxed);
        Ok(len)
    }
}

/// An error as a reply (the gRPC status mapping, so the client sees the same errors).
fn refusal(e: FsError) -> LocalReply {
    let status = to_status(e);
    LocalReply {
        code: status.code() as i32,
        message: status.message().to_string(),
        length: 0,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, super::block_store::StoreError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FsError::Io(format!("block I/O task: {e}")))?
        .map_err(fs_error)
}
