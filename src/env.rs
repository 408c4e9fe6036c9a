//! The process environment, captured once at start-up into an owned snapshot.
//!
//! Nothing below `main` calls `std::env`: mode detection and rendering receive an
//! [`EnvSnapshot`], so tests build one from a table instead of touching the process.
//! The names of every variable we read live here, in one place.

use std::collections::BTreeMap;

/// Runtime type set by Fluid's ThinRuntime chart (`thin`); any other value means cache.
pub const FLUID_RUNTIME_TYPE: &str = "FLUID_RUNTIME_TYPE";
/// Component of a CacheRuntime pod: `master`, `worker` or `client`.
pub const FLUID_RUNTIME_COMPONENT_TYPE: &str = "FLUID_RUNTIME_COMPONENT_TYPE";
/// Path of the runtime config JSON (CacheRuntime: always `/etc/fluid/config/runtime.json`).
pub const FLUID_RUNTIME_CONFIG_PATH: &str = "FLUID_RUNTIME_CONFIG_PATH";
/// FUSE target path injected into every CacheRuntime component.
pub const FLUID_RUNTIME_MOUNT_PATH: &str = "FLUID_RUNTIME_MOUNT_PATH";
/// Dataset (= runtime) name of a CacheRuntime pod.
pub const FLUID_DATASET_NAME: &str = "FLUID_DATASET_NAME";
/// Namespace of a CacheRuntime pod's dataset.
pub const FLUID_DATASET_NAMESPACE: &str = "FLUID_DATASET_NAMESPACE";
/// Runtime name of a ThinRuntime FUSE pod.
pub const FLUID_RUNTIME_NAME: &str = "FLUID_RUNTIME_NAME";
/// Namespace of a ThinRuntime FUSE pod.
pub const FLUID_RUNTIME_NS: &str = "FLUID_RUNTIME_NS";
/// Pod name from the downward API, when the pod template sets it.
pub const POD_NAME: &str = "POD_NAME";
/// Pod namespace from the downward API, when the pod template sets it.
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Set by kubelet: the pod name (the node name under host networking).
pub const HOSTNAME: &str = "HOSTNAME";
/// Where the image keeps its files; the config goes to `$CURVINE_HOME/conf/curvine-cluster.toml`.
pub const CURVINE_HOME: &str = "CURVINE_HOME";
/// Where metadata and journal go by default (`$CURVINE_HOME/data`).
pub const CURVINE_DATA_DIR: &str = "CURVINE_DATA_DIR";
/// Kubernetes cluster DNS domain used in peer FQDNs (default `cluster.local`).
pub const CURVINE_CLUSTER_DOMAIN: &str = "CURVINE_CLUSTER_DOMAIN";
/// ThinRuntime fallback for the `master-endpoints` option.
pub const CURVINE_MASTER_ENDPOINTS: &str = "CURVINE_MASTER_ENDPOINTS";
/// ThinRuntime fallback for the dataset mountPoint.
pub const CURVINE_MOUNT_POINT: &str = "CURVINE_MOUNT_POINT";
/// ThinRuntime fallback for the FUSE target path.
pub const CURVINE_TARGET_PATH: &str = "CURVINE_TARGET_PATH";
/// Set by Fluid's ThinRuntime chart: the FUSE target path.
pub const MOUNT_POINT: &str = "MOUNT_POINT";
/// Directory where Fluid mounts secrets (default `/etc/fluid/secrets`); option values
/// that point under `/etc/fluid/secrets/` are read from this directory instead.
pub const CURVINE_SECRETS_DIR: &str = "CURVINE_SECRETS_DIR";
/// Dataset name when Fluid's is absent (Curvine's images; DataLoad pods).
pub const CURVINE_DATASET_NAME: &str = "CURVINE_DATASET_NAME";
/// Dataset namespace when Fluid's is absent (Curvine's images).
pub const CURVINE_DATASET_NAMESPACE: &str = "CURVINE_DATASET_NAMESPACE";
/// The masters' client port for a DataLoad pod that finds them by DNS (default 8995).
pub const CURVINE_MASTER_PORT: &str = "CURVINE_MASTER_PORT";
/// DataLoad: `:`-joined dataset paths to load (default `/`).
pub const FLUID_DATALOAD_DATA_PATH: &str = "FLUID_DATALOAD_DATA_PATH";
/// DataLoad: `:`-joined replica counts, one per path (default 1).
pub const FLUID_DATALOAD_PATH_REPLICAS: &str = "FLUID_DATALOAD_PATH_REPLICAS";
/// DataLoad: `true` when the DataLoad asks to load metadata too.
pub const FLUID_DATALOAD_METADATA: &str = "FLUID_DATALOAD_METADATA";
/// The cluster config file of `fs` and `report` when `--conf` is not given.
pub const CURVINE_CONF_FILE: &str = "CURVINE_CONF_FILE";
/// ThinRuntime: the masters' web port when the dataset's options do not give one.
pub const CURVINE_MASTER_WEB_PORT: &str = "CURVINE_MASTER_WEB_PORT";
/// Prefix of the ThinRuntime's FUSE flag fallbacks: `CURVINE_` + the flag in upper case
/// with `_` for `-` (`CURVINE_DIRECT_IO` for `direct-io`); see [`fuse_flag_var`].
pub const CURVINE_FUSE_FLAG_PREFIX: &str = "CURVINE_";
/// The file holding the cluster token (a mounted Secret key); overrides
/// `[security] token_file`.
pub const CURVINE_TOKEN_FILE: &str = "CURVINE_TOKEN_FILE";
/// A mounted Secret holding any of `token` (the cluster token), `ca.crt`, `tls.crt` and
/// `tls.key` (TLS): each file present sets its `[security]` key; an empty directory (an
/// optional Secret that does not exist) leaves the cluster open.
pub const CURVINE_SECURITY_DIR: &str = "CURVINE_SECURITY_DIR";
/// A directory shared by the worker and the clients of a node (a hostPath in both pods)
/// for short-circuit I/O; overrides `[worker] domain_socket_path`.
pub const CURVINE_DOMAIN_SOCKET_DIR: &str = "CURVINE_DOMAIN_SOCKET_DIR";
/// Log format: `text` (default) or `json`.
pub const CURVINE_LOG_FORMAT: &str = "CURVINE_LOG_FORMAT";
/// Log filter in `tracing_subscriber::EnvFilter` syntax (default `info`).
pub const CURVINE_LOG: &str = "CURVINE_LOG";

