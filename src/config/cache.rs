//! CacheRuntime: turns Fluid's `runtime.json` and this pod's environment into the
//! cluster config (FLUID-CONTRACT §1.2–1.6 and §5.1, with the defects of §6 fixed).
//!
//! Pure: the JSON is already parsed and the environment captured. The same document is
//! rendered in every pod of a runtime except the lines that name the pod itself
//! (`[master]`/`[journal] hostname` on masters, `[worker] hostname` on workers).

use super::doc::{string_array, table_array, NoteLevel, OnConflict, Writer};
use super::fluid_json::{Json, Located};
use super::schema::{self, Kind};
use super::units;
use super::Rendered;
use crate::env::{self, EnvSnapshot};
use crate::error::InputError;
use crate::mode::Component;
use serde_json::Value as JsonValue;
use toml_edit::{DocumentMut, InlineTable, Value};

/// Everything a CacheRuntime render reads.
#[derive(Debug, Clone, Copy)]
pub struct CacheInput<'a> {
    /// The component this pod runs.
    pub component: Component,
    /// The pod's environment.
    pub env: &'a EnvSnapshot,
    /// Where the JSON came from (for messages).
    pub file: &'a str,
    /// The parsed runtime config (an object).
    pub json: &'a JsonValue,
    /// Default directory for metadata, journal and blocks (`$CURVINE_DATA_DIR`).
    pub data_dir: &'a str,
}

/// Keys that the renderer derives and an option may not set, with what to use instead.
const MANAGED: &[(&str, &str)] = &[
    (
        "journal.journal_addrs",
        "it is built from master.replicas and the master service",
    ),
    (
        "journal.hostname",
        "it is this pod's identity; use the option master_hostname",
    ),
    (
        "master.hostname",
        "it is this pod's identity; use the option master_hostname",
    ),
    (
        "worker.hostname",
        "it is this pod's identity; use the option worker_hostname",
    ),
    (
        "client.master_addrs",
        "it is built from the masters' names and master rpc_port",
    ),
    ("fuse.mnt_path", "it is Fluid's targetPath"),
];

/// The component blocks of the runtime config, in either shape.
struct Blocks<'a> {
    legacy: bool,
    master: Option<Located<'a>>,
    worker: Option<Located<'a>>,
    client: Option<Located<'a>>,
}

impl<'a> Blocks<'a> {
    fn get(&self, c: Component) -> Option<&Located<'a>> {
        match c {
            Component::Master => self.master.as_ref(),
            Component::Worker => self.worker.as_ref(),
            Component::Client => self.client.as_ref(),
        }
    }
}

/// Where an option lands.
enum Route {
    /// A key of the config file.
    Key(Vec<String>, String),
    /// `journal_port` / `raft_port`: the journal listen port and the peers' port.
    JournalPort,
    /// `master_hostname`: the masters' address (one master only).
    MasterHostname,
    /// `worker_hostname`: the worker's address (one worker only).
    WorkerHostname,
}

