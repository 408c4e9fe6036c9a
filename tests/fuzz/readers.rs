//! The config readers under hostile input: Fluid's CacheRuntime `runtime.json`, the
//! ThinRuntime `config.json`, Curvine's TOML, and the value parsers behind them (sizes,
//! durations, data dirs, endpoints, DataLoad targets, under-storage mounts).
//!
//! Each property mutates the corpus seeds (byte flips, truncation, insertion of hostile
//! tokens, splices between seeds, value and key replacement on the parsed JSON) and runs
//! the same entry points the binary runs on the result.

use crate::{assert_allocations_bounded, assert_one_line, cases, corpus, runner};
use curvine_fluid::config::secrets::SecretSource;
use curvine_fluid::config::{
    cache, discovery, fluid_json, render_standalone, schema, thin, units, ClusterConfig, DataDir,
};
use curvine_fluid::dataload;
use curvine_fluid::entries;
use curvine_fluid::env::EnvSnapshot;
use curvine_fluid::error::InputError;
use curvine_fluid::mode::Component;
use curvine_fluid::ufs::UfsSpec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use serde_json::Value;
use std::collections::BTreeMap;
use toml_edit::DocumentMut;

/// Tokens spliced into inputs: the shapes that break readers.
const TOKENS: &[&str] = &[
    "\u{0}",
    "\\u0000",
    "..",
    "/../..",
    "99999999999Ti",
    "18446744073709551616",
    "-1",
    "0",
    "70000",
    "1e400",
    "-0.0",
    "NaN",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
    ":",
    "=",
    "\n",
    "null",
    "[]",
    "{}",
    "true",
    "\"x\"",
    "[[a]]",
    "[master]",
    "\u{feff}",
    "é",
    "\\ud800",
    "/etc/fluid/secrets/../../x",
    "s3://",
    "curvine://",
];

/// One edit of an input's bytes.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Truncate(Index),
    Delete(Index, usize),
    Insert(Index, &'static str),
    RawByte(Index, u8),
    Splice(Index, Index, Index, usize),
    Repeat(Index, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::RawByte(i, b)),
        (any::<Index>(), any::<Index>(), any::<Index>(), 1usize..256)
            .prop_map(|(s, f, t, n)| Edit::Splice(s, f, t, n)),
        (any::<Index>(), 1usize..32, 1usize..200).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
    ]
}

/// Applies `edits` to `bytes`; `seeds` supplies splices.
fn mutate(mut bytes: Vec<u8>, edits: &[Edit], seeds: &[(String, Vec<u8>)]) -> Vec<u8> {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Flip(i, bit) if len > 0 => {
                let p = i.index(len);
                bytes[p] ^= 1 << bit;
            }
            Edit::Flip(..) => {}
            Edit::Truncate(i) => bytes.truncate(at(i, len)),
            Edit::Delete(i, n) => {
                let p = at(i, len);
                let end = (p + n).min(len);
                bytes.drain(p..end);
            }
            Edit::Insert(i, token) => {
                let p = at(i, len);
                bytes.splice(p..p, token.bytes());
            }
            Edit::RawByte(i, b) => {
                let p = at(i, len);
                bytes.insert(p, *b);
            }
            Edit::Splice(s, f, t, n) => {
                let Some((_, other)) = seeds.get(s.index(seeds.len().max(1))) else {
                    continue;
                };
                if other.is_empty() {
                    continue;
                }
                let from = f.index(other.len());
                let piece = &other[from..(from + n).min(other.len())];
                let p = at(t, len);
                bytes.splice(p..p, piece.iter().copied());
            }
            Edit::Repeat(i, n, k) if len > 0 => {
                let p = i.index(len);
                let piece = bytes[p..(p + n).min(len)].to_vec();
                let copies: Vec<u8> = piece
                    .iter()
                    .copied()
                    .cycle()
                    .take(piece.len() * k)
                    .collect();
                bytes.splice(p..p, copies);
            }
            Edit::Repeat(..) => {}
        }
    }
    bytes
}