/// Default of `CURVINE_HOME`, as in Curvine's images.
pub const DEFAULT_CURVINE_HOME: &str = "/app/curvine";
/// Where Fluid mounts the CacheRuntime config when `FLUID_RUNTIME_CONFIG_PATH` is not set.
pub const DEFAULT_CACHE_CONFIG_PATH: &str = "/etc/fluid/config/runtime.json";
/// Where Fluid mounts the ThinRuntime config when `FLUID_RUNTIME_CONFIG_PATH` is not set.
pub const DEFAULT_THIN_CONFIG_PATH: &str = "/etc/fluid/config/config.json";
/// Where Fluid mounts secrets referenced by encrypt options.
pub const FLUID_SECRETS_PREFIX: &str = "/etc/fluid/secrets/";

/// The variable that stands in for a ThinRuntime FUSE flag (`direct-io` ->
/// `CURVINE_DIRECT_IO`).
pub fn fuse_flag_var(flag: &str) -> String {
    format!(
        "{CURVINE_FUSE_FLAG_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// An owned copy of the environment variables, taken once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSnapshot {
    vars: BTreeMap<String, String>,
}

impl EnvSnapshot {
    /// Reads the process environment. Called once, in `main`.
    pub fn capture() -> Self {
        // Variables that are not valid UTF-8 cannot name anything we read; skip them.
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self { vars }
    }

    /// Builds a snapshot from pairs (tests, and env files).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if the variable is defined (possibly empty).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of `name` with surrounding blanks removed, or `None` when unset or blank.
    /// Fluid defines some variables as empty strings (e.g. `FLUID_RUNTIME_COMPONENT_SVC_NAME`),
    /// which means "not given".
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// `CURVINE_HOME`, defaulting to `/app/curvine`.
    pub fn curvine_home(&self) -> &str {
        self.get(CURVINE_HOME).unwrap_or(DEFAULT_CURVINE_HOME)
    }

    /// Where the cluster config is written: `$CURVINE_HOME/conf/curvine-cluster.toml`.
    pub fn config_file(&self) -> std::path::PathBuf {
        std::path::Path::new(self.curvine_home())
            .join("conf")
            .join("curvine-cluster.toml")
    }

    /// This pod's name: `POD_NAME` when the template sets it, else `HOSTNAME`.
    /// Returns the value and the variable it came from.
    pub fn pod_name(&self) -> Option<(&str, &'static str)> {
        self.get(POD_NAME)
            .map(|v| (v, POD_NAME))
            .or_else(|| self.get(HOSTNAME).map(|v| (v, HOSTNAME)))
    }

    /// The dataset's namespace from the environment: `FLUID_DATASET_NAMESPACE`, else
    /// `CURVINE_DATASET_NAMESPACE`, else `POD_NAMESPACE`.
    pub fn dataset_namespace(&self) -> Option<&str> {
        [
            FLUID_DATASET_NAMESPACE,
            CURVINE_DATASET_NAMESPACE,
            POD_NAMESPACE,
        ]
        .into_iter()
        .find_map(|var| self.get(var))
    }

    /// Where Fluid's secrets are mounted (`CURVINE_SECRETS_DIR`, default `/etc/fluid/secrets`).
    pub fn secrets_dir(&self) -> &str {
        self.get(CURVINE_SECRETS_DIR)
            .unwrap_or(FLUID_SECRETS_PREFIX.trim_end_matches('/'))
    }

    /// The Kubernetes cluster DNS domain (`CURVINE_CLUSTER_DOMAIN`, default `cluster.local`).
    pub fn cluster_domain(&self) -> &str {
        self.get(CURVINE_CLUSTER_DOMAIN)
            .map(|d| d.trim_matches('.'))
            .filter(|d| !d.is_empty())
            .unwrap_or("cluster.local")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_count_as_missing() {
        let env = EnvSnapshot::from_pairs([("A", "  "), ("B", " x ")]);
        assert_eq!(env.raw("A"), Some("  "));
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), Some("x"));
        assert_eq!(env.get("C"), None);
    }

    #[test]
    fn pod_name_prefers_downward_api() {
        let env = EnvSnapshot::from_pairs([("HOSTNAME", "node-1"), ("POD_NAME", "rt-master-0")]);
        assert_eq!(env.pod_name(), Some(("rt-master-0", POD_NAME)));
        let env = EnvSnapshot::from_pairs([("HOSTNAME", "rt-master-1")]);
        assert_eq!(env.pod_name(), Some(("rt-master-1", HOSTNAME)));
    }

    #[test]
    fn defaults_for_home_and_domain() {
        let env = EnvSnapshot::default();
        assert_eq!(env.curvine_home(), "/app/curvine");
        assert_eq!(
            env.config_file(),
            std::path::PathBuf::from("/app/curvine/conf/curvine-cluster.toml")
        );
        assert_eq!(env.cluster_domain(), "cluster.local");
        let env = EnvSnapshot::from_pairs([("CURVINE_CLUSTER_DOMAIN", "corp.internal.")]);
        assert_eq!(env.cluster_domain(), "corp.internal");
        assert_eq!(env.secrets_dir(), "/etc/fluid/secrets");
    }

    #[test]
    fn fuse_flag_variables() {
        assert_eq!(fuse_flag_var("direct-io"), "CURVINE_DIRECT_IO");
        assert_eq!(
            fuse_flag_var("entry-timeout-ms"),
            "CURVINE_ENTRY_TIMEOUT_MS"
        );
    }
}
