//! The Raft state machine on sled, under `master.meta_dir`: applies namespace commands in
//! log order, persists what each batch changed (inodes, workers, counters, retry cache
//! entries, the last applied log id and membership) in one atomic sled batch, and builds
//! and installs snapshots.
//!
//! The namespace itself lives in memory behind [`SharedNamespace`], loaded from sled at
//! start, so reads never touch the disk. Values are encoded by [`codec`] (JSON written
//! by older versions still loads).
//!
//! The last snapshot is the file `raft-snapshot.bin` in the meta dir: the format byte,
//! then the snapshot's metadata and the namespace image in bincode. It is streamed from
//! the namespace into a temporary file and renamed into place; openraft reads and sends
//! the file itself, and a received snapshot is written to a temporary file too.

use super::codec;
use super::namespace::{Applied, Counters, Image, Inode, Namespace, WorkerRecord};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use tracing::info;

/// sled's page cache for the namespace: the namespace is served from memory, so sled's
/// cache only speeds up writes. sled's default is 1 GiB per database.
pub const STATE_CACHE_BYTES: u64 = 32 << 20;
/// sled's page cache for the Raft log: entries are appended, read back soon after (for
/// followers) and purged behind each snapshot.
pub const LOG_CACHE_BYTES: u64 = 16 << 20;

/// The snapshot's file name in the meta dir.
pub const SNAPSHOT_FILE: &str = "raft-snapshot.bin";
/// A snapshot being built, before the rename.
const SNAPSHOT_BUILDING: &str = "raft-snapshot.bin.building";
/// A snapshot being received from the leader.
const SNAPSHOT_RECEIVING: &str = "raft-snapshot.bin.receiving";

/// The namespace shared between the state machine (writer) and the services (readers),
/// with the log position it reflects.
#[derive(Debug, Default)]
pub struct SharedNamespace {
    ns: RwLock<Namespace>,
    /// The last applied log id and the membership, changed under `ns`'s write lock: a
    /// reader holding the read lock sees the ones that match the namespace.
    applied: Mutex<(Option<LogId>, StoredMembership)>,
}

impl SharedNamespace {
    /// A read view. Never held across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Namespace> {
        self.ns.read().unwrap_or_else(|p| p.into_inner())
    }

    fn applied(&self) -> (Option<LogId>, StoredMembership) {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, ns: Namespace, applied: (Option<LogId>, StoredMembership)) {
        let mut guard = self.ns.write().unwrap_or_else(|p| p.into_inner());
        *guard = ns;
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = applied;
    }

    fn apply(
        &self,
        f: impl FnOnce(&mut Namespace) -> (Vec<Vec<Applied>>, Option<LogId>, Option<StoredMembership>),
    ) -> (Vec<Vec<Applied>>, super::namespace::Dirty, Counters) {
        let mut ns = self.ns.write().unwrap_or_else(|p| p.into_inner());
        let (out, last, membership) = f(&mut ns);
        {
            let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some() {
                applied.0 = last;
            }
            if let Some(m) = membership {
                applied.1 = m;
            }
        }
        (out, ns.take_dirty(), ns.counters())
    }
}

/// A snapshot as stored in sled by older versions (JSON; `data` the JSON of
/// [`SnapshotData`]). Read once, to move it into the snapshot file.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The snapshot payload of older versions (and of an older leader's snapshot).
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    image: Image,
}

/// The snapshot file as read: its metadata and the image.
#[derive(Debug, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    image: Image,
}

/// The snapshot file's head: only its metadata (the image is not read).
#[derive(Debug, Deserialize)]
struct SnapshotHead {
    meta: SnapshotMeta,
}

/// The snapshot file as written, streamed from the namespace.
#[derive(Serialize)]
struct SnapshotFileView<'a> {
    meta: &'a SnapshotMeta,
    image: super::namespace::ImageView<'a>,
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    shared: Arc<SharedNamespace>,
    db: sled::Db,
    tree: sled::Tree,
    /// The meta dir, where the snapshot file lives.
    dir: PathBuf,
    snapshot_seq: u64,
}

