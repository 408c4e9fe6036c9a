//! ThinRuntime: turns Fluid's `config.json` for a `thin-fuse` container into the client
//! config that mounts an existing Curvine cluster (FLUID-CONTRACT §4 and §5.2, with the
//! defects of §6 fixed).
//!
//! One dataset mount is the root of the FUSE mount; several show as one directory each
//! (`fuse.mounts`), all of one cluster with the same options. The `master-endpoints`
//! option (or `CURVINE_MASTER_ENDPOINTS`) lists the masters; `client.<key>` and `fuse.<key>` options set config keys; the FUSE
//! options of Curvine's command line (`io-threads`, `entry-timeout`, ...) land once, in
//! `[fuse]`. Values under `/etc/fluid/secrets/` are read through a [`SecretSource`].

use super::doc::{string_array, table_array, NoteLevel, OnConflict, Writer};
use super::fluid_json::Json;
use super::schema::{self, Kind};
use super::secrets::{is_secret_path, SecretSource};
use super::Rendered;
use crate::env::{self, EnvSnapshot};
use crate::error::InputError;
use serde_json::Value as JsonValue;
use toml_edit::{DocumentMut, InlineTable, Value};

/// Everything a ThinRuntime render reads.
pub struct ThinInput<'a> {
    /// The container's environment.
    pub env: &'a EnvSnapshot,
    /// Where the JSON came from (for messages).
    pub file: &'a str,
    /// The parsed config (an object).
    pub json: &'a JsonValue,
    /// Where secret option values are read from.
    pub secrets: &'a dyn SecretSource,
}

/// Dataset options that are Curvine FUSE command-line flags, and the `[fuse]` key each sets.
const FUSE_FLAGS: &[(&str, &str)] = &[
    ("io-threads", "io_threads"),
    ("worker-threads", "worker_threads"),
    ("mnt-number", "mnt_number"),
    ("tasks-per-mnt", "tasks_per_mnt"),
    ("mnt-per-task", "tasks_per_mnt"),
    ("clone-fd", "clone_fd"),
    ("fuse-channel-size", "fuse_channel_size"),
    ("stream-channel-size", "stream_channel_size"),
    ("direct-io", "direct_io"),
    ("write-back-cache", "write_back_cache"),
    ("kernel-cache", "kernel_cache"),
    ("cache-readdir", "cache_readdir"),
    ("non-seekable", "non_seekable"),
    ("entry-timeout-ms", "entry_timeout_ms"),
    ("entry-timeout", "entry_timeout_ms"),
    ("attr-timeout-ms", "attr_timeout_ms"),
    ("attr-timeout", "attr_timeout_ms"),
    ("negative-timeout-ms", "negative_timeout_ms"),
    ("negative-timeout", "negative_timeout_ms"),
    ("max-background", "max_background"),
    ("congestion-threshold", "congestion_threshold"),
    ("node-cache-timeout", "node_cache_timeout"),
    ("enable-meta-cache", "enable_meta_cache"),
    ("meta-cache-ttl", "meta_cache_timeout"),
    ("meta-cache-timeout", "meta_cache_timeout"),
    ("read-dir-fill-ino", "read_dir_fill_ino"),
    ("remember", "remember"),
    ("check-permission", "check_permission"),
    ("metrics-enabled", "metrics_enabled"),
    ("list-limit", "list_limit"),
    ("web-port", "web_port"),
];

/// `fuse.<key>` aliases from Curvine's helper.
const FUSE_ALIASES: &[(&str, &str)] = &[
    ("enable_write_back", "write_back_cache"),
    ("meta_cache_ttl", "meta_cache_timeout"),
];

/// Keys the renderer owns; `fuse.<key>`/`client.<key>` options may not set them.
const MANAGED: &[(&str, &str)] = &[
    ("fuse", "debug"),
    ("fuse", "io_threads"),
    ("fuse", "worker_threads"),
    ("fuse", "mnt_path"),
    ("fuse", "fs_path"),
    ("fuse", "mounts"),
    ("client", "master_addrs"),
];

/// A master endpoint: host (IPv6 without brackets) and port.
pub type Endpoint = (String, u16);

