//! The retry cache: the first result of each client call, known by (client id, call
//! number), so a call repeated after its reply was lost gets that result again instead of
//! being applied a second time. It is part of the replicated state (built while applying
//! the log, so every master has it; persisted with each batch and in snapshots), bounded
//! in total and per client (oldest out), and it forgets calls older than [`Limits::ttl_ms`]
//! by the commands' own timestamps, never the local clock.

use super::namespace::{Outcome, Sparse};
use crate::fs_error::FsError;
use crate::rpc::call::CallId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How much the cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most calls kept in all.
    pub total: usize,
    /// Most calls kept of one client.
    pub per_client: usize,
    /// A call is forgotten once a later call's timestamp is this much past its own (ms).
    pub ttl_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            total: 50_000,
            per_client: 5_000,
            ttl_ms: 10 * 60 * 1000,
        }
    }
}

/// A call as the cache knows it: the client's id and the call's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallKey {
    /// The client's id.
    pub client: u64,
    /// The call's number.
    pub call: u64,
}

impl From<CallId> for CallKey {
    fn from(id: CallId) -> CallKey {
        CallKey {
            client: id.client,
            call: id.call,
        }
    }
}

/// One call's first result, as kept, persisted and snapshotted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedCall {
    /// Insertion order (the sled key of the entry).
    pub seq: u64,
    /// The call.
    pub key: CallKey,
    /// The timestamp (ms) of the command that made the entry.
    pub at: i64,
    /// The first result (an error that was the command's answer included).
    pub result: Result<Outcome, FsError>,
}

/// Entries added and removed since the last [`RetryCache::take_changes`], by `seq`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Entries recorded.
    pub added: Vec<u64>,
    /// Entries dropped (expired or pushed out).
    pub removed: Vec<u64>,
}

/// The cache. Invariant: `by_seq` and `per_client` hold exactly the keys of `calls`, and
/// each client's queue is in `seq` order.
#[derive(Debug, Default)]
pub struct RetryCache {
    limits: Limits,
    calls: HashMap<CallKey, CachedCall>,
    /// Oldest first.
    by_seq: BTreeMap<u64, CallKey>,
    /// Each client's calls, oldest first, by `seq`.
    per_client: HashMap<u64, VecDeque<u64>>,
    next_seq: u64,
    changes: Changes,
}

/// A result as it is kept: an inode without its block lists (a repeat answers with the
/// file's status, which does not show them; they would make big files costly to keep).
fn slim(result: &Result<Outcome, FsError>) -> Result<Outcome, FsError> {
    match result {
        Ok(Outcome::Node(inode)) => {
            let mut inode = inode.clone();
            inode.blocks = Vec::new();
            inode.pending = Sparse::default();
            Ok(Outcome::Node(inode))
        }
        other => other.clone(),
    }
}

impl RetryCache {
    /// An empty cache with these limits.
    pub fn with_limits(limits: Limits) -> RetryCache {
        RetryCache {
            limits,
            ..RetryCache::default()
        }
    }

    /// A cache holding `calls` (from a snapshot or sled, any order), with default limits.
    pub fn from_calls(calls: Vec<CachedCall>) -> RetryCache {
        let mut cache = RetryCache::default();
        let mut calls = calls;
        calls.sort_by_key(|c| c.seq);
        for c in calls {
            cache.insert(c);
        }
        cache.changes = Changes::default();
        cache
    }

    /// The first result of `key`, if the cache still has it.
    pub fn get(&self, key: CallKey) -> Option<&Result<Outcome, FsError>> {
        self.calls.get(&key).map(|c| &c.result)
    }

    /// An entry by its `seq`.
    pub fn entry(&self, seq: u64) -> Option<&CachedCall> {
        self.by_seq.get(&seq).and_then(|k| self.calls.get(k))
    }

