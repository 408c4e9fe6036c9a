//! The typed view of `curvine-cluster.toml` that the roles read.
//!
//! It accepts Curvine's own files (sections master, journal, worker, client, fuse, log;
//! `journal_addrs` and `master_addrs` as arrays of inline tables or as `[[client.master_addrs]]`;
//! sizes as strings or numbers) and ignores the keys it does not use, so existing configs
//! keep working. [`ClusterConfig::validate`] checks what serde cannot.

use super::units;
use crate::error::InputError;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The whole cluster configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// Wipe the master's metadata and journal at start.
    pub format_master: bool,
    /// Wipe the worker's blocks at start.
    pub format_worker: bool,
    /// Curvine's test switch; kept for compatibility, unused.
    pub testing: bool,
    /// Name of the cluster (the dataset name under Fluid).
    pub cluster_id: String,
    /// `[master]`: the metadata service.
    pub master: MasterConfig,
    /// `[journal]`: the Raft group of the masters.
    pub journal: JournalConfig,
    /// `[worker]`: the block cache.
    pub worker: WorkerConfig,
    /// `[client]`: how clients reach the cluster.
    pub client: ClientConfig,
    /// `[fuse]`: the FUSE mount.
    pub fuse: FuseConfig,
    /// `[log]`: the client-side log settings.
    pub log: LogConfig,
    /// `[security]`: the cluster token and TLS files.
    pub security: SecurityConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            format_master: false,
            format_worker: false,
            testing: false,
            cluster_id: "curvine".to_string(),
            master: MasterConfig::default(),
            journal: JournalConfig::default(),
            worker: WorkerConfig::default(),
            client: ClientConfig::default(),
            fuse: FuseConfig::default(),
            log: LogConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// File holding the cluster token every RPC carries (a mounted Secret); empty: no
    /// token, the cluster is open. `CURVINE_TOKEN_FILE` overrides it.
    pub token_file: String,
    /// This server's certificate chain (PEM), presented to clients over TLS.
    pub tls_cert_file: String,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: String,
    /// The CA (PEM) clients trust when dialling masters and workers; set: RPCs use TLS.
    pub tls_ca_file: String,
    /// The name checked against servers' certificates; empty: the host dialled.
    pub tls_server_name: String,
    /// How long a block token the master issues stays valid (a duration, at least 1s);
    /// read with [`SecurityConfig::block_token_lifetime`].
    pub block_token_lifetime: String,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            token_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_ca_file: String::new(),
            tls_server_name: String::new(),
            block_token_lifetime: "10min".to_string(),
        }
    }
}

/// What a bad `security.block_token_lifetime` is told to do.
const LIFETIME_FIX: &str = "write a duration such as 10min or 30s (at least 1s)";

impl SecurityConfig {
    /// `block_token_lifetime` as a duration; an error line names the key and the fix.
    pub fn block_token_lifetime(&self) -> Result<Duration, String> {
        parse_lifetime(&self.block_token_lifetime).map_err(|why| {
            format!(
                "security.block_token_lifetime is {:?}: {why}; {LIFETIME_FIX}",
                self.block_token_lifetime
            )
        })
    }
}

/// A block token lifetime: a duration of at least one second (a shorter one would
/// expire on the way from the master to the worker).
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let lifetime = units::parse_duration(text).map_err(|_| "not a duration".to_string())?;
    if lifetime < Duration::from_secs(1) {
        return Err("shorter than 1s".to_string());
    }
    Ok(lifetime)
}