/// Renders the ThinRuntime client config on top of `base`.
pub fn render(input: &ThinInput<'_>, base: DocumentMut) -> Result<Rendered, InputError> {
    let root = Json::root(input.file, input.json);
    let mounts = root.get("mounts").ok_or_else(|| {
        root.error(
            "the config has no mounts",
            "a Curvine ThinRuntime Dataset needs at least one mount (curvine:///path)",
        )
    })?;
    let items = mounts.node().items()?;
    if items.is_empty() {
        return Err(mounts.node().error(
            "the Dataset has no mounts",
            "give the Dataset at least one mount (curvine:///path)",
        ));
    }
    let mount = &items[0];
    let mut secrets = Vec::new();
    let options = mount_options(input, mount, &mut secrets)?;
    for other in &items[1..] {
        let theirs = mount_options(input, other, &mut secrets)?;
        same_options(&options, &theirs, other)?;
    }

    let mut w = Writer::new(base, OnConflict::Fail);
    w.ensure_sections(&["master", "client", "fuse", "log"])?;

    // The masters.
    let endpoints = match options.iter().find(|o| o.key == "master-endpoints") {
        Some(o) => parse_endpoints(&o.value).map_err(|what| {
            let what = match &o.secret_file {
                Some(file) => format!("the master endpoints read from {file} are invalid"),
                None => what,
            };
            InputError::new(what, o.origin.clone(), "write master-endpoints as host:port[,host:port...], e.g. master-0.svc:8995")
        })?,
        None => match input.env.get(env::CURVINE_MASTER_ENDPOINTS) {
            Some(v) => parse_endpoints(v).map_err(|what| {
                InputError::new(what, format!("env {}", env::CURVINE_MASTER_ENDPOINTS), "write host:port[,host:port...]")
            })?,
            None => {
                return Err(mount.node().error(
                    "master endpoints not found: the mount has no master-endpoints option and CURVINE_MASTER_ENDPOINTS is unset",
                    "add the option master-endpoints: \"<master-0>:8995,<master-1>:8995\" to the Dataset mount",
                ))
            }
        },
    };
    if options
        .iter()
        .any(|o| o.key == "master-endpoints" && o.secret_file.is_some())
    {
        // The hosts land in the config one by one; mask each of them in logs.
        secrets.extend(endpoints.iter().map(|(host, _)| host.clone()));
    }
    let (first_host, first_port) = endpoints[0].clone();
    w.set(&["master"], "hostname", Value::from(first_host))?;
    w.set(&["master"], "rpc_port", Value::from(i64::from(first_port)))?;
    let addrs = endpoints
        .iter()
        .map(|(host, port)| {
            let mut t = InlineTable::new();
            t.insert("hostname", Value::from(host.as_str()));
            t.insert("port", Value::from(i64::from(*port)));
            t
        })
        .collect();
    w.set(&["client"], "master_addrs", table_array(addrs))?;

    // The dataset's options.
    for o in &options {
        apply_option(&mut w, o)?;
    }
    for (flag, key) in FUSE_FLAGS {
        let var = env::fuse_flag_var(flag);
        if let (false, Some(raw)) = (w.was_assigned(&["fuse"], key), input.env.get(&var)) {
            let value = schema::typed_option(
                schema::kind_of(&["fuse"], key).unwrap_or(Kind::Str),
                raw,
                &format!("fuse.{key}"),
                &format!("env {var}"),
                None,
            )?;
            w.assign(&["fuse"], key, value, &format!("env {var}"))?;
        }
    }
    if let (false, Some(raw)) = (
        w.was_assigned(&["master"], "web_port"),
        input.env.get(env::CURVINE_MASTER_WEB_PORT),
    ) {
        let origin = format!("env {}", env::CURVINE_MASTER_WEB_PORT);
        let value = schema::typed_option(Kind::Port, raw, "master.web_port", &origin, None)?;
        w.assign(&["master"], "web_port", value, &origin)?;
    }

    // The mounts: which cluster paths, where, how.
    let fs_path = if items.len() == 1 {
        single_mount_path(input, mount)?
    } else {
        let views = dataset_mounts(&items)?;
        w.set(&["fuse"], "mounts", table_array(views))?;
        "/".to_string()
    };
    let target = root
        .get("targetPath")
        .map(|t| {
            t.node()
                .str()
                .map(|s| (s.trim().to_string(), t.node().location()))
        })
        .transpose()?
        .filter(|(t, _)| !t.is_empty())
        .or_else(|| {
            [env::CURVINE_TARGET_PATH, env::MOUNT_POINT]
                .into_iter()
                .find_map(|var| {
                    input
                        .env
                        .get(var)
                        .map(|t| (t.to_string(), format!("env {var}")))
                })
        });
    let (target, target_location) = target.ok_or_else(|| {
        root.error(
            "the config has no targetPath",
            "Fluid always writes targetPath; check the config",
        )
    })?;
    if !target.starts_with('/') {
        return Err(InputError::new(
            format!("targetPath {target:?} is not an absolute path"),
            target_location,
            "the FUSE mount point must be an absolute path",
        ));
    }
    w.set(&["fuse"], "mnt_path", Value::from(target))?;
    w.set(&["fuse"], "fs_path", Value::from(fs_path))?;
    w.default(&["fuse"], "debug", Value::from(false))?;
    if read_only(&root)? {
        w.set(&["fuse"], "readonly", Value::from(true))?;
    }
    let mount_opts = runtime_options(&root)?;
    if !mount_opts.is_empty() {
        w.assign(
            &["fuse"],
            "fuse_opts",
            string_array(&mount_opts),
            &format!("file {}, JSON path runtimeOptions", input.file),
        )?;
    }

    let cluster_id = input
        .env
        .get(env::FLUID_RUNTIME_NAME)
        .map(str::to_string)
        .or_else(|| w.get_str(&[], "cluster_id").map(str::to_string))
        .unwrap_or_else(|| "curvine".to_string());
    w.set(&[], "cluster_id", Value::from(cluster_id))?;
    w.default(&["log"], "level", Value::from("info"))?;
    w.default(&["log"], "log_dir", Value::from("stdout"))?;

    Ok(Rendered {
        doc: w.doc,
        notes: w.notes,
        secrets,
    })
}