const APPLIED: &[u8] = b"m:applied";
const MEMBERSHIP: &[u8] = b"m:membership";
const COUNTERS: &[u8] = b"m:counters";
const MOUNTS: &[u8] = b"m:mounts";
/// Where older versions kept the last snapshot (moved to the file at open).
const SNAPSHOT: &[u8] = b"m:snapshot";

fn inode_key(id: u64) -> Vec<u8> {
    let mut k = b"i:".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn retry_key(seq: u64) -> Vec<u8> {
    let mut k = b"r:".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn worker_key(id: u32) -> Vec<u8> {
    let mut k = b"w:".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn sm_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: &E) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, openraft::AnyError::new(e)).into()
}

fn snapshot_err<E: std::error::Error + 'static>(
    verb: ErrorVerb,
    meta: Option<&SnapshotMeta>,
    e: &E,
) -> StorageError {
    StorageIOError::new(
        ErrorSubject::Snapshot(meta.map(|m| m.signature())),
        verb,
        openraft::AnyError::new(e),
    )
    .into()
}

fn parse<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StorageError> {
    codec::decode(v).map_err(|e| sm_err(ErrorVerb::Read, &e))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    codec::encode(value).map_err(|e| sm_err(ErrorVerb::Write, &e))
}

/// Opens sled with the master's settings and a page cache of `cache_bytes`.
pub fn open_sled(dir: &Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(cache_bytes)
        .open()
}

/// Writes `write`'s output to `dir/tmp_name`, syncs it and renames it to `dir/name`.
fn write_file_atomically(
    dir: &Path,
    tmp_name: &str,
    name: &str,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> Result<(), codec::CodecError>,
) -> Result<u64, codec::CodecError> {
    let tmp = dir.join(tmp_name);
    let file = std::fs::File::create(&tmp)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write(&mut out)?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let len = file.metadata()?.len();
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(len)
}

/// Reads the metadata at the head of a snapshot file.
fn read_snapshot_head(path: &Path) -> Result<SnapshotMeta, codec::CodecError> {
    let file = std::fs::File::open(path)?;
    let head: SnapshotHead = codec::decode_from(BufReader::new(file))?;
    Ok(head.meta)
}