/// Renders the config for one CacheRuntime pod on top of `base`.
pub fn render(input: &CacheInput<'_>, base: DocumentMut) -> Result<Rendered, InputError> {
    let root = Json::root(input.file, input.json);
    let blocks = find_blocks(&root)?;
    let mut w = Writer::new(base, OnConflict::KeepFirst);
    w.ensure_sections(&["master", "journal", "worker", "client", "fuse", "log"])?;

    let master = blocks.master.as_ref().ok_or_else(|| {
        root.error(
            "the runtime config has no master",
            "curvine-fluid needs the master component: do not set spec.master.disabled in the CacheRuntime",
        )
    })?;
    let own = blocks.get(input.component).ok_or_else(|| {
        root.error(
            format!(
                "the runtime config has no {} block, but this pod is the {}",
                input.component, input.component
            ),
            format!(
                "enable spec.{}, or fix FLUID_RUNTIME_COMPONENT_TYPE",
                input.component
            ),
        )
    })?;
    own.node().require_object()?;

    // 1. Options of every component, master first, so every pod renders the same file.
    let mut master_hostname = None;
    let mut worker_hostname = None;
    for component in [Component::Master, Component::Worker, Component::Client] {
        let Some(block) = blocks.get(component) else {
            continue;
        };
        block.node().require_object()?;
        let Some(options) = block.node().get("options") else {
            continue;
        };
        for (key, raw, path) in options.node().string_map()? {
            let origin = format!("file {}, JSON path {path}", input.file);
            match route(component, &key).map_err(|what| {
                InputError::new(
                    what,
                    origin.clone(),
                    "option keys are Curvine config keys such as worker_threads or log.level",
                )
            })? {
                Route::Key(section, key) => apply_option(&mut w, &section, &key, &raw, &origin)?,
                Route::JournalPort => {
                    let value =
                        schema::typed_option(Kind::Port, &raw, "journal.rpc_port", &origin, None)?;
                    w.assign(&["journal"], "rpc_port", value, &origin)?;
                }
                Route::MasterHostname => {
                    master_hostname.get_or_insert((hostname(&raw, &origin)?, origin));
                }
                Route::WorkerHostname => {
                    worker_hostname.get_or_insert((hostname(&raw, &origin)?, origin));
                }
            }
        }
    }

    // 2. Names: namespace, runtime, services, cluster domain.
    let namespace = namespace(input.env, &root)?;
    let runtime = runtime_name(master, input.env)?;
    let domain = input.env.cluster_domain();
    let master_service = service_name(master, Component::Master)?;
    let worker_service = match &blocks.worker {
        Some(worker) => Some(service_name(worker, Component::Worker)?),
        None => None,
    };

    if !w.was_assigned(&[], "cluster_id") {
        let cluster_id = cluster_id(input.env, &root, &w);
        w.set(&[], "cluster_id", Value::from(cluster_id))?;
    }

    // 3. The masters: journal peers, this master's identity, the clients' master list.
    let journal_port = port_in(&w, &["journal"], "rpc_port", 8996)?;
    w.set(
        &["journal"],
        "rpc_port",
        Value::from(i64::from(journal_port)),
    )?;
    let ordinals = master_ordinals(master, &runtime, blocks.legacy)?;
    let mut peers: Vec<(u64, String)> = ordinals
        .iter()
        .map(|i| {
            (
                u64::from(*i) + 1,
                format!("{runtime}-master-{i}.{master_service}.{namespace}.svc.{domain}"),
            )
        })
        .collect();
    if let Some((host, origin)) = &master_hostname {
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
    let own_master = if input.component == Component::Master {
        Some(own_master_identity(
            input.env,
            &runtime,
            &ordinals,
            &peers,
            master_hostname.is_some(),
        )?)
    } else {
        None
    };
    let journal_host = own_master.clone().unwrap_or_else(|| first_master.clone());
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

    let master_port = port_in(&w, &["master"], "rpc_port", 8995)?;
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
    w.set(&["client"], "master_addrs", table_array(master_addrs))?;

    // 4. The worker: this worker's identity, cache directories, watermarks.
    if let Some(worker) = &blocks.worker {
        if input.component == Component::Worker {
            let host = match &worker_hostname {
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
                    let (pod, _) = pod_name(input.env)?;
                    if !pod.starts_with(&format!("{runtime}-worker-")) {
                        w.note(
                            NoteLevel::Warn,
                            format!("pod name {pod} is not {runtime}-worker-<n>; its DNS name may not resolve"),
                        );
                    }
                    let service = worker_service.as_deref().unwrap_or_default();
                    format!("{pod}.{service}.{namespace}.svc.{domain}")
                }
            };
            w.set(&["worker"], "hostname", Value::from(host))?;
        }
        if !w.was_assigned(&["worker"], "data_dir") {
            let levels = tiered_levels(worker)?;
            apply_levels(&mut w, &levels)?;
        }
    }
    if let Some(client) = &blocks.client {
        if client.node().get("tieredStoreLevels").is_some() {
            w.note(
                NoteLevel::Info,
                "client.tieredStoreLevels is not used: the FUSE client keeps no local cache tier",
            );
        }
    }

    // 5. The FUSE mount point and built-in defaults for what is still missing.
    let mnt_path = mount_path(&root, &blocks, input.env)?;
    w.set(&["fuse"], "mnt_path", Value::from(mnt_path))?;
    let data = input.data_dir.trim_end_matches('/');
    w.default(&["master"], "web_port", Value::from(9000))?;
    w.default(&["master"], "meta_dir", Value::from(format!("{data}/meta")))?;
    w.default(
        &["journal"],
        "journal_dir",
        Value::from(format!("{data}/journal")),
    )?;
    w.default(&["worker"], "rpc_port", Value::from(8997))?;
    w.default(&["worker"], "web_port", Value::from(9001))?;
    w.default(
        &["worker"],
        "data_dir",
        string_array(&[format!("[DISK]{data}/worker")]),
    )?;
    w.default(&["log"], "level", Value::from("info"))?;
    w.default(&["log"], "log_dir", Value::from("stdout"))?;

    Ok(Rendered {
        doc: w.doc,
        notes: w.notes,
        secrets: Vec::new(),
    })
}

