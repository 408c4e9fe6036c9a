//! The type of every key of Curvine's `curvine-cluster.toml`, so that option values from
//! Fluid (always strings) are written with the right TOML type: `worker_threads = 64`,
//! `audit_logging_enabled = true`, `dir_reserved = "10GB"`.
//!
//! The key lists follow Curvine's config structs (sections top level, master, journal,
//! worker, client, fuse, log) plus the keys only curvine-fluid reads (worker watermarks).

use super::units;
use toml_edit::Value;

/// The TOML type of a config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` / `false`.
    Bool,
    /// A whole number.
    Int,
    /// A TCP port, 1..=65535.
    Port,
    /// A number with a fraction, e.g. a ratio.
    Float,
    /// Free text (hostnames, paths, names).
    Str,
    /// A Curvine size kept as a string: `10GB`, `0`; Kubernetes `10Gi` is converted.
    Size,
    /// A duration kept as a string: `30s`, `12h`.
    Duration,
    /// A list of strings; an option value is split on commas.
    StrList,
}

impl Kind {
    /// How the expected form is described in errors.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Bool => "true or false",
            Kind::Int => "a whole number, e.g. 64",
            Kind::Port => "a port number from 1 to 65535",
            Kind::Float => "a number, e.g. 0.9",
            Kind::Str => "text",
            Kind::Size => "a size such as 0, 512MB or 10GB",
            Kind::Duration => "a duration such as 500ms, 30s or 12h",
            Kind::StrList => "a comma-separated list",
        }
    }
}

use Kind::*;

const TOP: &[(&str, Kind)] = &[
    ("format_master", Bool),
    ("format_worker", Bool),
    ("testing", Bool),
    ("cluster_id", Str),
    ("net_interface", Str),
];

const LOG: &[(&str, Kind)] = &[
    ("level", Str),
    ("log_dir", Str),
    ("file_name", Str),
    ("max_log_files", Int),
    ("display_thread", Bool),
    ("display_position", Bool),
];

const MASTER: &[(&str, Kind)] = &[
    ("hostname", Str),
    ("rpc_port", Port),
    ("web_port", Port),
    ("io_threads", Int),
    ("worker_threads", Int),
    ("actor_threads", Int),
    ("io_timeout", Duration),
    ("io_close_idle", Bool),
    ("meta_request_concurrent", Bool),
    ("meta_dir", Str),
    ("min_block_size", Int),
    ("max_block_size", Int),
    ("min_replication", Int),
    ("max_replication", Int),
    ("max_path_len", Int),
    ("max_path_depth", Int),
    ("retry_cache_enable", Bool),
    ("retry_cache_size", Int),
    ("retry_cache_ttl", Duration),
    ("block_report_limit", Int),
    ("worker_policy", Str),
    ("executor_threads", Int),
    ("executor_channel_size", Int),
    ("heartbeat_interval", Duration),
    ("heartbeat_interval_unit", Str),
    ("ufs_sync_interval", Str),
    ("worker_check_interval", Duration),
    ("worker_check_interval_unit", Str),
    ("worker_blacklist_interval", Duration),
    ("worker_blacklist_interval_unit", Str),
    ("worker_lost_interval", Duration),
    ("worker_lost_interval_unit", Str),
    ("audit_logging_enabled", Bool),
    ("block_replication_enabled", Bool),
    ("block_replication_concurrency_limit", Int),
    ("block_replication_retry_interval", Duration),
    ("ttl_checker_retry_attempts", Int),
    ("ttl_checker_interval", Duration),
    ("ttl_bucket_interval", Duration),
    ("ttl_max_retry_duration", Duration),
    ("ttl_retry_interval", Duration),
    ("enable_quota_eviction", Bool),
    ("quota_eviction_mode", Str),
    ("quota_eviction_policy", Str),
    ("quota_eviction_high_rate", Float),
    ("quota_eviction_low_rate", Float),
    ("quota_eviction_scan_page", Int),
    ("quota_eviction_dry_run", Bool),
    ("quota_eviction_capacity", Int),
    ("lock_expire_time", Duration),
    ("buffer_size", Int),
    ("conn_limit", Int),
    ("global_limit", Int),
];