/// The options of one Dataset mount, secret files read (their values join `secrets`).
fn mount_options(
    input: &ThinInput<'_>,
    mount: &Json<'_>,
    secrets: &mut Vec<String>,
) -> Result<Vec<ThinOption>, InputError> {
    mount.node().require_object()?;
    let mut options = Vec::new();
    let Some(opts) = mount.node().get("options") else {
        return Ok(options);
    };
    for (key, raw, path) in opts.node().string_map()? {
        let origin = format!("file {}, JSON path {path}", input.file);
        let (value, secret_file) = if is_secret_path(&raw) {
            let content = input.secrets.read(&raw).map_err(|what| {
                InputError::new(
                    what,
                    origin.clone(),
                    "mount the secret into the FUSE pod (Fluid does this for encryptOptions)",
                )
            })?;
            secrets.push(content.clone());
            (content, Some(raw.trim().to_string()))
        } else {
            (raw, None)
        };
        options.push(ThinOption {
            key,
            value,
            origin,
            secret_file,
        });
    }
    Ok(options)
}

/// One client mounts one cluster with one set of options: every mount of the Dataset
/// must carry the same options as the first (Fluid copies `sharedOptions` into each).
fn same_options(
    first: &[ThinOption],
    other: &[ThinOption],
    mount: &Json<'_>,
) -> Result<(), InputError> {
    let fix = "give every mount the same options: put them in the Dataset's sharedOptions (a ThinRuntime client mounts one cluster with one set of options)";
    for o in other {
        match first.iter().find(|f| f.key == o.key) {
            Some(f) if f.value == o.value => {}
            Some(_) => {
                return Err(InputError::new(
                    format!("option {} differs from the first mount's", o.key),
                    o.origin.clone(),
                    fix,
                ))
            }
            None => {
                return Err(InputError::new(
                    format!("option {} is not set on the first mount", o.key),
                    o.origin.clone(),
                    fix,
                ))
            }
        }
    }
    if let Some(f) = first.iter().find(|f| !other.iter().any(|o| o.key == f.key)) {
        return Err(mount.node().error(
            format!("the mount lacks option {} that the first mount sets", f.key),
            fix,
        ));
    }
    Ok(())
}

/// The cluster path of a Dataset's only mount (`mountPoint`, else `CURVINE_MOUNT_POINT`):
/// it is the root of the FUSE mount.
fn single_mount_path(input: &ThinInput<'_>, mount: &Json<'_>) -> Result<String, InputError> {
    let mount_point = match mount.node().get("mountPoint") {
        Some(m) => Some((m.node().str()?.trim().to_string(), m.node().location())),
        None => None,
    }
    .filter(|(m, _)| !m.is_empty())
    .or_else(|| {
        input
            .env
            .get(env::CURVINE_MOUNT_POINT)
            .map(|m| (m.to_string(), format!("env {}", env::CURVINE_MOUNT_POINT)))
    });
    let (mount_point, mp_location) = mount_point.ok_or_else(|| {
        mount.node().error(
            "the mount has no mountPoint",
            "set the Dataset mount's mountPoint to curvine:///<path>",
        )
    })?;
    fs_path(&mount_point).map_err(|what| {
        InputError::new(
            what,
            mp_location,
            "use a mountPoint of the form curvine:///<path in the cluster>",
        )
    })
}

