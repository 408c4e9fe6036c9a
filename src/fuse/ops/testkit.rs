//! A master and a worker on loopback with the operations over them, for the operations'
//! tests (no FUSE mount).

use super::{Caller, Completion, FsOptions, Ops};
use crate::client::Client;
use crate::fuse::inodes::Inodes;
use crate::standalone::Standalone;
use bytes::Bytes;
use fuser::{Errno, OpenFlags};
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

/// Blocks of new files: small, so a few MiB cross block boundaries.
pub const BLOCK: u64 = 1 << 20;

/// The caller of every test request.
pub const ROOT_CALLER: Caller = Caller { uid: 0, gid: 0 };

/// A running cluster, a client of it and the operations of a mount of `/`.
pub struct TestFs {
    /// The operations.
    pub ops: Arc<Ops>,
    /// A client of the cluster.
    pub client: Client,
    root_id: u64,
    _cluster: Standalone,
    /// Holds the cluster's data until the test ends.
    _dir: tempfile::TempDir,
}

/// Starts a cluster under a temporary directory on free ports, and mounts `/` of it
/// (without the kernel). Needs a multi-threaded runtime.
pub async fn start() -> TestFs {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, config) = Standalone::start_ephemeral(&dir.path().join("data"), |c| {
        c.client.block_size = crate::config::ByteSize(BLOCK);
    })
    .await
    .unwrap();
    let client = Client::new(&config).unwrap();
    let root_id = client.stat("/").await.unwrap().id;
    TestFs {
        ops: Arc::new(Ops::new(
            client.clone(),
            tokio::runtime::Handle::current(),
            Inodes::new("/", root_id),
            options(),
        )),
        client,
        root_id,
        _cluster: cluster,
        _dir: dir,
    }
}

fn options() -> FsOptions {
    FsOptions {
        attr_ttl: Duration::from_secs(1),
        entry_ttl: Duration::from_secs(1),
        negative_ttl: Duration::ZERO,
        readonly: false,
        direct_io: false,
        write_back_cache: false,
        kernel_cache: true,
    }
}

impl TestFs {
    /// Another mount of the same cluster whose root shows `view` (several mounts).
    pub fn ops_with_view(&self, view: Vec<crate::fuse::inodes::RootEntry>) -> Arc<Ops> {
        Arc::new(Ops::new(
            self.client.clone(),
            tokio::runtime::Handle::current(),
            Inodes::with_view(view),
            options(),
        ))
    }

    /// Another mount of `/` of the same cluster, with its options changed by `edit`.
    pub fn ops_with(&self, edit: impl FnOnce(&mut FsOptions)) -> Arc<Ops> {
        let mut opts = options();
        edit(&mut opts);
        Arc::new(Ops::new(
            self.client.clone(),
            tokio::runtime::Handle::current(),
            Inodes::new("/", self.root_id),
            opts,
        ))
    }
}

/// A name.
pub fn n(name: &str) -> &OsStr {
    OsStr::new(name)
}

/// Runs a queued operation and waits for its answer.
pub async fn answer<T: Send + 'static>(queue: impl FnOnce(Completion<T>)) -> Result<T, Errno> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    queue(Box::new(move |r| drop(tx.send(r))));
    rx.await.expect("the operation never answered")
}

/// Creates `name` in `parent` open for reading and writing; its inode and handle.
pub async fn create(ops: &Ops, parent: u64, name: &str) -> (u64, u64) {
    let c = ops
        .create(ROOT_CALLER, parent, n(name), 0o644, 0o022, libc::O_RDWR)
        .await
        .unwrap();
    (c.attr.ino.0, c.opened.fh)
}

/// Writes `data` at `offset` through handle `fh` of `ino`, in requests of at most 1 MiB
/// as the kernel sends them.
pub async fn write(ops: &Ops, ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
    for (i, chunk) in data.chunks(super::MAX_IO as usize).enumerate() {
        let at = offset + (i * super::MAX_IO as usize) as u64;
        let bytes = Bytes::copy_from_slice(chunk);
        let n = answer(|done| ops.write(ino, fh, at, bytes, done)).await?;
        assert_eq!(n as usize, chunk.len());
    }
    Ok(())
}

/// Reads `len` bytes at `offset` through handle `fh` of `ino`, in requests of at most
/// 1 MiB; stops at the end of the file.
pub async fn read(ops: &Ops, ino: u64, fh: u64, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    while out.len() < len {
        let want = (len - out.len()).min(super::MAX_IO as usize);
        let at = offset + out.len() as u64;
        let got = answer(|done| ops.read(ino, fh, at, want, done)).await?;
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    Ok(out)
}

/// Closes handle `fh` of `ino`.
pub async fn release(ops: &Ops, ino: u64, fh: u64) -> Result<(), Errno> {
    answer(|done| ops.release(ino, fh, done)).await
}

/// Writes a whole new file `name` in `parent` through the operations; its inode.
pub async fn put(ops: &Ops, parent: u64, name: &str, data: &[u8]) -> u64 {
    let (ino, fh) = create(ops, parent, name).await;
    write(ops, ino, fh, 0, data).await.unwrap();
    release(ops, ino, fh).await.unwrap();
    ino
}

/// Reads a whole file through a new read-only handle.
pub async fn get(ops: &Ops, ino: u64) -> Vec<u8> {
    let o = ops.open(ino, OpenFlags(libc::O_RDONLY)).await.unwrap();
    let size = ops.getattr(ino).await.unwrap().size as usize;
    let data = read(ops, ino, o.fh, 0, size + 1).await.unwrap();
    release(ops, ino, o.fh).await.unwrap();
    data
}

/// The names in directory `ino`, with "." and "..", as readdir gives them.
pub async fn list(ops: &Ops, ino: u64) -> Vec<String> {
    let fh = ops.opendir();
    let mut names = Vec::new();
    ops.readdir(ino, fh, 0, |e| {
        names.push(e.name.to_string());
        false
    })
    .await
    .unwrap();
    ops.releasedir(fh);
    names
}

/// Bytes that differ at every offset (a shifted or repeated block shows).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761).rotate_right(7) as u8)
        .collect()
}