/// `[master]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct MasterConfig {
    /// This master's address as peers and clients know it.
    pub hostname: String,
    /// Client-facing metadata RPC port.
    pub rpc_port: u16,
    /// HTTP port for /healthz, /metrics and /api.
    pub web_port: u16,
    /// Where the metadata state machine lives.
    pub meta_dir: String,
    /// Record every metadata call in the log.
    pub audit_logging_enabled: bool,
    /// How often workers send heartbeats.
    pub heartbeat_interval: DurationText,
    /// How long a worker may stay silent before it is lost.
    pub worker_lost_interval: DurationText,
    /// The master's log settings.
    pub log: LogConfig,
    /// How long a listing of under storage stays fresh for mounts that set no
    /// `sync_interval`: a duration (`30s`), `0` (list every time) or `-1` (list once).
    pub ufs_sync_interval: String,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            rpc_port: 8995,
            web_port: 9000,
            meta_dir: "data/meta".to_string(),
            audit_logging_enabled: false,
            heartbeat_interval: DurationText(Duration::from_secs(3)),
            worker_lost_interval: DurationText(Duration::from_secs(30)),
            log: LogConfig::default(),
            ufs_sync_interval: "30s".to_string(),
        }
    }
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct JournalConfig {
    /// This master's address in the Raft group.
    pub hostname: String,
    /// Port masters use to talk to each other.
    pub rpc_port: u16,
    /// Every master of the group, with its Raft id.
    pub journal_addrs: Vec<Peer>,
    /// Where the Raft log lives.
    pub journal_dir: String,
    /// Log entries between snapshots.
    pub snapshot_entries: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            rpc_port: 8996,
            journal_addrs: Vec::new(),
            journal_dir: "data/journal".to_string(),
            snapshot_entries: 100_000,
        }
    }
}

/// One master of the Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Peer {
    /// Raft node id (ordinal + 1 under Fluid).
    pub id: u64,
    /// DNS name or address.
    #[serde(deserialize_with = "trimmed")]
    pub hostname: String,
    /// Journal port.
    pub port: u16,
}

/// A host and port, as in `client.master_addrs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HostPort {
    /// DNS name or address.
    #[serde(deserialize_with = "trimmed")]
    pub hostname: String,
    /// Port.
    pub port: u16,
}

/// `[worker]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// This worker's address as clients reach it.
    pub hostname: String,
    /// Block data RPC port.
    pub rpc_port: u16,
    /// HTTP port.
    pub web_port: u16,
    /// Space kept free on each data dir.
    pub dir_reserved: ByteSize,
    /// Cache directories, `[MEDIUM:CAPACITY]path`.
    pub data_dir: Vec<String>,
    /// Used fraction above which eviction starts.
    pub high_watermark: f64,
    /// Used fraction eviction brings the cache down to.
    pub low_watermark: f64,
    /// A directory shared with the clients on the node, where the worker listens on a
    /// Unix socket for short-circuit reads and writes (empty: none). Clients read the
    /// same key to find it.
    pub domain_socket_path: String,
    /// The worker's log settings.
    pub log: LogConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            rpc_port: 8997,
            web_port: 9001,
            dir_reserved: ByteSize(0),
            data_dir: vec!["[DISK]data/worker".to_string()],
            high_watermark: 0.95,
            low_watermark: 0.8,
            domain_socket_path: String::new(),
            log: LogConfig::default(),
        }
    }
}

/// `[client]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    /// This client's hostname (for locality), if known.
    pub hostname: String,
    /// Masters to try, in order.
    pub master_addrs: Vec<HostPort>,
    /// Size of a block; Curvine also spells it `block_size_str`.
    #[serde(alias = "block_size_str")]
    pub block_size: ByteSize,
    /// Deadline of one RPC, in milliseconds.
    pub rpc_timeout_ms: u64,
    /// How long connecting to a master may take, in milliseconds.
    pub conn_timeout_ms: u64,
    /// How long a call keeps retrying (leader changes, restarts), in milliseconds.
    pub rpc_retry_max_duration_ms: u64,
    /// Whether to read and write the blocks of a worker on this node through its
    /// short-circuit socket (`worker.domain_socket_path`), when it has one.
    pub short_circuit: bool,
    /// Whether a sequential reader over gRPC opens the next block's stream before it
    /// reaches the block's end.
    pub enable_read_ahead: bool,
    /// How far before a block's end that happens; 0: one stream window (8 MiB).
    /// Curvine also spells it `read_ahead_len_str`.
    #[serde(alias = "read_ahead_len_str")]
    pub read_ahead_len: ByteSize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            hostname: String::new(),
            master_addrs: Vec::new(),
            block_size: ByteSize(64 << 20),
            rpc_timeout_ms: 30_000,
            conn_timeout_ms: 3_000,
            rpc_retry_max_duration_ms: 60_000,
            short_circuit: true,
            enable_read_ahead: true,
            read_ahead_len: ByteSize(0),
        }
    }
}