const JOURNAL: &[(&str, Kind)] = &[
    ("enable", Bool),
    ("group_name", Str),
    ("hostname", Str),
    ("rpc_port", Port),
    ("io_threads", Int),
    ("worker_threads", Int),
    ("message_size", Int),
    ("journal_dir", Str),
    ("writer_channel_size", Int),
    ("writer_flush_batch_size", Int),
    ("writer_flush_batch_ms", Int),
    ("snapshot_interval", Duration),
    ("snapshot_entries", Int),
    ("metadata_delta_log_capacity", Int),
    ("snapshot_read_chunk_size", Int),
    ("conn_retry_max_duration_ms", Int),
    ("conn_retry_min_sleep_ms", Int),
    ("conn_retry_max_sleep_ms", Int),
    ("rpc_close_idle", Bool),
    ("rpc_retry_max_duration_ms", Int),
    ("rpc_retry_min_sleep_ms", Int),
    ("rpc_retry_max_sleep_ms", Int),
    ("conn_timeout_ms", Int),
    ("io_timeout_ms", Int),
    ("conn_size", Int),
    ("raft_tick_interval_ms", Int),
    ("raft_election_tick", Int),
    ("raft_heartbeat_tick", Int),
    ("raft_min_election_ticks", Int),
    ("raft_max_election_ticks", Int),
    ("raft_check_quorum", Bool),
    ("raft_max_size_per_msg", Int),
    ("raft_max_inflight_msgs", Int),
    ("raft_max_committed_size_per_ready", Int),
    ("raft_batch_size", Int),
    ("raft_retry_cache_size", Int),
    ("raft_retry_cache_ttl", Duration),
    ("retain_checkpoint_num", Int),
    ("ignore_reply_error", Bool),
    ("max_retry_num", Int),
    ("skip_failed_ufs_replay_after_retry", Bool),
    ("scan_batch_size", Int),
    ("retry_interval_secs", Int),
    ("ufs_copy_timeout", Duration),
];

const WORKER: &[(&str, Kind)] = &[
    ("hostname", Str),
    ("domain_socket_path", Str),
    ("weight", Int),
    ("rpc_port", Port),
    ("web_port", Port),
    ("dir_reserved", Size),
    ("data_dir", StrList),
    ("io_slow_threshold", Duration),
    ("io_threads", Int),
    ("worker_threads", Int),
    ("io_timeout", Duration),
    ("io_close_idle", Bool),
    ("scheduler_threads", Int),
    ("executor_threads", Int),
    ("executor_channel_size", Int),
    ("enable_splice", Bool),
    ("enable_send_file", Bool),
    ("pipe_buf_size", Int),
    ("pipe_pool_init_cap", Int),
    ("pipe_pool_max_cap", Int),
    ("pipe_pool_idle_time", Int),
    ("block_replication_concurrency_limit", Int),
    ("block_replication_chunk_size", Int),
    ("high_watermark", Float),
    ("low_watermark", Float),
];

const CLIENT: &[(&str, Kind)] = &[
    ("hostname", Str),
    ("io_threads", Int),
    ("worker_threads", Int),
    ("replicas", Int),
    ("block_size", Size),
    ("block_size_str", Size),
    ("write_chunk_size", Size),
    ("write_chunk_size_str", Size),
    ("write_chunk_num", Int),
    ("read_chunk_size", Size),
    ("read_chunk_size_str", Size),
    ("read_chunk_num", Int),
    ("read_parallel", Int),
    ("read_slice_size", Size),
    ("read_slice_size_str", Size),
    ("max_cache_block_handles", Int),
    ("short_circuit", Bool),
    ("storage_type", Str),
    ("storage_type_str", Str),
    ("ttl_ms", Int),
    ("ttl_ms_str", Str),
    ("ttl_action", Str),
    ("ttl_action_str", Str),
    ("auto_cache_enabled", Bool),
    ("auto_cache_ttl", Duration),
    ("default_cache_ttl", Duration),
    ("conn_retry_max_duration_ms", Int),
    ("conn_retry_min_sleep_ms", Int),
    ("conn_retry_max_sleep_ms", Int),
    ("rpc_retry_max_duration_ms", Int),
    ("rpc_retry_min_sleep_ms", Int),
    ("rpc_retry_max_sleep_ms", Int),
    ("rpc_close_idle", Bool),
    ("conn_timeout_ms", Int),
    ("rpc_timeout_ms", Int),
    ("data_timeout_ms", Int),
    ("pipeline_timeout_ms", Int),
    ("master_conn_pool_size", Int),
    ("enable_read_ahead", Bool),
    ("read_ahead_len", Size),
    ("read_ahead_len_str", Size),
    ("drop_cache_len", Size),
    ("drop_cache_len_str", Size),
    ("failed_worker_ttl_ms", Int),
    ("enable_unified_fs", Bool),
    ("enable_rust_read_ufs", Bool),
    ("audit_logging_enabled", Bool),
    ("mount_update_ttl_ms", Int),
    ("umask", Int),
    ("metric_report_enable", Bool),
    ("clean_task_interval_ms", Int),
    ("close_timeout_secs", Int),
    ("sync_check_interval_min_ms", Int),
    ("sync_check_interval_max_ms", Int),
    ("max_sync_wait_timeout_ms", Int),
    ("sync_check_log_tick", Int),
    ("enable_block_conn_pool", Bool),
    ("block_conn_idle_size", Int),
    ("block_conn_idle_time_ms", Int),
    ("small_file_size", Size),
    ("small_file_size_str", Size),
    ("enable_smart_prefetch", Bool),
    ("large_file_size", Size),
    ("large_file_size_str", Size),
    ("max_read_parallel", Int),
    ("sequential_read_threshold", Int),
];

