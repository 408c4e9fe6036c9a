//! Open directories: opendir, readdir and readdirplus over a listing fetched once per
//! pass, releasedir.

use super::{to_errno, Ops};
use crate::client::FileStatus;
use crate::fuse::attr::{file_attr, file_type};
use crate::fuse::handles::OpenDir;
use crate::rpc::pb::master as pb;
use fuser::{Errno, FileAttr, FileType, INodeNo};
use std::sync::Arc;
use std::time::Duration;

/// One entry of a readdir answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The entry's inode.
    pub ino: u64,
    /// The offset of the entry after it (the kernel passes it back to continue).
    pub offset: u64,
    /// Its type.
    pub kind: FileType,
    /// Its name.
    pub name: &'a str,
}

/// One entry of a readdirplus answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryPlus<'a> {
    /// The offset of the entry after it.
    pub offset: u64,
    /// Its name.
    pub name: &'a str,
    /// Its attributes (`attr.ino`: its inode).
    pub attr: FileAttr,
    /// How long the kernel may cache the entry and its attributes.
    pub ttl: Duration,
}

impl Ops {
    /// Opens a directory; the handle number.
    pub fn opendir(&self) -> u64 {
        self.handles.open_dir()
    }

    /// Closes a directory handle.
    pub fn releasedir(&self, fh: u64) {
        self.handles.close_dir(fh);
    }

    /// The open directory of a handle, and its path.
    fn open_dir(&self, ino: u64, fh: u64) -> Result<(Arc<OpenDir>, String), Errno> {
        let dir = self.handles.dir(fh).ok_or(Errno::EBADF)?;
        let path = self.inodes.path(ino).ok_or(Errno::EBADF)?;
        Ok((dir, path))
    }

    /// The listing of an open directory; fetched again when read from the start.
    async fn listing(
        &self,
        dir: &OpenDir,
        path: &str,
        offset: u64,
    ) -> Result<Arc<Vec<FileStatus>>, Errno> {
        let mut cached = dir.entries.lock().await;
        if offset == 0 || cached.is_none() {
            *cached = Some(Arc::new(self.client.list(path).await.map_err(to_errno)?));
        }
        Ok(cached.clone().unwrap_or_default())
    }

    /// Feeds the entries of directory `ino` from `offset` to `add` until it says the
    /// answer is full.
    pub async fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), Errno> {
        let (dir, path) = self.open_dir(ino, fh)?;
        let entries = self.listing(&dir, &path, offset).await?;
        for (next, name, st) in dir_entries(offset, &entries) {
            let (child, kind) = match st {
                Some(st) => (self.inodes.ino(st.id), file_type(st)),
                None => (ino, FileType::Directory),
            };
            let entry = DirEntry {
                ino: child,
                offset: next,
                kind,
                name,
            };
            if add(entry) {
                break;
            }
        }
        Ok(())
    }

    /// Like [`Ops::readdir`] with attributes; each entry `add` takes counts as a lookup.
    pub async fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(DirEntryPlus<'_>) -> bool,
    ) -> Result<(), Errno> {
        let (dir, path) = self.open_dir(ino, fh)?;
        let entries = self.listing(&dir, &path, offset).await?;
        for (next, name, st) in dir_entries(offset, &entries) {
            let full = match st {
                // "." and ".." carry no lookup; the kernel skips their attributes.
                None => {
                    let mut attr = file_attr(ino, &dir_status(), None);
                    attr.ino = INodeNo(ino);
                    add(DirEntryPlus {
                        offset: next,
                        name,
                        attr,
                        ttl: Duration::ZERO,
                    })
                }
                Some(st) => {
                    let attr = self.attr(st);
                    let full = add(DirEntryPlus {
                        offset: next,
                        name,
                        attr,
                        ttl: self.opts.attr_ttl,
                    });
                    if !full {
                        self.inodes.remember(ino, name, attr.ino.0);
                    }
                    full
                }
            };
            if full {
                break;
            }
        }
        Ok(())
    }
}

/// A directory status for "." and "..".
fn dir_status() -> FileStatus {
    FileStatus {
        kind: pb::FileKind::Directory as i32,
        mode: 0o755,
        ..Default::default()
    }
}

/// Directory entries from `offset`: ".", ".." (no status), then the listing; each with
/// the offset of the entry after it, which the kernel passes back to continue.
fn dir_entries(
    offset: u64,
    entries: &[FileStatus],
) -> impl Iterator<Item = (u64, &str, Option<&FileStatus>)> {
    let dots = [(".", None), ("..", None)].into_iter();
    let rest = entries.iter().map(|st| (st.name.as_str(), Some(st)));
    dots.chain(rest)
        .enumerate()
        .skip(offset as usize)
        .map(|(i, (name, st))| (i as u64 + 1, name, st))
}
