//! curvine-fluid: the whole Curvine cache runtime image for Fluid, in one binary.
//!
//! Started by Fluid in a CacheRuntime pod (master, worker, client) or a ThinRuntime FUSE
//! container, the binary detects what it is, renders `curvine-cluster.toml` from Fluid's
//! runtime config and the pod's environment, and then runs the component in-process.
//!
//! ```text
//! argv + environ
//!   main: cli::Cli::parse()  env::EnvSnapshot::capture()        (the only reads of both)
//!     └─ app::run: one match, command -> action
//!          └─ config::resolve: where this command's config comes from (once)
//!               ├─ mode::detect                     -> Detected { mode, component, reasons }
//!               ├─ config::cache::render | config::thin::render | render_standalone (pure)
//!               └─ a file read as is (--conf, CURVINE_CONF_FILE) | masters only (DataLoad)
//!          └─ the action: config::write (roles) -> master::run | worker::run | fuse::run,
//!             or a cluster call (fs, report, mount-ufs, report-summary, load)
//! ```
//!
//! Then the roles:
//!
//! ```text
//! fuse (kernel ops) ─> client library ──gRPC──> master (leader) ──openraft──> masters' sled journal + state machine
//!                            │                        ▲
//!                            └────gRPC blocks──> worker ──heartbeat (usage, evictions)──┘
//! ```
//!
//! Modules, one job each (open the one that holds your change):
//! - [`cli`]: the command line (clap types).
//! - [`env`](mod@env): the environment, captured once; the name of every variable we read.
//! - [`mode`]: which runtime and component this process is, and why.
//! - [`config`]: the cluster config. `config::resolve` decides each command's source;
//!   `cache` (its `json`, `options`, `topology`, `tiers`) and `thin` render from Fluid's
//!   inputs; `model` is the typed config the roles read; `discovery` finds a DataLoad
//!   pod's masters; `write` writes atomically.
//! - [`app`]: the command -> action match and the order of each action's steps.
//! - [`rpc`]: our gRPC protocol (generated types), error mapping, channel set-up;
//!   `auth` the cluster token (read once, attached by clients, required by servers);
//!   `block_token` the per-block capabilities masters issue and workers require;
//!   `local` the short-circuit socket's framing and descriptor passing;
//!   `call` a namespace-changing call's identity (client id, call number); `tls` optional
//!   TLS (rustls) for channels and servers.
//! - [`master`]: the metadata service. `namespace` is the replicated state (pure; its
//!   `links`, `xattrs`, `mounts` and `ufs` beside it, `sparse` its rarely used fields;
//!   `retry_cache` the first results of client calls, so a retried call applies once);
//!   `log_store`/`state_machine` keep it in sled (`codec` their binary encoding; the
//!   snapshot is a file); `network` is Raft between masters;
//!   `state` is what the services share (writes, linearizable reads); `batcher` shares
//!   log entries; `api` holds the gRPC handlers; `ufs` keeps under-storage mounts fresh
//!   and writes through to them; `convert` the wire conversions; `report`
//!   the cluster view and peer probes; `web` the HTTP view and gauges; `server` starts
//!   and stops it all.
//! - [`worker`]: the block cache. `block_store` does the file I/O of tiered block files;
//!   `block_policy` decides placement, watermarks and eviction order (pure); `service`
//!   serves blocks; `short_circuit` hands block files to clients on the node over a
//!   Unix socket; `ufs_fetch` fetches under-storage blocks on a miss; `heartbeat`
//!   registers and reports; `server` starts and stops it.
//! - [`client`]: the client library (leader-following master client that numbers its
//!   namespace-changing calls, file reader and writer, `short_circuit` I/O with a worker
//!   on the same node, `block_upload` a new block copied from an old one by its worker
//!   and patched in place).
//! - [`fuse`]: the FUSE client. `ops` holds the file system's semantics as plain
//!   functions returning `Result<_, Errno>`; `fs` only adapts fuser's callbacks to them;
//!   `inodes` maps kernel inodes to cluster paths (and a root of several dataset mounts);
//!   `handles` the open files and directories; `read`/`write` the per-file tasks;
//!   `patch` the blocks an overwrite rewrites (copy-on-write, no local staging copy);
//!   `mount_table` mount hygiene (stale mounts, `umount`); `health` the client's `/healthz`.
//! - [`commands`]: the CLI's `fs` and `report` commands.
//! - [`entries`]: Fluid's execution entries `mount-ufs` and `report-summary` (one JSON
//!   document on stdout each).
//! - [`dataload`]: Fluid's DataLoad (`load`): reading the paths through the workers.
//! - [`ufs`]: under storage (S3, local directories) through opendal: a mount's spec from
//!   Fluid's options and secrets, listing, ranged reads, multipart writes.
//! - [`standalone`]: master and worker in one process.
//! - [`web`]: the HTTP server every role shares (`/healthz`, `/metrics`,
//!   `/api/overview`); [`metrics`] holds the counters.
//! - [`report`]: the cluster report as text and JSON.
//! - [`fs_error`]: errors of file system operations, shared by every layer.
//! - [`shutdown`]: the shutdown signal and SIGTERM/SIGINT handling.
//! - [`error`]: the error a user sees and its exit code.
//! - [`telemetry`]: logging setup.

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
pub mod ufs;
pub mod web;
pub mod worker;
