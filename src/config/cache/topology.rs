//! The cluster's topology: namespace, runtime and service names, the pods' DNS names,
//! the masters' ordinals and journal ids, this pod's own identity, and the mount point.

use super::json::{optional_count, Blocks};
use super::options::HostnameOptions;
use crate::config::doc::{table_array, NoteLevel, Writer};
use crate::config::fluid_json::{Json, Located};
use crate::env::{self, EnvSnapshot};
use crate::error::InputError;
use crate::mode::Component;
use serde_json::Value as JsonValue;
use toml_edit::{InlineTable, Value};

/// The names the pods' DNS names are built from.
pub(super) struct Names {
    /// The dataset's namespace.
    namespace: String,
    /// The runtime's name (`<runtime>-master-<n>`, `<runtime>-worker-<n>`).
    runtime: String,
    /// The cluster's DNS domain (`cluster.local`).
    domain: String,
    /// The masters' headless service.
    master_service: String,
    /// The workers' headless service, when the runtime has workers.
    worker_service: Option<String>,
}

impl Names {
    /// Works the names out from the environment and the runtime config.
    pub(super) fn resolve(
        env: &EnvSnapshot,
        root: &Json<'_>,
        blocks: &Blocks<'_>,
        master: &Located<'_>,
    ) -> Result<Names, InputError> {
        let namespace = namespace(env, root)?;
        let runtime = runtime_name(master, env)?;
        let domain = env.cluster_domain().to_string();
        let master_service = service_name(master, Component::Master)?;
        let worker_service = match &blocks.worker {
            Some(worker) => Some(service_name(worker, Component::Worker)?),
            None => None,
        };
        Ok(Names {
            namespace,
            runtime,
            domain,
            master_service,
            worker_service,
        })
    }

    /// The DNS name of pod `pod` behind `service`.
    fn pod_host(&self, pod: &str, service: &str) -> String {
        let Names {
            namespace, domain, ..
        } = self;
        format!("{pod}.{service}.{namespace}.svc.{domain}")
    }
}

/// Sets `cluster_id` unless an option set it.
pub(super) fn write_cluster_id(
    w: &mut Writer,
    env: &EnvSnapshot,
    root: &Json<'_>,
) -> Result<(), InputError> {
    if !w.was_assigned(&[], "cluster_id") {
        let cluster_id = cluster_id(env, root, w);
        w.set(&[], "cluster_id", Value::from(cluster_id))?;
    }
    Ok(())
}

/// Writes the masters: the journal peers and port, this master's identity (the first
/// master's on other pods), and the clients' master list.
pub(super) fn write_masters(
    w: &mut Writer,
    component: Component,
    env: &EnvSnapshot,
    names: &Names,
    master: &Located<'_>,
    legacy: bool,
    hostnames: &HostnameOptions,
) -> Result<(), InputError> {
    let journal_port = port_in(w, &["journal"], "rpc_port", 8996)?;
    w.set(
        &["journal"],
        "rpc_port",
        Value::from(i64::from(journal_port)),
    )?;
    let runtime = &names.runtime;
    let ordinals = master_ordinals(master, runtime, legacy)?;
    let mut peers: Vec<(u64, String)> = ordinals
        .iter()
        .map(|i| {
            (
                u64::from(*i) + 1,
                names.pod_host(&format!("{runtime}-master-{i}"), &names.master_service),
            )
        })
        .collect();
    if let Some((host, origin)) = &hostnames.master {
        if peers.len() != 1 {
            return Err(InputError::new(
                format!(
                    "master_hostname is set but there are {} masters",
                    peers.len()
                ),
                origin.clone(),
                "master_hostname names a single master; remove it to use the masters' DNS names",
            ));
        }
        peers[0].1 = host.clone();
    }
    let first_master = peers[0].1.clone();
    let own_master = if component == Component::Master {
        Some(own_master_identity(
            env,
            runtime,
            &ordinals,
            &peers,
            hostnames.master.is_some(),
        )?)
    } else {
        None
    };
    let journal_host = own_master.unwrap_or(first_master);
    w.set(&["master"], "hostname", Value::from(journal_host.as_str()))?;
    w.set(&["journal"], "hostname", Value::from(journal_host.as_str()))?;
    let journal_addrs = peers
        .iter()
        .map(|(id, host)| {
            let mut t = InlineTable::new();
            t.insert("id", Value::from(*id as i64));
            t.insert("hostname", Value::from(host.as_str()));
            t.insert("port", Value::from(i64::from(journal_port)));
            t
        })
        .collect();
    w.set(&["journal"], "journal_addrs", table_array(journal_addrs))?;

    let master_port = port_in(w, &["master"], "rpc_port", 8995)?;
    w.set(&["master"], "rpc_port", Value::from(i64::from(master_port)))?;
    let master_addrs = peers
        .iter()
        .map(|(_, host)| {
            let mut t = InlineTable::new();
            t.insert("hostname", Value::from(host.as_str()));
            t.insert("port", Value::from(i64::from(master_port)));
            t
        })
        .collect();
    w.set(&["client"], "master_addrs", table_array(master_addrs))
}