/// The default of `fuse.max_readahead_kb`: 1 MiB, the size of one FUSE read.
pub const DEFAULT_MAX_READAHEAD_KB: u32 = 1024;

/// The largest `fuse.max_readahead_kb` accepted (the kernel's own limit is far above).
pub const MAX_READAHEAD_KB: u32 = 1 << 20;

/// `[fuse]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct FuseConfig {
    /// Log every FUSE request.
    pub debug: bool,
    /// Threads reading FUSE requests.
    pub io_threads: usize,
    /// Threads serving them.
    pub worker_threads: usize,
    /// Where the file system is mounted (Fluid's targetPath).
    pub mnt_path: String,
    /// Which directory of the cluster is mounted there.
    pub fs_path: String,
    /// Mount read-only.
    pub readonly: bool,
    /// Extra mount options, `key=value` or `key`.
    pub fuse_opts: Vec<String>,
    /// Kernel attribute cache, milliseconds.
    pub attr_timeout_ms: u64,
    /// Kernel dentry cache, milliseconds.
    pub entry_timeout_ms: u64,
    /// Kernel negative-lookup cache, milliseconds.
    pub negative_timeout_ms: u64,
    /// Bypass the page cache.
    pub direct_io: bool,
    /// Let the kernel batch writes.
    pub write_back_cache: bool,
    /// Keep the kernel's page cache of a file across opens while the file is unchanged
    /// (checked at each open); off: every open drops it.
    pub kernel_cache: bool,
    /// The kernel's read-ahead window for the mount, in KiB: how far ahead of a
    /// sequential reader it asks for pages (its window grows with the stream up to this).
    pub max_readahead_kb: u32,
    /// HTTP port of the FUSE client.
    pub web_port: u16,
    /// Several cluster directories shown as directories of the mount root (a ThinRuntime
    /// Dataset of several mounts); empty: `fs_path` is the root.
    pub mounts: Vec<FuseMountEntry>,
}

impl Default for FuseConfig {
    fn default() -> Self {
        Self {
            debug: false,
            io_threads: 32,
            worker_threads: 56,
            mnt_path: "/curvine-fuse".to_string(),
            fs_path: "/".to_string(),
            readonly: false,
            fuse_opts: Vec::new(),
            attr_timeout_ms: 1000,
            entry_timeout_ms: 1000,
            negative_timeout_ms: 0,
            direct_io: false,
            write_back_cache: false,
            kernel_cache: true,
            max_readahead_kb: DEFAULT_MAX_READAHEAD_KB,
            web_port: 9002,
            mounts: Vec::new(),
        }
    }
}

/// One entry of `fuse.mounts`: the cluster directory `fs_path` shown at `path`, a
/// directory of the mount root (`/train`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FuseMountEntry {
    /// Where it shows: `/<one name>`.
    pub path: String,
    /// The cluster directory.
    pub fs_path: String,
    /// Refuse changes under it with EROFS.
    #[serde(default)]
    pub read_only: bool,
}

/// Whether two absolute paths are the same or one contains the other.
pub fn paths_nest(a: &str, b: &str) -> bool {
    let inside = |a: &str, b: &str| {
        let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
        a == b || a.starts_with(&format!("{b}/")) || b.is_empty()
    };
    inside(a, b) || inside(b, a)
}

/// `[log]` and the `log` tables of master and worker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// Level: error, warn, info, debug or trace.
    pub level: String,
    /// `stdout`, or a directory (curvine-fluid always logs to stdout).
    pub log_dir: String,
    /// File name when logging to a directory.
    pub file_name: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            log_dir: "stdout".to_string(),
            file_name: "curvine.log".to_string(),
        }
    }
}

/// A number of bytes, written in TOML as a number or a size string (`"10GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

/// A TOML value that is a number or a string, as sizes and durations may be.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use NumberOrText as Raw;
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => units::parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written as a string (`"30s"`) or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use NumberOrText as Raw;
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(DurationText(Duration::from_secs(n))),
            Raw::Text(s) => units::parse_duration(&s)
                .map(DurationText)
                .map_err(serde::de::Error::custom),
        }
    }
}

fn trimmed<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(String::deserialize(d)?.trim().to_string())
}