fn find_blocks<'a>(root: &Json<'a>) -> Result<Blocks<'a>, InputError> {
    let current = Blocks {
        legacy: false,
        master: root.get("master"),
        worker: root.get("worker"),
        client: root.get("client"),
    };
    if current.master.is_some() || current.worker.is_some() || current.client.is_some() {
        return Ok(current);
    }
    if let Some(topology) = root.get("topology") {
        topology.node().require_object()?;
        let t = topology.node();
        return Ok(Blocks {
            legacy: true,
            master: t.get("master"),
            worker: t.get("worker"),
            client: t.get("client"),
        });
    }
    Err(root.error(
        "the runtime config has no master, worker or client block",
        "this does not look like a CacheRuntime runtime.json; check FLUID_RUNTIME_CONFIG_PATH",
    ))
}

/// Decides where an option of `component` goes.
fn route(component: Component, key: &str) -> Result<Route, String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| {
        p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }) {
        return Err(format!("option key {key:?} is not a valid config key"));
    }
    let own = component.name();
    let (section, rest): (Vec<String>, &[&str]) = match parts.as_slice() {
        [single] => {
            match *single {
                "journal_port" | "raft_port" => return Ok(Route::JournalPort),
                "master_hostname" => return Ok(Route::MasterHostname),
                "worker_hostname" => return Ok(Route::WorkerHostname),
                "journal_dir" => {
                    return Ok(Route::Key(vec!["journal".into()], "journal_dir".into()))
                }
                k if schema::kind_of(&[], k).is_some() => return Ok(Route::Key(vec![], k.into())),
                _ => {}
            }
            let section = match component {
                Component::Master
                    if schema::kind_of(&["master"], single).is_none()
                        && schema::kind_of(&["journal"], single).is_some() =>
                {
                    "journal"
                }
                Component::Client
                    if schema::kind_of(&["client"], single).is_none()
                        && schema::kind_of(&["fuse"], single).is_some() =>
                {
                    "fuse"
                }
                _ => own,
            };
            (vec![section.to_string()], &parts[..])
        }
        [first, rest @ ..] if ["master", "journal", "worker", "client", "fuse"].contains(first) => {
            (vec![first.to_string()], rest)
        }
        _ => (vec![own.to_string()], &parts[..]),
    };
    let (last, middle) = rest
        .split_last()
        .ok_or_else(|| format!("option key {key:?} names a section, not a key"))?;
    let mut path = section;
    path.extend(middle.iter().map(|s| s.to_string()));
    let dotted = format!("{}.{last}", path.join("."));
    if let Some((_, why)) = MANAGED.iter().find(|(k, _)| *k == dotted) {
        return Err(format!(
            "option {key:?} sets {dotted}, which curvine-fluid manages: {why}"
        ));
    }
    Ok(Route::Key(path, last.to_string()))
}

/// Types an option by the schema and assigns it; unknown keys are kept as strings.
fn apply_option(
    w: &mut Writer,
    section: &[String],
    key: &str,
    raw: &str,
    origin: &str,
) -> Result<(), InputError> {
    let path: Vec<&str> = section.iter().map(String::as_str).collect();
    let dotted = super::doc::dotted(&path, key);
    let value = match schema::kind_of(&path, key) {
        Some(kind) => schema::typed_option(kind, raw, &dotted, origin, None)?,
        None => {
            w.note(
                NoteLevel::Warn,
                format!(
                    "{dotted} is not a Curvine config key ({origin}); kept as the string {:?}",
                    raw.trim()
                ),
            );
            Value::from(raw.trim())
        }
    };
    w.assign(&path, key, value, origin)
}

