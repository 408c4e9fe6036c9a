//! Writes inside a file (overwrites, writes behind the end or into holes) as block-level
//! copy-on-write: the set of blocks being rewritten and where each write lands.
//!
//! The file's blocks are kept as slots, sorted by offset. A write lands in the slot that
//! starts at or before it when it falls short of that slot's limit (a block size from
//! its start, and the next slot's start); elsewhere (before the first block, in a hole
//! past a slot's limit) a new slot starts, at the write's block boundary or the end of
//! the slot before, whichever is later. A slot's first write opens a new block for it
//! ([`BlockUpload`]): a copy of the old block made by its worker (or, on another
//! worker, through this client's memory), patched in place by this and every later
//! write. At most [`MAX_OPEN`] blocks are rewritten at once: the next one asks for a
//! commit first ([`Full`]). [`Patch::commit`] finishes the blocks and records the file's
//! new block list with the master, which frees the blocks replaced.
//!
//! [`Patch::checkpoint`] (fsync, flush) records the block list too, but keeps the blocks
//! written through the short circuit open: each is made durable and visible at its
//! length by its worker and later writes go on patching it in place (no new block, no
//! copy), so a file rewritten and fsynced over and over copies each block once. Blocks
//! streamed through gRPC cannot stay open: they are finished and become the slots'
//! committed blocks, rewritten again as new blocks when written again.

use crate::client::{BlockUpload, Client, FileReader, FileStatus, WrittenBlock, CHUNK_SIZE};
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use bytes::Bytes;

/// Most blocks rewritten at once (each holds a worker's reservation and, through gRPC, a
/// stream); the next commits first.
pub const MAX_OPEN: usize = 16;

/// A write needs one more block than [`MAX_OPEN`]: commit, then write again.
#[derive(Debug)]
pub struct Full;

/// One block of the file, as it was or being rewritten.
#[derive(Debug)]
struct Slot {
    offset: u64,
    /// The block's length (with the writes so far).
    len: u64,
    /// The committed block it was (none: a new block in a hole).
    old: Option<pb::LocatedBlock>,
    /// Its new block, once written to.
    upload: Option<BlockUpload>,
    /// Written since its last checkpoint.
    dirty: bool,
}

/// The blocks of one file being rewritten, and the file's length with the writes.
#[derive(Debug)]
pub struct Patch {
    client: Client,
    status: FileStatus,
    slots: Vec<Slot>,
    /// Reads old blocks to copy through memory (a new block on another worker).
    reader: Option<FileReader>,
    located: pb::FileBlocks,
    open: usize,
    len: u64,
}

impl Patch {
    /// Starts rewriting the file as `located` describes it (blocks and length).
    pub fn new(client: Client, located: pb::FileBlocks) -> Patch {
        let status = located.status.clone().unwrap_or_default();
        let slots = located
            .blocks
            .iter()
            .map(|b| Slot {
                offset: b.offset,
                len: b.len,
                old: Some(b.clone()),
                upload: None,
                dirty: false,
            })
            .collect();
        Patch {
            client,
            len: status.size,
            status,
            slots,
            reader: None,
            located,
            open: 0,
        }
    }

