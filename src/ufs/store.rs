//! [`Ufs`]: a connection to one mount's storage through an opendal `Operator` whose root
//! is the mount's prefix (S3) or directory (local), so every path here is relative to
//! the mount. Probing, stat, ranged reads (one GET, or several in parallel), deletes,
//! directories and server-side copy; listing is in `list.rs`, writing in `write.rs`.
//!
//! Credentials come only from the spec (opendal's own loading from the environment,
//! profiles and instance metadata is off), so a pod's AWS variables never leak in.

use super::entry::{normalize_etag, UfsEntry};
use super::error::{from_opendal, MountContext, UfsError};
use super::fluid::{read_secret_file, DEFAULT_REGION};
use super::list::UfsLister;
use super::path::{check, dir_path};
use super::spec::{SecretSource, UfsKind, UfsSpec};
use super::write::UfsWriter;
use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{services, Operator};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Multipart part size of writes (S3 needs at least 5 MiB).
pub(crate) const WRITE_CHUNK: usize = 8 << 20;
/// Parts of one write uploaded at once.
pub(crate) const WRITE_CONCURRENCY: usize = 4;
/// No part of a parallel read is smaller than this (a request costs more than its bytes).
const MIN_READ_PART: u64 = 1 << 20;
/// The longest one read or write step may take (a part upload waiting for a free slot
/// among [`WRITE_CONCURRENCY`] included); opendal's default of 10 s is short for 8 MiB
/// parts on a slow link.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Where a local mount's writes are staged until `finish` renames them into place: a
/// hidden directory under the mount's root, made on the first write, never listed.
pub(crate) const LOCAL_STAGING_DIR: &str = ".curvine-ufs-staging";

/// A connection to one mount's storage. Cheap to clone.
#[derive(Clone)]
pub struct Ufs {
    inner: Arc<Inner>,
}

struct Inner {
    spec: UfsSpec,
    /// `spec.describe()`, the head of every message.
    mount: String,
    /// Where requests go, for messages: the S3 endpoint, or the local directory.
    endpoint: String,
    /// The bucket (S3), empty for a local mount.
    bucket: String,
    op: Operator,
    /// The local mount's directory (None for S3).
    local_root: Option<PathBuf>,
    /// A local mount's operator for writes, staging files under [`LOCAL_STAGING_DIR`];
    /// made on the first write so that a read-only directory can be mounted.
    staged_op: tokio::sync::OnceCell<Operator>,
}

impl fmt::Debug for Ufs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ufs")
            .field("spec", &self.inner.spec)
            .field("endpoint", &self.inner.endpoint)
            .finish()
    }
}

/// The retry and timeout layers every operator gets: a few quick retries of what opendal
/// calls temporary (5xx, throttling, dropped connections), each attempt bounded.
fn with_layers(builder: impl opendal::Builder, mount: &str) -> Result<Operator, UfsError> {
    let op = Operator::new(builder)
        .map_err(|e| UfsError::Other(format!("{mount}: cannot set up the storage client: {e}")))?
        .layer(TimeoutLayer::new().with_io_timeout(IO_TIMEOUT))
        .layer(
            RetryLayer::new()
                .with_max_times(3)
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(2))
                .with_jitter(),
        )
        .finish();
    Ok(op)
}