/// The storage medium of a cache directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Medium {
    /// Memory (tmpfs, /dev/shm).
    Mem,
    /// Solid-state disk.
    Ssd,
    /// Spinning disk.
    Hdd,
    /// A disk of unknown kind.
    Disk,
}

/// One entry of `worker.data_dir`: `[MEDIUM:CAPACITY]path`, `[MEDIUM]path` or `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The medium (DISK when not given).
    pub medium: Medium,
    /// The capacity, when given.
    pub capacity: Option<u64>,
    /// The directory.
    pub path: String,
}

impl DataDir {
    /// Parses one `data_dir` entry.
    pub fn parse(entry: &str) -> Result<DataDir, String> {
        let entry = entry.trim();
        let (medium, capacity, path) = match entry.strip_prefix('[') {
            None => (Medium::Disk, None, entry),
            Some(rest) => {
                let (inside, path) = rest
                    .split_once(']')
                    .ok_or_else(|| format!("{entry:?} has no closing ]"))?;
                let (medium, capacity) = match inside.split_once(':') {
                    Some((m, c)) => (m, Some(units::parse_size(c)?)),
                    None => (inside, None),
                };
                let medium = match medium.trim().to_ascii_uppercase().as_str() {
                    "MEM" => Medium::Mem,
                    "SSD" => Medium::Ssd,
                    "HDD" => Medium::Hdd,
                    "DISK" => Medium::Disk,
                    other => {
                        return Err(format!(
                            "unknown medium {other:?} in {entry:?} (use MEM, SSD, HDD or DISK)"
                        ))
                    }
                };
                (medium, capacity, path)
            }
        };
        if path.trim().is_empty() {
            return Err(format!("{entry:?} has no directory"));
        }
        Ok(DataDir {
            medium,
            capacity,
            path: path.trim().to_string(),
        })
    }
}

impl ClusterConfig {
    /// The masters' client addresses (`host:port`): `client.master_addrs`, else this
    /// config's own `master.hostname` and `master.rpc_port`.
    pub fn master_endpoints(&self) -> Vec<String> {
        if self.client.master_addrs.is_empty() {
            vec![crate::rpc::host_port(
                &self.master.hostname,
                self.master.rpc_port,
            )]
        } else {
            self.client
                .master_addrs
                .iter()
                .map(|a| crate::rpc::host_port(&a.hostname, a.port))
                .collect()
        }
    }