    /// Number of calls kept.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is kept.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Records the first result of `key`, made by a command stamped `now`: calls older
    /// than the time to live go first, then the oldest beyond the bounds.
    pub fn record(&mut self, key: CallKey, now: i64, result: &Result<Outcome, FsError>) {
        self.expire(now);
        if self.calls.contains_key(&key) {
            return;
        }
        let seq = self.next_seq;
        self.insert(CachedCall {
            seq,
            key,
            at: now,
            result: slim(result),
        });
        self.changes.added.push(seq);
        while self
            .per_client
            .get(&key.client)
            .is_some_and(|q| q.len() > self.limits.per_client)
        {
            let Some(oldest) = self.per_client.get(&key.client).and_then(|q| q.front()) else {
                break;
            };
            let oldest = *oldest;
            self.remove(oldest);
        }
        while self.calls.len() > self.limits.total {
            let Some((&oldest, _)) = self.by_seq.iter().next() else {
                break;
            };
            self.remove(oldest);
        }
    }

    /// Forgets `client`'s calls numbered below `below`: the client has their answers, so
    /// none of them comes again (this keeps a live client's entries to its calls in flight).
    pub fn forget_answered(&mut self, client: u64, below: u64) {
        let Some(queue) = self.per_client.get(&client) else {
            return;
        };
        let answered: Vec<u64> = queue
            .iter()
            .copied()
            .filter(|seq| self.by_seq.get(seq).is_some_and(|k| k.call < below))
            .collect();
        for seq in answered {
            self.remove(seq);
        }
    }

    /// Forgets the oldest calls while they are older than the time to live at `now`.
    fn expire(&mut self, now: i64) {
        while let Some((&seq, key)) = self.by_seq.iter().next() {
            let old = self
                .calls
                .get(key)
                .is_some_and(|c| c.at.saturating_add(self.limits.ttl_ms) <= now);
            if !old {
                return;
            }
            self.remove(seq);
        }
    }

    fn insert(&mut self, c: CachedCall) {
        self.next_seq = self.next_seq.max(c.seq + 1);
        self.by_seq.insert(c.seq, c.key);
        self.per_client
            .entry(c.key.client)
            .or_default()
            .push_back(c.seq);
        self.calls.insert(c.key, c);
    }

    fn remove(&mut self, seq: u64) {
        let Some(key) = self.by_seq.remove(&seq) else {
            return;
        };
        self.calls.remove(&key);
        if let Some(q) = self.per_client.get_mut(&key.client) {
            if q.front() == Some(&seq) {
                q.pop_front();
            } else {
                q.retain(|s| *s != seq);
            }
            if q.is_empty() {
                self.per_client.remove(&key.client);
            }
        }
        self.changes.removed.push(seq);
    }