fn hostname(raw: &str, origin: &str) -> Result<String, InputError> {
    let host = raw.trim();
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == ',') {
        return Err(InputError::new(
            format!("{raw:?} is not a hostname"),
            origin.to_string(),
            "give a DNS name or an IP address",
        ));
    }
    Ok(host.to_string())
}

fn optional_count(block: &Located<'_>, key: &str) -> Result<Option<u32>, InputError> {
    block.node().get(key).map(|n| n.node().count()).transpose()
}

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

fn pod_name(env: &EnvSnapshot) -> Result<(&str, &'static str), InputError> {
    env.pod_name().ok_or_else(|| {
        InputError::new(
            "cannot tell this pod's name: POD_NAME and HOSTNAME are unset",
            "env POD_NAME",
            "set POD_NAME from the downward API (fieldRef metadata.name) in the pod template",
        )
    })
}

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

/// One tiered-store level, from either shape.
struct Level {
    medium: String,
    dirs: Vec<(String, Option<String>)>,
    high: Option<f64>,
    low: Option<f64>,
    location: String,
}

fn tiered_levels(worker: &Located<'_>) -> Result<Vec<Level>, InputError> {
    let node = worker.node();
    if let Some(levels) = node.get("tieredStoreLevels") {
        return levels
            .node()
            .items()?
            .iter()
            .map(|l| current_level(l))
            .collect();
    }
    if let Some(store) = node.get("tieredStore") {
        let list = match store.node().get("levels") {
            Some(levels) => levels,
            None => store,
        };
        return list
            .node()
            .items()?
            .iter()
            .map(|l| legacy_level(l))
            .collect();
    }
    Ok(Vec::new())
}

fn current_level(level: &Located<'_>) -> Result<Level, InputError> {
    let n = level.node();
    n.require_object()?;
    let medium = match n.get("mediumType") {
        Some(m) => medium(&m)?,
        None => "HDD".to_string(),
    };
    let paths = match n.get("mountPaths") {
        Some(p) => p.node().items()?,
        None => {
            return Err(n.error(
                "a tiered-store level has no mountPaths",
                "give each level at least one path",
            ))
        }
    };
    let quotas = match n.get("quotas") {
        Some(q) => q.node().items()?,
        None => Vec::new(),
    };
    if !quotas.is_empty() && quotas.len() != paths.len() {
        return Err(n.error(
            format!("{} mountPaths but {} quotas", paths.len(), quotas.len()),
            "give one quota per path",
        ));
    }
    let mut dirs = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let dir = absolute_path(path)?;
        let quota = match quotas.get(i) {
            Some(q) => Some(capacity(q)?),
            None => None,
        };
        dirs.push((dir, quota));
    }
    let (high, low) = watermarks(level)?;
    Ok(Level {
        medium,
        dirs,
        high,
        low,
        location: n.location(),
    })
}

fn legacy_level(level: &Located<'_>) -> Result<Level, InputError> {
    let n = level.node();
    n.require_object()?;
    let empty_dir = n.get("emptyDir");
    let memory = |node: Option<Located<'_>>| -> bool {
        node.and_then(|m| {
            m.node()
                .value()
                .get("medium")
                .and_then(JsonValue::as_str)
                .map(|s| s == "Memory")
        })
        .unwrap_or(false)
    };
    let medium = if let Some(m) = n.get("mediumType") {
        medium(&m)?
    } else if memory(n.get("medium").and_then(|m| m.node().get("emptyDir")))
        || memory(empty_dir.clone())
    {
        "MEM".to_string()
    } else {
        "HDD".to_string()
    };
    let path = match n.get("path") {
        Some(p) => absolute_path(&p)?,
        None => return Err(n.error("a tiered-store level has no path", "give each level a path")),
    };
    let quota_node = n
        .get("quota")
        .or_else(|| empty_dir.as_ref().and_then(|e| e.node().get("quota")));
    let quota = match quota_node {
        Some(q) => Some(capacity(&q)?),
        None => None,
    };
    let (high, low) = watermarks(level)?;
    Ok(Level {
        medium,
        dirs: vec![(path, quota)],
        high,
        low,
        location: n.location(),
    })
}

