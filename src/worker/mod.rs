//! The worker: block cache on tiered local storage.

pub mod block_store;