/// The credentials of `spec`, read from their files. Never prints a value.
fn read_secrets(spec: &UfsSpec, mount: &str) -> Result<BTreeMap<String, String>, UfsError> {
    let mut values = BTreeMap::new();
    for (name, source) in &spec.secrets {
        let value = match source {
            SecretSource::Value(v) => v.clone(),
            SecretSource::File(path) => read_secret_file(path).map_err(|e| {
                UfsError::PermissionDenied(format!(
                    "{mount}: cannot read the secret file {path} of credential {name:?}: {e}: check that the Secret is mounted in this pod and the mount's encryptOptions"
                ))
            })?,
        };
        if value.trim().is_empty() {
            return Err(UfsError::PermissionDenied(format!(
                "{mount}: credential {name:?} is empty ({source}): check the Secret's content"
            )));
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

impl Ufs {
    /// Reads the secret files and builds the operator; no request is sent. Err if a
    /// secret file is missing or unreadable (naming the file and the key, never the
    /// value), or a local mount's directory does not exist on this node.
    pub fn open(spec: &UfsSpec) -> Result<Ufs, UfsError> {
        let mount = spec.describe();
        let (op, endpoint, bucket, local_root) = match &spec.kind {
            UfsKind::S3 { bucket, prefix } => {
                let secrets = read_secrets(spec, &mount)?;
                let region = spec.option("region").unwrap_or(DEFAULT_REGION);
                let endpoint = spec
                    .option("endpoint")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
                let mut b = services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region)
                    .endpoint(&endpoint)
                    .disable_config_load()
                    .disable_ec2_metadata();
                if spec.option("path_style") == Some("false") {
                    b = b.enable_virtual_host_style();
                }
                match (secrets.get("access"), secrets.get("secret")) {
                    (Some(access), Some(secret)) => {
                        b = b.access_key_id(access).secret_access_key(secret);
                        if let Some(token) = secrets.get("session_token") {
                            b = b.session_token(token);
                        }
                    }
                    _ => b = b.allow_anonymous(),
                }
                (with_layers(b, &mount)?, endpoint, bucket.clone(), None)
            }
            UfsKind::Local { root } => {
                // opendal would create a missing root; a typo must not make directories.
                match std::fs::metadata(root) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(UfsError::Other(format!(
                            "{mount}: {root} is not a directory: fix the Dataset's mountPoint"
                        )))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(UfsError::NotFound(format!(
                            "{mount}: the directory {root} does not exist on this node: every worker must see it (a hostPath or shared volume), or fix the Dataset's mountPoint"
                        )))
                    }
                    Err(e) => {
                        return Err(UfsError::PermissionDenied(format!(
                            "{mount}: cannot read the directory {root}: {e}"
                        )))
                    }
                }
                let b = services::Fs::default().root(root);
                (
                    with_layers(b, &mount)?,
                    root.clone(),
                    String::new(),
                    Some(PathBuf::from(root)),
                )
            }
        };
        Ok(Ufs {
            inner: Arc::new(Inner {
                spec: spec.clone(),
                mount,
                endpoint,
                bucket,
                op,
                local_root,
                staged_op: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The spec this connection was opened with.
    pub fn spec(&self) -> &UfsSpec {
        &self.inner.spec
    }

    /// `describe()` of the mount.
    pub(crate) fn mount(&self) -> &str {
        &self.inner.mount
    }

    pub(crate) fn op(&self) -> &Operator {
        &self.inner.op
    }

    pub(crate) fn is_local(&self) -> bool {
        self.inner.local_root.is_some()
    }

    /// Maps an opendal error of `op` on `path` into a [`UfsError`] naming this mount.
    pub(crate) fn err(&self, op: &str, path: &str, e: opendal::Error) -> UfsError {
        let ctx = MountContext {
            mount: &self.inner.mount,
            endpoint: &self.inner.endpoint,
            bucket: &self.inner.bucket,
        };
        from_opendal(&ctx, op, path, e)
    }

    /// Whether `path` is this layer's own (a local mount's staging directory).
    pub(crate) fn is_internal(&self, path: &str) -> bool {
        self.is_local() && path.split('/').next() == Some(LOCAL_STAGING_DIR)
    }

    /// Checks that the storage answers with these credentials and that the bucket or
    /// directory exists, with one cheap call (a listing of at most one entry). Every
    /// call is bounded by `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<(), UfsError> {
        let check = async {
            if let Some(root) = &self.inner.local_root {
                let meta = tokio::fs::metadata(root).await.map_err(|e| {
                    UfsError::NotFound(format!(
                        "{}: the directory {} is not readable on this node: {e}",
                        self.mount(),
                        root.display()
                    ))
                })?;
                if !meta.is_dir() {
                    return Err(UfsError::Other(format!(
                        "{}: {} is not a directory: fix the Dataset's mountPoint",
                        self.mount(),
                        root.display()
                    )));
                }
            }
            let mut lister = self
                .op()
                .lister_with("/")
                .limit(1)
                .await
                .map_err(|e| self.err("probe (list)", "", e))?;
            lister
                .try_next()
                .await
                .map_err(|e| self.err("probe (list)", "", e))?;
            Ok(())
        };
        tokio::time::timeout(timeout, check).await.map_err(|_| {
            UfsError::Unreachable(format!(
                "{}: no answer from {} within {timeout:?}: check the endpoint option, the network and that the server is up",
                self.mount(),
                self.inner.endpoint
            ))
        })?
    }

    /// One level of directory `dir` (`""` is the mount's root), in pages.
    pub async fn lister(&self, dir: &str) -> Result<UfsLister, UfsError> {
        check(self.mount(), dir, true)?;
        UfsLister::open(self.clone(), dir).await
    }

    /// The entry at `path`, None if it exists neither as a file nor as a directory (an
    /// S3 prefix with or without a marker object).
    pub async fn stat(&self, path: &str) -> Result<Option<UfsEntry>, UfsError> {
        check(self.mount(), path, true)?;
        if path.is_empty() {
            return Ok(Some(UfsEntry::dir("")));
        }
        if self.is_internal(path) {
            return Ok(None);
        }
        let name = super::path::base_name(path);
        let head = self.op().stat(path).await;
        let head_err = match head {
            Ok(meta) => return Ok(Some(UfsEntry::from_meta(name, &meta, self.is_local()))),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => None,
            Err(e) => Some(e),
        };
        if self.is_local() {
            return match head_err {
                None => Ok(None),
                Some(e) => Err(self.err("stat", path, e)),
            };
        }
        // Not an object: a directory is any key under `path/` (its marker included).
        // Some servers also answer a HEAD of a prefix with an error; the listing decides.
        let under = self
            .op()
            .lister_with(&dir_path(path))
            .recursive(true)
            .limit(1)
            .await;
        let found = match under {
            Ok(mut l) => l.try_next().await.map(|e| e.is_some()),
            Err(e) => Err(e),
        };
        match (found, head_err) {
            (Ok(true), _) => Ok(Some(UfsEntry::dir(name))),
            (Ok(false), None) => Ok(None),
            (_, Some(e)) => Err(self.err("stat", path, e)),
            (Err(e), None) => Err(self.err("stat", path, e)),
        }
    }

    /// The file at `path` (an error if it is missing or a directory).
    pub(crate) async fn stat_file(&self, op: &str, path: &str) -> Result<UfsEntry, UfsError> {
        let meta = self
            .op()
            .stat(path)
            .await
            .map_err(|e| self.err(op, path, e))?;
        if meta.is_dir() {
            return Err(UfsError::Other(format!(
                "{}: {path} is a directory ({op})",
                self.mount()
            )));
        }
        Ok(UfsEntry::from_meta(
            super::path::base_name(path),
            &meta,
            self.is_local(),
        ))
    }

    /// Fails with [`UfsError::Changed`] unless the file at `path` has etag `etag` and
    /// at least `end` bytes.
    async fn check_unchanged(&self, path: &str, etag: &str, end: u64) -> Result<(), UfsError> {
        let now = self.stat_file("read", path).await?;
        if now.etag != etag {
            return Err(UfsError::Changed(format!(
                "{}: {path} changed in the storage (etag {:?}, expected {etag:?}): reload its metadata",
                self.mount(),
                now.etag
            )));
        }
        if now.size < end {
            return Err(UfsError::Changed(format!(
                "{}: {path} changed in the storage ({} bytes, a read needs {end}): reload its metadata",
                self.mount(),
                now.size
            )));
        }
        Ok(())
    }

    /// One ranged GET of exactly `len` bytes at `offset` (S3 sends If-Match `etag`).
    async fn get(&self, path: &str, offset: u64, len: u64, etag: &str) -> Result<Bytes, UfsError> {
        let mut read = self.op().read_with(path).range(offset..offset + len);
        let quoted;
        if !etag.is_empty() && !self.is_local() {
            quoted = format!("\"{}\"", normalize_etag(etag));
            read = read.if_match(&quoted);
        }
        let data = read
            .await
            .map_err(|e| self.err("read", path, e))?
            .to_bytes();
        if data.len() as u64 != len {
            return Err(UfsError::Changed(format!(
                "{}: {path} is shorter than expected: {} of {len} bytes at offset {offset}: the object changed in the storage; reload its metadata",
                self.mount(),
                data.len()
            )));
        }
        Ok(data)
    }

    /// Bytes `[offset, offset + len)` of the file at `path`. If `etag` is not empty and
    /// the storage reports another, or the file is shorter, [`UfsError::Changed`].
    ///
    /// S3 servers that honour If-Match refuse the GET itself; the HEAD sent alongside
    /// catches the others.
    pub async fn read_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        etag: &str,
    ) -> Result<Bytes, UfsError> {
        self.read_range_parallel(path, offset, len, etag, 1).await
    }

    /// Like [`Ufs::read_range`], fetched as `parts` ranged GETs at once of about
    /// `len / parts` bytes each (no part under 1 MiB), concatenated in order.
    pub async fn read_range_parallel(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        etag: &str,
        parts: usize,
    ) -> Result<Bytes, UfsError> {
        check(self.mount(), path, false)?;
        let end = offset.checked_add(len).ok_or_else(|| {
            UfsError::Other(format!(
                "{}: read of {path} past the largest offset ({offset} + {len})",
                self.mount()
            ))
        })?;
        let verify = async {
            if etag.is_empty() {
                Ok(())
            } else {
                self.check_unchanged(path, etag, end).await
            }
        };
        if len == 0 {
            verify.await?;
            return Ok(Bytes::new());
        }
        let most = len.div_ceil(MIN_READ_PART).max(1);
        let parts = (parts.max(1) as u64).min(most);
        let part_len = len.div_ceil(parts);
        let gets = (0..parts).filter_map(|i| {
            let start = offset + i * part_len;
            (start < end).then(|| self.get(path, start, part_len.min(end - start), etag))
        });
        let (checked, data) = tokio::join!(verify, futures::future::try_join_all(gets));
        checked?;
        let mut pieces = data?;
        if pieces.len() == 1 {
            return Ok(pieces.remove(0));
        }
        let mut out = BytesMut::with_capacity(len as usize);
        for piece in pieces {
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    /// A writer of the whole object at `path`; nothing is visible until
    /// [`UfsWriter::finish`].
    pub async fn writer(&self, path: &str) -> Result<UfsWriter, UfsError> {
        check(self.mount(), path, false)?;
        let op = self.write_op().await?;
        let w = op
            .writer_with(path)
            .chunk(WRITE_CHUNK)
            .concurrent(WRITE_CONCURRENCY)
            .await
            .map_err(|e| self.err("write", path, e))?;
        Ok(UfsWriter::new(self.clone(), path, w))
    }

    /// The operator writes go through: S3's own; for a local mount one that stages files
    /// and renames them into place on close.
    async fn write_op(&self) -> Result<&Operator, UfsError> {
        let Some(root) = &self.inner.local_root else {
            return Ok(self.op());
        };
        self.inner
            .staged_op
            .get_or_try_init(|| async {
                let staging = root.join(LOCAL_STAGING_DIR);
                let b = services::Fs::default()
                    .root(&root.to_string_lossy())
                    .atomic_write_dir(&staging.to_string_lossy());
                with_layers(b, self.mount())
            })
            .await
    }

    /// Deletes the file at `path`; a missing file is not an error.
    pub async fn delete(&self, path: &str) -> Result<(), UfsError> {
        check(self.mount(), path, false)?;
        self.op()
            .delete(path)
            .await
            .map_err(|e| self.err("delete", path, e))
    }

    /// Deletes every key under `dir/` and its marker (a local directory and all in it).
    /// The mount's root is refused: unmounting must never empty the storage.
    pub async fn delete_dir_all(&self, dir: &str) -> Result<(), UfsError> {
        check(self.mount(), dir, false)?;
        self.op()
            .remove_all(&dir_path(dir))
            .await
            .map_err(|e| self.err("delete directory", dir, e))
    }

    /// Creates directory `dir`: a marker object `dir/` on S3, a directory (and its
    /// parents) locally.
    pub async fn create_dir(&self, dir: &str) -> Result<(), UfsError> {
        check(self.mount(), dir, false)?;
        self.op()
            .create_dir(&dir_path(dir))
            .await
            .map_err(|e| self.err("create directory", dir, e))
    }

    /// Copies the file `from` to `to` inside the storage (S3 CopyObject: objects up to
    /// 5 GiB) and returns the new file's entry.
    pub async fn copy(&self, from: &str, to: &str) -> Result<UfsEntry, UfsError> {
        check(self.mount(), from, false)?;
        check(self.mount(), to, false)?;
        self.op()
            .copy(from, to)
            .await
            .map_err(|e| self.err("copy", &format!("{from} -> {to}"), e))?;
        self.stat_file("copy", to).await
    }
}
