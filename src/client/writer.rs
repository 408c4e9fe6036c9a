//! Writing a file: data is cut into blocks of `client.block_size`; each block goes to the
//! worker the master picks, streamed in 1 MiB chunks while the caller keeps writing;
//! closing the file records its blocks and length with the master. A file is visible to
//! readers with its content once closed.
//!
//! Each block comes with a write token from the master; its stream opens at once with a
//! first message carrying the block id and token, so the worker checks the token while
//! it is fresh, however slowly the data follows (a later block gets its own token).
//!
//! When the worker shares this node, the block is written straight into its block file
//! instead ([`super::short_circuit`]) and committed through the worker at its end.
//!
//! A writer can also resume an existing file ([`FileWriter::resume`]): it keeps the file's
//! blocks before an offset and writes new blocks from there (appends), and it can skip
//! forward, leaving a hole that reads as zeros ([`FileWriter::skip_to`]).

use super::block_upload::Sink;
use super::{Client, FileStatus, CHUNK_SIZE};
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use crate::rpc::pb::worker::WriteBlockRequest;
use bytes::BytesMut;

/// An open file being written. Call [`FileWriter::close`]: a writer dropped without it
/// leaves the file as it was (its new blocks are reclaimed when the file is rewritten or
/// deleted).
#[derive(Debug)]
pub struct FileWriter {
    client: Client,
    status: FileStatus,
    /// The file's blocks so far (kept ones and finished new ones), with their offsets.
    blocks: Vec<pb::BlockInfo>,
    /// File offset where the current (or next) block starts.
    block_start: u64,
    /// The file's length when closed (at least the end of the written data).
    length: u64,
    /// Whether closing must record anything with the master.
    changed: bool,
    /// The blocks this writer finished, and where (what a synced close makes durable).
    written: Vec<WrittenBlock>,
    current: Option<Upload>,
    buf: BytesMut,
}

/// A block a writer stored, and the worker holding it.
pub type WrittenBlock = (pb::WorkerAddress, u64);

/// One block on its way to a worker.
#[derive(Debug)]
struct Upload {
    id: u64,
    worker: pb::WorkerAddress,
    sent: u64,
    sink: Sink,
}

impl FileWriter {
    pub(crate) fn new(client: Client, status: FileStatus) -> Self {
        Self::resume(client, status, Vec::new(), 0)
    }

    /// A writer that keeps `kept` (blocks of the file, with offsets, all ending at or before
    /// `start`) and writes from `start`. With no kept blocks and `start` 0 it rewrites the
    /// whole file.
    pub fn resume(
        client: Client,
        status: FileStatus,
        kept: Vec<pb::BlockInfo>,
        start: u64,
    ) -> Self {
        let changed = kept.is_empty() && start == 0 && status.size != 0;
        FileWriter {
            client,
            status,
            blocks: kept,
            block_start: start,
            length: start,
            changed,
            written: Vec::new(),
            current: None,
            buf: BytesMut::with_capacity(CHUNK_SIZE),
        }
    }

    /// The path being written.
    pub fn path(&self) -> &str {
        &self.status.path
    }

    /// The file's length so far: where the next write lands, or further after a skip.
    pub fn len(&self) -> u64 {
        let end = self.block_start + self.current.as_ref().map_or(0, |u| u.sent);
        self.length.max(end + self.buf.len() as u64)
    }

    /// Keeps the file at least `len` long when closed: a length set past the data (by
    /// fallocate or a truncate up) that the writes do not reach.
    pub fn keep_length(&mut self, len: u64) {
        self.length = self.length.max(len);
    }

    /// Where the next write lands.
    pub fn position(&self) -> u64 {
        self.block_start + self.current.as_ref().map_or(0, |u| u.sent) + self.buf.len() as u64
    }

