//! Integration tests, built into one test binary. Each module goes through the public
//! API or runs the built `curvine-fluid` binary.

mod auth;
mod binary;
mod block_tokens;
mod cli_cluster;
mod cluster;
mod cluster_fs;
mod cluster_ha;
mod fixtures;
mod fluid_entries;
mod fuse_mount;
mod harness;
mod overwrite;
mod page_cache;
mod ports;
mod posix;
mod read_ahead;
mod render_props;
mod retries;
mod s3_server;
mod short_circuit;
mod storage_compat;
mod tls;
mod ufs_cluster;
mod ufs_store;
