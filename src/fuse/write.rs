//! Writes to one file through this mount: one task per file open for writing, fed in the
//! order the kernel sent the requests, so the FUSE loop never waits on the network.
//!
//! - Writes at the end of the file stream straight to workers as new blocks (a new file,
//!   a truncated one, or an append, which keeps the earlier blocks). Writes a little ahead
//!   of the end (requests arriving out of order from several FUSE threads, or a seek past
//!   the end) wait in a small buffer; a gap left at flush becomes a hole.
//! - Any other write (overwriting a range, writing behind the end or into a hole) is a
//!   block-level copy-on-write ([`super::patch`]): only the blocks it touches are
//!   rewritten, each as a new block its worker copies from the old one and this client
//!   patches in place; at most 16 at once (more commit first). Nothing is staged on the
//!   client's disk.
//! - `flush`/`fsync`/the last `release` commit: the master records the new blocks (and,
//!   for rewrites, the new ids at the old blocks' places) and length, and other clients
//!   see the content. A read through the file's handles that meets data written since
//!   commits first, so it sees them.
//! - `flush` and `fsync` checkpoint rather than finish ([`Patch::checkpoint`],
//!   [`Stream::checkpoint`]): blocks written through the short circuit are made durable
//!   and visible in place and stay open, so later writes append to them or patch them
//!   again without a new block or a copy (an appender that fsyncs after every record,
//!   or whose descriptor a forked child closes, keeps writing one block); the last
//!   `release` (and a rewrite holding too many blocks) finishes them. Blocks streamed
//!   through gRPC are finished at each commit.
//! - `fsync` also makes every block this mount wrote to the file since its last fsync
//!   durable on its worker (`SyncBlocks`: fdatasync of the block files and their
//!   directory; checkpointed blocks are already) before it answers.
//! - A write or commit that loses uncommitted data fails every later write, flush and
//!   fsync of the file until its last writer closes it.

use super::patch::Patch;
use crate::client::{Client, FileReader, FileStatus, FileWriter, WrittenBlock};
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// How far ahead of the end a write may land and still wait for the gap to fill.
const PARK_WINDOW: u64 = 64 << 20;
/// Most bytes waiting ahead of the end.
const PARK_LIMIT: usize = 32 << 20;
/// An append rewrites the file's last block when it is at most this long, so appending
/// small pieces does not leave a trail of tiny blocks.
const MERGE_LIMIT: u64 = 4 << 20;

/// Where a request's answer goes (for writes: straight back to the kernel).
pub type Done<T> = Box<dyn FnOnce(Result<T, FsError>) + Send>;

enum Request {
    Write {
        path: String,
        offset: u64,
        data: Bytes,
        done: Done<u32>,
    },
    Read {
        path: String,
        offset: u64,
        size: usize,
        done: Done<Vec<u8>>,
    },
    Flush {
        path: String,
        /// fsync: the data reaches the workers' disks too.
        durable: bool,
        done: Done<()>,
    },
    Truncate {
        path: String,
        size: u64,
        done: Done<FileStatus>,
    },
    Close {
        path: String,
        done: Done<()>,
    },
}

/// The write side of a file open for writing in this mount, shared by its handles.
#[derive(Debug)]
pub struct FileWrites {
    tx: mpsc::UnboundedSender<Request>,
    size: Arc<AtomicU64>,
    opens: AtomicUsize,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Write { .. } => "write",
            Request::Read { .. } => "read",
            Request::Flush { .. } => "flush",
            Request::Truncate { .. } => "truncate",
            Request::Close { .. } => "close",
        })
    }
}

impl Request {
    /// Answers the request with an error (its task is gone).
    fn fail(self, e: FsError) {
        match self {
            Request::Write { done, .. } => done(Err(e)),
            Request::Read { done, .. } => done(Err(e)),
            Request::Flush { done, .. } | Request::Close { done, .. } => done(Err(e)),
            Request::Truncate { done, .. } => done(Err(e)),
        }
    }
}

