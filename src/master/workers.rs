//! What the leading master knows about live workers: their last heartbeat, capacity and
//! usage, and the blocks they should delete. Soft state, rebuilt from heartbeats after a
//! leader change; the durable part (worker ids and addresses) is in the namespace.

use crate::rpc::pb::master::TierUsage;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The last report of one worker.
#[derive(Debug, Clone)]
pub struct WorkerReport {
    /// When the heartbeat arrived.
    pub seen: Instant,
    /// Per-directory usage.
    pub tiers: Vec<TierUsage>,
    /// Blocks held.
    pub blocks: u64,
    /// Bytes served to readers since the worker started.
    pub bytes_read: u64,
    /// Bytes written since the worker started.
    pub bytes_written: u64,
    /// Reads of blocks the worker had.
    pub reads_hit: u64,
    /// Reads of blocks the worker did not have.
    pub reads_miss: u64,
    /// Bytes served from blocks the worker held.
    pub bytes_hit: u64,
    /// Bytes served that the worker fetched from under storage for the read.
    pub bytes_fetched: u64,
}

impl WorkerReport {
    /// Total capacity.
    pub fn capacity(&self) -> u64 {
        self.tiers.iter().map(|t| t.capacity).sum()
    }

    /// Total used.
    pub fn used(&self) -> u64 {
        self.tiers.iter().map(|t| t.used).sum()
    }
}

#[derive(Debug, Default)]
struct Inner {
    reports: HashMap<u32, WorkerReport>,
    deletes: HashMap<u32, Vec<u64>>,
    lost: HashMap<u32, bool>,
    next: usize,
    /// When this master last became leader (`None` while it is not).
    leading_since: Option<Instant>,
}

/// The registry.
#[derive(Debug)]
pub struct WorkerRegistry {
    inner: Mutex<Inner>,
    lost_after: Duration,
}

