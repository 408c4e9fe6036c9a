//! Reading a file: sequential reads keep one stream open per block, which the worker fills
//! ahead of the reader (prefetch through HTTP/2 flow control); [`FileReader::read_at`]
//! fetches any range. Within `client.read_ahead_len` of a block's end a sequential reader
//! opens the next block's stream, so its worker is already sending when the reader gets
//! there (read-ahead across block boundaries). Gaps between blocks read as zeros; a block
//! whose only copy is on a lost worker or was evicted is an error, never zeros. Blocks of
//! under-storage files name their source, so the worker fetches them on a miss; a
//! sequential reader has the next one fetched ahead.
//!
//! Each block carries the short-lived read token the master gave with its location, and
//! a worker checks it when a stream or range request starts. A file open longer than
//! the token lifetime (FUSE keeps files open for hours) meets a refusal: the reader then
//! locates the file again for fresh tokens and retries once.
//!
//! A block whose worker shares this node is read from the block file itself
//! ([`super::short_circuit`]): the reader keeps its descriptor while the file is open and
//! reads it with `pread`, in place (the bytes usually come from the page cache, where a
//! hop to a blocking thread would cost more than the read). A block of an under-storage
//! file that the worker does not hold yet is loaded by the worker first.

use super::short_circuit::read_block_at;
use super::{Client, FileStatus, CHUNK_SIZE};
use crate::fs_error::FsError;
use crate::rpc::auth::AuthChannel;
use crate::rpc::pb::master as pb;
use crate::rpc::pb::worker::worker_service_client::WorkerServiceClient;
use crate::rpc::pb::worker::{DataChunk, ReadBlockRequest};
use crate::rpc::status::from_status;
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use tonic::Streaming;
use tracing::debug;

/// The most block files one reader keeps open (a 64 MiB block size: 16 GiB of file).
const MAX_LOCAL_FILES: usize = 256;

/// An open file being read.
#[derive(Debug)]
pub struct FileReader {
    client: Client,
    status: FileStatus,
    blocks: Vec<pb::LocatedBlock>,
    pos: u64,
    active: Option<Active>,
    /// The next block's stream, opened ahead of the sequential reader.
    ahead: Option<Ahead>,
    /// Per block id: its file when read through the short circuit, `None` when through
    /// gRPC (asked once per block while the file is open).
    local: HashMap<u64, Option<Arc<File>>>,
}

/// The stream of the block being read sequentially.
#[derive(Debug)]
struct Active {
    block: usize,
    /// File offset of the first byte of `pending`.
    next: u64,
    pending: Bytes,
    stream: Streaming<DataChunk>,
}

/// The stream of the block after the active one, being opened ahead of the reader.
#[derive(Debug)]
struct Ahead {
    block: usize,
    opening: tokio::task::JoinHandle<Result<Streaming<DataChunk>, FsError>>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.opening.abort();
    }
}

impl FileReader {
    pub(crate) fn new(client: Client, located: pb::FileBlocks) -> Result<FileReader, FsError> {
        let status = located
            .status
            .ok_or_else(|| FsError::Io("the master sent no file status".into()))?;
        Ok(FileReader {
            client,
            status,
            blocks: located.blocks,
            pos: 0,
            active: None,
            ahead: None,
            local: HashMap::new(),
        })
    }

    /// The file's status when opened.
    pub fn status(&self) -> &FileStatus {
        &self.status
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.status.size
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.status.size == 0
    }