impl FileWrites {
    /// Starts the write task of a file whose committed status is `status`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        client: Client,
        status: FileStatus,
    ) -> Arc<FileWrites> {
        let (tx, rx) = mpsc::unbounded_channel();
        let size = Arc::new(AtomicU64::new(status.size));
        let task = Task {
            client,
            status,
            mode: Mode::Idle,
            unsynced: Vec::new(),
            failed: None,
            reader: None,
            size: size.clone(),
        };
        rt.spawn(task.serve(rx));
        Arc::new(FileWrites {
            tx,
            size,
            opens: AtomicUsize::new(1),
        })
    }

    /// The file's length as this mount sees it (with data not yet committed).
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// One more handle writes through this.
    pub fn opened(&self) {
        self.opens.fetch_add(1, Ordering::AcqRel);
    }

    /// A handle closed; true when it was the last.
    pub fn released(&self) -> bool {
        self.opens.fetch_sub(1, Ordering::AcqRel) == 1
    }

    fn send<T>(
        &self,
        make: impl FnOnce(Done<T>) -> Request,
    ) -> oneshot::Receiver<Result<T, FsError>>
    where
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send_then(make, Box::new(move |r| drop(tx.send(r))));
        rx
    }

    fn send_then<T>(&self, make: impl FnOnce(Done<T>) -> Request, done: Done<T>) {
        if let Err(e) = self.tx.send(make(done)) {
            debug!("write task gone");
            e.0.fail(FsError::Io("the file's write task stopped".into()));
        }
    }

    /// Queues a write; `done` gets the answer.
    pub fn write(&self, path: String, offset: u64, data: Bytes, done: Done<u32>) {
        self.send_then(
            |done| Request::Write {
                path,
                offset,
                data,
                done,
            },
            done,
        )
    }

    /// Queues a read that sees this mount's writes.
    pub fn read(&self, path: String, offset: u64, size: usize) -> Pending<Vec<u8>> {
        Pending(self.send(|done| Request::Read {
            path,
            offset,
            size,
            done,
        }))
    }

    /// Queues a commit; `durable` (fsync) also makes the file's new blocks durable.
    pub fn flush(&self, path: String, durable: bool) -> Pending<()> {
        Pending(self.send(|done| Request::Flush {
            path,
            durable,
            done,
        }))
    }

    /// Queues a truncate (or extend).
    pub fn truncate(&self, path: String, size: u64) -> Pending<FileStatus> {
        Pending(self.send(|done| Request::Truncate { path, size, done }))
    }

    /// Queues the final commit; the task ends after it.
    pub fn close(&self, path: String) -> Pending<()> {
        Pending(self.send(|done| Request::Close { path, done }))
    }
}

/// The answer to a queued request.
#[derive(Debug)]
pub struct Pending<T>(oneshot::Receiver<Result<T, FsError>>);

impl<T> Pending<T> {
    /// Waits for the answer.
    pub async fn wait(self) -> Result<T, FsError> {
        self.0
            .await
            .unwrap_or_else(|_| Err(FsError::Io("the file's write task stopped".into())))
    }
}

enum Mode {
    /// Nothing uncommitted.
    Idle,
    /// Appending at the end.
    Stream(Box<Stream>),
    /// Rewriting blocks in place (copy-on-write).
    Patch(Box<Patch>),
}

struct Stream {
    writer: FileWriter,
    parked: BTreeMap<u64, Bytes>,
    parked_bytes: usize,
}

impl Stream {
    fn end(&self) -> u64 {
        let parked_end = self
            .parked
            .iter()
            .next_back()
            .map_or(0, |(o, d)| o + d.len() as u64);
        self.writer.len().max(parked_end)
    }

    /// Whether `offset..offset+len` may wait ahead of the end.
    fn can_park(&self, offset: u64, len: usize) -> bool {
        let pos = self.writer.position();
        let end = offset + len as u64;
        offset > pos
            && offset - pos <= PARK_WINDOW
            && self.parked_bytes + len <= PARK_LIMIT
            && !self
                .parked
                .range(..end)
                .any(|(o, d)| o + d.len() as u64 > offset)
    }

    /// Writes the parked pieces that now follow the end.
    async fn drain(&mut self) -> Result<(), FsError> {
        while let Some(entry) = self.parked.first_entry() {
            if *entry.key() != self.writer.position() {
                break;
            }
            let data = entry.remove();
            self.parked_bytes -= data.len();
            self.writer.write(&data).await?;
        }
        Ok(())
    }

    /// Records what was written with the master and keeps appending
    /// ([`FileWriter::checkpoint`]); `None` when it cannot stay open (pieces wait
    /// ahead of the end, or the block goes through gRPC): commit instead.
    async fn checkpoint(&mut self) -> Result<Option<(FileStatus, Vec<WrittenBlock>)>, FsError> {
        if !self.parked.is_empty() {
            return Ok(None);
        }
        self.writer.checkpoint().await
    }

    /// Commits, leaving holes for gaps before parked pieces.
    async fn commit(mut self) -> Result<(FileStatus, Vec<WrittenBlock>), FsError> {
        while let Some((offset, data)) = self.parked.pop_first() {
            self.writer.skip_to(offset).await?;
            self.writer.write(&data).await?;
        }
        self.writer.finish().await
    }
}

