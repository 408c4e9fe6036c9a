//! The master: the file system's metadata service, replicated by Raft.
pub mod namespace;