/// Writes this worker's `worker.hostname`: the `worker_hostname` option (one worker
/// only), else its pod's DNS name.
pub(super) fn write_worker_identity(
    w: &mut Writer,
    env: &EnvSnapshot,
    names: &Names,
    worker: &Located<'_>,
    hostnames: &HostnameOptions,
) -> Result<(), InputError> {
    let host = match &hostnames.worker {
        Some((host, origin)) => {
            let replicas = optional_count(worker, "replicas")?.unwrap_or(1);
            if replicas > 1 {
                return Err(InputError::new(
                    format!("worker_hostname is set but there are {replicas} workers"),
                    origin.clone(),
                    "worker_hostname names a single worker; remove it to use the workers' DNS names",
                ));
            }
            host.clone()
        }
        None => {
            let (pod, _) = pod_name(env)?;
            let runtime = &names.runtime;
            if !pod.starts_with(&format!("{runtime}-worker-")) {
                w.note(
                    NoteLevel::Warn,
                    format!(
                        "pod name {pod} is not {runtime}-worker-<n>; its DNS name may not resolve"
                    ),
                );
            }
            let service = names.worker_service.as_deref().unwrap_or_default();
            names.pod_host(pod, service)
        }
    };
    w.set(&["worker"], "hostname", Value::from(host))
}

/// The dataset's namespace: from the environment, else from `targetPath`
/// (`<root>/cache/<namespace>/<runtime>/cache-fuse`).
fn namespace(env: &EnvSnapshot, root: &Json<'_>) -> Result<String, InputError> {
    if let Some(ns) = env.dataset_namespace() {
        return Ok(ns.to_string());
    }
    // targetPath = <root>/cache/<namespace>/<runtime>/cache-fuse
    if let Some(target) = root
        .get("targetPath")
        .and_then(|t| t.node().str().ok().map(str::to_string))
    {
        let parts: Vec<&str> = target.split('/').filter(|p| !p.is_empty()).collect();
        if let Some(i) = parts.iter().position(|p| *p == "cache") {
            if i + 2 < parts.len() {
                return Ok(parts[i + 1].to_string());
            }
        }
    }
    Err(InputError::new(
        "cannot tell the dataset's namespace",
        format!("env {}", env::FLUID_DATASET_NAMESPACE),
        "Fluid injects FLUID_DATASET_NAMESPACE into every component; set it (or POD_NAMESPACE) in the pod spec",
    ))
}

/// The runtime's name: `master.name` without `-master`, else `FLUID_DATASET_NAME`.
fn runtime_name(master: &Located<'_>, env: &EnvSnapshot) -> Result<String, InputError> {
    if let Some(name) = master.node().get("name") {
        let name = name.node().str()?.trim();
        if let Some(rt) = name.strip_suffix("-master").filter(|rt| !rt.is_empty()) {
            return Ok(rt.to_string());
        }
    }
    env.get(env::FLUID_DATASET_NAME).map(str::to_string).ok_or_else(|| {
        master.node().error(
            "cannot tell the runtime name: master.name is not <runtime>-master and FLUID_DATASET_NAME is unset",
            "Fluid names the master <runtime>-master and injects FLUID_DATASET_NAME; set one of them",
        )
    })
}

/// The headless service of a component's pods, which their DNS names hang off.
fn service_name(block: &Located<'_>, component: Component) -> Result<String, InputError> {
    let service = block.node().get("service");
    let name = match &service {
        Some(service) => {
            service.node().require_object()?;
            let s = service.node();
            match s.get("name").or_else(|| s.get("serviceName")) {
                Some(n) => n.node().str()?.trim().to_string(),
                None => String::new(),
            }
        }
        None => String::new(),
    };
    if name.is_empty() {
        let location = match &service {
            Some(s) => match s.get("name") {
                Some(n) => n.location(),
                None => s.location(),
            },
            None => block.location(),
        };
        return Err(InputError::new(
            format!("{component}.service.name is empty: {component} pods have no stable DNS names"),
            location,
            format!("the CacheRuntimeClass must declare topology.{component}.service.headless"),
        ));
    }
    Ok(name)
}

/// The cluster id: the dataset's name, else the first mount's `cluster_id` option,
/// else the base file's, else `curvine`.
fn cluster_id(env: &EnvSnapshot, root: &Json<'_>, w: &Writer) -> String {
    if let Some(name) = env
        .get(env::FLUID_DATASET_NAME)
        .or_else(|| env.get(env::CURVINE_DATASET_NAME))
    {
        return name.to_string();
    }
    let from_mount = root
        .value()
        .pointer("/mounts/0/options/cluster_id")
        .and_then(JsonValue::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(id) = from_mount {
        return id.to_string();
    }
    w.get_str(&[], "cluster_id")
        .unwrap_or("curvine")
        .to_string()
}

/// A port from the document (option or base file), or the default.
fn port_in(w: &Writer, path: &[&str], key: &str, default: u16) -> Result<u16, InputError> {
    match w.get(path, key) {
        None => Ok(default),
        Some(item) => item
            .as_integer()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                InputError::new(
                    format!("{}.{key} is not a port number", path.join(".")),
                    "the base config file",
                    "use a port from 1 to 65535",
                )
            }),
    }
}

