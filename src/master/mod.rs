//! The master: the file system's metadata service, replicated by Raft (openraft), with
//! its log and state in sled.
//!
//! - [`namespace`]: the replicated state and the commands that change it (pure).
//! - [`types`]: the Raft type configuration.
//! - [`log_store`], [`state_machine`]: Raft storage on sled.
//! - [`network`]: Raft between masters over gRPC.
//! - [`service`]: the client and worker API.
//! - [`lease`]: read leases (linearizable reads without a Raft round).
//! - [`peers`]: logging which peer masters are awaited at start-up.
//! - [`workers`]: live workers as the leader sees them.
//! - [`server`]: start, serve, stop.

pub mod lease;
pub mod log_store;
pub mod namespace;
pub mod network;
pub mod peers;
pub mod server;
pub mod service;
pub mod state_machine;
pub mod types;
pub mod workers;

pub use server::{run, Master, MasterError, MasterListeners};

#[cfg(test)]
mod storage_suite;
