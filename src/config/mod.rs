//! The cluster config: rendering it from Fluid's inputs, its typed model, and writing it.
//!
//! Precedence, lowest first (one rule for every key):
//! 1. built-in defaults (ports 8995/8996/8997/9000/9001, directories under `$CURVINE_DATA_DIR`),
//!    written only where nothing else set the key;
//! 2. the base file at `$CURVINE_HOME/conf/curvine-cluster.toml`, when it exists: its
//!    comments and every key we do not manage are kept;
//! 3. the Fluid runtime config (component options, topology) and the pod's environment.
//!
//! Submodules: [`resolve`] decides where each command's config comes from (the one entry
//! point), [`cache`] and [`thin`] render (pure), [`model`] is the typed view the roles
//! read, [`schema`] types option strings, [`units`] converts sizes, [`fluid_json`] reads
//! the JSON, [`secrets`] resolves secret files, [`discovery`] finds a DataLoad pod's
//! masters by DNS, [`write`](mod@write) writes atomically.

pub mod cache;
pub mod discovery;
pub mod doc;
pub mod fluid_json;
pub mod model;
pub mod resolve;
pub mod schema;
pub mod secrets;
pub mod thin;
pub mod units;
pub mod write;

pub use doc::{Note, NoteLevel};
pub use model::*;

use crate::error::InputError;
use doc::{table_array, OnConflict, Writer};
use std::path::Path;
use toml_edit::{DocumentMut, InlineTable, Item, Value};

/// The address a standalone cluster uses: IPv4 loopback, so `localhost` resolving to
/// `::1` first cannot split clients from servers.
pub const LOOPBACK: &str = "127.0.0.1";

/// A rendered config document, with what the log should say about it.
#[derive(Debug)]
pub struct Rendered {
    /// The document, ready to write.
    pub doc: DocumentMut,
    /// Warnings and remarks for the log.
    pub notes: Vec<Note>,
    /// Values read from secret files, masked wherever the config is logged.
    pub secrets: Vec<String>,
}

impl Rendered {
    /// The TOML text.
    pub fn text(&self) -> String {
        self.doc.to_string()
    }

    /// Parses the rendered text back into the typed model (and validates it).
    pub fn to_config(&self) -> Result<ClusterConfig, InputError> {
        ClusterConfig::from_toml(&self.text(), "the rendered config")
    }
}

/// Reads the base file if it exists. A file that is not valid TOML is an input error.
pub fn load_base(path: &Path) -> Result<DocumentMut, InputError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DocumentMut::new()),
        Err(e) => {
            return Err(InputError::new(
                format!("cannot read the base config: {e}"),
                format!("file {}", path.display()),
                "make it readable, or remove it to render from scratch",
            ))
        }
    };
    text.parse::<DocumentMut>().map_err(|e| {
        InputError::new(
            format!(
                "the base config is not valid TOML: {}",
                crate::error::single_line(e.message())
            ),
            format!("file {}", path.display()),
            "fix the file, or remove it to render from scratch",
        )
    })
}

/// The config of a single-node cluster on this machine (loopback), for running outside
/// Fluid when no config file exists. Keys of `base` win.
pub fn render_standalone(data_dir: &str, base: DocumentMut) -> Result<Rendered, InputError> {
    let mut w = Writer::new(base, OnConflict::Fail);
    w.ensure_sections(&["master", "journal", "worker", "client", "fuse", "log"])?;
    let data = data_dir.trim_end_matches('/');
    let host = |port: i64| {
        let mut t = InlineTable::new();
        t.insert("hostname", Value::from(LOOPBACK));
        t.insert("port", Value::from(port));
        t
    };
    let mut peer = host(8996);
    peer.insert("id", Value::from(1));
    w.default(&[], "cluster_id", Value::from("curvine"))?;
    w.default(&["master"], "hostname", Value::from(LOOPBACK))?;
    w.default(&["master"], "rpc_port", Value::from(8995))?;
    w.default(&["master"], "web_port", Value::from(9000))?;
    w.default(&["master"], "meta_dir", Value::from(format!("{data}/meta")))?;
    w.default(&["journal"], "hostname", Value::from(LOOPBACK))?;
    w.default(&["journal"], "rpc_port", Value::from(8996))?;
    w.default(&["journal"], "journal_addrs", table_array(vec![peer]))?;
    w.default(
        &["journal"],
        "journal_dir",
        Value::from(format!("{data}/journal")),
    )?;
    w.default(&["worker"], "hostname", Value::from(LOOPBACK))?;
    w.default(&["worker"], "rpc_port", Value::from(8997))?;
    w.default(&["worker"], "web_port", Value::from(9001))?;
    w.default(
        &["worker"],
        "data_dir",
        doc::string_array(&[format!("[DISK]{data}/worker")]),
    )?;
    // Short-circuit I/O between the process's own client and worker, when the socket's
    // path fits the 107 bytes a Unix socket path may have (the name takes 34 of them).
    let sockets = format!("{data}/sockets");
    if sockets.len() + 34 < 108 {
        w.default(&["worker"], "domain_socket_path", Value::from(sockets))?;
    }
    w.default(&["client"], "master_addrs", table_array(vec![host(8995)]))?;
    w.default(&["fuse"], "mnt_path", Value::from("/curvine-fuse"))?;
    w.default(&["log"], "level", Value::from("info"))?;
    w.default(&["log"], "log_dir", Value::from("stdout"))?;
    Ok(Rendered {
        doc: w.doc,
        notes: w.notes,
        secrets: Vec::new(),
    })
}

