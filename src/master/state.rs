//! The state every master service shares (Raft, the namespace, live workers, metrics)
//! and the checks a request passes before it writes or reads: writes through the batched
//! Raft log, linearizable reads (lease, else a Raft round), leadership.

use super::batcher::Batcher;
use super::convert::not_leader;
use super::namespace::{Applied, Command, Outcome};
use super::state_machine::SharedNamespace;
use super::types::{Raft, RaftError};
use super::workers::WorkerRegistry;
use crate::fs_error::FsError;
use crate::metrics::RpcMetrics;
use crate::rpc::call::CallId;
use openraft::error::CheckIsLeaderError;
use std::sync::Arc;

/// Wall-clock milliseconds, stamped on commands by the leader (followers apply the same).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Everything the master's services share.
pub struct MasterState {
    /// This node's Raft id.
    pub node_id: u64,
    /// This node's journal address.
    pub address: String,
    /// The Raft instance.
    pub raft: Raft,
    /// The namespace (read side).
    pub ns: Arc<SharedNamespace>,
    /// Live workers.
    pub workers: WorkerRegistry,
    /// Cluster name.
    pub cluster_id: String,
    /// Block size clients use (for statfs).
    pub block_size: u64,
    /// RPC metrics.
    pub rpc_metrics: RpcMetrics,
    /// Repeated client calls answered from the retry cache.
    pub repeated_calls: prometheus::IntCounterVec,
    /// Metrics registry of this master.
    pub registry: prometheus::Registry,
    /// Coalesces concurrent writes into shared log entries.
    pub batcher: Batcher,
    /// Lets the leader serve reads without a Raft round.
    pub lease: Arc<super::lease::ReadLease>,
    /// Under storage: listings, write-through, moves.
    pub ufs: super::ufs::UfsLayer,
    /// The cluster token this master sends to its peers (none: the cluster is open).
    pub token: Option<crate::rpc::auth::Token>,
    /// TLS to peers (none: plain RPCs).
    pub tls: Option<crate::rpc::tls::ClientTls>,
    /// Issues the block tokens that go with block allocations and locations.
    pub block_tokens: crate::rpc::block_token::Issuer,
}

impl std::fmt::Debug for MasterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterState")
            .field("node_id", &self.node_id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl MasterState {
    /// Appends a command to the log (batched with concurrent ones) and waits until it
    /// is applied here.
    pub async fn write(&self, command: Command) -> Result<Applied, FsError> {
        self.batcher.write(command).await
    }

    /// Applies a command and returns its outcome; blocks it freed are queued for deletion.
    pub async fn command(&self, command: Command) -> Result<Outcome, FsError> {
        let applied = self.write(command).await?;
        self.workers.queue_deletes(&applied.freed);
        applied.result
    }

    /// Applies `command` as client call `call` when the request carried one (a repeat is
    /// answered with the first result, nothing applied), else as [`MasterState::command`].
    pub async fn command_once(
        &self,
        call: Option<CallId>,
        command: Command,
    ) -> Result<Outcome, FsError> {
        let Some(id) = call else {
            return self.command(command).await;
        };
        let applied = self
            .write(Command::Once {
                client: id.client,
                call: id.call,
                now: now_ms(),
                answered_below: id.answered_below,
                command: Box::new(command),
            })
            .await?;
        if applied.repeated {
            self.note_repeat(id);
        }
        self.workers.queue_deletes(&applied.freed);
        applied.result
    }

    /// The first result of `call` when this master has applied it already: a handler
    /// with steps before its command (under storage, a worker pick) answers a repeat
    /// with it instead of doing them again.
    pub fn first_result(&self, call: Option<CallId>) -> Option<Result<Outcome, FsError>> {
        let id = call?;
        let first = self.ns.read().first_result(id.into()).cloned()?;
        self.note_repeat(id);
        Some(first)
    }

    /// Like [`MasterState::first_result`], but first waits until this master applied
    /// everything committed (a new leader may not have yet): for a handler whose steps
    /// before its command change under storage.
    pub async fn first_result_applied(
        &self,
        call: Option<CallId>,
    ) -> Result<Option<Result<Outcome, FsError>>, FsError> {
        if call.is_none() {
            return Ok(None);
        }
        self.linearizable().await?;
        Ok(self.first_result(call))
    }

    fn note_repeat(&self, id: CallId) {
        self.repeated_calls.with_label_values::<&str>(&[]).inc();
        tracing::debug!(
            client = %format_args!("{:016x}", id.client),
            call = id.call,
            "a repeated call answered with its first result"
        );
    }

    /// Waits until this master may serve a linearizable read.
    pub async fn linearizable(&self) -> Result<(), FsError> {
        if self.lease.holds(&self.raft) {
            return Ok(());
        }
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(not_leader(f)),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(FsError::Unavailable(format!("no quorum of masters: {e}")))
            }
            Err(RaftError::Fatal(f)) => {
                Err(FsError::Unavailable(format!("this master stopped: {f}")))
            }
        }
    }

    /// Whether this node leads now (from metrics; no network round).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// The leader's journal address, when known.
    pub fn leader_address(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Fails with `NotLeader` (and the leader's address) unless this node leads.
    pub fn require_leader(&self) -> Result<(), FsError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(FsError::NotLeader {
                leader: self.leader_address(),
            })
        }
    }
}