impl StateMachine {
    /// Opens the state machine in `dir` and loads the namespace into memory.
    pub fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        let db = open_sled(dir, STATE_CACHE_BYTES).map_err(|e| sm_err(ErrorVerb::Read, &e))?;
        let tree = db
            .open_tree("namespace")
            .map_err(|e| sm_err(ErrorVerb::Read, &e))?;
        let read = |k: &[u8]| -> Result<Option<sled::IVec>, StorageError> {
            tree.get(k).map_err(|e| sm_err(ErrorVerb::Read, &e))
        };
        let mut image = Image::default();
        for item in tree.scan_prefix(b"i:") {
            let (_, v) = item.map_err(|e| sm_err(ErrorVerb::Read, &e))?;
            image.inodes.push(parse(&v)?);
        }
        for item in tree.scan_prefix(b"w:") {
            let (_, v) = item.map_err(|e| sm_err(ErrorVerb::Read, &e))?;
            image.workers.push(parse(&v)?);
        }
        for item in tree.scan_prefix(b"r:") {
            let (_, v) = item.map_err(|e| sm_err(ErrorVerb::Read, &e))?;
            image.retries.push(parse(&v)?);
        }
        if let Some(v) = read(COUNTERS)? {
            image.counters = parse(&v)?;
        }
        if let Some(v) = read(MOUNTS)? {
            image.mounts = parse(&v)?;
        }
        let last_applied = match read(APPLIED)? {
            Some(v) => parse(&v)?,
            None => None,
        };
        let membership = match read(MEMBERSHIP)? {
            Some(v) => parse(&v)?,
            None => StoredMembership::default(),
        };
        let shared = Arc::new(SharedNamespace::default());
        shared.replace(Namespace::from_image(image), (last_applied, membership));
        let sm = StateMachine {
            shared,
            db,
            tree,
            dir: dir.to_path_buf(),
            snapshot_seq: 0,
        };
        sm.move_old_snapshot()?;
        Ok(sm)
    }

    /// A snapshot kept in sled by an older version becomes the snapshot file.
    fn move_old_snapshot(&self) -> Result<(), StorageError> {
        let Some(raw) = self
            .tree
            .get(SNAPSHOT)
            .map_err(|e| sm_err(ErrorVerb::Read, &e))?
        else {
            return Ok(());
        };
        let old: StoredSnapshot = parse(&raw)?;
        let data: SnapshotData = codec::decode(&old.data)
            .map_err(|e| snapshot_err(ErrorVerb::Read, Some(&old.meta), &e))?;
        let ns = Namespace::from_image(data.image);
        self.write_snapshot_file(&old.meta, &ns)?;
        self.tree
            .remove(SNAPSHOT)
            .map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        self.db.flush().map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        info!(snapshot = %old.meta.snapshot_id, "moved the snapshot kept in sled to {SNAPSHOT_FILE}");
        Ok(())
    }

    /// The namespace, for readers.
    pub fn namespace(&self) -> Arc<SharedNamespace> {
        self.shared.clone()
    }

    /// Flushes sled (at shutdown).
    pub async fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush_async().await.map(|_| ())
    }

    fn persist(
        &self,
        dirty: &super::namespace::Dirty,
        counters: Counters,
    ) -> Result<(), StorageError> {
        let ns = self.shared.read();
        let (last_applied, membership) = self.shared.applied();
        let mut batch = sled::Batch::default();
        for id in &dirty.inodes {
            if let Some(inode) = ns.inode(*id) {
                batch.insert(inode_key(*id), encode::<Inode>(inode)?);
            }
        }
        for id in &dirty.removed {
            batch.remove(inode_key(*id));
        }
        for id in &dirty.workers {
            if let Some(w) = ns.worker(*id) {
                batch.insert(worker_key(*id), encode::<WorkerRecord>(w)?);
            }
        }
        if dirty.mounts {
            let table: Vec<&super::namespace::MountRecord> = ns.mounts().collect();
            batch.insert(MOUNTS, encode(&table)?);
        }
        for seq in &dirty.retries.added {
            if let Some(call) = ns.retry_entry(*seq) {
                batch.insert(retry_key(*seq), encode(call)?);
            }
        }
        for seq in &dirty.retries.removed {
            batch.remove(retry_key(*seq));
        }
        drop(ns);
        batch.insert(COUNTERS, encode(&counters)?);
        batch.insert(APPLIED, encode(&last_applied)?);
        batch.insert(MEMBERSHIP, encode(&membership)?);
        self.tree
            .apply_batch(batch)
            .map_err(|e| sm_err(ErrorVerb::Write, &e))
    }

    /// Streams `ns` with `meta` into the snapshot file (temporary name, then renamed).
    fn write_snapshot_file(
        &self,
        meta: &SnapshotMeta,
        ns: &Namespace,
    ) -> Result<u64, StorageError> {
        write_file_atomically(&self.dir, SNAPSHOT_BUILDING, SNAPSHOT_FILE, |out| {
            codec::encode_to(
                out,
                &SnapshotFileView {
                    meta,
                    image: ns.image_view(),
                },
            )
        })
        .map_err(|e| snapshot_err(ErrorVerb::Write, Some(meta), &e))
    }

    async fn open_snapshot_file(
        &self,
        meta: &SnapshotMeta,
    ) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = tokio::fs::File::open(self.dir.join(SNAPSHOT_FILE))
            .await
            .map_err(|e| snapshot_err(ErrorVerb::Read, Some(meta), &e))?;
        Ok(Box::new(file))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        self.snapshot_seq += 1;
        let seq = self.snapshot_seq;
        let this = self.clone();
        // Streamed under the namespace's read lock (writers wait; no copy of it is
        // made), off the async threads.
        let (meta, bytes, took) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let ns = this.shared.read();
            let (last_applied, membership) = this.shared.applied();
            let snapshot_id = match last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id, id.index, seq),
                None => format!("none-{seq}"),
            };
            let meta = SnapshotMeta {
                last_log_id: last_applied,
                last_membership: membership,
                snapshot_id,
            };
            let bytes = this.write_snapshot_file(&meta, &ns)?;
            Ok::<_, StorageError>((meta, bytes, started.elapsed()))
        })
        .await
        .map_err(|e| sm_err(ErrorVerb::Write, &e))??;
        info!(
            snapshot = %meta.snapshot_id,
            bytes,
            ms = took.as_millis() as u64,
            "snapshot written"
        );
        Ok(Snapshot {
            snapshot: self.open_snapshot_file(&meta).await?,
            meta,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.shared.applied())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Applied>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (replies, dirty, counters) = self.shared.apply(|ns| {
            let mut replies = Vec::new();
            let mut last_applied = None;
            let mut membership = None;
            for entry in entries {
                last_applied = Some(entry.log_id);
                replies.push(match entry.payload {
                    EntryPayload::Normal(commands) => {
                        commands.iter().map(|c| ns.apply(c)).collect()
                    }
                    EntryPayload::Membership(m) => {
                        membership = Some(StoredMembership::new(Some(entry.log_id), m));
                        Vec::new()
                    }
                    EntryPayload::Blank => Vec::new(),
                });
            }
            (replies, last_applied, membership)
        });
        self.persist(&dirty, counters)?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        // Read and write: Raft writes the chunks, install_snapshot reads them back.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(SNAPSHOT_RECEIVING))
            .await
            .map_err(|e| snapshot_err(ErrorVerb::Write, None, &e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let file = snapshot.into_std().await;
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || this.install_file(&meta, file))
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, &e))??;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let meta = tokio::task::spawn_blocking(move || read_snapshot_head(&path))
            .await
            .map_err(|e| sm_err(ErrorVerb::Read, &e))?
            .map_err(|e| snapshot_err(ErrorVerb::Read, None, &e))?;
        Ok(Some(Snapshot {
            snapshot: self.open_snapshot_file(&meta).await?,
            meta,
        }))
    }
}

