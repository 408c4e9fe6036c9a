//! Open files: open and create hand out handles; reads, writes, flushes and the last
//! release go, in the kernel's order, to the handle's read task or the file's write task.

use super::{release_orphan, to_errno, Caller, Completion, Ops};
use crate::client::{FileReader, FileStatus};
use crate::fs_error::FsError;
use crate::fuse::handles::OpenFile;
use crate::fuse::page_cache;
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

    /// Whether an open of `ino`, found at `version`, lets the kernel keep its cached
    /// pages: only when the kernel caches, nothing writes the file here and it is the
    /// version cached before.
    fn keep_cache(&self, ino: u64, writing: bool, version: u64) -> bool {
        if !self.opts.kernel_cache || self.opts.direct_io {
            return false;
        }
        if writing || self.handles.writes_of(ino).is_some() {
            self.cached.forget(ino);
            return false;
        }
        self.cached.keep(ino, version)
    }

    /// The write task of `ino`, started by its first writer.
    fn start_writes(&self, ino: u64, status: &FileStatus) -> Arc<FileWrites> {
        self.handles.start_writes(ino, || {
            FileWrites::start(&self.rt, self.client.clone(), status.clone())
        })
    }

    /// Opens an existing file with the access mode of `flags`.
    pub async fn open(&self, ino: u64, flags: OpenFlags) -> Result<Opened, Errno> {
        let mode = flags.acc_mode();
        let writing = mode != OpenAccMode::O_RDONLY;
        if writing {
            self.writable(ino)?;
        }
        let located = match self.target(ino)? {
            (path, 0) => self.client.locate(&path).await,
            (_, id) => self.client.locate_id(id).await,
        }
        .map_err(to_errno)?;
        let status = located.status.clone().unwrap_or_default();
        if writing && status.read_only {
            // A read-only under-storage mount: refused at open, as POSIX has it.
            return Err(Errno::EROFS);
        }
        self.revalidate(ino, status.size);
        let mut flags = self.open_flags();
        if self.keep_cache(ino, writing, page_cache::version(&located)) {
            flags |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        let reader = self.reader_for(mode, located)?;
        let fh = self
            .handles
            .open_file(OpenFile::new(ino, reader, writing.then_some(status)));
        Ok(Opened { fh, flags })
    }

    /// The read side of a handle opened with `mode` (none for write-only) over the
    /// file's located blocks.
    fn reader_for(
        &self,
        mode: OpenAccMode,
        located: pb::FileBlocks,
    ) -> Result<Option<HandleReader>, Errno> {
        if mode == OpenAccMode::O_WRONLY {
            return Ok(None);
        }
        let r = FileReader::new(self.client.clone(), located).map_err(to_errno)?;
        Ok(Some(HandleReader::start(&self.rt, r)))
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
        let located = match self.client.create_file(&path, false, false, owner).await {
            Ok(st) => pb::FileBlocks {
                status: Some(st),
                blocks: Vec::new(),
            },
            // Made by another client since the kernel's lookup: opened as it is, with
            // its blocks, as `open` would.
            Err(FsError::AlreadyExists(_)) if !exclusive => {
                self.client.locate(&path).await.map_err(to_errno)?
            }
            Err(e) => return Err(to_errno(e)),
        };
        let status = located.status.clone().unwrap_or_default();
        let ino = self.inodes.ino(status.id);
        self.cached.forget(ino);
        let reader = self.reader_for(acc, located)?;
        let fh = self
            .handles
            .open_file(OpenFile::new(ino, reader, Some(status.clone())));
        let attr = self.attr(&status);
        self.remember(parent, &name, &attr);
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
            let path = match self.io_path(ino) {
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
        let path = match self.io_path(ino) {
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
    /// see them once `done` gets `Ok`; `durable` (fsync): they are on the workers' disks
    /// too.
    pub fn commit(&self, ino: u64, durable: bool, done: Completion<()>) {
        let Some(writes) = self.handles.writes_of(ino) else {
            return done(Ok(()));
        };
        let path = match self.io_path(ino) {
            Ok(p) => p,
            Err(e) => return done(Err(e)),
        };
        let pending = writes.flush(path.clone(), durable);
        self.answer(pending, done, move |e| {
            debug!(path = %path, error = %e, "commit failed");
        });
    }

    /// Closes a file handle; the last writer's close commits the file.
    pub fn release(&self, ino: u64, fh: u64, done: Completion<()>) {
        let handle = self.handles.close_file(fh);
        // The last handle of a file unlinked while open: its data goes after this close.
        let orphan = self.last_close_of_orphan(ino);
        let writes = handle.and_then(|h| h.writes.get().cloned());
        let Some(writes) = writes.filter(|w| w.released()) else {
            if let Some(id) = orphan {
                self.release_orphan(id);
            }
            return done(Ok(()));
        };
        self.handles.end_writes(ino, &writes);
        let path = self.io_path(ino).unwrap_or_default();
        let pending = writes.close(path.clone());
        let client = self.client.clone();
        self.rt.spawn(async move {
            let result = pending.wait().await;
            if let Err(e) = &result {
                warn!(path = %path, error = %e, "last close of a written file failed");
            }
            if let Some(id) = orphan {
                release_orphan(&client, id).await;
            }
            done(result.map_err(to_errno))
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

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, answer, n, pattern, ROOT_CALLER};
    use super::*;
    use crate::fuse::inodes::ROOT;
    use fuser::FileType;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_read_back_byte_exact_through_handles_and_the_cluster() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        // Crosses block boundaries (1 MiB blocks) and ends mid-request.
        let data = pattern(3 * testkit::BLOCK as usize + 12_345);
        let c = ops
            .create(ROOT_CALLER, ROOT, n("f"), 0o644, 0o022, libc::O_RDWR)
            .await
            .unwrap();
        assert_eq!(
            (c.attr.kind, c.attr.perm, c.attr.size),
            (FileType::RegularFile, 0o644, 0)
        );
        assert_eq!(c.opened.flags, FopenFlags::empty());
        let (f, fh) = (c.attr.ino.0, c.opened.fh);
        testkit::write(ops, f, fh, 0, &data).await.unwrap();
        assert_eq!(ops.open_for_write(), 1);
        assert_eq!(ops.getattr(f).await.unwrap().size, data.len() as u64);
        // Before any commit, this mount reads its own writes.
        let early = testkit::read(ops, f, fh, 0, data.len()).await.unwrap();
        assert!(early == data, "read back before commit differs");
        testkit::release(ops, f, fh).await.unwrap();
        assert_eq!(ops.open_for_write(), 0);
        let back = testkit::get(ops, f).await;
        assert!(back == data, "read back through a new handle differs");
        let cluster = fs.client.read_file("/f").await.unwrap();
        assert!(cluster == data, "the cluster's copy differs");
        // A ranged read in the middle, and a read past the end.
        let o = ops.open(f, OpenFlags(libc::O_RDONLY)).await.unwrap();
        let mid = testkit::read(ops, f, o.fh, 1_000_000, 100_000)
            .await
            .unwrap();
        assert!(mid == data[1_000_000..1_100_000]);
        let end = data.len() as u64;
        let past = answer(|done| ops.read(f, o.fh, end, 4096, done)).await;
        assert_eq!(past, Ok(Vec::new()));
        testkit::release(ops, f, o.fh).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_answered_once_the_new_length_shows() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let (f, fh) = testkit::create(ops, ROOT, "f").await;
        for i in 1..=500u64 {
            testkit::write(ops, f, fh, (i - 1) * 10, b"0123456789")
                .await
                .unwrap();
            // What getattr reports right after the kernel got the answer.
            let size = ops.handles.writes_of(f).map(|w| w.size());
            assert_eq!(size, Some(i * 10), "after write {i}");
        }
        testkit::release(ops, f, fh).await.unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().size, 5000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overwrites_and_appends_commit_at_flush_and_release() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let mut want = pattern(10_000);
        let f = testkit::put(ops, ROOT, "f", &want).await;
        let o = ops.open(f, OpenFlags(libc::O_WRONLY)).await.unwrap();
        testkit::write(ops, f, o.fh, 10, b"XYZ").await.unwrap();
        want[10..13].copy_from_slice(b"XYZ");
        assert_eq!(answer(|done| ops.commit(f, false, done)).await, Ok(()));
        assert!(
            fs.client.read_file("/f").await.unwrap() == want,
            "flush commits"
        );
        testkit::write(ops, f, o.fh, 10_000, b"more").await.unwrap();
        want.extend_from_slice(b"more");
        // A write-only handle reads through the file's writes (the kernel's page reads).
        let tail = testkit::read(ops, f, o.fh, 9_998, 10).await.unwrap();
        assert_eq!(tail, want[9_998..]);
        testkit::release(ops, f, o.fh).await.unwrap();
        assert!(testkit::get(ops, f).await == want, "release commits");
        // Flushing a file with no writes in this mount has nothing to do.
        assert_eq!(answer(|done| ops.commit(f, false, done)).await, Ok(()));
    }

    /// Found by the crash soak: a child process closing a descriptor it inherited flushes
    /// the writer's handle; when that commit fails, the data is gone, and the writer's own
    /// fsync and close must fail too rather than succeed on an empty file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_later_flush_until_the_last_close() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let (f, fh) = testkit::create(ops, ROOT, "f").await;
        testkit::write(ops, f, fh, 0, &pattern(5000)).await.unwrap();
        // The file goes away behind the mount's back: its commit cannot succeed.
        fs.client.delete("/f", false).await.unwrap();
        let first = answer(|done| ops.commit(f, false, done)).await;
        assert!(first.is_err(), "{first:?}");
        assert_eq!(
            answer(|done| ops.commit(f, false, done)).await,
            first,
            "fsync after it"
        );
        let more = testkit::write(ops, f, fh, 5000, b"more").await;
        assert_eq!(more, first, "a write after it");
        assert_eq!(testkit::release(ops, f, fh).await, first, "the last close");
        // A new writer starts afresh.
        let (g, gh) = testkit::create(ops, ROOT, "f").await;
        testkit::write(ops, g, gh, 0, b"again").await.unwrap();
        testkit::release(ops, g, gh).await.unwrap();
        assert_eq!(fs.client.read_file("/f").await.unwrap(), b"again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_unlinked_while_open_works_until_the_last_close() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        // Written, closed, reopened for reading, then unlinked: still readable.
        let f = testkit::put(ops, ROOT, "kept", b"committed").await;
        let fh = ops.open(f, OpenFlags(libc::O_RDONLY)).await.unwrap().fh;
        ops.remove(ROOT, n("kept")).await.unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().nlink, 0);
        assert_eq!(
            testkit::read(ops, f, fh, 0, 64).await.unwrap(),
            b"committed"
        );
        testkit::release(ops, f, fh).await.unwrap();
        assert_eq!(
            ops.getattr(f).await,
            Err(Errno::ENOENT),
            "gone after the last close"
        );
        // The temp-file pattern: create, unlink, write, read back.
        let (t, fh) = testkit::create(ops, ROOT, "tmp").await;
        ops.remove(ROOT, n("tmp")).await.unwrap();
        testkit::write(ops, t, fh, 0, b"scratch data")
            .await
            .unwrap();
        assert_eq!(
            testkit::read(ops, t, fh, 0, 64).await.unwrap(),
            b"scratch data"
        );
        let attr = ops.getattr(t).await.unwrap();
        assert_eq!((attr.nlink, attr.size), (0, 12));
        testkit::release(ops, t, fh).await.unwrap();
        assert_eq!(fs.client.statfs().await.unwrap().files, 0, "both are gone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_into_a_hole_up_to_the_length_stream_and_keep_the_length() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        // fio and databases fallocate a file, then write it from the start.
        let (f, fh) = testkit::create(ops, ROOT, "f").await;
        ops.fallocate(f, 0, 10 << 20, 0).await.unwrap();
        let data = pattern(3 << 20);
        testkit::write(ops, f, fh, 0, &data).await.unwrap();
        testkit::release(ops, f, fh).await.unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().size, 10 << 20);
        let back = testkit::get(ops, f).await;
        assert_eq!(back.len(), 10 << 20);
        assert_eq!(&back[..3 << 20], &data[..]);
        assert!(back[3 << 20..].iter().all(|b| *b == 0));
        // Appending after the data, inside the length, continues the same way.
        let fh = ops.open(f, OpenFlags(libc::O_WRONLY)).await.unwrap().fh;
        testkit::write(ops, f, fh, 3 << 20, b"more").await.unwrap();
        testkit::release(ops, f, fh).await.unwrap();
        let back = testkit::get(ops, f).await;
        assert_eq!(
            (back.len(), &back[3 << 20..(3 << 20) + 4]),
            (10 << 20, &b"more"[..])
        );
        assert_eq!(&back[..3 << 20], &data[..]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mode_of_zero_is_kept() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let c = ops
            .create(ROOT_CALLER, ROOT, n("f"), 0, 0, libc::O_WRONLY)
            .await
            .unwrap();
        assert_eq!(c.attr.perm, 0);
        let d = ops.mkdir(ROOT_CALLER, ROOT, n("d"), 0, 0).await.unwrap();
        assert_eq!(d.perm, 0);
        assert_eq!(ops.getattr(c.attr.ino.0).await.unwrap().perm, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_opens_existing_files_unless_exclusive() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let f = testkit::put(ops, ROOT, "f", b"kept").await;
        let excl = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        assert_eq!(
            ops.create(ROOT_CALLER, ROOT, n("f"), 0o644, 0, excl)
                .await
                .map(|c| c.attr.ino),
            Err(Errno::EEXIST)
        );
        let c = ops
            .create(
                ROOT_CALLER,
                ROOT,
                n("f"),
                0o644,
                0,
                libc::O_RDWR | libc::O_CREAT,
            )
            .await
            .unwrap();
        assert_eq!((c.attr.ino.0, c.attr.size), (f, 4), "opened as it is");
        // Read through its blocks (before the fix: zeros, the handle knew no blocks).
        let got = testkit::read(ops, f, c.opened.fh, 0, 100).await.unwrap();
        assert_eq!(got, b"kept");
        testkit::release(ops, f, c.opened.fh).await.unwrap();
        assert_eq!(testkit::get(ops, f).await, b"kept");
        ops.mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0)
            .await
            .unwrap();
        assert_eq!(
            ops.create(ROOT_CALLER, ROOT, n("d"), 0o644, 0, libc::O_RDWR)
                .await
                .map(|c| c.attr.ino),
            Err(Errno::EISDIR),
            "a directory is not opened as a file"
        );
        let direct = fs.ops_with(|o| o.direct_io = true);
        let c = direct
            .create(ROOT_CALLER, ROOT, n("g"), 0o600, 0, libc::O_WRONLY)
            .await
            .unwrap();
        assert_eq!(c.opened.flags, FopenFlags::FOPEN_DIRECT_IO);
        assert_eq!(c.attr.perm, 0o600);
        // A mount opens only what its kernel looked up.
        assert_eq!(
            direct.open(f, OpenFlags(libc::O_RDONLY)).await,
            Err(Errno::ENOENT)
        );
        direct.lookup(ROOT, n("f")).await.unwrap();
        let o = direct.open(f, OpenFlags(libc::O_RDONLY)).await.unwrap();
        assert_eq!(o.flags, FopenFlags::FOPEN_DIRECT_IO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handles_answer_ebadf_for_what_they_were_not_opened_for() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let f = testkit::put(ops, ROOT, "f", b"data").await;
        let o = ops.open(f, OpenFlags(libc::O_RDONLY)).await.unwrap();
        let write = answer(|done| ops.write(f, o.fh, 0, Bytes::from_static(b"x"), done)).await;
        assert_eq!(write, Err(Errno::EBADF), "a read-only handle");
        let read = answer(|done| ops.read(f, 4242, 0, 10, done)).await;
        assert_eq!(read, Err(Errno::EBADF), "an unknown handle");
        let write = answer(|done| ops.write(f, 4242, 0, Bytes::from_static(b"x"), done)).await;
        assert_eq!(write, Err(Errno::EBADF));
        testkit::release(ops, f, o.fh).await.unwrap();
        let read = answer(|done| ops.read(f, o.fh, 0, 10, done)).await;
        assert_eq!(read, Err(Errno::EBADF), "a released handle");
        assert_eq!(
            testkit::release(ops, f, 4242).await,
            Ok(()),
            "nothing to release"
        );
        assert_eq!(
            ops.open(4242, OpenFlags(libc::O_RDONLY)).await,
            Err(Errno::ENOENT)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_share_one_write_task_until_the_last_release() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let (f, first) = testkit::create(ops, ROOT, "f").await;
        let second = ops.open(f, OpenFlags(libc::O_WRONLY)).await.unwrap().fh;
        testkit::write(ops, f, first, 0, b"hello ").await.unwrap();
        testkit::write(ops, f, second, 6, b"world").await.unwrap();
        assert_eq!(ops.open_for_write(), 1);
        testkit::release(ops, f, first).await.unwrap();
        assert_eq!(ops.open_for_write(), 1, "the second handle still writes");
        assert!(ops.flush_all().await.is_empty());
        assert_eq!(fs.client.read_file("/f").await.unwrap(), b"hello world");
        testkit::release(ops, f, second).await.unwrap();
        assert_eq!(ops.open_for_write(), 0);
        assert_eq!(testkit::get(ops, f).await, b"hello world");
    }
}
