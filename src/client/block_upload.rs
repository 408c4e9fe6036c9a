//! One new block that takes the place of part of a file: a rewrite of an existing block
//! (block-level copy-on-write) or a block in a hole, written at any offset.
//!
//! Committed blocks never change (readers and the FUSE page-cache check rely on block
//! ids; a block checkpointed open changes only through its one writer, and each
//! checkpoint moves the file's mtime), so a block with a written range becomes a new
//! block. The master is asked for it
//! next to the old block's worker (`near_worker`); when it lands there, that worker fills
//! it from the old block itself (`CopySource`, `copy_file_range`, no bytes through the
//! client), and the client patches the written ranges in place: `pwrite` on the block
//! file when the worker shares this node ([`super::short_circuit`]), else `WriteBlock`
//! messages with an offset. When the master places it elsewhere (the old worker is
//! gone or full), or the old block lives in under storage, [`BlockUpload::open`] says so
//! and the caller copies the old bytes through its own memory.
//!
//! A block written through the short circuit can be checkpointed
//! ([`BlockUpload::checkpoint`]): durable and visible at its length so far, and still
//! open for patches in place. A gRPC upload cannot (its stream has one answer): it is
//! finished instead.

use super::short_circuit::LocalWrite;
use super::Client;
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use crate::rpc::pb::worker::{CopySource, WriteBlockRequest};
use crate::rpc::status::from_status;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

/// A new block being written at offsets, until [`BlockUpload::finish`].
#[derive(Debug)]
pub struct BlockUpload {
    id: u64,
    worker: pb::WorkerAddress,
    /// The block's length so far (copied bytes included).
    len: u64,
    sink: Sink,
}

/// Where a new block's bytes go (this upload's, and a sequential writer's).
#[derive(Debug)]
pub(super) enum Sink {
    /// `WriteBlock` messages (with offsets, for a rewrite).
    Grpc {
        tx: mpsc::Sender<WriteBlockRequest>,
        call: JoinHandle<Result<u64, FsError>>,
    },
    /// The block file of a worker on this node.
    Local(LocalWrite),
}

impl Sink {
    /// Starts a `WriteBlock` stream to `worker` with `opening` as its first message
    /// (queued before the call starts: the worker checks the token as soon as the stream
    /// opens).
    pub(super) async fn grpc(
        client: &Client,
        worker: &pb::WorkerAddress,
        opening: WriteBlockRequest,
    ) -> Result<Sink, FsError> {
        let mut rpc = client.worker(worker)?;
        let (tx, rx) = mpsc::channel::<WriteBlockRequest>(4);
        tx.send(opening)
            .await
            .map_err(|_| FsError::Io("block upload channel closed".into()))?;
        let where_ = format!("worker {}:{}", worker.hostname, worker.rpc_port);
        let call = tokio::spawn(async move {
            rpc.write_block(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner().length)
                .map_err(|s| match from_status(&s) {
                    FsError::Unavailable(why) => FsError::Unavailable(format!("{where_}: {why}")),
                    other => other,
                })
        });
        Ok(Sink::Grpc { tx, call })
    }

    /// Commits the block on its worker; returns the length the worker stored.
    pub(super) async fn finish(self) -> Result<u64, FsError> {
        match self {
            Sink::Local(local) => local.commit().await,
            Sink::Grpc { tx, call } => {
                drop(tx);
                call.await
                    .map_err(|e| FsError::Io(format!("block upload task: {e}")))?
            }
        }
    }
}