struct Task {
    client: Client,
    status: FileStatus,
    mode: Mode,
    /// Blocks committed since the last fsync, which makes them durable.
    unsynced: Vec<WrittenBlock>,
    /// A failure that lost uncommitted data. Every later write, flush and fsync of the
    /// file through this mount reports it, until its last writer closes it: handles are
    /// shared (a child closing a descriptor it inherited flushes the parent's handle), so
    /// reporting it once could let the writer's own fsync succeed on lost data.
    failed: Option<FsError>,
    reader: Option<FileReader>,
    size: Arc<AtomicU64>,
}

impl Task {
    /// Serves the requests in order. Each answer goes out after the length it leaves is
    /// published: a getattr right after a write's answer sees the write.
    async fn serve(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        while let Some(req) = rx.recv().await {
            match req {
                Request::Write {
                    path,
                    offset,
                    data,
                    done,
                } => {
                    let n = data.len() as u32;
                    let r = self.write(&path, offset, data).await.map(|_| n);
                    self.publish_size();
                    done(r);
                }
                Request::Read {
                    path,
                    offset,
                    size,
                    done,
                } => {
                    let r = self.read(&path, offset, size).await;
                    self.publish_size();
                    done(r);
                }
                Request::Flush {
                    path,
                    durable,
                    done,
                } => {
                    debug!(path = %path, durable, "commit");
                    let r = match self.checkpoint().await {
                        Ok(()) if durable => self.sync().await,
                        other => other,
                    };
                    self.publish_size();
                    done(r);
                }
                Request::Truncate { path, size, done } => {
                    let r = self.truncate(&path, size).await;
                    self.publish_size();
                    done(r);
                }
                Request::Close { path, done } => {
                    debug!(path = %path, "last close: commit");
                    let r = self.commit().await;
                    self.publish_size();
                    done(r);
                    return;
                }
            }
        }
    }

    fn publish_size(&self) {
        let size = match &self.mode {
            Mode::Idle => self.status.size,
            Mode::Stream(s) => s.end(),
            Mode::Patch(p) => p.len(),
        };
        self.size.store(size, Ordering::Release);
    }

    async fn write(&mut self, path: &str, offset: u64, data: Bytes) -> Result<(), FsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Mode::Idle = self.mode {
            let located = self.client.locate_id(self.status.id).await?;
            let size = located.status.as_ref().map_or(0, |st| st.size);
            let data_end = located.blocks.last().map_or(0, |b| b.offset + b.len);
            // New data streams as new blocks where the file's data ends: at its length,
            // or where a hole up to its length begins (a length set by fallocate or a
            // truncate up). Anything else rewrites the blocks it touches.
            let start = if offset >= size {
                Some(size)
            } else if offset >= data_end {
                Some(data_end)
            } else {
                None
            };
            match start.filter(|start| offset - start <= PARK_WINDOW) {
                Some(start) => {
                    self.mode = Mode::Stream(Box::new(self.open_stream(located, start).await?))
                }
                None => self.start_patch(Some(located)).await?,
            }
        }
        if let Mode::Stream(s) = &mut self.mode {
            if offset == s.writer.position() {
                let r = match s.writer.write(&data).await {
                    Ok(()) => s.drain().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    return Err(self.fail(e));
                }
                return Ok(());
            }
            if s.can_park(offset, data.len()) {
                s.parked_bytes += data.len();
                s.parked.insert(offset, data);
                return Ok(());
            }
            self.start_patch(None).await?;
        }
        // Bounded: a commit leaves no block open, and one write touches far fewer
        // blocks than a patch may hold.
        for _ in 0..4 {
            let Mode::Patch(p) = &mut self.mode else {
                return Err(FsError::Io(format!("{path}: no write mode")));
            };
            match p.write(offset, &data).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(super::patch::Full)) => {
                    self.commit().await?;
                    self.start_patch(None).await?;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Err(FsError::Io(format!(
            "{path}: a write at {offset} touches more blocks than a rewrite holds"
        )))
    }

    /// Switches to rewriting blocks in place (committing a stream first), with the
    /// file as `located` or as the master has it now.
    async fn start_patch(&mut self, located: Option<pb::FileBlocks>) -> Result<(), FsError> {
        if let Mode::Patch(_) = self.mode {
            return Ok(());
        }
        self.commit().await?;
        let located = match located {
            Some(l) => l,
            None => self.client.locate_id(self.status.id).await?,
        };
        if let Some(status) = &located.status {
            self.status = status.clone();
        }
        self.mode = Mode::Patch(Box::new(Patch::new(self.client.clone(), located)));
        Ok(())
    }

    /// Drops uncommitted data after a failure and remembers it for every later flush.
    fn fail(&mut self, e: FsError) -> FsError {
        self.mode = Mode::Idle;
        self.failed = Some(e.clone());
        e
    }