    /// The file's length with the writes so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `offset..offset+len` meets a block written since its last checkpoint (a
    /// read of it must checkpoint or commit first) or passes the recorded length.
    pub fn touches(&self, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len);
        end > self.status.size
            || self.slots.iter().any(|s| {
                s.upload.is_some() && s.dirty && s.offset < end && offset < s.offset + s.len.max(1)
            })
    }

    /// Where slot `i` must end: a block size from its start, and the next slot's start.
    fn limit(&self, i: usize) -> u64 {
        let own = self.slots[i].offset + self.client.block_size();
        self.slots
            .get(i + 1)
            .map_or(own, |next| own.min(next.offset))
    }

    /// The slot `offset` lands in, made when none takes it.
    fn slot_for(&mut self, offset: u64) -> usize {
        let before = self.slots.partition_point(|s| s.offset <= offset);
        if before > 0 && offset < self.limit(before - 1) {
            return before - 1;
        }
        let block_size = self.client.block_size();
        let prev_end = before
            .checked_sub(1)
            .map_or(0, |i| self.slots[i].offset + self.slots[i].len);
        let start = (offset - offset % block_size).max(prev_end);
        self.slots.insert(
            before,
            Slot {
                offset: start,
                len: 0,
                old: None,
                upload: None,
                dirty: false,
            },
        );
        before
    }

    /// Writes `data` at `offset`. [`Full`] asks for a commit first (what was written
    /// of `data` is simply written again after it).
    pub async fn write(&mut self, offset: u64, data: &Bytes) -> Result<Result<(), Full>, FsError> {
        let mut at = offset;
        let end = offset + data.len() as u64;
        while at < end {
            let i = self.slot_for(at);
            let take = (end.min(self.limit(i)) - at) as usize;
            if self.slots[i].upload.is_none() {
                if self.open == MAX_OPEN {
                    // An empty slot just made stays harmless: it is skipped at commit.
                    return Ok(Err(Full));
                }
                self.open_slot(i).await?;
            }
            let piece_start = (at - offset) as usize;
            let piece = data.slice(piece_start..piece_start + take);
            let slot = &mut self.slots[i];
            let in_block = at - slot.offset;
            let upload = slot
                .upload
                .as_mut()
                .ok_or_else(|| FsError::Io("a rewritten block without its upload".into()))?;
            upload.write_at(in_block, piece).await?;
            slot.dirty = true;
            slot.len = slot.len.max(in_block + take as u64);
            at += take as u64;
        }
        self.len = self.len.max(end);
        Ok(Ok(()))
    }

    /// Opens slot `i`'s new block, a copy of its old one.
    async fn open_slot(&mut self, i: usize) -> Result<(), FsError> {
        let old = self.slots[i].old.clone();
        let copy_len = old.as_ref().map_or(0, |b| b.len);
        let (mut upload, copied) =
            BlockUpload::open(&self.client, &self.status, old.as_ref(), copy_len).await?;
        if let (Some(old), false) = (&old, copied) {
            // Another worker took the new block: copy through this client.
            if self.reader.is_none() {
                self.reader = Some(FileReader::new(self.client.clone(), self.located.clone())?);
            }
            let Some(reader) = self.reader.as_mut() else {
                return Err(FsError::Io("no reader for the copy".into()));
            };
            let mut done = 0;
            while done < old.len {
                let n = (old.len - done).min(CHUNK_SIZE as u64) as usize;
                let data = reader.read_at(old.offset + done, n).await?;
                if data.len() != n {
                    return Err(FsError::Io(format!(
                        "block {} of {} read short while copying it",
                        old.id, self.status.path
                    )));
                }
                upload.write_at(done, Bytes::from(data)).await?;
                done += n as u64;
            }
        }
        self.slots[i].upload = Some(upload);
        self.open += 1;
        Ok(())
    }

    /// Records the file's block list with the master, keeping the blocks written
    /// through the short circuit open (each checkpointed: durable and visible at its
    /// length) and finishing the others; returns the file's status and the blocks
    /// finished (not yet synced).
    pub async fn checkpoint(&mut self) -> Result<(FileStatus, Vec<WrittenBlock>), FsError> {
        if self.len == self.status.size && !self.slots.iter().any(|s| s.dirty) {
            return Ok((self.status.clone(), Vec::new()));
        }
        // The blocks kept open are checkpointed at once: their workers sync them in
        // parallel (one fdatasync each, which the file system can share).
        let kept_open = self
            .slots
            .iter_mut()
            .filter(|s| s.dirty)
            .filter_map(|s| s.upload.as_mut())
            .filter(|u| u.can_checkpoint())
            .map(|u| u.checkpoint());
        futures::future::try_join_all(kept_open).await?;
        let mut blocks = Vec::with_capacity(self.slots.len());
        let mut written = Vec::new();
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let id = match (slot.upload.take(), &slot.old) {
                (Some(upload), _) if upload.can_checkpoint() => {
                    let id = upload.id();
                    slot.upload = Some(upload);
                    id
                }
                (Some(upload), _) => {
                    let (id, worker, _) = upload.finish().await?;
                    written.push((worker, id));
                    self.open -= 1;
                    id
                }
                (None, Some(old)) => old.id,
                (None, None) => continue,
            };
            let slot = &mut self.slots[i];
            slot.dirty = false;
            blocks.push(pb::BlockInfo {
                id,
                len: slot.len,
                offset: Some(slot.offset),
            });
        }
        let status = Self::record(&self.client, &self.status, self.len, blocks).await?;
        self.status = status.clone();
        if !written.is_empty() {
            // Finished blocks are the slots' committed blocks now: located again (with
            // their workers and read tokens) for the copies of later rewrites.
            let located = self.client.locate_id(status.id).await?;
            for slot in self.slots.iter_mut().filter(|s| s.upload.is_none()) {
                slot.old = located
                    .blocks
                    .iter()
                    .find(|b| b.offset == slot.offset)
                    .cloned();
            }
            self.located = located;
            self.reader = None;
        }
        Ok((status, written))
    }

    /// Records `blocks` and the length with the master (`CompleteFile`); the old blocks
    /// they replace are freed there.
    /// (A function of its parts: a `&self` held across the call would not be `Send`.)
    async fn record(
        client: &Client,
        file: &FileStatus,
        length: u64,
        blocks: Vec<pb::BlockInfo>,
    ) -> Result<FileStatus, FsError> {
        client
            .complete(pb::CompleteRequest {
                file_id: file.id,
                path: file.path.clone(),
                length,
                blocks,
            })
            .await
    }

    /// Finishes the new blocks and records the file's block list with the master;
    /// returns the file's status and the new blocks (not yet synced).
    pub async fn commit(mut self) -> Result<(FileStatus, Vec<WrittenBlock>), FsError> {
        let changed = self.len != self.status.size || self.slots.iter().any(|s| s.dirty);
        let mut blocks = Vec::with_capacity(self.slots.len());
        let mut written = Vec::new();
        for slot in std::mem::take(&mut self.slots) {
            let id = match (slot.upload, &slot.old) {
                (Some(upload), _) => {
                    let (id, worker, _) = upload.finish().await?;
                    written.push((worker, id));
                    id
                }
                (None, Some(old)) => old.id,
                (None, None) => continue,
            };
            blocks.push(pb::BlockInfo {
                id,
                len: slot.len,
                offset: Some(slot.offset),
            });
        }
        if written.is_empty() || !changed {
            // Nothing new, or only blocks a checkpoint already recorded at these lengths.
            return Ok((self.status, written));
        }
        let status = Self::record(&self.client, &self.status, self.len, blocks).await?;
        Ok((status, written))
    }
}
