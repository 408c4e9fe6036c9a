//! Property tests: arbitrary runtime configs never make rendering panic; each either
//! renders TOML that parses back into the config model and passes its validation, or is
//! refused with a complete input error (exit code 2 in the binary).

use curvine_fluid::config::{cache, secrets::SecretSource, thin, ClusterConfig};
use curvine_fluid::env::EnvSnapshot;
use curvine_fluid::error::InputError;
use curvine_fluid::mode::Component;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn option_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "rpc_port",
            "web_port",
            "journal_port",
            "raft_port",
            "worker_threads",
            "io_threads",
            "format_master",
            "cluster_id",
            "data_dir",
            "dir_reserved",
            "log.level",
            "fuse.debug",
            "client.block_size",
            "master_hostname",
            "worker_hostname",
            "journal_dir",
            "meta_dir",
            "high_watermark",
            "low_watermark",
            "master-endpoints",
            "master-web-port",
            "io-threads",
            "entry-timeout",
            "fuse.enable_write_back",
            "fuse.mnt_path",
            "client.master_addrs",
            "fuse.fuse_opts",
            "debug",
            "snapshot_entries",
        ])
        .prop_map(str::to_string),
        "[a-z_.\\- ]{0,14}",
    ]
}

fn option_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "8995",
            "70000",
            "-3",
            "true",
            "FALSE",
            "10GB",
            "5Gi",
            "0.5",
            "1.5",
            "12h",
            "x",
            "h:1",
            "a:1, b:2;c:3",
            "[fd00::1]:8995",
            "/etc/fluid/secrets/s/k",
            "[HDD:5GB]/a,[MEM]/b",
            "",
        ])
        .prop_map(str::to_string),
        ".{0,20}",
    ]
}

fn options() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(option_key(), option_value(), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
}

fn level() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            prop_oneof![
                Just("/a".to_string()),
                Just("rel".to_string()),
                ".{0,6}".prop_map(|s| s)
            ],
            0..3,
        ),
        prop::sample::select(vec!["MEM", "HDD", "SSD", "nvme", ""]),
        prop::collection::vec(
            prop::sample::select(vec!["5Gi", "500G", "0", "1.5Gi", "x", "1Ei"]),
            0..3,
        ),
        prop::option::of(prop::sample::select(vec!["0.9", "0.5", "2", "x"])),
        prop::option::of(prop::sample::select(vec!["0.7", "0.95", "-1"])),
    )
        .prop_map(|(paths, medium, quotas, high, low)| {
            let mut m = Map::new();
            m.insert("mountPaths".into(), json!(paths));
            m.insert("mediumType".into(), json!(medium));
            m.insert("quotas".into(), json!(quotas));
            if let Some(h) = high {
                m.insert("high".into(), json!(h));
            }
            if let Some(l) = low {
                m.insert("low".into(), json!(l));
            }
            Value::Object(m)
        })
}

type Block = (
    Option<Value>,
    Option<Value>,
    &'static str,
    Option<Vec<Value>>,
);

fn component() -> impl Strategy<Value = Block> {
    (
        prop::option::of(options()),
        prop::option::of(prop_oneof![(0u32..6).prop_map(|n| json!(n)), any_json()]),
        prop::sample::select(vec!["svc", "", "s v c"]),
        prop::option::of(prop::collection::vec(level(), 0..3)),
    )
}

fn cache_config() -> impl Strategy<Value = Value> {
    (
        component(),
        component(),
        component(),
        prop::option::of(any_json()),
    )
        .prop_map(|(m, w, c, extra)| {
            let block = |name: &str, (opts, replicas, svc, levels): Block| {
                let mut b = Map::new();
                b.insert("name".into(), json!(format!("rt-{name}")));
                if let Some(o) = opts {
                    b.insert("options".into(), o);
                }
                if let Some(r) = replicas {
                    b.insert("replicas".into(), r);
                }
                b.insert("service".into(), json!({ "name": svc }));
                if let Some(l) = levels {
                    b.insert("tieredStoreLevels".into(), Value::Array(l));
                }
                Value::Object(b)
            };
            let mut root = Map::new();
            root.insert(
                "targetPath".into(),
                json!("/runtime-mnt/cache/ns/rt/cache-fuse"),
            );
            root.insert("master".into(), block("master", m));
            root.insert("worker".into(), block("worker", w));
            root.insert("client".into(), block("client", c));
            if let Some(e) = extra {
                root.insert("mounts".into(), e);
            }
            Value::Object(root)
        })
}