    /// A writer adding blocks from `start` (the file's length, or the end of its data
    /// when a hole follows it); a short last block ending there is rewritten with it. The
    /// file keeps at least its length.
    async fn open_stream(
        &mut self,
        located: pb::FileBlocks,
        start: u64,
    ) -> Result<Stream, FsError> {
        let mut reader = FileReader::new(self.client.clone(), located.clone())?;
        let status = located.status.unwrap_or_default();
        let mut kept: Vec<pb::BlockInfo> = located
            .blocks
            .iter()
            .map(|b| pb::BlockInfo {
                id: b.id,
                len: b.len,
                offset: Some(b.offset),
            })
            .collect();
        let mut start = start;
        let mut carry = Vec::new();
        if let Some(last) = located.blocks.last() {
            let short = last.len <= MERGE_LIMIT && last.len < self.client.block_size();
            if short && last.offset + last.len == start && last.worker.is_some() {
                if let Ok(data) = reader.read_at(last.offset, last.len as usize).await {
                    carry = data;
                    kept.pop();
                    start = last.offset;
                }
            }
        }
        let mut writer = FileWriter::resume(self.client.clone(), status.clone(), kept, start);
        writer.keep_length(status.size);
        writer.write(&carry).await?;
        self.status = status;
        self.reader = None;
        Ok(Stream {
            writer,
            parked: BTreeMap::new(),
            parked_bytes: 0,
        })
    }

    /// Records everything written so far with the master.
    async fn commit(&mut self) -> Result<(), FsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let committed = match std::mem::replace(&mut self.mode, Mode::Idle) {
            Mode::Idle => return Ok(()),
            Mode::Stream(s) => s.commit().await,
            Mode::Patch(p) => p.commit().await,
        };
        self.recorded(committed)
    }

    /// Takes in what a commit or checkpoint recorded; a failed one lost the uncommitted
    /// data (with the stream or the new blocks), which fails the file's later writes.
    fn recorded(
        &mut self,
        result: Result<(FileStatus, Vec<WrittenBlock>), FsError>,
    ) -> Result<(), FsError> {
        match result {
            Ok((status, written)) => {
                self.status = status;
                self.unsynced.extend(written);
                self.reader = None;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Records everything written so far with the master, keeping the blocks written
    /// through the short circuit open ([`Patch::checkpoint`], [`Stream::checkpoint`]);
    /// commits otherwise.
    async fn checkpoint(&mut self) -> Result<(), FsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let checkpointed = match &mut self.mode {
            Mode::Idle => return Ok(()),
            Mode::Patch(p) => p.checkpoint().await,
            Mode::Stream(s) => match s.checkpoint().await {
                Ok(Some(recorded)) => Ok(recorded),
                Ok(None) => return self.commit().await,
                Err(e) => Err(e),
            },
        };
        self.recorded(checkpointed)
    }

    /// Makes the blocks committed since the last fsync durable on their workers.
    async fn sync(&mut self) -> Result<(), FsError> {
        self.client.sync_blocks(&self.unsynced).await?;
        self.unsynced.clear();
        Ok(())
    }

    async fn read(&mut self, path: &str, offset: u64, size: usize) -> Result<Vec<u8>, FsError> {
        // Uncommitted writes are read back committed. Blocks a rewrite has not touched
        // read as committed.
        let untouched = match &self.mode {
            Mode::Patch(p) => !p.touches(offset, size as u64),
            _ => false,
        };
        if !untouched && !matches!(self.mode, Mode::Idle) {
            if let Err(e) = self.checkpoint().await {
                debug!(path, error = %e, "commit before a read failed");
                return Err(e);
            }
        }
        if self.reader.is_none() {
            self.reader = Some(open_by_id(self.client.clone(), self.status.id).await?);
        }
        match &mut self.reader {
            Some(r) => r.read_at(offset, size).await,
            None => Ok(Vec::new()),
        }
    }

    async fn truncate(&mut self, path: &str, size: u64) -> Result<FileStatus, FsError> {
        if !matches!(self.mode, Mode::Idle) {
            self.commit().await?;
        }
        let status = self
            .client
            .set_attr(pb::SetAttrRequest {
                path: path.to_string(),
                size: Some(size),
                id: self.status.id,
                ..Default::default()
            })
            .await?;
        self.status = status.clone();
        self.reader = None;
        Ok(status)
    }
}

/// A reader of the file as the masters have it now, found by its inode id: the file a
/// handle opened, wherever its names went since (renamed, or unlinked while open).
async fn open_by_id(client: Client, id: u64) -> Result<FileReader, FsError> {
    let blocks = client.locate_id(id).await?;
    FileReader::new(client, blocks)
}
