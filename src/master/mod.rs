//! The master: the file system's metadata service, replicated by Raft (openraft), with
//! its log and state in sled.
//!
//! - [`namespace`]: the replicated state and the commands that change it (pure).
//! - [`retry_cache`]: the first result of recent client calls, part of that state (a
//!   repeated call is answered, not applied again).
//! - [`types`]: the Raft type configuration.
//! - [`codec`]: how stored and replicated values are encoded (bincode behind a format
//!   byte; older JSON still reads).
//! - [`log_store`], [`state_machine`]: Raft storage on sled.
//! - [`network`]: Raft between masters over gRPC.
//! - [`state`]: what every service shares; writes, linearizable reads, leadership checks.
//! - [`batcher`]: concurrent writes share one Raft log entry.
//! - [`lease`]: read leases (linearizable reads without a Raft round).
//! - [`api`]: the gRPC handlers for clients and workers (decode, call the state, encode).
//! - [`convert`]: namespace records to wire messages and back.
//! - [`report`]: the cluster view (masters, workers, totals) and peer probes.
//! - [`web`]: `/healthz`, `/api/overview` and the `/metrics` gauges.
//! - [`peers`]: logging which peer masters are awaited at start-up.
//! - [`workers`]: live workers as the leader sees them.
//! - [`ufs`]: under storage on the leader: fresh listings, write-through, moves.
//! - [`server`]: start, serve, stop.

pub mod api;
pub mod batcher;
pub mod codec;
pub mod convert;
pub mod lease;
pub mod log_store;
pub mod namespace;
pub mod network;
pub mod peers;
pub mod report;
pub mod retry_cache;
pub mod server;
pub mod state;
pub mod state_machine;
pub mod types;
pub mod ufs;
pub mod web;
pub mod workers;

pub use server::{run, Master, MasterError, MasterListeners};

#[cfg(test)]
mod storage_suite;