    /// What changed since the last call, for persistence.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Every entry, oldest first (for snapshots).
    pub fn image(&self) -> Vec<CachedCall> {
        self.by_seq
            .values()
            .filter_map(|k| self.calls.get(k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: u64, call: u64) -> CallKey {
        CallKey { client, call }
    }

    fn small() -> RetryCache {
        RetryCache::with_limits(Limits {
            total: 4,
            per_client: 3,
            ttl_ms: 1000,
        })
    }

    #[test]
    fn a_repeat_finds_the_first_result_errors_included() {
        let mut c = small();
        c.record(key(1, 1), 0, &Ok(Outcome::Block(7)));
        c.record(key(1, 2), 0, &Err(FsError::AlreadyExists("/a".into())));
        // A second record of the same call keeps the first result.
        c.record(key(1, 1), 0, &Ok(Outcome::Block(8)));
        assert_eq!(c.get(key(1, 1)), Some(&Ok(Outcome::Block(7))));
        assert_eq!(
            c.get(key(1, 2)),
            Some(&Err(FsError::AlreadyExists("/a".into())))
        );
        assert_eq!(c.get(key(2, 1)), None, "another client's call 1");
        assert_eq!(c.get(key(1, 3)), None);
    }

    #[test]
    fn bounds_push_out_the_oldest_per_client_and_in_all() {
        let mut c = small();
        for call in 1..=4 {
            c.record(key(1, call), 0, &Ok(Outcome::Done));
        }
        // Per client: three kept, the first out.
        assert_eq!(c.get(key(1, 1)), None);
        assert!((2..=4).all(|n| c.get(key(1, n)).is_some()));
        for call in 1..=2 {
            c.record(key(2, call), 0, &Ok(Outcome::Done));
        }
        // In all: four kept, client 1's oldest out.
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(key(1, 2)), None);
        assert!(c.get(key(1, 3)).is_some() && c.get(key(2, 2)).is_some());
        let changes = c.take_changes();
        assert_eq!(changes.added.len(), 6);
        assert_eq!(changes.removed.len(), 2);
        assert_eq!(c.take_changes(), Changes::default());
    }

    #[test]
    fn answered_calls_are_forgotten() {
        let mut c = small();
        for call in [1, 2, 4] {
            c.record(key(1, call), 0, &Ok(Outcome::Done));
        }
        c.record(key(2, 1), 0, &Ok(Outcome::Done));
        // Client 1 has the answers of every call below 4 (call 3 was answered elsewhere).
        c.forget_answered(1, 4);
        assert_eq!(c.get(key(1, 1)), None);
        assert_eq!(c.get(key(1, 2)), None);
        assert!(c.get(key(1, 4)).is_some(), "a call in flight stays");
        assert!(c.get(key(2, 1)).is_some(), "another client's stays");
        assert_eq!(c.len(), 2);
        // Unknown clients and marks that forget nothing are no-ops.
        c.forget_answered(9, 100);
        c.forget_answered(1, 0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.take_changes().removed.len(), 2);
    }

    #[test]
    fn calls_expire_by_the_commands_timestamps() {
        let mut c = small();
        c.record(key(1, 1), 1_000, &Ok(Outcome::Done));
        c.record(key(2, 1), 1_500, &Ok(Outcome::Done));
        // 1999 ms: the first is 999 ms old, kept.
        c.record(key(3, 1), 1_999, &Ok(Outcome::Done));
        assert!(c.get(key(1, 1)).is_some());
        // 2000 ms: the first is 1000 ms old, gone; the second stays.
        c.record(key(3, 2), 2_000, &Ok(Outcome::Done));
        assert_eq!(c.get(key(1, 1)), None);
        assert!(c.get(key(2, 1)).is_some());
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn the_image_round_trips_through_json() {
        let mut c = small();
        c.record(key(1, 1), 5, &Ok(Outcome::Block(3)));
        c.record(key(9, 4), 6, &Err(FsError::NotFound("/x".into())));
        c.record(key(1, 2), 7, &Ok(Outcome::Worker(2)));
        let image = c.image();
        let text = serde_json::to_string(&image).unwrap();
        let back = RetryCache::from_calls(serde_json::from_str(&text).unwrap());
        assert_eq!(back.image(), image);
        assert_eq!(back.get(key(9, 4)), c.get(key(9, 4)));
        // New entries continue after the restored ones.
        let mut back = back;
        back.record(key(5, 1), 8, &Ok(Outcome::Done));
        assert!(back.entry(3).is_some_and(|e| e.key == key(5, 1)));
    }

    #[test]
    fn kept_inodes_drop_their_block_lists() {
        let mut c = small();
        let mut ns = super::super::namespace::Namespace::default();
        let created = ns.apply(&super::super::namespace::tests::create("/f"));
        let Ok(Outcome::Node(mut inode)) = created.result else {
            panic!("create failed: {created:?}");
        };
        inode.pending = vec![(1, 1)].into();
        c.record(key(1, 1), 1, &Ok(Outcome::Node(inode.clone())));
        let Some(Ok(Outcome::Node(kept))) = c.get(key(1, 1)) else {
            panic!("not kept");
        };
        assert!(kept.pending.is_empty());
        assert_eq!(kept.id, inode.id);
    }
}