    /// Moves forward to `offset`, leaving a hole that reads as zeros. Moving backward is
    /// an invalid argument.
    pub async fn skip_to(&mut self, offset: u64) -> Result<(), FsError> {
        let position = self.position();
        if offset < position {
            return Err(FsError::InvalidArgument(format!(
                "{}: cannot move a writer back from {position} to {offset}",
                self.status.path
            )));
        }
        if offset == position {
            return Ok(());
        }
        if self.current.is_some() {
            self.finish_block().await?;
        }
        self.block_start = offset;
        self.length = self.length.max(offset);
        self.changed = true;
        Ok(())
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends data.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), FsError> {
        let block_size = self.client.block_size();
        if !data.is_empty() {
            self.changed = true;
        }
        while !data.is_empty() {
            if self.current.is_none() {
                self.open_block().await?;
            }
            let sent = self.current.as_ref().map_or(0, |u| u.sent);
            let room = (block_size - sent - self.buf.len() as u64) as usize;
            let take = room.min(data.len()).min(CHUNK_SIZE - self.buf.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            let block_full = sent + self.buf.len() as u64 == block_size;
            if self.buf.len() == CHUNK_SIZE || block_full {
                self.send_buf().await?;
            }
            if block_full {
                self.finish_block().await?;
            }
        }
        Ok(())
    }

    /// Sends the rest, closes the last block and records the file with the master.
    pub async fn close(self) -> Result<FileStatus, FsError> {
        self.finish().await.map(|(status, _)| status)
    }

    /// [`FileWriter::close`], with the new blocks durable on their workers first
    /// (`fdatasync` of each block file and its directory): what fsync promises.
    pub async fn close_synced(self) -> Result<FileStatus, FsError> {
        let client = self.client.clone();
        let (status, written) = self.finish().await?;
        client.sync_blocks(&written).await?;
        Ok(status)
    }

    /// Records what was written so far with the master and goes on writing: the block
    /// being written, when it goes through the short circuit, is made durable and
    /// visible at its length by its worker and stays open, so later writes append to it
    /// in place (a flush or fsync in the middle of a sequential write costs no new block
    /// and no copy of the old one). Returns the file's status and the blocks finished
    /// since the last call (not yet synced). `None`, with nothing done, when the block
    /// is streamed through gRPC (a stream has one answer): finish the writer instead.
    pub async fn checkpoint(&mut self) -> Result<Option<(FileStatus, Vec<WrittenBlock>)>, FsError> {
        if let Some(Upload {
            sink: Sink::Grpc { .. },
            ..
        }) = &self.current
        {
            return Ok(None);
        }
        if !self.changed {
            let written = std::mem::take(&mut self.written);
            return Ok(Some((self.status.clone(), written)));
        }
        self.send_buf().await?;
        let mut blocks = self.blocks.clone();
        if let Some(Upload {
            id,
            sent,
            sink: Sink::Local(local),
            ..
        }) = self.current.as_mut().filter(|u| u.sent > 0)
        {
            let stored = checked_len(*id, local.checkpoint().await?, *sent)?;
            blocks.push(pb::BlockInfo {
                id: *id,
                len: stored,
                offset: Some(self.block_start),
            });
        }
        let length = self.len();
        self.status = self.record(length, blocks).await?;
        self.changed = false;
        let written = std::mem::take(&mut self.written);
        Ok(Some((self.status.clone(), written)))
    }

    /// Records `blocks` and `length` as the file's with the master (`CompleteFile`).
    async fn record(&self, length: u64, blocks: Vec<pb::BlockInfo>) -> Result<FileStatus, FsError> {
        self.client
            .complete(pb::CompleteRequest {
                file_id: self.status.id,
                path: self.status.path.clone(),
                length,
                blocks,
            })
            .await
    }

    /// [`FileWriter::close`], also returning the blocks written (not yet synced).
    pub async fn finish(mut self) -> Result<(FileStatus, Vec<WrittenBlock>), FsError> {
        if self.current.is_some() {
            self.finish_block().await?;
        }
        let written = std::mem::take(&mut self.written);
        if !self.changed {
            // Nothing written or skipped: the master already has the file as it is.
            return Ok((self.status, written));
        }
        let blocks = std::mem::take(&mut self.blocks);
        let status = self.record(self.length, blocks).await?;
        Ok((status, written))
    }

    async fn open_block(&mut self) -> Result<(), FsError> {
        let req = pb::AddBlockRequest {
            file_id: self.status.id,
            path: self.status.path.clone(),
            near_worker: None,
        };
        let resp = self
            .client
            .master()
            .call_once(|mut c, id| {
                let r = id.request(req.clone());
                async move { c.add_block(r).await }
            })
            .await?;
        let worker = resp.worker.ok_or_else(|| {
            FsError::Unavailable("the master named no worker for the block".into())
        })?;
        let local = self
            .client
            .short_circuit()
            .create(
                &worker,
                resp.block_id,
                self.client.block_size(),
                &resp.block_token,
            )
            .await;
        if let Some(local) = local {
            self.current = Some(Upload {
                id: resp.block_id,
                worker,
                sent: 0,
                sink: Sink::Local(local),
            });
            return Ok(());
        }
        let opening = WriteBlockRequest {
            block_id: resp.block_id,
            expected_len: self.client.block_size(),
            data: bytes::Bytes::new(),
            block_token: resp.block_token,
            copy_from: None,
            offset: None,
        };
        let sink = Sink::grpc(&self.client, &worker, opening).await?;
        self.current = Some(Upload {
            id: resp.block_id,
            worker,
            sent: 0,
            sink,
        });
        Ok(())
    }

    async fn send_buf(&mut self) -> Result<(), FsError> {
        let Some(upload) = self.current.as_mut() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = self.buf.split().freeze();
        let len = data.len() as u64;
        let tx = match &mut upload.sink {
            Sink::Local(local) => {
                if let Err(e) = local.write(data).await {
                    // The connection goes with the upload: the worker discards the block.
                    self.current = None;
                    return Err(e);
                }
                upload.sent += len;
                self.buf.reserve(CHUNK_SIZE);
                return Ok(());
            }
            Sink::Grpc { tx, .. } => tx,
        };
        let msg = WriteBlockRequest {
            block_id: upload.id,
            data,
            ..WriteBlockRequest::default()
        };
        if tx.send(msg).await.is_err() {
            // The stream ended early: the worker refused; its answer says why.
            let Some(upload) = self.current.take() else {
                return Ok(());
            };
            let Sink::Grpc { tx, call } = upload.sink else {
                return Ok(());
            };
            drop(tx);
            return Err(match call.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => FsError::Io(format!("worker closed block {} early", upload.id)),
                Err(e) => FsError::Io(format!("block upload task: {e}")),
            });
        }
        upload.sent += len;
        self.buf.reserve(CHUNK_SIZE);
        Ok(())
    }

    async fn finish_block(&mut self) -> Result<(), FsError> {
        self.send_buf().await?;
        let Some(upload) = self.current.take() else {
            return Ok(());
        };
        let len = checked_len(upload.id, upload.sink.finish().await?, upload.sent)?;
        self.written.push((upload.worker, upload.id));
        self.blocks.push(pb::BlockInfo {
            id: upload.id,
            len,
            offset: Some(self.block_start),
        });
        self.block_start += len;
        self.length = self.length.max(self.block_start);
        Ok(())
    }
}

/// `stored`, the length the worker reports for block `id`, when it is the `sent` bytes.
fn checked_len(id: u64, stored: u64, sent: u64) -> Result<u64, FsError> {
    if stored != sent {
        return Err(FsError::Io(format!(
            "worker stored {stored} bytes of block {id}, {sent} were sent"
        )));
    }
    Ok(stored)
}
