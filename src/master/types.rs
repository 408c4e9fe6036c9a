//! The Raft type configuration, declared once; the rest of the master names these
//! aliases instead of spelling out openraft's generics.

use super::namespace::{Applied, Command};
use openraft::BasicNode;

openraft::declare_raft_types!(
    /// Raft types of the master: a log entry carries one or more namespace [`Command`]s
    /// (concurrent writes share an entry and its fsync), the state machine answers with
    /// one [`Applied`] per command, nodes are known by their journal address, a snapshot is a file
    /// (see `state_machine`).
    pub TypeConfig:
        D = Vec<Command>,
        R = Vec<Applied>,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = tokio::fs::File,
);

/// A Raft node id (ordinal + 1 under Fluid).
pub type NodeId = u64;
/// The Raft instance.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// Membership with its log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
/// A snapshot.
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
/// Storage errors.
pub type StorageError = openraft::StorageError<NodeId>;
/// Storage I/O errors.
pub type StorageIOError = openraft::StorageIOError<NodeId>;
/// Raft API errors.
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
/// Errors of a Raft RPC.
pub type RPCError<E = openraft::error::Infallible> =
    openraft::error::RPCError<NodeId, BasicNode, RaftError<E>>;
/// Raft metrics.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BasicNode>;
