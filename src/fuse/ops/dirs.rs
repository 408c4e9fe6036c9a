//! Open directories: opendir, readdir and readdirplus over a listing fetched once per
//! pass, releasedir.

use super::{to_errno, Ops};
use crate::client::FileStatus;
use crate::fuse::attr::{file_attr, file_type};
use crate::fuse::handles::OpenDir;
use crate::fuse::inodes::ROOT;
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

    /// The open directory of a handle, and its cluster path (`None`: the root that
    /// shows several mounts).
    fn open_dir(&self, ino: u64, fh: u64) -> Result<(Arc<OpenDir>, Option<String>), Errno> {
        let dir = self.handles.dir(fh).ok_or(Errno::EBADF)?;
        if ino == ROOT && self.inodes.root_is_view() {
            return Ok((dir, None));
        }
        let path = self.inodes.path(ino).ok_or(Errno::EBADF)?;
        Ok((dir, Some(path)))
    }

    /// The listing of an open directory; fetched again when read from the start.
    async fn listing(
        &self,
        dir: &OpenDir,
        path: Option<&str>,
        offset: u64,
    ) -> Result<Arc<Vec<FileStatus>>, Errno> {
        let mut cached = dir.entries.lock().await;
        if offset == 0 || cached.is_none() {
            let entries = match path {
                Some(path) => self.client.list(path).await.map_err(to_errno)?,
                None => self.view_listing().await?,
            };
            *cached = Some(Arc::new(entries));
        }
        Ok(cached.clone().unwrap_or_default())
    }

    /// The root of several mounts: one directory per mount, with its cluster
    /// directory's status under the mount's name.
    async fn view_listing(&self) -> Result<Vec<FileStatus>, Errno> {
        let mut entries = Vec::new();
        for mount in self.inodes.view() {
            let mut st = self.client.stat(&mount.fs_path).await.map_err(to_errno)?;
            st.name = mount.name.clone();
            entries.push(st);
        }
        Ok(entries)
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
        let entries = self.listing(&dir, path.as_deref(), offset).await?;
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
        let entries = self.listing(&dir, path.as_deref(), offset).await?;
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
                        self.remember(ino, name, &attr);
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

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, n, ROOT_CALLER};
    use super::*;
    use crate::fuse::inodes::ROOT;

    /// A directory with files `a`, `b`, `c` and directory `sub`; its inode.
    async fn populated(ops: &Ops) -> u64 {
        let d = ops
            .mkdir(ROOT_CALLER, ROOT, n("d"), 0o755, 0)
            .await
            .unwrap();
        for name in ["a", "b", "c"] {
            testkit::put(ops, d.ino.0, name, name.as_bytes()).await;
        }
        ops.mkdir(ROOT_CALLER, d.ino.0, n("sub"), 0o755, 0)
            .await
            .unwrap();
        d.ino.0
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readdir_lists_the_dots_then_the_entries_with_their_offsets() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let d = populated(ops).await;
        let fh = ops.opendir();
        let mut got = Vec::new();
        ops.readdir(d, fh, 0, |e| {
            got.push((e.name.to_string(), e.offset, e.kind));
            false
        })
        .await
        .unwrap();
        let names: Vec<&str> = got.iter().map(|(name, _, _)| name.as_str()).collect();
        assert_eq!(names, [".", "..", "a", "b", "c", "sub"]);
        let offsets: Vec<u64> = got.iter().map(|(_, o, _)| *o).collect();
        assert_eq!(offsets, [1, 2, 3, 4, 5, 6]);
        assert_eq!(got[2].2, FileType::RegularFile);
        assert_eq!(got[5].2, FileType::Directory);
        let a = ops.lookup(d, n("a")).await.unwrap().unwrap();
        let mut inos = Vec::new();
        ops.readdir(d, fh, 0, |e| {
            inos.push(e.ino);
            false
        })
        .await
        .unwrap();
        assert_eq!(
            inos[..3],
            [d, d, a.ino.0],
            "the dots carry the directory's own"
        );
        ops.releasedir(fh);
        assert_eq!(testkit::list(ops, ROOT).await, [".", "..", "d"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readdir_stops_when_full_and_continues_from_the_offset() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let d = populated(ops).await;
        let fh = ops.opendir();
        let mut first = Vec::new();
        ops.readdir(d, fh, 0, |e| {
            first.push(e.name.to_string());
            first.len() == 3
        })
        .await
        .unwrap();
        // "a" did not fit (the answer said full): the kernel asks again from offset 2.
        assert_eq!(first, [".", "..", "a"]);
        // A pass continues over the listing of its start: a file made meanwhile shows
        // only when the directory is read again from the start.
        testkit::put(ops, d, "aa", b"").await;
        let mut rest = Vec::new();
        ops.readdir(d, fh, 2, |e| {
            rest.push((e.name.to_string(), e.offset));
            false
        })
        .await
        .unwrap();
        let names: Vec<&str> = rest.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "sub"]);
        assert_eq!(rest[0].1, 3);
        assert_eq!(
            testkit::list(ops, d).await,
            [".", "..", "a", "aa", "b", "c", "sub"]
        );
        ops.releasedir(fh);
        let missing = ops.readdir(d, fh, 0, |_| false).await;
        assert_eq!(missing, Err(Errno::EBADF), "a released handle");
        let fh = ops.opendir();
        assert_eq!(
            ops.readdir(4242, fh, 0, |_| false).await,
            Err(Errno::EBADF),
            "an unknown directory"
        );
        let f = ops.lookup(d, n("a")).await.unwrap().unwrap().ino.0;
        assert_eq!(
            ops.readdir(f, fh, 0, |_| false).await,
            Err(Errno::ENOTDIR),
            "a file"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readdirplus_gives_attributes_and_counts_only_taken_entries_as_lookups() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let d = populated(ops).await;
        // Start from what the kernel would hold: the directory only.
        let fresh = fs.ops_with(|_| {});
        let d_attr = fresh.lookup(ROOT, n("d")).await.unwrap().unwrap();
        assert_eq!(d_attr.ino.0, d);
        assert_eq!(fresh.inodes.len(), 1);
        let fh = fresh.opendir();
        let mut got = Vec::new();
        fresh
            .readdirplus(d, fh, 0, |e| {
                if got.len() == 4 {
                    return true;
                }
                got.push((e.name.to_string(), e.attr, e.ttl));
                false
            })
            .await
            .unwrap();
        let names: Vec<&str> = got.iter().map(|(name, _, _)| name.as_str()).collect();
        assert_eq!(names, [".", "..", "a", "b"]);
        let (_, dot, dot_ttl) = &got[0];
        assert_eq!(
            (dot.ino.0, dot.kind, *dot_ttl),
            (d, FileType::Directory, Duration::ZERO)
        );
        let (_, a, a_ttl) = &got[2];
        assert_eq!(
            (a.kind, a.size, *a_ttl),
            (FileType::RegularFile, 1, fresh.opts.attr_ttl)
        );
        // "a" and "b" went to the kernel as lookups; "c", offered but not taken, did not.
        assert_eq!(fresh.inodes.len(), 3);
        assert_eq!(fresh.getattr(a.ino.0).await.unwrap().ino, a.ino);
        let c = ops.lookup(d, n("c")).await.unwrap().unwrap().ino.0;
        assert_eq!(fresh.getattr(c).await, Err(Errno::ENOENT));
        fresh.releasedir(fh);
    }
}
