//! Routing the components' `options` of the runtime config to the sections and keys
//! of the config file, typed by the schema; the hostname options are handed back.

use super::json::Blocks;
use crate::config::doc::{NoteLevel, Writer};
use crate::config::schema::{self, Kind};
use crate::error::InputError;
use crate::mode::Component;
use toml_edit::Value;

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

/// Where an option lands.
#[derive(Debug, PartialEq)]
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

/// The hostnames the options set instead of the pods' DNS names, each with where it came
/// from (the first one wins).
#[derive(Debug, Default)]
pub(super) struct HostnameOptions {
    /// `master_hostname`: the masters' address (one master only).
    pub(super) master: Option<(String, String)>,
    /// `worker_hostname`: the worker's address (one worker only).
    pub(super) worker: Option<(String, String)>,
}

/// Applies the options of every component, master first, so every pod renders the same
/// file. `file` names the runtime config in messages.
pub(super) fn apply(
    w: &mut Writer,
    blocks: &Blocks<'_>,
    file: &str,
) -> Result<HostnameOptions, InputError> {
    let mut hostnames = HostnameOptions::default();
    for component in [Component::Master, Component::Worker, Component::Client] {
        let Some(block) = blocks.get(component) else {
            continue;
        };
        block.node().require_object()?;
        let Some(options) = block.node().get("options") else {
            continue;
        };
        for (key, raw, path) in options.node().string_map()? {
            let origin = format!("file {file}, JSON path {path}");
            match route(component, &key).map_err(|what| {
                InputError::new(
                    what,
                    origin.clone(),
                    "option keys are Curvine config keys such as worker_threads or log.level",
                )
            })? {
                Route::Key(section, key) => apply_option(w, &section, &key, &raw, &origin)?,
                Route::JournalPort => {
                    let value =
                        schema::typed_option(Kind::Port, &raw, "journal.rpc_port", &origin, None)?;
                    w.assign(&["journal"], "rpc_port", value, &origin)?;
                }
                Route::MasterHostname => {
                    hostnames
                        .master
                        .get_or_insert((hostname(&raw, &origin)?, origin));
                }
                Route::WorkerHostname => {
                    hostnames
                        .worker
                        .get_or_insert((hostname(&raw, &origin)?, origin));
                }
            }
        }
    }
    Ok(hostnames)
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
        [first, rest @ ..]
            if ["master", "journal", "worker", "client", "fuse", "security"].contains(first) =>
        {
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
    let dotted = crate::config::doc::dotted(&path, key);
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

/// A hostname given as an option: trimmed, non-empty, one name.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(section: &[&str], key: &str) -> Route {
        Route::Key(section.iter().map(|s| s.to_string()).collect(), key.into())
    }

    #[test]
    fn options_route_to_sections_and_special_keys() {
        use Component::{Client, Master, Worker};
        let cases = [
            (Master, "journal_port", Route::JournalPort),
            (Worker, "raft_port", Route::JournalPort),
            (Client, "master_hostname", Route::MasterHostname),
            (Worker, "worker_hostname", Route::WorkerHostname),
            (Worker, "journal_dir", key(&["journal"], "journal_dir")),
            (Master, "worker.rpc_port", key(&["worker"], "rpc_port")),
            (Worker, "rpc_port", key(&["worker"], "rpc_port")),
            (Master, "rpc_port", key(&["master"], "rpc_port")),
            (
                Worker,
                "security.token_file",
                key(&["security"], "token_file"),
            ),
        ];
        for (component, option, want) in cases {
            assert_eq!(route(component, option), Ok(want), "{component} {option}");
        }
    }

    #[test]
    fn managed_and_malformed_keys_are_refused() {
        for (option, needle) in [
            ("fuse.mnt_path", "curvine-fluid manages"),
            ("client.master_addrs", "curvine-fluid manages"),
            ("journal.hostname", "curvine-fluid manages"),
            ("a..b", "not a valid config key"),
            ("x y", "not a valid config key"),
            ("", "not a valid config key"),
        ] {
            let error = route(Component::Client, option).unwrap_err();
            assert!(error.contains(needle), "{option}: {error}");
        }
    }

    #[test]
    fn hostname_options_are_one_name() {
        assert_eq!(hostname(" h1 ", "o").unwrap(), "h1");
        for bad in ["", "  ", "a b", "a,b", "a/b"] {
            assert!(hostname(bad, "o").is_err(), "{bad:?}");
        }
    }
}