const FUSE: &[(&str, Kind)] = &[
    ("debug", Bool),
    ("audit_logging_enabled", Bool),
    ("metrics_enabled", Bool),
    ("io_threads", Int),
    ("worker_threads", Int),
    ("mnt_path", Str),
    ("fs_path", Str),
    ("mnt_number", Int),
    ("tasks_per_mnt", Int),
    ("clone_fd", Bool),
    ("fuse_channel_size", Int),
    ("stream_channel_size", Int),
    ("fuse_opts", StrList),
    ("readonly", Bool),
    ("umask", Int),
    ("uid", Int),
    ("gid", Int),
    ("web_port", Port),
    ("read_dir_fill_ino", Bool),
    ("entry_timeout_ms", Int),
    ("negative_timeout_ms", Int),
    ("attr_timeout_ms", Int),
    ("remember", Bool),
    ("max_background", Int),
    ("congestion_threshold", Int),
    ("enable_meta_cache", Bool),
    ("meta_cache_timeout", Duration),
    ("node_cache_timeout", Duration),
    ("direct_io", Bool),
    ("open_direct_on_stale", Bool),
    ("write_back_cache", Bool),
    ("kernel_cache", Bool),
    ("cache_readdir", Bool),
    ("non_seekable", Bool),
    ("check_permission", Bool),
    ("state_dir", Str),
    ("max_readahead_kb", Int),
    ("list_limit", Int),
    ("enable_splice", Bool),
    ("path_lock_stripes", Int),
];

const SECURITY: &[(&str, Kind)] = &[
    ("token_file", Str),
    ("tls_cert_file", Str),
    ("tls_key_file", Str),
    ("tls_ca_file", Str),
    ("tls_server_name", Str),
    ("block_token_lifetime", Duration),
];

/// The top-level sections of the config file.
pub const SECTIONS: &[&str] = &[
    "master", "journal", "worker", "client", "fuse", "log", "security",
];