impl StateMachine {
    /// Installs the snapshot in `file` (received from the leader): the namespace, sled
    /// and the snapshot file all become it. A snapshot from an older leader is the JSON of
    /// [`SnapshotData`]; `meta` is the one Raft sent with it.
    fn install_file(&self, meta: &SnapshotMeta, file: std::fs::File) -> Result<(), StorageError> {
        use std::io::{Seek, SeekFrom};
        let read_err = |e: codec::CodecError| snapshot_err(ErrorVerb::Read, Some(meta), &e);
        let write_err = |e: std::io::Error| snapshot_err(ErrorVerb::Write, Some(meta), &e);
        let mut file = file;
        file.flush().map_err(write_err)?;
        file.seek(SeekFrom::Start(0)).map_err(write_err)?;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let first = std::io::BufRead::fill_buf(&mut reader)
            .map_err(|e| read_err(e.into()))?
            .first()
            .copied();
        let (image, ours) = if first == Some(codec::BINCODE) {
            let parsed: SnapshotFile = codec::decode_from(reader).map_err(read_err)?;
            if parsed.meta.last_log_id != meta.last_log_id {
                return Err(read_err(codec::CodecError::Io(std::io::Error::other(
                    format!(
                        "the snapshot file is at {:?}, Raft sent it as {:?}",
                        parsed.meta.last_log_id, meta.last_log_id
                    ),
                ))));
            }
            (parsed.image, true)
        } else {
            let parsed: SnapshotData = codec::decode_from(reader).map_err(read_err)?;
            (parsed.image, false)
        };
        // Rewrite the persisted namespace from the image.
        let mut batch = sled::Batch::default();
        for item in self.tree.iter().keys() {
            let k = item.map_err(|e| sm_err(ErrorVerb::Read, &e))?;
            batch.remove(k);
        }
        for inode in &image.inodes {
            batch.insert(inode_key(inode.id), encode(inode)?);
        }
        for w in &image.workers {
            batch.insert(worker_key(w.id), encode(w)?);
        }
        for call in &image.retries {
            batch.insert(retry_key(call.seq), encode(call)?);
        }
        batch.insert(COUNTERS, encode(&image.counters)?);
        batch.insert(MOUNTS, encode(&image.mounts)?);
        batch.insert(APPLIED, encode(&meta.last_log_id)?);
        batch.insert(MEMBERSHIP, encode(&meta.last_membership)?);
        let ns = Namespace::from_image(image);
        self.tree
            .apply_batch(batch)
            .map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        self.db.flush().map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        // Then the snapshot file (a crash before it leaves an older snapshot than the
        // state, as between two snapshots): the received bytes as they are, or an older
        // leader's snapshot written in our format.
        if ours {
            file.seek(SeekFrom::Start(0)).map_err(write_err)?;
            write_file_atomically(&self.dir, SNAPSHOT_BUILDING, SNAPSHOT_FILE, |out| {
                std::io::copy(&mut &file, out)?;
                Ok(())
            })
            .map_err(|e| snapshot_err(ErrorVerb::Write, Some(meta), &e))?;
        } else {
            self.write_snapshot_file(meta, &ns)?;
        }
        drop(file);
        let _ = std::fs::remove_file(self.dir.join(SNAPSHOT_RECEIVING));
        self.shared
            .replace(ns, (meta.last_log_id, meta.last_membership.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs_error::FsError;
    use crate::master::namespace::{Command, Outcome};
    use crate::master::retry_cache::CallKey;
    use openraft::{CommittedLeaderId, Entry as RaftEntry};

    fn entry(index: u64, commands: Vec<Command>) -> Entry {
        RaftEntry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(commands),
        }
    }

    fn create_once(call: u64, path: &str) -> Command {
        Command::Once {
            client: 7,
            call,
            now: 1_000,
            answered_below: 0,
            command: Box::new(crate::master::namespace::tests::create(path)),
        }
    }

    #[tokio::test]
    async fn the_retry_cache_survives_a_restart_and_travels_in_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let call = CallKey { client: 7, call: 1 };
        let mut sm = StateMachine::open(&dir.path().join("a")).unwrap();
        let first = sm
            .apply([entry(1, vec![create_once(1, "/f")])])
            .await
            .unwrap();
        let Ok(Outcome::Node(created)) = &first[0][0].result else {
            panic!("create failed: {first:?}");
        };
        // The same call again, in a later entry: the first result, nothing applied.
        let again = sm
            .apply([entry(2, vec![create_once(1, "/f")])])
            .await
            .unwrap();
        assert!(again[0][0].repeated);
        assert!(matches!(&again[0][0].result, Ok(Outcome::Node(i)) if i.id == created.id));
        // A new call for the same path is a new create: AlreadyExists, cached as its answer.
        let other = sm
            .apply([entry(3, vec![create_once(2, "/f")])])
            .await
            .unwrap();
        assert!(matches!(
            &other[0][0].result,
            Err(FsError::AlreadyExists(_))
        ));
        let snapshot = sm.build_snapshot().await.unwrap();
        sm.flush().await.unwrap();
        drop(sm);

        // Reopened from sled.
        let sm = StateMachine::open(&dir.path().join("a")).unwrap();
        let ns = sm.namespace();
        assert!(ns.read().first_result(call).is_some());
        assert!(matches!(
            ns.read().first_result(CallKey { client: 7, call: 2 }),
            Some(Err(FsError::AlreadyExists(_)))
        ));
        drop(sm);

        // Installed from the snapshot on another master, whose sled then has it too.
        // As Raft does it: the bytes written into the file begin_receiving_snapshot gave.
        let mut other = StateMachine::open(&dir.path().join("b")).unwrap();
        let mut received = other.begin_receiving_snapshot().await.unwrap();
        let mut sent = snapshot.snapshot;
        tokio::io::copy(&mut *sent, &mut *received).await.unwrap();
        other
            .install_snapshot(&snapshot.meta, received)
            .await
            .unwrap();
        assert!(dir.path().join("b").join(SNAPSHOT_FILE).is_file());
        let again = other
            .apply([entry(4, vec![create_once(1, "/f")])])
            .await
            .unwrap();
        assert!(again[0][0].repeated, "{again:?}");
        other.flush().await.unwrap();
        drop(other);
        let reopened = StateMachine::open(&dir.path().join("b")).unwrap();
        assert!(reopened.namespace().read().first_result(call).is_some());
    }
}
