//! The Raft log on sled, under `journal.journal_dir`: tree `log` holds entries under
//! big-endian index keys (byte order = index order), tree `meta` the vote, the committed
//! log id and the last purged log id. An append is acknowledged only after sled flushed
//! it to disk. One flusher task per log does the flushing (group commit): every append
//! that arrived before a flush starts is acknowledged by that flush, so concurrent
//! writers share one fsync instead of queueing one each.

use super::codec;
use super::types::{Entry, LogId, StorageError, StorageIOError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

/// The log store. Cloning shares the same database and flusher.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    flusher: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<FlushRequest>>>,
}

/// A flush request: the database to flush and the append to acknowledge.
type FlushRequest = (sled::Db, LogFlushed<TypeConfig>);

/// Flushes sled for every batch of waiting appends, then acknowledges them all. It holds
/// a database handle only while flushing, so closing the log releases sled's lock at once.
async fn flush_loop(mut rx: tokio::sync::mpsc::UnboundedReceiver<FlushRequest>) {
    while let Some((db, first)) = rx.recv().await {
        let mut waiting = vec![first];
        while let Ok((_, more)) = rx.try_recv() {
            waiting.push(more);
        }
        let result = db
            .flush_async()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        drop(db);
        for callback in waiting {
            callback.log_io_completed(result.clone().map_err(std::io::Error::other));
        }
    }
}

/// How many entries one batch of a purge removes.
const PURGE_CHUNK: usize = 1_000;

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn io<E: std::error::Error + 'static>(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: &E,
) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::new(e)).into()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path) -> Result<LogStore, sled::Error> {
        use super::state_machine::{open_sled, LOG_CACHE_BYTES};
        let db = open_sled(dir, LOG_CACHE_BYTES)?;
        let log = db.open_tree("log")?;
        let meta = db.open_tree("meta")?;
        Ok(LogStore {
            db,
            log,
            meta,
            flusher: Default::default(),
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        let raw = self
            .meta
            .get(name)
            .map_err(|e| io(ErrorSubject::Store, ErrorVerb::Read, &e))?;
        match raw {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| io(ErrorSubject::Store, ErrorVerb::Read, &e)),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let bytes =
            codec::encode(value).map_err(|e| io(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        self.meta
            .insert(name, bytes)
            .map_err(|e| io(ErrorSubject::Store, ErrorVerb::Write, &e))?;
        Ok(())
    }

    async fn flush(&self, subject: ErrorSubject<u64>) -> Result<(), StorageError> {
        self.db
            .flush_async()
            .await
            .map_err(|e| io(subject, ErrorVerb::Write, &e))?;
        Ok(())
    }

    /// Removes the first `most` entries whose keys fall in `range`, in one batch; how many
    /// it removed.
    fn remove_entries<R: RangeBounds<[u8; 8]>>(
        &self,
        range: R,
        most: usize,
    ) -> Result<usize, StorageError> {
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for k in self.log.range(range).keys().take(most) {
            batch.remove(k.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, &e))?);
            removed += 1;
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        Ok(removed)
    }

    /// Removes the entries up to `last` (inclusive), oldest first, [`PURGE_CHUNK`] per
    /// batch. sled holds every node a batch replaced until the batch ends, so one batch
    /// of 100,000 removals held hundreds of MiB at its peak, and the allocator kept most of
    /// it; in chunks the peak stays small. A purge cut short leaves a contiguous log whose
    /// oldest entries are below `last_purged`: nothing reads them, and the next purge
    /// removes them.
    fn purge_entries(&self, last: u64) -> Result<(), StorageError> {
        while self.remove_entries(..=key(last), PURGE_CHUNK)? > 0 {}
        Ok(())
    }

    /// Flushes everything to disk (at shutdown).
    pub async fn sync(&self) -> Result<(), sled::Error> {
        self.db.flush_async().await.map(|_| ())
    }

    /// Number of entries held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// Whether the log holds no entry.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        for item in self.log.range(key(start)..) {
            let (k, v) = item.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            let mut index = [0u8; 8];
            index.copy_from_slice(&k[..8.min(k.len())]);
            if !range.contains(&u64::from_be_bytes(index)) {
                break;
            }
            let entry: Entry =
                codec::decode(&v).map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta("last_purged")?;
        let last = match self
            .log
            .last()
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?
        {
            Some((_, v)) => Some(
                codec::decode::<Entry>(&v)
                    .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?
                    .log_id,
            ),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta("vote", vote)?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta("vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed here: a committed id lost in a crash is found again by Raft.
        self.put_meta("committed", &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>("committed")?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes =
                codec::encode(&entry).map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
            batch.insert(key(entry.log_id.index).to_vec(), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        // Report the entries durable once sled has flushed them; Raft goes on meanwhile.
        let flusher = self.flusher.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(flush_loop(rx));
            tx
        });
        if let Err(unsent) = flusher.send((self.db.clone(), callback)) {
            // The flusher is gone (runtime shutting down): flush here.
            let result = self
                .db
                .flush_async()
                .await
                .map(|_| ())
                .map_err(std::io::Error::other);
            (unsent.0).1.log_io_completed(result);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_entries(key(log_id.index).., usize::MAX)?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Stored as a bare log id (JSON wrote `Some(id)` the same way).
        self.put_meta("last_purged", &log_id)?;
        self.purge_entries(log_id.index)?;
        self.flush(ErrorSubject::Logs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_longer_than_a_chunk_removes_every_entry_up_to_its_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path()).expect("open");
        for i in 1..=2_500u64 {
            store.log.insert(key(i), vec![1u8; 16]).expect("insert");
        }
        store.purge_entries(2_200).expect("purge");
        assert_eq!(store.len(), 300);
        let first = store.log.first().expect("first").expect("an entry").0;
        assert_eq!(first.as_ref(), key(2_201));
        // Purging again, or below what is left, changes nothing.
        store.purge_entries(2_200).expect("purge again");
        store.purge_entries(10).expect("purge below");
        assert_eq!(store.len(), 300);
    }
}