    /// Parses TOML text (from `origin`, named in errors) and validates it.
    pub fn from_toml(text: &str, origin: &str) -> Result<ClusterConfig, InputError> {
        let config: ClusterConfig = toml_edit::de::from_str(text).map_err(|e| {
            let message = crate::error::single_line(e.message());
            let line = e
                .span()
                .map(|s| {
                    format!(
                        ", line {}",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            InputError::new(
                format!("invalid config: {message}"),
                format!("{origin}{line}"),
                "fix the value in curvine-cluster.toml (see README: Configuration)",
            )
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks what serde cannot: non-zero ports, unique peer ids, parseable data dirs,
    /// watermarks between 0 and 1.
    pub fn validate(&self, origin: &str) -> Result<(), InputError> {
        let err = |key: &str, what: String, fix: &str| {
            InputError::new(what, format!("{origin}, key {key}"), fix)
        };
        for (key, port) in [
            ("master.rpc_port", self.master.rpc_port),
            ("master.web_port", self.master.web_port),
            ("journal.rpc_port", self.journal.rpc_port),
            ("worker.rpc_port", self.worker.rpc_port),
            ("worker.web_port", self.worker.web_port),
        ] {
            if port == 0 {
                return Err(err(
                    key,
                    "port 0 is not a usable port".into(),
                    "use a port from 1 to 65535",
                ));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for peer in &self.journal.journal_addrs {
            if peer.id == 0 || !ids.insert(peer.id) {
                return Err(err(
                    "journal.journal_addrs",
                    format!("peer id {} is zero or used twice", peer.id),
                    "give every master a distinct id from 1 up",
                ));
            }
            if peer.hostname.is_empty() || peer.port == 0 {
                return Err(err(
                    "journal.journal_addrs",
                    format!("peer {} has an empty hostname or port 0", peer.id),
                    "give every master a hostname and a port",
                ));
            }
        }
        for addr in &self.client.master_addrs {
            if addr.hostname.is_empty() || addr.port == 0 {
                return Err(err(
                    "client.master_addrs",
                    format!("{:?}:{} is not a usable address", addr.hostname, addr.port),
                    "give every master a hostname and a port",
                ));
            }
        }
        for entry in &self.worker.data_dir {
            DataDir::parse(entry).map_err(|e| {
                err(
                    "worker.data_dir",
                    e,
                    "write entries as [MEDIUM:CAPACITY]/path, e.g. [SSD:100GB]/data",
                )
            })?;
        }
        parse_lifetime(&self.security.block_token_lifetime).map_err(|why| {
            err(
                "security.block_token_lifetime",
                format!("{:?} is {why}", self.security.block_token_lifetime),
                LIFETIME_FIX,
            )
        })?;
        let (low, high) = (self.worker.low_watermark, self.worker.high_watermark);
        if !(0.0 < low && low <= high && high <= 1.0) {
            return Err(err(
                "worker.high_watermark",
                format!("watermarks low {low} and high {high} are not 0 < low <= high <= 1"),
                "use ratios such as high 0.95 and low 0.8",
            ));
        }
        if !(4..=MAX_READAHEAD_KB).contains(&self.fuse.max_readahead_kb) {
            return Err(err(
                "fuse.max_readahead_kb",
                format!(
                    "{} KiB is not a read-ahead window",
                    self.fuse.max_readahead_kb
                ),
                "use a size in KiB from 4 to 1048576, e.g. 1024",
            ));
        }
        for (key, path) in [
            ("fuse.mnt_path", &self.fuse.mnt_path),
            ("fuse.fs_path", &self.fuse.fs_path),
        ] {
            if !path.starts_with('/') {
                return Err(err(
                    key,
                    format!("{path:?} is not an absolute path"),
                    "use a path starting with /",
                ));
            }
        }
        for (i, m) in self.fuse.mounts.iter().enumerate() {
            let name = m.path.strip_prefix('/').unwrap_or("");
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(err(
                    &format!("fuse.mounts[{i}].path"),
                    format!("{:?} is not one directory of the mount root", m.path),
                    "write /<name>, e.g. /train",
                ));
            }
            if self.fuse.mounts[..i].iter().any(|o| o.path == m.path) {
                return Err(err(
                    &format!("fuse.mounts[{i}].path"),
                    format!("{} is listed twice", m.path),
                    "give each mount its own path",
                ));
            }
            if !m.fs_path.starts_with('/') {
                return Err(err(
                    &format!("fuse.mounts[{i}].fs_path"),
                    format!("{:?} is not an absolute path", m.fs_path),
                    "use a cluster path starting with /",
                ));
            }
            if let Some(o) = self.fuse.mounts[..i]
                .iter()
                .find(|o| paths_nest(&m.fs_path, &o.fs_path))
            {
                return Err(err(
                    &format!("fuse.mounts[{i}].fs_path"),
                    format!(
                        "{} and {} ({}) contain one another",
                        m.fs_path, o.fs_path, o.path
                    ),
                    "mount cluster directories that do not contain each other",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curvine_example_config_parses() {
        let text = r#"
format_master = false
cluster_id = "curvine"
net_interface = ""
[master]
rpc_port = 8995
meta_dir = "./data/meta"
audit_logging_enabled = true
log = { level = "info", log_dir = "./logs", file_name = "master.log" }
[journal]
journal_addrs = [
    {id = 1, hostname = "cv-master-0.svc.cluster.local", port = 8996},
    {id = 2, hostname = " cv-master-1.svc.cluster.local ", port = 8996},
]
[worker]
dir_reserved = "10GB"
data_dir = ["[SSD]/data/data1", "[MEM:2GB]/dev/shm"]
[worker.spdk_disk]
enabled = false
[[worker.spdk_disk.targets]]
trsvcid = 4420
[[client.master_addrs]]
hostname = "cv-master-0.svc.cluster.local"
port = 8995
[client]
block_size_str = "128MB"
[fuse]
attr_timeout_ms = 1000 # comment
"#;
        let c = ClusterConfig::from_toml(text, "file x").unwrap();
        assert_eq!(
            c.journal.journal_addrs[1].hostname,
            "cv-master-1.svc.cluster.local"
        );
        assert_eq!(c.worker.dir_reserved, ByteSize(10 << 30));
        assert_eq!(c.client.master_addrs[0].port, 8995);
        assert_eq!(c.client.block_size, ByteSize(128 << 20));
        assert_eq!(c.master.log.file_name, "master.log");
    }

    #[test]
    fn wrong_types_name_the_key_and_line() {
        let e =
            ClusterConfig::from_toml("[master]\nrpc_port = \"x\"\n", "file c.toml").unwrap_err();
        assert!(e.location.starts_with("file c.toml"), "{e}");
        assert!(e.what.contains("invalid"), "{e}");
        let e = ClusterConfig::from_toml("[master]\nrpc_port = 0\n", "file c.toml").unwrap_err();
        assert!(e.location.contains("master.rpc_port"), "{e}");
    }

    #[test]
    fn block_token_lifetime_is_a_duration_of_at_least_a_second() {
        let c = ClusterConfig::default();
        assert_eq!(
            c.security.block_token_lifetime(),
            Ok(Duration::from_secs(600))
        );
        let c =
            ClusterConfig::from_toml("[security]\nblock_token_lifetime = \"2s\"\n", "f").unwrap();
        assert_eq!(
            c.security.block_token_lifetime(),
            Ok(Duration::from_secs(2))
        );
        for bad in ["soon", "500ms", "0"] {
            let text = format!("[security]\nblock_token_lifetime = \"{bad}\"\n");
            let e = ClusterConfig::from_toml(&text, "file c.toml").unwrap_err();
            assert!(
                e.location.contains("security.block_token_lifetime"),
                "{bad}: {e}"
            );
            assert!(e.fix.contains("10min"), "{bad}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
            let mut c = ClusterConfig::default();
            c.security.block_token_lifetime = bad.into();
            let e = c.security.block_token_lifetime().unwrap_err();
            assert!(e.starts_with("security.block_token_lifetime"), "{e}");
        }
    }

    #[test]
    fn read_ahead_keys_take_curvines_spellings_and_a_window_has_a_size() {
        let c = ClusterConfig::from_toml(
            "[client]\nenable_read_ahead = false\nread_ahead_len_str = \"16MB\"\n\
             [fuse]\nmax_readahead_kb = 4096\n",
            "f",
        )
        .unwrap();
        assert!(!c.client.enable_read_ahead);
        assert_eq!(c.client.read_ahead_len, ByteSize(16 << 20));
        assert_eq!(c.fuse.max_readahead_kb, 4096);
        let d = ClusterConfig::default();
        assert!(d.client.enable_read_ahead);
        assert_eq!(d.fuse.max_readahead_kb, DEFAULT_MAX_READAHEAD_KB);
        for bad in ["0", "2", "2000000"] {
            let text = format!("[fuse]\nmax_readahead_kb = {bad}\n");
            let e = ClusterConfig::from_toml(&text, "file c.toml").unwrap_err();
            assert!(e.location.contains("fuse.max_readahead_kb"), "{bad}: {e}");
            assert!(e.fix.contains("1024"), "{bad}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn syntax_errors_are_one_line() {
        // toml_edit's messages have two lines ("invalid string\nexpected ..."); an input
        // error is one (found by the fuzz pass, tests/corpus/toml/h-bad-string.toml).
        for text in ["[client]\nmaster_addrs =$[[\n", "[w]\n[w]\n"] {
            let e = ClusterConfig::from_toml(text, "file c.toml").unwrap_err();
            assert!(!e.to_string().contains('\n'), "{e}");
            assert!(e.what.starts_with("invalid config: "), "{e}");
        }
    }

    #[test]
    fn data_dirs() {
        assert_eq!(
            DataDir::parse("[HDD:5GB]/x").unwrap(),
            DataDir {
                medium: Medium::Hdd,
                capacity: Some(5 << 30),
                path: "/x".into()
            }
        );
        assert_eq!(DataDir::parse("/y").unwrap().medium, Medium::Disk);
        assert_eq!(DataDir::parse("[mem]/z").unwrap().medium, Medium::Mem);
        for bad in ["[NVME]/a", "[HDD:lots]/a", "[HDD]", "[HDD/a", ""] {
            assert!(DataDir::parse(bad).is_err(), "{bad}");
        }
    }
}
