//! curvine-fluid: the whole Curvine cache runtime image for Fluid, in one binary.
//!
//! Started by Fluid in a CacheRuntime pod (master, worker, client) or a ThinRuntime FUSE
//! container, the binary detects what it is, renders `curvine-cluster.toml` from Fluid's
//! runtime config and the pod's environment, and then runs the component in-process.
//!
//! ```text
//! argv + environ
//!   └─ cli::Cli::parse()            env::EnvSnapshot::capture()
//!            └──────── mode::detect ─────────┘          -> Detected { mode, component, reasons }
//!                         └─ config::cache::render | config::thin::render   (pure: JSON + env -> TOML)
//!                               └─ config::write::write_atomic + ClusterConfig::from_toml (validate)
//!                                     └─ app::run -> the role
//! ```
//!
//! Then the roles:
//!
//! ```text
//! client library ──gRPC──> master (leader) ──openraft──> masters' sled journal + state machine
//!       │                        ▲
//!       └────gRPC blocks──> worker ──heartbeat (usage, evictions)──┘
//! ```
//!
//! Modules, one job each:
//! - [`cli`]: the command line (clap types).
//! - [`env`]: the environment, captured once; the names of every variable we read.
//! - [`mode`]: which runtime and component this process is, and why.
//! - [`config`]: rendering the cluster config from Fluid's inputs, its typed model, writing it.
//! - [`app`]: the order of things: detect, prepare the config, start the role.
//! - [`rpc`]: our gRPC protocol (generated types), error mapping, channel set-up.
//! - [`master`]: metadata service; namespace replicated by Raft, stored in sled.
//! - [`worker`]: block cache on tiered local storage; registration and heartbeats.
//! - [`client`]: the client library (leader-following master client, file reader and writer).
//! - [`commands`]: the CLI's `fs` and `report` commands.
//! - [`entries`]: Fluid's execution entries `mount-ufs` and `report-summary` (one JSON
//!   document on stdout each).
//! - [`dataload`]: Fluid's DataLoad (`load`): finding the masters from a bare pod and
//!   reading the paths through the workers.
//! - [`standalone`]: master and worker in one process.
//! - [`web`]: `/healthz`, `/metrics`, `/api/overview` of every role; [`metrics`] holds the counters.
//! - [`report`]: the cluster report as text and JSON.
//! - [`fs_error`]: errors of file system operations, shared by every layer.
//! - [`shutdown`]: the shutdown signal and SIGTERM/SIGINT handling.
//! - [`error`]: the error a user sees and its exit code.
//! - [`telemetry`]: logging setup.
//! - [`fuse`]: the FUSE client: mount hygiene, the kernel operations, per-file read and
//!   write tasks.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]
// openraft's StorageError and tonic's Status are large by design, and their traits make
// us return them as they are (openraft's own examples allow this lint too).
#![allow(clippy::result_large_err)]

pub mod app;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod dataload;
pub mod entries;
pub mod env;
pub mod error;
pub mod fs_error;
pub mod fuse;
pub mod master;
pub mod metrics;
pub mod mode;
pub mod report;
pub mod rpc;
pub mod shutdown;
pub mod standalone;
pub mod telemetry;
pub mod web;
pub mod worker;