fn medium(node: &Located<'_>) -> Result<String, InputError> {
    let m = node.node().str()?.trim().to_ascii_uppercase();
    match m.as_str() {
        "MEM" | "SSD" | "HDD" | "DISK" => Ok(m),
        _ => Err(node
            .node()
            .error(format!("unknown medium {m:?}"), "use MEM, SSD, HDD or DISK")),
    }
}

fn absolute_path(node: &Located<'_>) -> Result<String, InputError> {
    let p = node.node().str()?.trim();
    if !p.starts_with('/') || p.contains(']') {
        return Err(node.node().error(
            format!("{p:?} is not an absolute directory"),
            "use a path starting with /",
        ));
    }
    Ok(p.to_string())
}

fn capacity(node: &Located<'_>) -> Result<String, InputError> {
    let q = node.node().str()?;
    units::quantity_to_capacity(q).map_err(|what| {
        node.node()
            .error(what, "use a Kubernetes quantity such as 5Gi or 500G")
    })
}

fn watermarks(level: &Located<'_>) -> Result<(Option<f64>, Option<f64>), InputError> {
    let ratio = |key: &str| -> Result<Option<f64>, InputError> {
        let Some(node) = level.node().get(key) else {
            return Ok(None);
        };
        let text = match node.node().value() {
            JsonValue::Number(n) => n.to_string(),
            _ => node.node().str()?.trim().to_string(),
        };
        if text.is_empty() {
            return Ok(None);
        }
        match text.parse::<f64>() {
            Ok(r) if r > 0.0 && r <= 1.0 => Ok(Some(r)),
            _ => Err(node.node().error(
                format!("{text:?} is not a ratio between 0 and 1"),
                "use a ratio such as 0.95",
            )),
        }
    };
    let (high, low) = (ratio("high")?, ratio("low")?);
    if let (Some(h), Some(l)) = (high, low) {
        if l > h {
            return Err(level.node().error(
                format!("low {l} is above high {h}"),
                "eviction runs from high down to low; make low <= high",
            ));
        }
    }
    Ok((high, low))
}

/// Writes `data_dir` and the watermarks from the levels.
fn apply_levels(w: &mut Writer, levels: &[Level]) -> Result<(), InputError> {
    if levels.is_empty() {
        return Ok(());
    }
    let mut entries = Vec::new();
    for level in levels {
        for (path, quota) in &level.dirs {
            entries.push(match quota {
                Some(q) => format!("[{}:{q}]{path}", level.medium),
                None => format!("[{}]{path}", level.medium),
            });
        }
    }
    w.set(&["worker"], "data_dir", string_array(&entries))?;
    // One pair for the worker: the lowest thresholds, so no level overfills.
    for (key, pick) in [("high_watermark", 0usize), ("low_watermark", 1usize)] {
        let values: Vec<(f64, &str)> = levels
            .iter()
            .filter_map(|l| {
                if pick == 0 { l.high } else { l.low }.map(|v| (v, l.location.as_str()))
            })
            .collect();
        let Some(min) = values.iter().map(|(v, _)| *v).reduce(f64::min) else {
            continue;
        };
        if values.iter().any(|(v, _)| *v != min) {
            w.note(
                NoteLevel::Info,
                format!(
                    "tiered-store levels have different {key}s; the worker uses the lowest, {min}"
                ),
            );
        }
        if !w.was_assigned(&["worker"], key) {
            w.set(&["worker"], key, Value::from(min))?;
        }
    }
    Ok(())
}

fn mount_path(
    root: &Json<'_>,
    blocks: &Blocks<'_>,
    env: &EnvSnapshot,
) -> Result<String, InputError> {
    let from_json = root.get("targetPath").or_else(|| {
        blocks
            .client
            .as_ref()
            .and_then(|c| c.node().get("targetPath"))
    });
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
