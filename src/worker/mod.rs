//! The worker: block cache on tiered local storage.
//!
//! - [`block_store`]: block files on `worker.data_dir`, capacity, LRU eviction.
//! - `block_policy`: the store's placement, watermark and eviction decisions (pure).
//! - [`service`]: the block API (streamed writes, ranged streamed reads).
//! - [`ufs_fetch`]: blocks of under-storage files fetched on a miss (one fetch per block).
//! - [`short_circuit`]: block files handed to clients on the same node over a Unix socket.
//! - [`heartbeat`]: registration and heartbeats to the leading master.
//! - [`server`]: start, serve, stop.

mod block_policy;
pub mod block_store;
pub mod heartbeat;
pub mod server;
pub mod service;
pub mod short_circuit;
pub mod ufs_fetch;

pub use server::{run, Worker, WorkerError, WorkerListeners};
