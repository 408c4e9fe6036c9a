//! The master: the file system's metadata service, replicated by Raft.
pub mod log_store;
pub mod namespace;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod storage_suite;
