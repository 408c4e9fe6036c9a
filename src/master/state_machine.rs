//! The Raft state machine on sled, under `master.meta_dir`: applies namespace commands in
//! log order, persists what each batch changed (inodes, workers, counters, retry cache
//! entries, the last applied log id and membership) in one atomic sled batch, and builds
//! and installs snapshots.
//!
//! The namespace itself lives in memory behind [`SharedNamespace`], loaded from sled at
//! start, so reads never touch the disk.

use super::namespace::{Applied, Counters, Image, Inode, Namespace, WorkerRecord};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// The namespace shared between the state machine (writer) and the services (readers).
#[derive(Debug, Default)]
pub struct SharedNamespace {
    ns: RwLock<Namespace>,
}

impl SharedNamespace {
    /// A read view. Never held across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Namespace> {
        self.ns.read().unwrap_or_else(|p| p.into_inner())
    }

    fn replace(&self, ns: Namespace) {
        *self.ns.write().unwrap_or_else(|p| p.into_inner()) = ns;
    }

    fn apply(
        &self,
        f: impl FnOnce(&mut Namespace) -> Vec<Vec<Applied>>,
    ) -> (Vec<Vec<Applied>>, super::namespace::Dirty, Counters) {
        let mut ns = self.ns.write().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut ns);
        (out, ns.take_dirty(), ns.counters())
    }
}

/// A snapshot as stored and sent: its metadata and the namespace image.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The snapshot payload.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    image: Image,
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    shared: Arc<SharedNamespace>,
    db: sled::Db,
    tree: sled::Tree,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot_seq: u64,
}

const APPLIED: &[u8] = b"m:applied";
const MEMBERSHIP: &[u8] = b"m:membership";
const COUNTERS: &[u8] = b"m:counters";
const MOUNTS: &[u8] = b"m:mounts";
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

fn parse<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(v).map_err(|e| sm_err(ErrorVerb::Read, &e))
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| sm_err(ErrorVerb::Write, &e))
}

impl StateMachine {
    /// Opens the state machine in `dir` and loads the namespace into memory.
    pub fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| sm_err(ErrorVerb::Read, &e))?;
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
        shared.replace(Namespace::from_image(image));
        Ok(StateMachine {
            shared,
            db,
            tree,
            last_applied,
            membership,
            snapshot_seq: 0,
        })
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
        let mut batch = sled::Batch::default();
        for id in &dirty.inodes {
            if let Some(inode) = ns.inode(*id) {
                batch.insert(inode_key(*id), json::<Inode>(inode)?);
            }
        }
        for id in &dirty.removed {
            batch.remove(inode_key(*id));
        }
        for id in &dirty.workers {
            if let Some(w) = ns.worker(*id) {
                batch.insert(worker_key(*id), json::<WorkerRecord>(w)?);
            }
        }
        if dirty.mounts {
            let table: Vec<&super::namespace::MountRecord> = ns.mounts().collect();
            batch.insert(MOUNTS, json(&table)?);
        }
        for seq in &dirty.retries.added {
            if let Some(call) = ns.retry_entry(*seq) {
                batch.insert(retry_key(*seq), json(call)?);
            }
        }
        for seq in &dirty.retries.removed {
            batch.remove(retry_key(*seq));
        }
        drop(ns);
        batch.insert(COUNTERS, json(&counters)?);
        batch.insert(APPLIED, json(&self.last_applied)?);
        batch.insert(MEMBERSHIP, json(&self.membership)?);
        self.tree
            .apply_batch(batch)
            .map_err(|e| sm_err(ErrorVerb::Write, &e))
    }

    fn stored_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match self
            .tree
            .get(SNAPSHOT)
            .map_err(|e| sm_err(ErrorVerb::Read, &e))?
        {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| sm_err(ErrorVerb::Read, &e)),
        }
    }

    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
        self.tree.insert(SNAPSHOT, json(snapshot)?).map_err(|e| {
            StorageIOError::write_snapshot(
                Some(snapshot.meta.signature()),
                openraft::AnyError::new(&e),
            )
        })?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let image = self.shared.read().image();
        let data = json(&SnapshotData { image })?;
        self.snapshot_seq += 1;
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, self.snapshot_seq),
            None => format!("none-{}", self.snapshot_seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.save_snapshot(&stored)?;
        self.db
            .flush_async()
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Applied>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut last_applied = self.last_applied;
        let mut membership = None;
        let (replies, dirty, counters) = self.shared.apply(|ns| {
            let mut replies = Vec::new();
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
            replies
        });
        self.last_applied = last_applied;
        if let Some(m) = membership {
            self.membership = m;
        }
        self.persist(&dirty, counters)?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let parsed: SnapshotData = serde_json::from_slice(&data).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), openraft::AnyError::new(&e))
        })?;
        let ns = Namespace::from_image(parsed.image);
        // Rewrite the persisted namespace from the image.
        let mut batch = sled::Batch::default();
        for item in self.tree.iter().keys() {
            let k = item.map_err(|e| sm_err(ErrorVerb::Read, &e))?;
            batch.remove(k);
        }
        let image = ns.image();
        for inode in &image.inodes {
            batch.insert(inode_key(inode.id), json(inode)?);
        }
        for w in &image.workers {
            batch.insert(worker_key(w.id), json(w)?);
        }
        for call in &image.retries {
            batch.insert(retry_key(call.seq), json(call)?);
        }
        batch.insert(COUNTERS, json(&image.counters)?);
        batch.insert(MOUNTS, json(&image.mounts)?);
        batch.insert(APPLIED, json(&meta.last_log_id)?);
        batch.insert(MEMBERSHIP, json(&meta.last_membership)?);
        self.tree
            .apply_batch(batch)
            .map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        self.shared.replace(ns);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.save_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })?;
        self.db
            .flush_async()
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.stored_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
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
        let mut other = StateMachine::open(&dir.path().join("b")).unwrap();
        other
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
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