impl BlockUpload {
    /// A new block of `file`, starting as the first `copy_len` bytes of `old` (none: an
    /// empty block). Returns the upload and whether the worker copied the old bytes;
    /// when it did not (another worker, or an under-storage block), the caller writes
    /// them with [`BlockUpload::write_at`] before its patches.
    pub async fn open(
        client: &Client,
        file: &pb::FileStatus,
        old: Option<&pb::LocatedBlock>,
        copy_len: u64,
    ) -> Result<(BlockUpload, bool), FsError> {
        let near = old.and_then(|b| b.worker.as_ref()).map(|w| w.id);
        let req = pb::AddBlockRequest {
            file_id: file.id,
            path: file.path.clone(),
            near_worker: near,
        };
        let resp = client
            .master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.add_block(r).await }
            })
            .await?;
        let worker = resp.worker.ok_or_else(|| {
            FsError::Unavailable("the master named no worker for the block".into())
        })?;
        // The worker copies only a block it holds itself; under-storage blocks may be
        // fetched on a read, not on a copy.
        let copy_from = old
            .filter(|b| copy_len > 0 && b.ufs.is_none())
            .filter(|b| b.worker.as_ref().is_some_and(|w| w.id == worker.id))
            .map(|b| CopySource {
                block_id: b.id,
                len: copy_len,
                block_token: b.block_token.clone(),
            });
        let copied = copy_from.is_some();
        let block_size = client.block_size();
        let local = client
            .short_circuit()
            .create_from(
                &worker,
                resp.block_id,
                block_size,
                &resp.block_token,
                copy_from.clone(),
            )
            .await;
        let len = if copied { copy_len } else { 0 };
        if let Some(local) = local {
            let upload = BlockUpload {
                id: resp.block_id,
                worker,
                len,
                sink: Sink::Local(local),
            };
            return Ok((upload, copied));
        }
        let opening = WriteBlockRequest {
            block_id: resp.block_id,
            expected_len: block_size,
            data: Bytes::new(),
            block_token: resp.block_token,
            copy_from,
            offset: None,
        };
        let sink = Sink::grpc(client, &worker, opening).await?;
        let upload = BlockUpload {
            id: resp.block_id,
            worker,
            len,
            sink,
        };
        Ok((upload, copied))
    }

    /// The new block's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The block's length so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing is in the block yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `data` at `offset` of the block.
    pub async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<(), FsError> {
        let end = offset + data.len() as u64;
        match &mut self.sink {
            Sink::Local(local) => local.write_at(offset, data).await?,
            Sink::Grpc { tx, .. } => {
                let msg = WriteBlockRequest {
                    block_id: self.id,
                    data,
                    offset: Some(offset),
                    ..WriteBlockRequest::default()
                };
                if tx.send(msg).await.is_err() {
                    // The worker ended the stream: its answer says why.
                    return Err(match self.stop().await {
                        Err(e) => e,
                        Ok(_) => FsError::Io(format!("worker closed block {} early", self.id)),
                    });
                }
            }
        }
        self.len = self.len.max(end);
        Ok(())
    }

    /// The answer of an ended gRPC stream.
    async fn stop(&mut self) -> Result<u64, FsError> {
        let sink = std::mem::replace(
            &mut self.sink,
            Sink::Grpc {
                tx: mpsc::channel(1).0,
                call: tokio::spawn(async { Err(FsError::Io("block upload stopped".into())) }),
            },
        );
        match sink {
            Sink::Grpc { tx, call } => {
                drop(tx);
                call.await
                    .map_err(|e| FsError::Io(format!("block upload task: {e}")))?
            }
            Sink::Local(_) => Err(FsError::Io("not a streamed block".into())),
        }
    }

    /// Whether [`BlockUpload::checkpoint`] can keep this block open (written through the
    /// short circuit).
    pub fn can_checkpoint(&self) -> bool {
        matches!(self.sink, Sink::Local(_))
    }

    /// Makes the block durable and visible on its worker at its length so far, and
    /// keeps it open for more writes in place; returns that length. Only a block
    /// written through the short circuit can be checkpointed.
    pub async fn checkpoint(&mut self) -> Result<u64, FsError> {
        let Sink::Local(local) = &mut self.sink else {
            return Err(FsError::Io(format!(
                "block {} is streamed through gRPC: it cannot be checkpointed",
                self.id
            )));
        };
        let stored = local.checkpoint().await?;
        if stored != self.len {
            return Err(FsError::Io(format!(
                "worker stored {stored} bytes of block {}, {} were written",
                self.id, self.len
            )));
        }
        Ok(stored)
    }

    /// The worker the block is written to.
    pub fn worker(&self) -> &pb::WorkerAddress {
        &self.worker
    }

    /// Commits the block on its worker; returns its id, worker and length, checked
    /// against what was written.
    pub async fn finish(self) -> Result<(u64, pb::WorkerAddress, u64), FsError> {
        let BlockUpload {
            id,
            worker,
            len,
            sink,
        } = self;
        let stored = sink.finish().await?;
        if stored != len {
            return Err(FsError::Io(format!(
                "worker stored {stored} bytes of block {id}, {len} were written"
            )));
        }
        Ok((id, worker, stored))
    }
}
