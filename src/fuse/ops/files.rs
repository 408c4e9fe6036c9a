//! Open files: open and create hand out handles; reads, writes, flushes and the last
//! release go, in the kernel's order, to the handle's read task or the file's write task.

use super::{to_errno, Caller, Completion, Ops};
use crate::client::{FileReader, FileStatus};
use crate::fs_error::FsError;
use crate::fuse::handles::OpenFile;
use crate::fuse::read::HandleReader;
use crate::fuse::write::{FileWrites, Pending};
use crate::rpc::pb::master as pb;
use bytes::Bytes;
use fuser::{Errno, FileAttr, FopenFlags, OpenAccMode, OpenFlags};
use std::ffi::OsStr;
use std::sync::Arc;
use tracing::{debug, warn};

/// An opened file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Its handle number.
    pub fh: u64,
    /// How the kernel should treat it (direct I/O or the page cache).
    pub flags: FopenFlags,
}

/// A created and opened file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// Its attributes.
    pub attr: FileAttr,
    /// Its handle.
    pub opened: Opened,
}

impl Ops {
    fn open_flags(&self) -> FopenFlags {
        if self.opts.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }

    /// The write task of `ino`, started by its first writer.
    fn start_writes(&self, ino: u64, status: &FileStatus) -> Arc<FileWrites> {
        self.handles.start_writes(ino, || {
            FileWrites::start(
                &self.rt,
                self.client.clone(),
                status.clone(),
                self.opts.staging.clone(),
            )
        })
    }

    /// Opens an existing file with the access mode of `flags`.
    pub async fn open(&self, ino: u64, flags: OpenFlags) -> Result<Opened, Errno> {
        let mode = flags.acc_mode();
        let writing = mode != OpenAccMode::O_RDONLY;
        if writing {
            self.writable()?;
        }
        let path = self.path(ino)?;
        let located = self.client.locate(&path).await.map_err(to_errno)?;
        let status = located.status.clone().unwrap_or_default();
        self.revalidate(ino, status.size);
        let reader = if mode != OpenAccMode::O_WRONLY {
            let r = FileReader::new(self.client.clone(), located).map_err(to_errno)?;
            Some(HandleReader::start(&self.rt, r))
        } else {
            None
        };
        let fh = self
            .handles
            .open_file(OpenFile::new(reader, writing.then_some(status)));
        Ok(Opened {
            fh,
            flags: self.open_flags(),
        })
    }

    /// Creates `name` in `parent` (or opens it, unless `O_EXCL` is among `flags`) and
    /// opens it.
    pub async fn create(
        &self,
        caller: Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<Created, Errno> {
        let (path, name) = self.changing(parent, name)?;
        let owner = caller.owner(mode, umask);
        let acc = OpenFlags(flags).acc_mode();
        let exclusive = flags & libc::O_EXCL != 0;
        let status = match self.client.create_file(&path, false, false, owner).await {
            Ok(st) => st,
            Err(FsError::AlreadyExists(_)) if !exclusive => {
                self.client.stat(&path).await.map_err(to_errno)?
            }
            Err(e) => return Err(to_errno(e)),
        };
        let reader = if acc != OpenAccMode::O_WRONLY {
            let located = pb::FileBlocks {
                status: Some(status.clone()),
                blocks: Vec::new(),
            };
            let r = FileReader::new(self.client.clone(), located).map_err(to_errno)?;
            Some(HandleReader::start(&self.rt, r))
        } else {
            None
        };
        let fh = self
            .handles
            .open_file(OpenFile::new(reader, Some(status.clone())));
        let attr = self.attr(&status);
        self.inodes.remember(parent, &name, attr.ino.0);
        Ok(Created {
            attr,
            opened: Opened {
                fh,
                flags: self.open_flags(),
            },
        })
    }

    /// Queues a read of `size` bytes at `offset` (fewer at the end of the file).
    ///
    /// A file with writes in this mount is read through its write task, which sees them;
    /// so is a write-only handle (the kernel reads pages around partial writes with the
    /// write-back cache).
    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: usize, done: Completion<Vec<u8>>) {
        let handle = self.handles.file(fh);
        let writes = self.handles.writes_of(ino).or_else(|| {
            let h = handle.as_ref()?;
            if h.reader.is_some() {
                return None;
            }
            let status = h.write_from.as_ref()?;
            Some(
                h.writes
                    .get_or_init(|| self.start_writes(ino, status))
                    .clone(),
            )
        });
        if let Some(w) = writes {
            let path = match self.path(ino) {
                Ok(p) => p,
                Err(e) => return done(Err(e)),
            };
            let pending = w.read(path, offset, size);
            self.rt
                .spawn(async move { done(pending.wait().await.map_err(to_errno)) });
            return;
        }
        let Some(reader) = handle.and_then(|h| h.reader.clone()) else {
            return done(Err(Errno::EBADF));
        };
        reader.read(
            offset,
            size,
            Box::new(move |result| done(result.map_err(to_errno))),
        );
    }

    /// Queues a write of `data` at `offset`; `done` gets the bytes written.
    pub fn write(&self, ino: u64, fh: u64, offset: u64, data: Bytes, done: Completion<u32>) {
        let Some(handle) = self.handles.file(fh) else {
            return done(Err(Errno::EBADF));
        };
        let Some(status) = &handle.write_from else {
            return done(Err(Errno::EBADF));
        };
        let writes = handle
            .writes
            .get_or_init(|| self.start_writes(ino, status))
            .clone();
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return done(Err(e)),
        };
        writes.write(
            path,
            offset,
            data,
            Box::new(move |result: Result<u32, FsError>| done(result.map_err(to_errno))),
        );
    }

    /// Queues a commit of this mount's writes to `ino` (flush and fsync): other clients
    /// see them once `done` gets `Ok`.
    pub fn commit(&self, ino: u64, done: Completion<()>) {
        let Some(writes) = self.handles.writes_of(ino) else {
            return done(Ok(()));
        };
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return done(Err(e)),
        };
        let pending = writes.flush(path.clone());
        self.answer(pending, done, move |e| {
            debug!(path = %path, error = %e, "commit failed");
        });
    }

    /// Closes a file handle; the last writer's close commits the file.
    pub fn release(&self, ino: u64, fh: u64, done: Completion<()>) {
        let handle = self.handles.close_file(fh);
        let Some(writes) = handle.and_then(|h| h.writes.get().cloned()) else {
            return done(Ok(()));
        };
        if !writes.released() {
            return done(Ok(()));
        }
        self.handles.end_writes(ino, &writes);
        let path = self.path(ino).unwrap_or_default();
        let pending = writes.close(path.clone());
        self.answer(pending, done, move |e| {
            warn!(path = %path, error = %e, "last close of a written file failed");
        });
    }

    /// Hands the outcome of `pending` to `done` from a task, logging a failure first.
    fn answer<T: Send + 'static>(
        &self,
        pending: Pending<T>,
        done: Completion<T>,
        log: impl FnOnce(&FsError) + Send + 'static,
    ) {
        self.rt.spawn(async move {
            done(pending.wait().await.map_err(|e| {
                log(&e);
                to_errno(e)
            }))
        });
    }
}