/// Several Dataset mounts: each shows as one directory of the FUSE root, named by its
/// `path` (`/<dir>`) or else its `name`, as Fluid lays out a Dataset (`fuse.mounts`).
fn dataset_mounts(items: &[Json<'_>]) -> Result<Vec<InlineTable>, InputError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut sources: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for mount in items {
        let point = mount.node().get("mountPoint").ok_or_else(|| {
            mount.node().error(
                "the mount has no mountPoint",
                "set every Dataset mount's mountPoint to curvine:///<path>",
            )
        })?;
        let cluster_path = fs_path(point.node().str()?).map_err(|what| {
            point.node().error(
                what,
                "use a mountPoint of the form curvine:///<path in the cluster>",
            )
        })?;
        if let Some((other, at)) = sources
            .iter()
            .find(|(o, _)| super::model::paths_nest(o, &cluster_path))
        {
            return Err(point.node().error(
                format!("{cluster_path} and {other} ({at}) contain one another"),
                "mount cluster directories that do not contain each other",
            ));
        }
        sources.push((cluster_path.clone(), point.node().location()));
        let text = |key: &str| -> Result<Option<(String, String)>, InputError> {
            let Some(v) = mount.node().get(key) else {
                return Ok(None);
            };
            let text = v.node().str()?.trim().to_string();
            Ok((!text.is_empty()).then(|| (text, v.node().location())))
        };
        let (dir, location) = match (text("path")?, text("name")?) {
            (Some((path, location)), _) => (path.trim_matches('/').to_string(), location),
            (None, Some((name, location))) => (name.trim_matches('/').to_string(), location),
            (None, None) => {
                return Err(mount.node().error(
                    "a Dataset of several mounts needs a name or path for each",
                    "give the mount a name (it becomes /<name> in the mount)",
                ))
            }
        };
        if dir.is_empty() || dir.contains('/') || dir == "." || dir == ".." || dir.len() > 255 {
            return Err(InputError::new(
                format!("{dir:?} cannot be a directory of the mount root"),
                location,
                "with several mounts, each path is one directory: /<name>, e.g. /train",
            ));
        }
        if let Some((_, first)) = seen.iter().find(|(d, _)| *d == dir) {
            return Err(InputError::new(
                format!("/{dir} is taken by another mount ({first})"),
                location,
                "give each mount its own name or path",
            ));
        }
        seen.push((dir.clone(), location));
        let read_only = mount
            .node()
            .get("readOnly")
            .is_some_and(|v| v.value().as_bool() == Some(true));
        let mut t = InlineTable::new();
        t.insert("path", Value::from(format!("/{dir}")));
        t.insert("fs_path", Value::from(cluster_path));
        t.insert("read_only", Value::from(read_only));
        out.push(t);
    }
    Ok(out)
}

struct ThinOption {
    key: String,
    value: String,
    origin: String,
    secret_file: Option<String>,
}

