//! Read leases: a leader serves a linearizable read from its own state, without a round
//! through the Raft core (which waits behind log fsyncs), while it holds a lease.
//!
//! It holds one when (1) it has applied an entry of its own term, so every write a
//! previous leader acknowledged is in its state, and (2) it is the only voter, or a quorum
//! acknowledged it within the lease, which is shorter than the election timeout: no other
//! leader can have been elected since. Otherwise the read goes through
//! `ensure_linearizable`.

use super::types::{NodeId, Raft};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lease of one master.
#[derive(Debug)]
pub struct ReadLease {
    node_id: NodeId,
    lease: Duration,
    /// When a quorum last acknowledged this node as leader, and in which term.
    acked: Mutex<Option<(u64, Instant)>>,
}

impl ReadLease {
    /// Tracks `raft`'s quorum acknowledgements; `lease` must be below the election timeout.
    pub fn start(raft: &Raft, node_id: NodeId, lease: Duration) -> Arc<ReadLease> {
        let me = Arc::new(ReadLease {
            node_id,
            lease,
            acked: Mutex::new(None),
        });
        let tracker = me.clone();
        let mut metrics = raft.metrics();
        // Ends when Raft shuts down (the metrics sender goes away).
        tokio::spawn(async move {
            while metrics.changed().await.is_ok() {
                let (leader, term, since) = {
                    let m = metrics.borrow_and_update();
                    (m.current_leader, m.current_term, m.millis_since_quorum_ack)
                };
                let acked = match (leader == Some(tracker.node_id), since) {
                    (true, Some(ms)) => Instant::now()
                        .checked_sub(Duration::from_millis(ms))
                        .map(|at| (term, at)),
                    _ => None,
                };
                *tracker.acked.lock().unwrap_or_else(|p| p.into_inner()) = acked;
            }
        });
        me
    }

    /// Whether this node may serve a linearizable read from its own state now.
    pub fn holds(&self, raft: &Raft) -> bool {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        if m.current_leader != Some(self.node_id) || !m.state.is_leader() {
            return false;
        }
        let term = m.current_term;
        if m.last_applied.map(|l| l.leader_id.term) != Some(term) {
            return false;
        }
        let mut voters = m.membership_config.membership().voter_ids();
        let alone = voters.next() == Some(self.node_id) && voters.next().is_none();
        if alone {
            return true;
        }
        let acked = *self.acked.lock().unwrap_or_else(|p| p.into_inner());
        matches!(acked, Some((t, at)) if t == term && at.elapsed() < self.lease)
    }
}
