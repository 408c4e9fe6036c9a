//! CacheRuntime: turns Fluid's `runtime.json` and this pod's environment into the
//! cluster config (FLUID-CONTRACT §1.2–1.6 and §5.1, with the defects of §6 fixed).
//!
//! Pure: the JSON is already parsed and the environment captured. The same document is
//! rendered in every pod of a runtime except the lines that name the pod itself
//! (`[master]`/`[journal] hostname` on masters, `[worker] hostname` on workers).

//!
//! [`render`] runs the steps in order; each submodule does one job:
//! - `json`: locating the component blocks of the runtime config (either shape);
//! - `options`: routing the components' options to config keys;
//! - `topology`: names, DNS hostnames, master ordinals, this pod's identity, mount point;
//! - `tiers`: tiered-store levels to `worker.data_dir` and the watermarks.

mod json;
mod options;
mod tiers;
mod topology;

use super::doc::{string_array, NoteLevel, OnConflict, Writer};
use super::fluid_json::Json;
use super::Rendered;
use crate::env::EnvSnapshot;
use crate::error::InputError;
use crate::mode::Component;
use json::Blocks;
use serde_json::Value as JsonValue;
use toml_edit::{DocumentMut, Value};
use topology::Names;

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

/// Renders the config for one CacheRuntime pod on top of `base`.
pub fn render(input: &CacheInput<'_>, base: DocumentMut) -> Result<Rendered, InputError> {
    let root = Json::root(input.file, input.json);
    let blocks = Blocks::find(&root)?;
    let mut w = Writer::new(base, OnConflict::KeepFirst);
    w.ensure_sections(&["master", "journal", "worker", "client", "fuse", "log"])?;
    let master = blocks.require_master(&root)?;
    blocks.require_own(&root, input.component)?;

    // 1. Options of every component, master first, so every pod renders the same file.
    let hostnames = options::apply(&mut w, &blocks, input.file)?;
    // 2. Names: namespace, runtime, services, cluster domain; the cluster id.
    let names = Names::resolve(input.env, &root, &blocks, master)?;
    topology::write_cluster_id(&mut w, input.env, &root)?;
    // 3. The masters: journal peers, this master's identity, the clients' master list.
    topology::write_masters(
        &mut w,
        input.component,
        input.env,
        &names,
        master,
        blocks.legacy,
        &hostnames,
    )?;
    // 4. The worker: this worker's identity, cache directories, watermarks.
    if let Some(worker) = &blocks.worker {
        if input.component == Component::Worker {
            topology::write_worker_identity(&mut w, input.env, &names, worker, &hostnames)?;
        }
        if !w.was_assigned(&["worker"], "data_dir") {
            tiers::apply(&mut w, worker)?;
        }
    }
    note_unused_client_tiers(&mut w, &blocks);
    // 5. The FUSE mount point and built-in defaults for what is still missing.
    let mnt_path = topology::mount_path(&root, blocks.client.as_ref(), input.env)?;
    w.set(&["fuse"], "mnt_path", Value::from(mnt_path))?;
    write_defaults(&mut w, input.data_dir)?;
    // 6. What the steps wrote together must still make sense.
    check_watermarks(&w, input.file)?;

    Ok(Rendered {
        doc: w.doc,
        notes: w.notes,
        secrets: Vec::new(),
    })
}

/// The worker's watermarks, as written or by default (0.95 and 0.8), must keep low <=
/// high: options, tiered-store levels and defaults each set one of them.
fn check_watermarks(w: &Writer, file: &str) -> Result<(), InputError> {
    let ratio = |key: &str, default: f64| match w.get(&["worker"], key).and_then(|i| i.as_value()) {
        Some(v) => v.as_float().or_else(|| v.as_integer().map(|i| i as f64)),
        None => Some(default),
    };
    let defaults = crate::config::WorkerConfig::default();
    let (Some(high), Some(low)) = (
        ratio("high_watermark", defaults.high_watermark),
        ratio("low_watermark", defaults.low_watermark),
    ) else {
        return Ok(());
    };
    if low > high {
        return Err(InputError::new(
            format!("the worker's low watermark {low} is above its high watermark {high}"),
            format!(
                "file {file}, the worker's high_watermark/low_watermark options and tieredStore levels (defaults 0.95 and 0.8)"
            ),
            "set both, with low <= high (eviction runs from high down to low), e.g. high 0.95 and low 0.8",
        ));
    }
    Ok(())
}

/// Says that the client's tiered-store levels are not used.
fn note_unused_client_tiers(w: &mut Writer, blocks: &Blocks<'_>) {
    if let Some(client) = &blocks.client {
        if client.node().get("tieredStoreLevels").is_some() {
            w.note(
                NoteLevel::Info,
                "client.tieredStoreLevels is not used: the FUSE client keeps no local cache tier",
            );
        }
    }
}

/// Built-in defaults for the keys nothing set: ports, and directories under `data_dir`.
fn write_defaults(w: &mut Writer, data_dir: &str) -> Result<(), InputError> {
    let data = data_dir.trim_end_matches('/');
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
    w.default(&["log"], "log_dir", Value::from("stdout"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_worker(json: serde_json::Value) -> Result<Rendered, InputError> {
        let env = EnvSnapshot::from_pairs([
            ("FLUID_DATASET_NAME", "rt"),
            ("FLUID_DATASET_NAMESPACE", "ns"),
            ("POD_NAME", "rt-worker-0"),
        ]);
        let input = CacheInput {
            component: Component::Worker,
            env: &env,
            file: "runtime.json",
            json: &json,
            data_dir: "/data",
        };
        render(&input, DocumentMut::new())
    }

    fn runtime(worker_options: serde_json::Value, high: &str, low: &str) -> serde_json::Value {
        serde_json::json!({
            "targetPath": "/runtime-mnt/cache/ns/rt/cache-fuse",
            "master": {"name": "rt-master", "replicas": 1, "options": {}, "service": {"name": "svc-rt-master"}},
            "worker": {
                "name": "rt-worker",
                "service": {"name": "svc-rt-worker"},
                "options": worker_options,
                "tieredStoreLevels": [
                    {"mountPaths": ["/cache"], "mediumType": "SSD", "quotas": ["1Gi"], "high": high, "low": low}
                ]
            }
        })
    }

    #[test]
    fn watermarks_that_only_clash_together_are_refused_naming_both() {
        // The level keeps low <= high; the option lowers high below the level's low.
        let json = runtime(serde_json::json!({"high_watermark": "0.5"}), "0.9", "0.7");
        let err = render_worker(json).unwrap_err().to_string();
        assert!(
            err.contains("low watermark 0.7 is above its high watermark 0.5"),
            "{err}"
        );
        assert!(err.contains("runtime.json"), "{err}");
        // The same options with a consistent pair render and parse.
        let json = runtime(serde_json::json!({"high_watermark": "0.9"}), "0.9", "0.7");
        render_worker(json).unwrap().to_config().unwrap();
    }
}