/// Values put in place of a JSON node.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(-0.5)),
        prop::sample::select(TOKENS).prop_map(|t| Value::String(t.to_string())),
        "[ -~]{0,24}".prop_map(Value::String),
        Just(serde_json::json!("8995")),
        Just(serde_json::json!("0")),
        Just(serde_json::json!("70000")),
        Just(serde_json::json!("99999999999Ti")),
        Just(serde_json::json!("/a/../../b\u{0}")),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!([["x"]])),
        Just(serde_json::json!({"a": {"b": [1, "2", null]}})),
    ]
}

/// Every node of a JSON tree as a JSON pointer (the root is "").
fn pointers(value: &Value, here: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{here}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(here);
}

/// One edit of a parsed JSON document.
#[derive(Debug, Clone)]
enum JsonEdit {
    /// Replace the node at a pointer.
    Replace(Index, Value),
    /// Rename a key of the object at a pointer (or add one).
    Rename(Index, Index, &'static str),
    /// Remove the node at a pointer.
    Remove(Index),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        (any::<Index>(), hostile_value()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        (
            any::<Index>(),
            any::<Index>(),
            prop::sample::select(vec![
                "master",
                "worker",
                "client",
                "topology",
                "mounts",
                "options",
                "replicas",
                "tieredStoreLevels",
                "quotas",
                "mountPaths",
                "mountPoint",
                "master-endpoints",
                "targetPath",
                "path",
                "",
                "..",
                "a\u{0}b",
            ])
        )
            .prop_map(|(i, k, name)| JsonEdit::Rename(i, k, name)),
        any::<Index>().prop_map(JsonEdit::Remove),
    ]
}

fn apply_json(value: &mut Value, edits: &[JsonEdit]) {
    for e in edits {
        let mut all = Vec::new();
        pointers(value, String::new(), &mut all);
        match e {
            JsonEdit::Replace(i, v) => {
                if let Some(node) = value.pointer_mut(&all[i.index(all.len())]) {
                    *node = v.clone();
                }
            }
            JsonEdit::Rename(i, k, name) => {
                if let Some(Value::Object(map)) = value.pointer_mut(&all[i.index(all.len())]) {
                    let keys: Vec<String> = map.keys().cloned().collect();
                    let taken = if keys.is_empty() {
                        Value::String("x".into())
                    } else {
                        map.remove(&keys[k.index(keys.len())])
                            .unwrap_or(Value::Null)
                    };
                    map.insert(name.to_string(), taken);
                }
            }
            JsonEdit::Remove(i) => {
                let p = &all[i.index(all.len())];
                if let Some((parent, last)) = p.rsplit_once('/') {
                    match value.pointer_mut(parent) {
                        Some(Value::Object(map)) => {
                            map.remove(&last.replace("~1", "/").replace("~0", "~"));
                        }
                        Some(Value::Array(items)) => {
                            if let Ok(n) = last.parse::<usize>() {
                                if n < items.len() {
                                    items.remove(n);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Secret files as a pod would see them: one readable, the rest missing.
struct FakeSecrets;

impl SecretSource for FakeSecrets {
    fn read(&self, fluid_path: &str) -> Result<String, String> {
        if fluid_path.ends_with("/endpoints") {
            Ok("m-0.svc:8995,m-1.svc:8995".to_string())
        } else {
            Err(format!("cannot read secret file {fluid_path:?}"))
        }
    }
}

fn check_input(result: Result<(), InputError>, input: &str) {
    if let Err(e) = result {
        assert_one_line(&e.to_string(), input);
        assert!(!e.what.is_empty() && !e.location.is_empty(), "{e:?}");
    }
}

fn cache_env(component: Component) -> EnvSnapshot {
    let pod = match component {
        Component::Master => "rt-master-0",
        Component::Worker => "rt-worker-0",
        Component::Client => "rt-client-x1",
    };
    EnvSnapshot::from_pairs([
        ("FLUID_DATASET_NAME", "rt"),
        ("FLUID_DATASET_NAMESPACE", "ns"),
        ("POD_NAME", pod),
        ("HOSTNAME", pod),
    ])
}

/// What the binary does with a CacheRuntime `runtime.json` (on top of `base`): parse,
/// render for each component, parse the result back; the mount-ufs entry's mounts.
pub fn check_runtime_json(text: &str, base: &DocumentMut) {
    let json = match fluid_json::parse("runtime.json", text, true) {
        Ok(json) => json,
        Err(e) => return check_input(Err(e), text),
    };
    for component in [Component::Master, Component::Worker, Component::Client] {
        let env = cache_env(component);
        let input = cache::CacheInput {
            component,
            env: &env,
            file: "runtime.json",
            json: &json,
            data_dir: "/data",
        };
        let result = cache::render(&input, base.clone()).and_then(|r| r.to_config().map(drop));
        check_input(result, text);
    }
    check_input(
        entries::wanted_mounts("runtime.json", &json).map(drop),
        text,
    );
}

/// What the binary does with a ThinRuntime `config.json`.
pub fn check_thin_json(text: &str, base: &DocumentMut) {
    let env = EnvSnapshot::from_pairs([
        ("FLUID_RUNTIME_NAME", "rt"),
        ("MOUNT_POINT", "/runtime-mnt/thin/ns/rt/thin-fuse"),
    ]);
    for unwrap_string in [false, true] {
        let json = match fluid_json::parse("config.json", text, unwrap_string) {
            Ok(json) => json,
            Err(e) => {
                check_input(Err(e), text);
                continue;
            }
        };
        let input = thin::ThinInput {
            env: &env,
            file: "config.json",
            json: &json,
            secrets: &FakeSecrets,
        };
        let result = thin::render(&input, base.clone()).and_then(|r| r.to_config().map(drop));
        check_input(result, text);
        check_input(entries::wanted_mounts("config.json", &json).map(drop), text);
    }
}

/// What the binary does with a TOML file: the typed model (a `--conf` file), and as the
/// base file under each renderer.
pub fn check_toml(text: &str, runtime_json: &str, thin_json: &str) {
    check_input(
        ClusterConfig::from_toml(text, "file c.toml").map(drop),
        text,
    );
    let Ok(base) = text.parse::<DocumentMut>() else {
        return;
    };
    let standalone = render_standalone("/d", base.clone()).and_then(|r| r.to_config().map(drop));
    check_input(standalone, text);
    check_runtime_json(runtime_json, &base);
    check_thin_json(thin_json, &base);
}

/// The value parsers: sizes, durations, data dirs, endpoints, option kinds, DataLoad
/// targets, under-storage mount points and options, discovery names.
pub fn check_value(v: &str) {
    let one = |r: Result<(), String>| {
        if let Err(e) = r {
            assert_one_line(&e, v);
        }
    };
    one(units::quantity_to_capacity(v).map(drop));
    one(units::quantity_to_bytes(v).map(drop));
    one(units::parse_size(v).map(drop));
    one(units::parse_duration(v).map(drop));
    one(DataDir::parse(v).map(drop));
    one(thin::parse_endpoints(v).map(drop));
    one(thin::fs_path(v).map(drop));
    for kind in [
        schema::Kind::Bool,
        schema::Kind::Int,
        schema::Kind::Port,
        schema::Kind::Float,
        schema::Kind::Str,
        schema::Kind::Size,
        schema::Kind::Duration,
        schema::Kind::StrList,
    ] {
        one(schema::typed_value(kind, v).map(drop));
    }
    let _ = schema::guessed_value(v);
    let _ = discovery::candidate_datasets(v);
    let env = EnvSnapshot::from_pairs([
        ("FLUID_DATALOAD_DATA_PATH", v),
        ("FLUID_DATALOAD_PATH_REPLICAS", v),
    ]);
    check_input(dataload::targets(&env, &[]).map(drop), v);
    check_input(dataload::targets(&env, &[v.to_string()]).map(drop), v);
    let mut options = BTreeMap::new();
    for key in [
        "endpoint_url",
        "region_name",
        "path_style",
        "sync_interval",
        v,
    ] {
        options.insert(key.to_string(), v.to_string());
    }
    let secrets = BTreeMap::from([("access".to_string(), v.to_string())]);
    for mount_point in [
        v.to_string(),
        format!("s3://b/{v}"),
        format!("local:///{v}"),
    ] {
        one(UfsSpec::from_fluid(&mount_point, &options, &secrets).map(drop));
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Inputs too big to commit: deep nesting, long strings, many elements, long numbers.
fn generated_json() -> Vec<String> {
    let big = "x".repeat(10 << 20);
    let endpoint = format!("{}:8995", "h".repeat(1 << 20));
    vec![
        "[".repeat(100_000),
        "{\"a\":".repeat(100_000),
        format!("\"{}\"", "[".repeat(100_000)),
        format!("{{\"master\":{{\"name\":\"{big}\"}}}}"),
        format!(r#"{{"master":{{"name":"m","options":{{"{big}":"{big}"}}}}}}"#),
        format!(
            r#"{{"master":{{"name":"m","replicas":{}}}}}"#,
            "9".repeat(1 << 20)
        ),
        format!(
            r#"{{"master":{{"name":"m"}},"mounts":[{}]}}"#,
            vec![r#"{"mountPoint":"curvine:///a"}"#; 20_000].join(",")
        ),
        format!(
            r#"{{"mounts":[{{"mountPoint":"curvine:///d","options":{{"master-endpoints":"{endpoint}"}}}}],"targetPath":"/t"}}"#
        ),
        format!(
            r#"{{"mounts":[{{"mountPoint":"curvine:///d","options":{{"master-endpoints":"{}"}}}}],"targetPath":"/t"}}"#,
            vec!["h:8995"; 100_000].join(",")
        ),
    ]
}

fn generated_toml() -> Vec<String> {
    vec![
        format!("a = {}", "[".repeat(100_000)),
        format!("a = {}", "{b = ".repeat(100_000)),
        format!("{}= 1", "a.".repeat(100_000)),
        format!("[master]\nhostname = \"{}\"\n", "x".repeat(10 << 20)),
        format!("[master]\nrpc_port = {}\n", "9".repeat(1 << 20)),
        format!(
            "[journal]\njournal_addrs = [{}]\n",
            vec!["{id = 1, hostname = \"h\", port = 1}"; 20_000].join(",")
        ),
        "[worker]\ndata_dir = [\"[HDD:99999999999Ti]/a\"]\n".repeat(1_000),
    ]
}

fn seeds_text(dir: &str) -> Vec<String> {
    corpus(dir).iter().map(|(_, b)| text_of(b)).collect()
}

#[test]
fn corpus_and_generated_inputs_end_in_ok_or_one_line_errors() {
    let base = DocumentMut::new();
    for (name, bytes) in corpus("runtime-json") {
        let text = text_of(&bytes);
        check_runtime_json(&text, &base);
        // Bytes that are not UTF-8 never reach the parser: the file read refuses them.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&name);
        std::fs::write(&path, &bytes).unwrap();
        match fluid_json::read_text(&path, "runtime config") {
            Ok(read) => assert_eq!(read.as_bytes(), &bytes[..]),
            Err(e) => {
                assert!(std::str::from_utf8(&bytes).is_err(), "{name}: {e}");
                assert_one_line(&e.to_string(), &name);
            }
        }
    }
    for (_, bytes) in corpus("thin-json") {
        check_thin_json(&text_of(&bytes), &base);
    }
    let runtime = seeds_text("runtime-json");
    let thin = seeds_text("thin-json");
    for (_, bytes) in corpus("toml") {
        check_toml(&text_of(&bytes), &runtime[0], &thin[0]);
    }
    for line in seeds_text("text")[0].lines() {
        check_value(line);
    }
    // Whole-file values: those with a line break in them.
    for value in seeds_text("value") {
        check_value(&value);
    }
    for text in generated_json() {
        check_runtime_json(&text, &base);
        check_thin_json(&text, &base);
    }
    for text in generated_toml() {
        check_toml(&text, &runtime[0], &thin[0]);
    }
    for v in [
        "9".repeat(1 << 20),
        "x".repeat(10 << 20),
        format!("{}Ti", "9".repeat(400)),
        format!("/{}", "a/../".repeat(100_000)),
        "h:1,".repeat(100_000),
    ] {
        check_value(&v);
    }
    assert_allocations_bounded("corpus");
}

/// Mutated byte strings of a corpus, with the JSON-level edits for JSON seeds.
fn mutated(dir: &str) -> impl Strategy<Value = String> {
    let seeds = corpus(dir);
    let json = dir.ends_with("json");
    (
        any::<Index>(),
        prop::collection::vec(edit(), 0..6),
        prop::collection::vec(json_edit(), 0..4),
    )
        .prop_map(move |(pick, edits, json_edits)| {
            let (_, seed) = &seeds[pick.index(seeds.len())];
            let mut bytes = seed.clone();
            if json && !json_edits.is_empty() {
                if let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) {
                    apply_json(&mut value, &json_edits);
                    bytes = value.to_string().into_bytes();
                }
            }
            text_of(&mutate(bytes, &edits, &seeds))
        })
}

fn run(name: &str, strategy: impl Strategy<Value = String>, check: impl Fn(&str)) {
    let mut runner = runner(cases(600));
    let result = runner.run(&strategy, |text| {
        check(&text);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    assert_allocations_bounded(name);
}

#[test]
fn mutated_runtime_json() {
    let base = DocumentMut::new();
    run("runtime.json", mutated("runtime-json"), |t| {
        check_runtime_json(t, &base)
    });
}

#[test]
fn mutated_thin_json() {
    let base = DocumentMut::new();
    run("config.json", mutated("thin-json"), |t| {
        check_thin_json(t, &base)
    });
}

#[test]
fn mutated_toml() {
    let runtime = seeds_text("runtime-json");
    let thin = seeds_text("thin-json");
    run("toml", mutated("toml"), |t| {
        check_toml(t, &runtime[0], &thin[0])
    });
}

#[test]
fn mutated_values() {
    let lines: Vec<String> = seeds_text("text")[0].lines().map(str::to_string).collect();
    let strategy = (
        prop::sample::select(lines),
        prop::collection::vec(edit(), 0..4),
    )
        .prop_map(|(line, edits)| text_of(&mutate(line.into_bytes(), &edits, &[])));
    run("values", strategy, check_value);
}

#[test]
fn mutation_reaches_errors_and_successes() {
    // The pass is only useful if mutated inputs both render and fail: count both.
    let base = DocumentMut::new();
    let mut runner = runner(200);
    let strategy = mutated("thin-json");
    let (mut ok, mut err) = (0, 0);
    for _ in 0..200 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        match fluid_json::parse("config.json", &text, false) {
            Ok(json) => {
                let input = thin::ThinInput {
                    env: &EnvSnapshot::from_pairs([("MOUNT_POINT", "/m")]),
                    file: "config.json",
                    json: &json,
                    secrets: &FakeSecrets,
                };
                match thin::render(&input, base.clone()) {
                    Ok(_) => ok += 1,
                    Err(_) => err += 1,
                }
            }
            Err(_) => err += 1,
        }
    }
    assert!(ok > 10 && err > 10, "ok {ok}, err {err}");
}