/// The config as log lines, one per section (`[master] hostname="..." rpc_port=8995`),
/// with every secret value masked.
pub fn summary_lines(doc: &DocumentMut, secrets: &[String]) -> Vec<String> {
    fn flatten(prefix: &str, item: &Item, out: &mut Vec<String>) {
        match item {
            Item::Value(Value::InlineTable(t))
                if !prefix.is_empty() && !t.iter().any(|(_, v)| v.is_array()) =>
            {
                out.push(format!(
                    "{prefix}={}",
                    doc::value_text(&Value::InlineTable(t.clone()))
                ));
            }
            Item::Value(v) => out.push(format!("{prefix}={}", compact(v))),
            Item::Table(t) => {
                for (k, v) in t.iter() {
                    flatten(&join(prefix, k), v, out);
                }
            }
            Item::ArrayOfTables(a) => {
                let values: Vec<String> = a
                    .iter()
                    .map(|t| doc::value_text(&Value::InlineTable(t.clone().into_inline_table())))
                    .collect();
                out.push(format!("{prefix}=[{}]", values.join(", ")));
            }
            Item::None => {}
        }
    }
    fn compact(v: &Value) -> String {
        match v {
            Value::Array(a) => {
                format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(", "))
            }
            other => doc::value_text(other),
        }
    }
    fn join(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    }
    let mut lines = Vec::new();
    let mut top = Vec::new();
    for (key, item) in doc.iter() {
        match item {
            Item::Table(t) => {
                let mut fields = Vec::new();
                for (k, v) in t.iter() {
                    flatten(k, v, &mut fields);
                }
                if !fields.is_empty() {
                    lines.push(format!("[{key}] {}", fields.join(" ")));
                }
            }
            other => flatten(key, other, &mut top),
        }
    }
    if !top.is_empty() {
        lines.insert(0, top.join(" "));
    }
    lines
        .into_iter()
        .map(|line| {
            mask_secrets(
                &line.split_whitespace().collect::<Vec<_>>().join(" "),
                secrets,
            )
            .0
        })
        .collect()
}

/// What stands in for a secret value wherever text leaves the process.
pub const REDACTED: &str = "<redacted>";

/// `text` with every occurrence of a secret value replaced by [`REDACTED`], and how many
/// occurrences were replaced. Longer secrets are masked first, so a secret that contains
/// another is masked whole.
pub fn mask_secrets(text: &str, secrets: &[String]) -> (String, usize) {
    let mut ordered: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    let mut count = 0;
    for secret in ordered {
        let n = out.matches(secret.as_str()).count();
        if n > 0 {
            count += n;
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_defaults_parse_and_base_wins() {
        let base: DocumentMut = "[master]\nrpc_port = 7000 # mine\n".parse().unwrap();
        let r = render_standalone("/d", base).unwrap();
        let c = r.to_config().unwrap();
        assert_eq!(c.master.rpc_port, 7000);
        assert_eq!(c.journal.journal_addrs.len(), 1);
        assert_eq!(c.client.master_addrs[0].hostname, "127.0.0.1");
        assert_eq!(c.master.meta_dir, "/d/meta");
        assert_eq!(c.worker.domain_socket_path, "/d/sockets");
        assert!(r.text().contains("# mine"));
        // A data dir too deep for a Unix socket path: no short circuit rather than a
        // worker that cannot start.
        let deep = format!("/{}", "d".repeat(80));
        let c = render_standalone(&deep, DocumentMut::new())
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(c.worker.domain_socket_path, "");
    }

    #[test]
    fn secrets_are_masked_whole_and_counted() {
        let secrets = vec![
            "host".to_string(),
            "host-0.example".to_string(),
            String::new(),
        ];
        let (text, n) = mask_secrets("a = \"host-0.example:1,host\"", &secrets);
        assert_eq!(text, "a = \"<redacted>:1,<redacted>\"");
        assert_eq!(n, 2);
        assert_eq!(mask_secrets("plain", &secrets), ("plain".to_string(), 0));
    }

    #[test]
    fn an_invalid_base_file_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.toml");
        std::fs::write(&path, "[a]\n[a]\n").unwrap();
        let e = load_base(&path).unwrap_err();
        assert!(e.what.contains("duplicate key"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn summary_is_one_line_per_section_and_masks_secrets() {
        let doc: DocumentMut = "a = 1\n[client]\nmaster_addrs = [\n {hostname = \"s3cret\", port = 1},\n]\n[[x.y]]\nk = 1\n".parse().unwrap();
        let lines = summary_lines(&doc, &["s3cret".to_string()]);
        assert_eq!(lines[0], "a=1");
        assert!(lines[1].starts_with("[client] master_addrs="), "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("s3cret") && !l.contains('\n')),
            "{lines:?}"
        );
    }
}
