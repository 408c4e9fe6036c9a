//! Reads of one open file handle, served in the order the kernel sent them by one task, so
//! the FUSE loop never waits on the network. A read where the last one ended continues
//! the block stream (the worker streams ahead: prefetch); any other read is a ranged
//! request for exactly its bytes, so random 4 KiB reads never pull whole blocks.

use crate::client::FileReader;
use crate::fs_error::FsError;
use tokio::sync::mpsc;

/// The answer to one read: the bytes (fewer only at the end of the file).
pub type ReadResult = Result<Vec<u8>, FsError>;

/// Where an answer goes: straight back to the kernel, from the task that read.
pub type Answer = Box<dyn FnOnce(ReadResult) + Send>;

struct ReadRequest {
    offset: u64,
    size: usize,
    done: Answer,
}

/// The read side of an open file handle.
#[derive(Debug, Clone)]
pub struct HandleReader {
    tx: mpsc::UnboundedSender<ReadRequest>,
}

impl std::fmt::Debug for ReadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "read {}+{}", self.offset, self.size)
    }
}

impl HandleReader {
    /// Starts the handle's read task on `rt`.
    pub fn start(rt: &tokio::runtime::Handle, reader: FileReader) -> HandleReader {
        let (tx, rx) = mpsc::unbounded_channel();
        rt.spawn(serve(reader, rx));
        HandleReader { tx }
    }

    /// Queues a read (in call order); `done` gets the answer.
    pub fn read(&self, offset: u64, size: usize, done: Answer) {
        if let Err(e) = self.tx.send(ReadRequest { offset, size, done }) {
            (e.0.done)(Err(FsError::Io("the file handle is closed".into())));
        }
    }
}

async fn serve(mut reader: FileReader, mut rx: mpsc::UnboundedReceiver<ReadRequest>) {
    // Where the last ranged read ended: a read starting there turns into a stream.
    let mut ranged_end: Option<u64> = None;
    while let Some(req) = rx.recv().await {
        let sequential = req.offset == reader.position() || ranged_end == Some(req.offset);
        let result = if sequential {
            reader.seek(req.offset);
            ranged_end = None;
            read_stream(&mut reader, req.size).await
        } else {
            ranged_end = Some(req.offset + req.size as u64);
            reader.read_at(req.offset, req.size).await
        };
        (req.done)(result);
    }
}

/// Fills `size` bytes from the sequential stream (fewer at the end of the file).
pub async fn read_stream(reader: &mut FileReader, size: usize) -> ReadResult {
    let want = (reader.len().saturating_sub(reader.position()) as usize).min(size);
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}