    /// The position of the next sequential read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves the position of the next sequential read.
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    fn block_at(&self, pos: u64) -> Result<usize, u64> {
        // Ok(index of the block holding pos) or Err(where the next block starts).
        match self.blocks.binary_search_by(|b| {
            if b.offset + b.len <= pos {
                std::cmp::Ordering::Less
            } else if b.offset > pos {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        }) {
            Ok(i) => Ok(i),
            Err(i) => Err(self.blocks.get(i).map_or(self.status.size, |b| b.offset)),
        }
    }

    async fn open_stream(
        client: &Client,
        block: &pb::LocatedBlock,
        offset_in_block: u64,
        len: u64,
    ) -> Result<Streaming<DataChunk>, FsError> {
        let (mut client, req) = Self::request(client, block, offset_in_block, len)?;
        client
            .read_block(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| from_status(&s))
    }

    /// The worker holding `block` and the request for a range of it; an evicted or lost
    /// block is an error.
    fn request(
        client: &Client,
        block: &pb::LocatedBlock,
        offset_in_block: u64,
        len: u64,
    ) -> Result<(WorkerServiceClient<AuthChannel>, ReadBlockRequest), FsError> {
        let worker = block
            .worker
            .as_ref()
            .ok_or_else(|| FsError::Unavailable(block.unavailable.clone()))?;
        let req = ReadBlockRequest {
            block_id: block.id,
            offset: offset_in_block,
            length: len,
            ufs: block.ufs.clone(),
            block_token: block.block_token.clone(),
        };
        Ok((client.worker(worker)?, req))
    }

    /// One range of at most [`CHUNK_SIZE`] bytes of a block, in one request.
    async fn read_range(
        client: &Client,
        block: &pb::LocatedBlock,
        offset_in_block: u64,
        len: usize,
    ) -> Result<Bytes, FsError> {
        let (mut client, req) = Self::request(client, block, offset_in_block, len as u64)?;
        let data = client
            .read_range(req)
            .await
            .map(|r| r.into_inner().data)
            .map_err(|s| from_status(&s))?;
        if data.len() != len {
            return Err(FsError::Io(format!("block {} ended early", block.id)));
        }
        Ok(data)
    }

    /// Fresh read tokens (and locations) for this file's blocks from the master, after a
    /// worker refused the token of block `index` with `refused`. The blocks keep their
    /// offsets and lengths; when the file no longer has that block, `refused` stands.
    async fn relocate(&mut self, index: usize, refused: FsError) -> Result<(), FsError> {
        let id = self.blocks[index].id;
        let located = self.client.locate_id(self.status.id).await?;
        let mut fresh: HashMap<u64, pb::LocatedBlock> =
            located.blocks.into_iter().map(|b| (b.id, b)).collect();
        if !fresh.contains_key(&id) {
            return Err(refused);
        }
        for block in &mut self.blocks {
            if let Some(f) = fresh.remove(&block.id) {
                block.worker = f.worker;
                block.unavailable = f.unavailable;
                block.ufs = f.ufs;
                block.block_token = f.block_token;
            }
        }
        debug!(
            path = %self.status.path,
            block = id,
            why = %refused,
            "located again for fresh block tokens"
        );
        Ok(())
    }

    /// A stream of block `index` from `within` for `len` bytes; a refused token is
    /// renewed once.
    async fn stream_of(
        &mut self,
        index: usize,
        within: u64,
        len: u64,
    ) -> Result<Streaming<DataChunk>, FsError> {
        match Self::open_stream(&self.client, &self.blocks[index], within, len).await {
            Err(refused @ FsError::BlockToken(_)) => {
                self.relocate(index, refused).await?;
                Self::open_stream(&self.client, &self.blocks[index], within, len).await
            }
            other => other,
        }
    }

    /// One range of block `index`, as [`FileReader::read_range`]; a refused token is
    /// renewed once.
    async fn range_of(&mut self, index: usize, within: u64, len: usize) -> Result<Bytes, FsError> {
        match Self::read_range(&self.client, &self.blocks[index], within, len).await {
            Err(refused @ FsError::BlockToken(_)) => {
                self.relocate(index, refused).await?;
                Self::read_range(&self.client, &self.blocks[index], within, len).await
            }
            other => other,
        }
    }

    /// The file of block `index` when its worker shares this node (opened on first use,
    /// renewing a refused token once and having an under-storage block loaded first);
    /// `None`: read it through gRPC.
    async fn local_file(&mut self, index: usize) -> Option<Arc<File>> {
        let id = self.blocks[index].id;
        if let Some(known) = self.local.get(&id) {
            return known.clone();
        }
        if !self.client.short_circuit().enabled() {
            return None;
        }
        let mut opened = Self::open_block_file(&self.client, &self.blocks[index]).await;
        if let Err(refused @ FsError::BlockToken(_)) = opened {
            opened = match self.relocate(index, refused).await {
                Ok(()) => Self::open_block_file(&self.client, &self.blocks[index]).await,
                Err(e) => Err(e),
            };
        }
        if matches!(opened, Err(FsError::Unavailable(_))) && self.blocks[index].ufs.is_some() {
            let block = &self.blocks[index];
            if let Ok((mut worker, req)) = Self::request(&self.client, block, 0, block.len) {
                if worker.load_block(req).await.is_ok() {
                    opened = Self::open_block_file(&self.client, &self.blocks[index]).await;
                }
            }
        }
        let file = opened.ok().flatten();
        if self.local.len() >= MAX_LOCAL_FILES {
            // A huge file read everywhere: start over rather than hold descriptors without
            // bound (a block read again is opened again).
            self.local.clear();
        }
        self.local.insert(id, file.clone());
        file
    }

    async fn open_block_file(
        client: &Client,
        block: &pb::LocatedBlock,
    ) -> Result<Option<Arc<File>>, FsError> {
        let Some(worker) = &block.worker else {
            return Ok(None);
        };
        client
            .short_circuit()
            .open_read(worker, block.id, &block.block_token, block.ufs.as_ref())
            .await
    }

    /// Reads from the current position; returns 0 at the end of the file.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        if self.pos >= self.status.size || buf.is_empty() {
            return Ok(0);
        }
        let index = match self.block_at(self.pos) {
            Ok(i) => i,
            Err(next) => {
                let n = ((next.min(self.status.size) - self.pos) as usize).min(buf.len());
                buf[..n].fill(0);
                self.pos += n as u64;
                return Ok(n);
            }
        };
        if let Some(file) = self.local_file(index).await {
            let block = &self.blocks[index];
            let within = self.pos - block.offset;
            let n = (block.len - within).min(buf.len() as u64) as usize;
            read_block_at(&file, block.id, within, &mut buf[..n])?;
            self.pos += n as u64;
            return Ok(n);
        }
        let reuse = matches!(&self.active, Some(a) if a.block == index && a.next == self.pos);
        if !reuse {
            self.read_ahead(index + 1);
            let block = &self.blocks[index];
            let within = self.pos - block.offset;
            let rest = block.len - within;
            let stream = match self.opened_ahead(index, within).await {
                Some(stream) => stream,
                None => self.stream_of(index, within, rest).await?,
            };
            self.active = Some(Active {
                block: index,
                next: self.pos,
                pending: Bytes::new(),
                stream,
            });
        }
        let Some(active) = self.active.as_mut() else {
            return Ok(0);
        };
        while active.pending.is_empty() {
            match active.stream.message().await.map_err(|s| from_status(&s))? {
                Some(chunk) => active.pending = chunk.data,
                None => {
                    self.active = None;
                    return Err(FsError::Io(format!(
                        "block of {} ended early at offset {}",
                        self.status.path, self.pos
                    )));
                }
            }
        }
        let n = active.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&active.pending[..n]);
        active.pending = active.pending.slice(n..);
        active.next += n as u64;
        self.pos += n as u64;
        self.open_ahead(index);
        Ok(n)
    }

    /// Opens the stream of the block after `index` when the reader, streaming block
    /// `index`, is within the read-ahead distance of its end. Not when that block may
    /// be read through the short circuit (another worker, possibly on this node).
    fn open_ahead(&mut self, index: usize) {
        let Some(distance) = self.client.read_ahead() else {
            return;
        };
        let (current, Some(next)) = (&self.blocks[index], self.blocks.get(index + 1)) else {
            return;
        };
        if current.offset + current.len - self.pos > distance
            || matches!(&self.ahead, Some(a) if a.block == index + 1)
            || (self.client.short_circuit().enabled() && next.worker != current.worker)
        {
            return;
        }
        let (client, next) = (self.client.clone(), next.clone());
        let opening =
            tokio::spawn(async move { Self::open_stream(&client, &next, 0, next.len).await });
        self.ahead = Some(Ahead {
            block: index + 1,
            opening,
        });
    }

    /// The stream opened ahead for block `index`, when the reader enters it at its start
    /// and the opening succeeded (a refused token is left to [`FileReader::stream_of`]).
    async fn opened_ahead(&mut self, index: usize, within: u64) -> Option<Streaming<DataChunk>> {
        let mut ahead = self.ahead.take()?;
        if ahead.block != index || within != 0 {
            return None;
        }
        match (&mut ahead.opening).await {
            Ok(Ok(stream)) => Some(stream),
            _ => None,
        }
    }

    /// A sequential reader entering a block of an under-storage file has the next
    /// block fetched meanwhile by its worker (no data comes back; errors are left to
    /// the read that needs the block).
    fn read_ahead(&self, index: usize) {
        let Some(block) = self.blocks.get(index).filter(|b| b.ufs.is_some()) else {
            return;
        };
        let Ok((mut worker, req)) = Self::request(&self.client, block, 0, block.len) else {
            return;
        };
        tokio::spawn(async move {
            let _ = worker.load_block(req).await;
        });
    }

    /// Reads `len` bytes at `offset` (fewer at the end of the file) without moving the
    /// sequential position.
    pub async fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
        let end = (offset + len as u64).min(self.status.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            match self.block_at(pos) {
                Err(next) => {
                    let stop = next.min(end);
                    out.resize(out.len() + (stop - pos) as usize, 0);
                    pos = stop;
                }
                Ok(i) => {
                    let block = &self.blocks[i];
                    let (id, within) = (block.id, pos - block.offset);
                    let stop = (block.offset + block.len).min(end);
                    let want = (stop - pos) as usize;
                    if let Some(file) = self.local_file(i).await {
                        let start = out.len();
                        out.resize(start + want, 0);
                        read_block_at(&file, id, within, &mut out[start..])?;
                        pos = stop;
                        continue;
                    }
                    if want <= CHUNK_SIZE {
                        let data = self.range_of(i, within, want).await?;
                        out.extend_from_slice(&data);
                        pos = stop;
                        continue;
                    }
                    let mut stream = self.stream_of(i, within, stop - pos).await?;
                    let start = out.len();
                    while out.len() - start < want {
                        match stream.message().await.map_err(|s| from_status(&s))? {
                            Some(chunk) => out.extend_from_slice(&chunk.data),
                            None => return Err(FsError::Io(format!("block {id} ended early"))),
                        }
                    }
                    out.truncate(start + want);
                    // Read the stream to its end (its status): a stream dropped early is
                    // reset, and a connection with too many resets is closed by HTTP/2.
                    while stream
                        .message()
                        .await
                        .map_err(|s| from_status(&s))?
                        .is_some()
                    {}
                    pos = stop;
                }
            }
        }
        Ok(out)
    }
}