fn apply_option(w: &mut Writer, o: &ThinOption) -> Result<(), InputError> {
    let key = o.key.trim();
    if key == "master-endpoints" {
        return Ok(());
    }
    if key == "master-web-port" {
        let value = schema::typed_option(
            Kind::Port,
            &o.value,
            "master.web_port",
            &o.origin,
            o.secret_file.as_deref(),
        )?;
        return w.assign(&["master"], "web_port", value, &o.origin);
    }
    if let Some((section, sub)) = key
        .split_once('.')
        .filter(|(s, _)| *s == "client" || *s == "fuse")
    {
        let bad_key = || {
            InputError::new(
                format!("invalid {section} option key {key:?}"),
                o.origin.clone(),
                format!("write {section}.<key> with a single Curvine [{section}] key, e.g. {section}.read_parallel"),
            )
        };
        if sub.is_empty()
            || sub.contains('.')
            || !sub.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(bad_key());
        }
        let sub = match section {
            "fuse" => FUSE_ALIASES
                .iter()
                .find(|(a, _)| *a == sub)
                .map(|(_, k)| *k)
                .unwrap_or(sub),
            _ => sub,
        };
        if MANAGED.contains(&(section, sub)) {
            return Err(InputError::new(
                format!("Dataset option {key} is managed by curvine-fluid"),
                o.origin.clone(),
                format!("remove it; {section}.{sub} is derived from the ThinRuntime (targetPath, mountPoint, master-endpoints, io-threads, worker-threads)"),
            ));
        }
        let value = match schema::kind_of(&[section], sub) {
            Some(kind) => schema::typed_option(
                kind,
                &o.value,
                &format!("{section}.{sub}"),
                &o.origin,
                o.secret_file.as_deref(),
            )?,
            None => {
                w.note(
                    NoteLevel::Warn,
                    format!(
                        "{section}.{sub} is not a Curvine config key ({}); kept",
                        o.origin
                    ),
                );
                schema::guessed_value(&o.value)
            }
        };
        return w.assign(&[section], sub, value, &o.origin);
    }
    if let Some((_, fuse_key)) = FUSE_FLAGS.iter().find(|(flag, _)| *flag == key) {
        let kind = schema::kind_of(&["fuse"], fuse_key).unwrap_or(Kind::Str);
        let value = schema::typed_option(
            kind,
            &o.value,
            &format!("fuse.{fuse_key}"),
            &o.origin,
            o.secret_file.as_deref(),
        )?;
        return w.assign(&["fuse"], fuse_key, value, &o.origin);
    }
    w.note(
        NoteLevel::Warn,
        format!(
            "Dataset option {key:?} is not known to curvine-fluid and has no effect ({})",
            o.origin
        ),
    );
    Ok(())
}

/// Splits `master-endpoints` on runs of commas, semicolons and blanks into host:port
/// pairs; IPv6 hosts are written in brackets (`[fd00::1]:8995`).
pub fn parse_endpoints(text: &str) -> Result<Vec<Endpoint>, String> {
    let mut out = Vec::new();
    for token in text
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        let bad = || format!("invalid master endpoint {token:?}: expected host:port");
        let (host, port) = if let Some(rest) = token.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
            (host, port)
        } else {
            let (host, port) = token.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(format!("invalid master endpoint {token:?}: write IPv6 addresses in brackets, e.g. [fd00::1]:8995"));
            }
            (host, port)
        };
        if host.is_empty() || host.contains(['[', ']', '/']) {
            return Err(bad());
        }
        let port_ok =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        let port: u32 = if port_ok {
            port.parse().unwrap_or(0)
        } else {
            0
        };
        if !(1..=65535).contains(&port) {
            return Err(format!("invalid master endpoint port in {token:?}: the port must be a number from 1 to 65535"));
        }
        out.push((host.to_string(), port as u16));
    }
    if out.is_empty() {
        return Err("master endpoints are empty".to_string());
    }
    Ok(out)
}

/// `curvine:///a/b` → `/a/b`; `curvine://` → `/`; anything else is an error.
pub fn fs_path(mount_point: &str) -> Result<String, String> {
    let rest = mount_point
        .trim()
        .strip_prefix("curvine://")
        .ok_or_else(|| format!("mountPoint {mount_point:?} is not a curvine:// path: a ThinRuntime mounts an existing Curvine cluster"))?;
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("mountPoint {mount_point:?} contains \"..\"")),
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Whether every access mode of the dataset is read-only.
fn read_only(root: &Json<'_>) -> Result<bool, InputError> {
    let Some(modes) = root.get("accessModes") else {
        return Ok(false);
    };
    let items = modes.node().items()?;
    let mut all_ro = !items.is_empty();
    for item in &items {
        all_ro &= item.node().str()? == "ReadOnlyMany";
    }
    Ok(all_ro)
}

