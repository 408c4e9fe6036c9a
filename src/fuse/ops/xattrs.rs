//! Extended attributes (`user.` and `security.` names, kept by the masters with the
//! inode) and `fallocate`.

use super::names::SetAttr;
use super::{to_errno, Ops};
use fuser::Errno;
use std::ffi::OsStr;

/// `fallocate` mode that leaves the length as it is.
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;

/// Whether the masters keep attributes of this name (others are not supported).
fn kept(name: &str) -> bool {
    name.starts_with("user.") || name.starts_with("security.")
}

fn text(name: &OsStr) -> Result<&str, Errno> {
    name.to_str().ok_or(Errno::EINVAL)
}

impl Ops {
    /// Sets an extended attribute; `flags` as setxattr(2) (`XATTR_CREATE`,
    /// `XATTR_REPLACE`).
    pub async fn setxattr(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        let name = text(name)?;
        if flags & !(libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        if !kept(name) {
            return Err(Errno::EOPNOTSUPP);
        }
        self.writable(ino)?;
        let path = self.path(ino)?;
        self.client
            .set_xattr(&path, name, value, flags as u32)
            .await
            .map_err(to_errno)?;
        self.xattrs_changed(ino);
        Ok(())
    }

    /// The value of an extended attribute (ENODATA when it has none of that name).
    pub async fn getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>, Errno> {
        let name = text(name)?;
        if self.surely_no_xattr(ino, name) {
            return Err(Errno::ENODATA);
        }
        let path = self.path(ino)?;
        self.client.get_xattr(&path, name).await.map_err(to_errno)
    }

    /// Whether `ino` surely has no attribute `name` (no round trip to the masters): a name
    /// outside the kept namespaces, or an inode whose last status had none. The kernel
    /// asks for security.capability before every write, so the FUSE thread answers this
    /// case itself.
    pub fn surely_no_xattr(&self, ino: u64, name: &str) -> bool {
        !kept(name) || self.has_no_xattrs(ino)
    }

    /// The names of an inode's extended attributes, each ended by a NUL byte.
    pub async fn listxattr(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        if self.has_no_xattrs(ino) {
            return Ok(Vec::new());
        }
        let path = self.path(ino)?;
        let names = self.client.list_xattr(&path).await.map_err(to_errno)?;
        let mut out = Vec::new();
        for name in names {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// Removes an extended attribute.
    pub async fn removexattr(&self, ino: u64, name: &OsStr) -> Result<(), Errno> {
        let name = text(name)?;
        if !kept(name) {
            return Err(Errno::ENODATA);
        }
        self.writable(ino)?;
        let path = self.path(ino)?;
        self.client
            .remove_xattr(&path, name)
            .await
            .map_err(to_errno)?;
        self.xattrs_changed(ino);
        Ok(())
    }

    /// `fallocate`: mode 0 extends the length to `offset + length` (space is taken
    /// when blocks are written; gaps read as zeros); `FALLOC_FL_KEEP_SIZE` changes
    /// nothing. Other modes (punching holes, zeroing, collapsing) are not supported.
    pub async fn fallocate(
        &self,
        ino: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        if mode & !FALLOC_FL_KEEP_SIZE != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if length == 0 {
            return Err(Errno::EINVAL);
        }
        self.writable(ino)?;
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        if mode & FALLOC_FL_KEEP_SIZE != 0 {
            return Ok(());
        }
        let size = self.getattr(ino).await?.size;
        if end > size {
            let grow = SetAttr {
                size: Some(end),
                ..Default::default()
            };
            self.setattr(ino, grow).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, n};
    use super::*;
    use crate::fuse::inodes::ROOT;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn extended_attributes_set_get_list_and_remove() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let f = testkit::put(ops, ROOT, "f", b"x").await;
        assert_eq!(ops.getxattr(f, n("user.a")).await, Err(Errno::ENODATA));
        assert_eq!(ops.listxattr(f).await, Ok(Vec::new()));
        ops.setxattr(f, n("user.a"), b"one", 0).await.unwrap();
        ops.setxattr(f, n("security.s"), b"", libc::XATTR_CREATE)
            .await
            .unwrap();
        assert_eq!(ops.getxattr(f, n("user.a")).await.unwrap(), b"one");
        assert_eq!(ops.listxattr(f).await.unwrap(), b"security.s\0user.a\0");
        assert_eq!(
            ops.setxattr(f, n("user.a"), b"two", libc::XATTR_CREATE)
                .await,
            Err(Errno::EEXIST)
        );
        assert_eq!(
            ops.setxattr(f, n("user.b"), b"two", libc::XATTR_REPLACE)
                .await,
            Err(Errno::ENODATA)
        );
        assert_eq!(
            ops.setxattr(f, n("trusted.t"), b"", 0).await,
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            ops.setxattr(f, n("user.big"), &vec![1; 65_537], 0).await,
            Err(Errno::E2BIG)
        );
        ops.removexattr(f, n("user.a")).await.unwrap();
        assert_eq!(ops.removexattr(f, n("user.a")).await, Err(Errno::ENODATA));
        // Another mount learns of them from the inode's status.
        let other = fs.ops_with(|_| {});
        let f2 = other.lookup(ROOT, n("f")).await.unwrap().unwrap().ino.0;
        assert_eq!(other.listxattr(f2).await.unwrap(), b"security.s\0");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fallocate_extends_or_keeps_the_size() {
        let fs = testkit::start().await;
        let ops = &fs.ops;
        let f = testkit::put(ops, ROOT, "f", b"abc").await;
        ops.fallocate(f, 0, 2, 0).await.unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().size, 3, "inside: unchanged");
        ops.fallocate(f, 10, 100, FALLOC_FL_KEEP_SIZE)
            .await
            .unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().size, 3);
        ops.fallocate(f, 10, 100, 0).await.unwrap();
        assert_eq!(ops.getattr(f).await.unwrap().size, 110);
        let data = testkit::get(ops, f).await;
        assert_eq!(&data[..3], b"abc");
        assert!(data[3..].iter().all(|b| *b == 0));
        assert_eq!(ops.fallocate(f, 0, 1, 0x02).await, Err(Errno::EOPNOTSUPP));
        assert_eq!(ops.fallocate(f, 0, 0, 0).await, Err(Errno::EINVAL));
    }
}