fn thin_config() -> impl Strategy<Value = Value> {
    (
        options(),
        prop::option::of(any_json()),
        prop::sample::select(vec!["curvine:///data", "curvine://", "s3://x", ""]),
        0usize..3,
    )
        .prop_map(|(opts, extra, mount_point, mounts)| {
            let mount = json!({ "mountPoint": mount_point, "options": opts, "name": "m" });
            let mut root = Map::new();
            root.insert("mounts".into(), Value::Array(vec![mount; mounts]));
            root.insert(
                "targetPath".into(),
                json!("/runtime-mnt/thin/ns/rt/thin-fuse"),
            );
            root.insert("accessModes".into(), json!(["ReadOnlyMany"]));
            if let Some(e) = extra {
                root.insert("runtimeOptions".into(), e);
            }
            Value::Object(root)
        })
}

struct FakeSecrets;
impl SecretSource for FakeSecrets {
    fn read(&self, fluid_path: &str) -> Result<String, String> {
        if fluid_path.ends_with("/s/k") {
            Ok("h1:8995".to_string())
        } else {
            Err(format!("cannot read secret file {fluid_path}"))
        }
    }
}

fn env() -> EnvSnapshot {
    EnvSnapshot::from_pairs([
        ("FLUID_DATASET_NAMESPACE", "ns"),
        ("FLUID_DATASET_NAME", "rt"),
        ("POD_NAME", "rt-master-0"),
        ("FLUID_RUNTIME_NAME", "rt"),
    ])
}

fn check(result: Result<curvine_fluid::config::Rendered, InputError>) -> Result<(), TestCaseError> {
    match result {
        Ok(rendered) => {
            let text = rendered.text();
            prop_assert!(
                text.parse::<toml_edit::DocumentMut>().is_ok(),
                "rendered text is not TOML:\n{}",
                text
            );
            // A rendered config is one the roles can start from: the typed model must
            // parse and validate it (input at fault is render's error, below).
            if let Err(e) = rendered.to_config() {
                prop_assert!(
                    false,
                    "render accepted the input but the model rejects the config: {}\n{}",
                    e,
                    text
                );
            }
        }
        Err(e) => {
            let line = e.to_string();
            prop_assert!(
                !e.what.is_empty() && !e.location.is_empty() && !e.fix.is_empty(),
                "incomplete error: {}",
                line
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn cache_render_never_panics(json in cache_config(), component in prop::sample::select(vec![Component::Master, Component::Worker, Component::Client])) {
        let env = env();
        let input = cache::CacheInput { component, env: &env, file: "runtime.json", json: &json, data_dir: "/d" };
        check(cache::render(&input, toml_edit::DocumentMut::new()))?;
    }

    #[test]
    fn cache_render_of_arbitrary_json_never_panics(json in any_json()) {
        let env = env();
        let input = cache::CacheInput { component: Component::Worker, env: &env, file: "runtime.json", json: &json, data_dir: "/d" };
        check(cache::render(&input, toml_edit::DocumentMut::new()))?;
    }

    #[test]
    fn thin_render_never_panics(json in thin_config()) {
        let env = env();
        let input = thin::ThinInput { env: &env, file: "config.json", json: &json, secrets: &FakeSecrets };
        check(thin::render(&input, toml_edit::DocumentMut::new()))?;
    }

    #[test]
    fn thin_render_of_arbitrary_json_never_panics(json in any_json()) {
        let env = env();
        let input = thin::ThinInput { env: &env, file: "config.json", json: &json, secrets: &FakeSecrets };
        check(thin::render(&input, toml_edit::DocumentMut::new()))?;
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in ".{0,64}") {
        let _ = curvine_fluid::config::fluid_json::parse("f", &text, true);
        let _ = ClusterConfig::from_toml(&text, "f");
    }
}