/// ThinRuntime `spec.fuse.options` as FUSE mount options (`key=value` or `key`).
fn runtime_options(root: &Json<'_>) -> Result<Vec<String>, InputError> {
    let Some(opts) = root.get("runtimeOptions") else {
        return Ok(Vec::new());
    };
    Ok(opts
        .node()
        .string_map()?
        .into_iter()
        .map(|(k, v, _)| {
            if v.trim().is_empty() {
                k
            } else {
                format!("{k}={}", v.trim())
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let eps = parse_endpoints(" a:1, b:2;c:3 \n[fd00::1]:8995").unwrap();
        assert_eq!(
            eps,
            vec![
                ("a".into(), 1),
                ("b".into(), 2),
                ("c".into(), 3),
                ("fd00::1".into(), 8995)
            ]
        );
        for bad in [
            "a",
            "a:",
            ":1",
            "a:0",
            "a:70000",
            "a:+1",
            "a:8_9",
            "fd00::1:1",
            "",
            " ,; ",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad}");
        }
        assert!(
            parse_endpoints("host: 8995").is_err(),
            "a blank separates tokens"
        );
    }

    #[test]
    fn fs_paths() {
        assert_eq!(fs_path("curvine:///a/b/").unwrap(), "/a/b");
        assert_eq!(fs_path("curvine://").unwrap(), "/");
        assert_eq!(fs_path("curvine:///").unwrap(), "/");
        assert_eq!(fs_path("curvine://data").unwrap(), "/data");
        assert!(fs_path("s3://b").is_err());
        assert!(fs_path("/data").is_err());
        assert!(fs_path("curvine:///a/../b").is_err());
    }

    fn render_json(json: serde_json::Value) -> Result<Rendered, InputError> {
        let env = EnvSnapshot::default();
        let secrets = super::super::secrets::SecretDir::new("/nonexistent");
        let input = ThinInput {
            env: &env,
            file: "config.json",
            json: &json,
            secrets: &secrets,
        };
        render(&input, DocumentMut::new())
    }

    fn two_mounts(second: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "targetPath": "/runtime-mnt/thin/ns/rt/thin-fuse",
            "mounts": [
                {"mountPoint": "curvine:///data/a", "name": "a", "options": {"master-endpoints": "m:8995"}},
                second,
            ]
        })
    }

    #[test]
    fn several_mounts_show_as_directories_of_the_root() {
        let r = render_json(two_mounts(serde_json::json!({
            "mountPoint": "curvine:///b", "name": "ignored", "path": "/bee", "readOnly": true,
            "options": {"master-endpoints": "m:8995"}
        })))
        .unwrap();
        let c = r.to_config().unwrap();
        assert_eq!(c.fuse.fs_path, "/");
        let got: Vec<_> = c
            .fuse
            .mounts
            .iter()
            .map(|m| (m.path.as_str(), m.fs_path.as_str(), m.read_only))
            .collect();
        assert_eq!(got, vec![("/a", "/data/a", false), ("/bee", "/b", true)]);
    }

    #[test]
    fn several_mounts_must_agree_and_be_named() {
        let cases = [
            (
                serde_json::json!({"mountPoint": "curvine:///b", "name": "b", "options": {"master-endpoints": "other:8995"}}),
                "option master-endpoints differs",
                "mounts[1].options",
            ),
            (
                serde_json::json!({"mountPoint": "curvine:///b", "name": "b"}),
                "lacks option master-endpoints",
                "mounts[1]",
            ),
            (
                serde_json::json!({"mountPoint": "curvine:///b", "options": {"master-endpoints": "m:8995"}}),
                "needs a name or path",
                "mounts[1]",
            ),
            (
                serde_json::json!({"mountPoint": "curvine:///b", "name": "a", "options": {"master-endpoints": "m:8995"}}),
                "/a is taken",
                "mounts[1].name",
            ),
            (
                serde_json::json!({"mountPoint": "curvine:///b", "path": "/x/y", "options": {"master-endpoints": "m:8995"}}),
                "cannot be a directory of the mount root",
                "mounts[1].path",
            ),
            (
                serde_json::json!({"mountPoint": "curvine:///data/a/sub", "name": "b", "options": {"master-endpoints": "m:8995"}}),
                "contain one another",
                "mounts[1].mountPoint",
            ),
            (
                serde_json::json!({"mountPoint": "s3://b", "name": "b", "options": {"master-endpoints": "m:8995"}}),
                "not a curvine:// path",
                "mounts[1].mountPoint",
            ),
        ];
        for (second, what, at) in cases {
            let err = render_json(two_mounts(second)).unwrap_err().to_string();
            assert!(err.contains(what) && err.contains(at), "{what}: {err}");
        }
        let none = serde_json::json!({"targetPath": "/t", "mounts": []});
        let err = render_json(none).unwrap_err().to_string();
        assert!(err.contains("no mounts"), "{err}");
    }
}