impl WorkerRegistry {
    /// A worker silent for `lost_after` is lost.
    pub fn new(lost_after: Duration) -> Self {
        WorkerRegistry {
            inner: Mutex::new(Inner::default()),
            lost_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a heartbeat.
    pub fn heartbeat(&self, id: u32, report: WorkerReport) {
        let mut inner = self.lock();
        inner.reports.insert(id, report);
        inner.lost.insert(id, false);
    }

    /// Whether the worker reported within the lost interval (or has not had the chance
    /// yet: see below).
    pub fn is_live(&self, id: u32) -> bool {
        let inner = self.lock();
        match inner.reports.get(&id) {
            Some(r) => r.seen.elapsed() < self.lost_after,
            // Not heard from yet by this master: a new leader presumes the workers the
            // namespace knows are live for one `lost_after`, the time they have to find it
            // and heartbeat; until then their blocks stay readable.
            None => inner
                .leading_since
                .is_none_or(|since| since.elapsed() < self.lost_after),
        }
    }

    /// Records whether this master leads (called periodically); starts the grace period
    /// of workers not heard from yet when it becomes leader.
    pub fn note_leadership(&self, leader: bool) {
        let mut inner = self.lock();
        match (leader, inner.leading_since) {
            (true, None) => inner.leading_since = Some(Instant::now()),
            (false, Some(_)) => inner.leading_since = None,
            _ => {}
        }
    }

    /// The last report of a worker.
    pub fn report(&self, id: u32) -> Option<WorkerReport> {
        self.lock().reports.get(&id).cloned()
    }

    /// Live workers and their reports.
    pub fn live(&self) -> Vec<(u32, WorkerReport)> {
        let inner = self.lock();
        let mut live: Vec<(u32, WorkerReport)> = inner
            .reports
            .iter()
            .filter(|(_, r)| r.seen.elapsed() < self.lost_after)
            .map(|(id, r)| (*id, r.clone()))
            .collect();
        live.sort_by_key(|(id, _)| *id);
        live
    }

    /// Picks `near` for a new block when it is live and has room for at least a tenth
    /// of the best free space (a rewrite copies its old block there); otherwise as
    /// [`WorkerRegistry::pick_for_write`].
    pub fn pick_near(&self, near: Option<u32>) -> Option<u32> {
        if let Some(near) = near {
            let live = self.live();
            let best = live
                .iter()
                .map(|(_, r)| r.capacity().saturating_sub(r.used()))
                .max()
                .unwrap_or(0);
            let fits = live
                .iter()
                .any(|(id, r)| *id == near && r.capacity().saturating_sub(r.used()) >= best / 10);
            if fits {
                return Some(near);
            }
        }
        self.pick_for_write()
    }

    /// Picks a live worker for a new block: the one with the most free space, rotating
    /// among workers within 10% of the best so concurrent writers spread out.
    pub fn pick_for_write(&self) -> Option<u32> {
        let live = self.live();
        let best = live
            .iter()
            .map(|(_, r)| r.capacity().saturating_sub(r.used()))
            .max()?;
        let candidates: Vec<u32> = live
            .iter()
            .filter(|(_, r)| r.capacity().saturating_sub(r.used()) >= best - best / 10)
            .map(|(id, _)| *id)
            .collect();
        let mut inner = self.lock();
        inner.next = inner.next.wrapping_add(1);
        candidates
            .get(inner.next % candidates.len().max(1))
            .copied()
    }

    /// Queues blocks for deletion on their workers.
    pub fn queue_deletes(&self, blocks: &[(u64, u32)]) {
        if blocks.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for (block, worker) in blocks {
            inner.deletes.entry(*worker).or_default().push(*block);
        }
    }

    /// Takes the blocks a worker should delete.
    pub fn take_deletes(&self, worker: u32) -> Vec<u64> {
        self.lock().deletes.remove(&worker).unwrap_or_default()
    }

    /// Workers that became lost since the last call (each reported once).
    pub fn newly_lost(&self) -> Vec<u32> {
        let mut inner = self.lock();
        let lost: Vec<u32> = inner
            .reports
            .iter()
            .filter(|(_, r)| r.seen.elapsed() >= self.lost_after)
            .map(|(id, _)| *id)
            .collect();
        lost.into_iter()
            .filter(|id| !std::mem::replace(inner.lost.entry(*id).or_default(), true))
            .collect()
    }
}

/// How long a worker may stay silent before it is lost, at least three heartbeats.
pub fn lost_after(configured: Duration) -> Duration {
    configured.max(Duration::from_millis(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(capacity: u64, used: u64, seen: Instant) -> WorkerReport {
        WorkerReport {
            seen,
            tiers: vec![TierUsage {
                medium: "DISK".into(),
                path: "/d".into(),
                capacity,
                used,
                blocks: 0,
            }],
            blocks: 0,
            bytes_read: 0,
            bytes_written: 0,
            reads_hit: 0,
            reads_miss: 0,
            bytes_hit: 0,
            bytes_fetched: 0,
        }
    }

    #[test]
    fn placement_prefers_free_space_and_skips_the_lost() {
        let reg = WorkerRegistry::new(Duration::from_millis(50));
        let now = Instant::now();
        reg.heartbeat(1, report(100, 90, now));
        reg.heartbeat(2, report(100, 10, now));
        assert_eq!(reg.pick_for_write(), Some(2));
        reg.heartbeat(3, report(100, 12, now));
        let picks: std::collections::BTreeSet<u32> =
            (0..10).filter_map(|_| reg.pick_for_write()).collect();
        assert_eq!(picks, [2, 3].into_iter().collect());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(reg.pick_for_write(), None);
        let mut lost = reg.newly_lost();
        lost.sort();
        assert_eq!(lost, vec![1, 2, 3]);
        assert!(reg.newly_lost().is_empty(), "reported once");
        reg.heartbeat(2, report(100, 10, Instant::now()));
        assert!(reg.is_live(2));
    }

    #[test]
    fn deletes_are_taken_once() {
        let reg = WorkerRegistry::new(Duration::from_secs(1));
        reg.queue_deletes(&[(1, 7), (2, 7), (3, 8)]);
        assert_eq!(reg.take_deletes(7), vec![1, 2]);
        assert!(reg.take_deletes(7).is_empty());
    }

    #[test]
    fn a_new_leader_presumes_unheard_workers_live_for_one_interval() {
        let reg = WorkerRegistry::new(Duration::from_millis(200));
        assert!(reg.is_live(7), "before leading: presumed live");
        reg.note_leadership(true);
        assert!(reg.is_live(7), "just became leader: presumed live");
        std::thread::sleep(Duration::from_millis(250));
        assert!(!reg.is_live(7), "not heard within the interval: lost");
        reg.heartbeat(7, report(10, 0, Instant::now()));
        assert!(reg.is_live(7));
        reg.note_leadership(false);
        reg.note_leadership(true);
        assert!(reg.is_live(8), "a new term starts a new grace period");
    }
}
