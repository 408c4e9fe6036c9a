//! Writing a file: data is cut into blocks of `client.block_size`; each block goes to the
//! worker the master picks, streamed in 1 MiB chunks while the caller keeps writing;
//! closing the file records its blocks and length with the master. A file is visible to
//! readers with its content once closed.

use super::{Client, FileStatus, CHUNK_SIZE};
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use crate::rpc::pb::worker::WriteBlockRequest;
use crate::rpc::status::from_status;
use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

/// An open file being written. Call [`FileWriter::close`]: a writer dropped without it
/// leaves the file empty (its blocks are reclaimed when the file is rewritten or deleted).
#[derive(Debug)]
pub struct FileWriter {
    client: Client,
    status: FileStatus,
    blocks: Vec<pb::BlockInfo>,
    length: u64,
    current: Option<Upload>,
    buf: BytesMut,
}

/// One block on its way to a worker.
#[derive(Debug)]
struct Upload {
    id: u64,
    tx: mpsc::Sender<WriteBlockRequest>,
    sent: u64,
    first: bool,
    call: JoinHandle<Result<u64, FsError>>,
}

impl FileWriter {
    pub(crate) fn new(client: Client, status: FileStatus) -> Self {
        FileWriter {
            client,
            status,
            blocks: Vec::new(),
            length: 0,
            current: None,
            buf: BytesMut::with_capacity(CHUNK_SIZE),
        }
    }

    /// The path being written.
    pub fn path(&self) -> &str {
        &self.status.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.length + self.current.as_ref().map_or(0, |u| u.sent) + self.buf.len() as u64
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends data.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), FsError> {
        let block_size = self.client.block_size();
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
    pub async fn close(mut self) -> Result<FileStatus, FsError> {
        if self.current.is_some() {
            self.finish_block().await?;
        }
        if self.blocks.is_empty() && self.length == 0 && self.status.size == 0 {
            // Created (or truncated) empty and nothing written: the master already has it.
            return Ok(self.status);
        }
        let req = pb::CompleteRequest {
            file_id: self.status.id,
            path: self.status.path.clone(),
            length: self.length,
            blocks: std::mem::take(&mut self.blocks),
        };
        self.client
            .master()
            .call(|mut c| {
                let r = req.clone();
                async move { c.complete_file(r).await }
            })
            .await
    }

    async fn open_block(&mut self) -> Result<(), FsError> {
        let req = pb::AddBlockRequest {
            file_id: self.status.id,
            path: self.status.path.clone(),
        };
        let resp = self
            .client
            .master()
            .call(|mut c| {
                let r = req.clone();
                async move { c.add_block(r).await }
            })
            .await?;
        let worker = resp.worker.ok_or_else(|| {
            FsError::Unavailable("the master named no worker for the block".into())
        })?;
        let mut client = self.client.worker(&worker)?;
        let (tx, rx) = mpsc::channel::<WriteBlockRequest>(4);
        let where_ = format!("worker {}:{}", worker.hostname, worker.rpc_port);
        let call = tokio::spawn(async move {
            client
                .write_block(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner().length)
                .map_err(|s| match from_status(&s) {
                    FsError::Unavailable(why) => FsError::Unavailable(format!("{where_}: {why}")),
                    other => other,
                })
        });
        self.current = Some(Upload {
            id: resp.block_id,
            tx,
            sent: 0,
            first: true,
            call,
        });
        Ok(())
    }

    async fn send_buf(&mut self) -> Result<(), FsError> {
        let Some(upload) = self.current.as_mut() else {
            return Ok(());
        };
        if self.buf.is_empty() && !upload.first {
            return Ok(());
        }
        let data = self.buf.split().freeze();
        let len = data.len() as u64;
        let msg = WriteBlockRequest {
            block_id: upload.id,
            expected_len: if upload.first {
                self.client.block_size()
            } else {
                0
            },
            data,
        };
        upload.first = false;
        if upload.tx.send(msg).await.is_err() {
            // The stream ended early: the worker refused; its answer says why.
            let Some(upload) = self.current.take() else {
                return Ok(());
            };
            drop(upload.tx);
            return Err(match upload.call.await {
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
        drop(upload.tx);
        let len = upload
            .call
            .await
            .map_err(|e| FsError::Io(format!("block upload task: {e}")))??;
        if len != upload.sent {
            return Err(FsError::Io(format!(
                "worker stored {len} bytes of block {}, {} were sent",
                upload.id, upload.sent
            )));
        }
        self.blocks.push(pb::BlockInfo { id: upload.id, len });
        self.length += len;
        Ok(())
    }
}