/// The ordinals of the masters: `0..replicas`, or from the legacy `podConfigs`.
fn master_ordinals(
    master: &Located<'_>,
    runtime: &str,
    legacy: bool,
) -> Result<Vec<u32>, InputError> {
    let node = master.node();
    if legacy {
        if let Some(pods) = node.get("podConfigs") {
            let prefix = format!("{runtime}-master-");
            let mut ordinals = Vec::new();
            for pod in pods.node().items()? {
                let name_node = pod.node().get("podName").ok_or_else(|| {
                    pod.node().error(
                        "podConfigs entry has no podName",
                        "give every entry a podName",
                    )
                })?;
                let name = name_node.node().str()?.trim();
                let ordinal = name
                    .strip_prefix(&prefix)
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|_| name[prefix.len()..].bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        name_node.node().error(
                            format!("pod {name:?} is not named {prefix}<n>"),
                            "masters are the pods of the <runtime>-master StatefulSet",
                        )
                    })?;
                ordinals.push(ordinal);
            }
            ordinals.sort_unstable();
            if ordinals.windows(2).any(|p| p[0] == p[1]) {
                return Err(pods.node().error(
                    "podConfigs names a master twice",
                    "list every master pod once",
                ));
            }
            if !ordinals.is_empty() {
                return Ok(ordinals);
            }
        }
    }
    let replicas = optional_count(master, "replicas")?.unwrap_or(0);
    if replicas == 0 {
        return Err(node.error(
            "master.replicas is missing or 0: the cluster has no master",
            "set spec.master.replicas to 1, 3 or 5 in the CacheRuntime",
        ));
    }
    if replicas > 1000 {
        return Err(node.error(
            format!("master.replicas is {replicas}"),
            "use an odd number of masters such as 3 or 5",
        ));
    }
    Ok((0..replicas).collect())
}

/// This pod's name and the variable it came from.
fn pod_name(env: &EnvSnapshot) -> Result<(&str, &'static str), InputError> {
    env.pod_name().ok_or_else(|| {
        InputError::new(
            "cannot tell this pod's name: POD_NAME and HOSTNAME are unset",
            "env POD_NAME",
            "set POD_NAME from the downward API (fieldRef metadata.name) in the pod template",
        )
    })
}

/// This master's hostname among the peers: the one whose ordinal is in its pod name.
fn own_master_identity(
    env: &EnvSnapshot,
    runtime: &str,
    ordinals: &[u32],
    peers: &[(u64, String)],
    overridden: bool,
) -> Result<String, InputError> {
    if overridden {
        return Ok(peers[0].1.clone());
    }
    let (pod, var) = pod_name(env)?;
    for (ordinal, (_, host)) in ordinals.iter().zip(peers) {
        if pod == format!("{runtime}-master-{ordinal}") {
            return Ok(host.clone());
        }
    }
    let names: Vec<String> = ordinals
        .iter()
        .map(|i| format!("{runtime}-master-{i}"))
        .collect();
    Err(InputError::new(
        format!("pod {pod} (from {var}) is not among the masters [{}]", names.join(", ")),
        format!("env {var}"),
        "set POD_NAME to the pod's name (downward API metadata.name); masters must be the pods of the <runtime>-master StatefulSet within master.replicas",
    ))
}

/// The FUSE mount point: `targetPath` (top level or client block), else
/// `FLUID_RUNTIME_MOUNT_PATH`; it must be absolute.
pub(super) fn mount_path(
    root: &Json<'_>,
    client: Option<&Located<'_>>,
    env: &EnvSnapshot,
) -> Result<String, InputError> {
    let from_json = root
        .get("targetPath")
        .or_else(|| client.and_then(|c| c.node().get("targetPath")));
    let (path, location) =
        match &from_json {
            Some(node) => (
                node.node().str()?.trim().to_string(),
                node.node().location(),
            ),
            None => match env.get(env::FLUID_RUNTIME_MOUNT_PATH) {
                Some(p) => (
                    p.to_string(),
                    format!("env {}", env::FLUID_RUNTIME_MOUNT_PATH),
                ),
                None => return Err(root.error(
                    "the runtime config has no targetPath and FLUID_RUNTIME_MOUNT_PATH is unset",
                    "Fluid always writes targetPath; check the runtime config",
                )),
            },
        };
    if !path.starts_with('/') {
        return Err(InputError::new(
            format!("targetPath {path:?} is not an absolute path"),
            location,
            "the FUSE mount point must be an absolute path",
        ));
    }
    Ok(path)
}