/// The type of `key` in the table at `path` (`[]` is the top level, `["master"]`,
/// `["master", "log"]`), or `None` when the key is not part of the schema.
pub fn kind_of(path: &[&str], key: &str) -> Option<Kind> {
    let table: &[(&str, Kind)] = match path {
        [] => TOP,
        ["master"] => MASTER,
        ["journal"] => JOURNAL,
        ["worker"] => WORKER,
        ["client"] => CLIENT,
        ["fuse"] => FUSE,
        ["security"] => SECURITY,
        ["log"] | [_, "log"] | ["master", "audit_log"] => LOG,
        _ => return None,
    };
    table.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// Turns an option string into a TOML value of the given kind, or says what was expected.
pub fn typed_value(kind: Kind, raw: &str) -> Result<Value, String> {
    let v = raw.trim();
    let expected = || format!("{raw:?} is not {}", kind.describe());
    Ok(match kind {
        Bool => match v.to_ascii_lowercase().as_str() {
            "true" => Value::from(true),
            "false" => Value::from(false),
            _ => return Err(expected()),
        },
        Int => Value::from(parse_int(v).ok_or_else(expected)?),
        Port => {
            let n = parse_int(v).ok_or_else(expected)?;
            if !(1..=65535).contains(&n) {
                return Err(expected());
            }
            Value::from(n)
        }
        Float => {
            let f: f64 = v.parse().map_err(|_| expected())?;
            if !f.is_finite()
                || v.to_ascii_lowercase().contains("inf")
                || v.to_ascii_lowercase().contains("nan")
            {
                return Err(expected());
            }
            Value::from(f)
        }
        Str => Value::from(v),
        Size => {
            let k8s_binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .any(|s| v.ends_with(s));
            if k8s_binary {
                // A Kubernetes quantity (`10Gi`): written in Curvine's units (`10GB`).
                Value::from(units::quantity_to_capacity(v).map_err(|_| expected())?)
            } else if units::parse_size(v).is_ok() {
                Value::from(v)
            } else {
                return Err(expected());
            }
        }
        Duration => {
            units::parse_duration(v).map_err(|_| expected())?;
            Value::from(v)
        }
        StrList => {
            let items: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if items.is_empty() {
                return Err(expected());
            }
            Value::Array(items.into_iter().collect())
        }
    })
}

/// Types an option for the key `dotted`, or says in an input error at `origin` what the
/// key takes. With `secret_file`, the message names the file instead of showing its
/// content.
pub fn typed_option(
    kind: Kind,
    raw: &str,
    dotted: &str,
    origin: &str,
    secret_file: Option<&str>,
) -> Result<Value, crate::error::InputError> {
    typed_value(kind, raw).map_err(|what| {
        let what = match secret_file {
            Some(file) => format!("the value read from {file} is not {}", kind.describe()),
            None => what,
        };
        crate::error::InputError::new(
            what,
            origin.to_string(),
            format!("{dotted} takes {}", kind.describe()),
        )
    })
}

/// Types a value whose key is not in the schema the way Curvine's ThinRuntime helper did:
/// `true`/`false` → bool, whole numbers → integer, decimals → float, else a string.
pub fn guessed_value(raw: &str) -> Value {
    let v = raw.trim();
    match v.to_ascii_lowercase().as_str() {
        "true" => return Value::from(true),
        "false" => return Value::from(false),
        _ => {}
    }
    if let Some(n) = parse_int(v) {
        return Value::from(n);
    }
    let is_decimal = {
        let body = v.strip_prefix(['+', '-']).unwrap_or(v);
        match body.split_once('.') {
            Some((i, f)) => {
                !i.is_empty()
                    && !f.is_empty()
                    && i.bytes().all(|b| b.is_ascii_digit())
                    && f.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        }
    };
    if is_decimal {
        if let Ok(f) = v.parse::<f64>() {
            if f.is_finite() {
                return Value::from(f);
            }
        }
    }
    Value::from(v)
}

/// Strict integer syntax: optional sign, digits, no leading zeros, no `_`.
fn parse_int(v: &str) -> Option<i64> {
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    if body.is_empty()
        || !body.bytes().all(|b| b.is_ascii_digit())
        || (body.len() > 1 && body.starts_with('0'))
    {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_have_types() {
        assert_eq!(kind_of(&["master"], "worker_threads"), Some(Int));
        assert_eq!(kind_of(&["worker"], "dir_reserved"), Some(Size));
        assert_eq!(kind_of(&[], "format_master"), Some(Bool));
        assert_eq!(kind_of(&["master", "log"], "level"), Some(Str));
        assert_eq!(kind_of(&["worker"], "audit_logging_enabled"), None);
        assert_eq!(kind_of(&["nope"], "x"), None);
        assert_eq!(kind_of(&["security"], "token_file"), Some(Str));
        assert_eq!(
            kind_of(&["security"], "block_token_lifetime"),
            Some(Duration)
        );
    }

    #[test]
    fn typing() {
        assert_eq!(typed_value(Int, " 64 ").unwrap().as_integer(), Some(64));
        assert!(typed_value(Int, "6_4").is_err());
        assert!(typed_value(Int, "064").is_err());
        assert_eq!(typed_value(Bool, "TRUE").unwrap().as_bool(), Some(true));
        assert!(typed_value(Bool, "yes").is_err());
        assert!(typed_value(Port, "0").is_err());
        assert!(typed_value(Port, "70000").is_err());
        assert_eq!(typed_value(Port, "8995").unwrap().as_integer(), Some(8995));
        assert_eq!(typed_value(Size, "10GB").unwrap().as_str(), Some("10GB"));
        assert_eq!(typed_value(Size, "10Gi").unwrap().as_str(), Some("10GB"));
        assert_eq!(typed_value(Size, "0").unwrap().as_str(), Some("0"));
        assert!(typed_value(Size, "lots").is_err());
        assert_eq!(typed_value(Duration, "12h").unwrap().as_str(), Some("12h"));
        assert!(typed_value(Duration, "soon").is_err());
        assert!(typed_value(Float, "nan").is_err());
        let list = typed_value(StrList, "[SSD]/a, [HDD]/b ,").unwrap();
        assert_eq!(list.as_array().map(|a| a.len()), Some(2));
    }

    #[test]
    fn guessing_follows_the_thin_helper() {
        assert_eq!(guessed_value("false").as_bool(), Some(false));
        assert_eq!(guessed_value("4").as_integer(), Some(4));
        assert_eq!(guessed_value("0.5").as_float(), Some(0.5));
        assert_eq!(guessed_value("128MB").as_str(), Some("128MB"));
        assert_eq!(guessed_value("1e5").as_str(), Some("1e5"));
    }
}
