//! Fluid's execution entries and DataLoad, run as Fluid runs them: the binary with the
//! pod's environment against a real cluster, stdout parsed as Fluid parses it.

use crate::cluster::{pattern, TestCluster};
use crate::harness::{run_binary, wait_for};
use std::path::Path;
use std::process::Output;

/// Runs the binary with `--conf` and a pod-like environment.
pub(crate) fn run(
    conf: &Path,
    runtime_json: &Path,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Output {
    let mut all = vec!["--conf", conf.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let mut env: Vec<(String, String)> = vec![
        (
            "FLUID_RUNTIME_CONFIG_PATH".into(),
            runtime_json.display().to_string(),
        ),
        ("FLUID_RUNTIME_COMPONENT_TYPE".into(), "master".into()),
        ("HOSTNAME".into(), "curvine-demo-master-0".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    run_binary(&all, &env)
}

/// Exactly one JSON document on stdout, as Fluid requires (it trims whitespace).
pub(crate) fn one_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {text:?}"))
}

pub(crate) fn mounted(doc: &serde_json::Value) -> Vec<String> {
    let mut paths: Vec<String> = doc["mounted"]
        .as_array()
        .expect("mounted is an array")
        .iter()
        .map(|p| p.as_str().expect("a string").to_string())
        .collect();
    paths.sort();
    paths
}

fn runtime_config(mounts: &str) -> String {
    format!(
        r#"{{"mounts":[{mounts}],"accessModes":["ReadWriteMany"],"targetPath":"/runtime-mnt/cache/default/curvine-demo/cache-fuse","master":{{"enabled":true,"name":"curvine-demo-master","replicas":1,"service":{{"name":"svc-curvine-demo-master"}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mount_ufs_reconciles_and_report_summary_reports() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, cluster.client_toml()).unwrap();
    let json = dir.path().join("runtime.json");
    let client = cluster.client();

    // Data written before the mount, where the mount's source will be.
    client.mkdir("/data", true).await.unwrap();
    let data = pattern((3 << 20) + 5, 9);
    client.write_file("/data/f.bin", &data).await.unwrap();

    let curvine = r#"{"mountPoint":"curvine:///data","name":"curvine","path":"/curvine"}"#;
    let warehouse = r#"{"mountPoint":"curvine:///warehouse","name":"warehouse"}"#;
    let fixture = std::fs::read_to_string(
        crate::harness::fixtures_dir().join("cache/c01-emptydir-1m1w.json"),
    )
    .unwrap();
    std::fs::write(&json, &fixture).unwrap();
    let (conf2, json2) = (conf.clone(), json.clone());
    let outs = tokio::task::spawn_blocking(move || {
        let first = run(&conf2, &json2, &["mount-ufs"], &[]);
        let again = run(&conf2, &json2, &["mount-ufs"], &[]);
        std::fs::write(&json2, runtime_config(&format!("{curvine},{warehouse}"))).unwrap();
        let added = run(&conf2, &json2, &["mount-ufs"], &[]);
        std::fs::write(&json2, runtime_config(warehouse)).unwrap();
        let removed = run(&conf2, &json2, &["mount-ufs"], &[]);
        (first, again, added, removed)
    })
    .await
    .unwrap();
    assert_eq!(mounted(&one_json(&outs.0)), ["/curvine"]);
    assert_eq!(
        String::from_utf8_lossy(&outs.0.stdout),
        "{\"mounted\":[\"/curvine\"]}\n"
    );
    assert_eq!(mounted(&one_json(&outs.1)), ["/curvine"]);
    assert_eq!(mounted(&one_json(&outs.2)), ["/curvine", "/warehouse"]);
    assert_eq!(mounted(&one_json(&outs.3)), ["/warehouse"]);
    // Unmounting dropped the link, never the data.
    assert!(client.stat("/curvine").await.is_err());
    assert_eq!(client.read_file("/data/f.bin").await.unwrap(), data);
    assert!(client.stat("/warehouse").await.is_ok());

    // Back to c01: /curvine is a link to the data.
    std::fs::write(&json, &fixture).unwrap();
    let (conf2, json2) = (conf.clone(), json.clone());
    let out = tokio::task::spawn_blocking(move || run(&conf2, &json2, &["mount-ufs"], &[]))
        .await
        .unwrap();
    assert_eq!(mounted(&one_json(&out)), ["/curvine"]);
    let link = client.stat("/curvine").await.unwrap();
    assert_eq!(link.symlink_target, "data");

    // An under storage whose secret files are not mounted here: one error line, nothing
    // on stdout, table unchanged.
    let s3 = std::fs::read_to_string(crate::harness::fixtures_dir().join("cache/c05-s3-ufs.json"))
        .unwrap();
    std::fs::write(&json, s3).unwrap();
    let (conf2, json2) = (conf.clone(), json.clone());
    let out = tokio::task::spawn_blocking(move || run(&conf2, &json2, &["mount-ufs"], &[]))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret file") && err.contains("mounts[0]"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(client.mounts().await.unwrap().mounts.len(), 1);

    // report-summary: four strings; all data cached; reads counted as hits.
    wait_for(
        "a heartbeat to carry the worker's read counters",
        std::time::Duration::from_secs(15),
        || {
            let client = client.clone();
            async move { client.report().await.is_ok_and(|r| r.reads_hit > 0) }
        },
    )
    .await;
    let (conf2, json2) = (conf.clone(), json.clone());
    let out = tokio::task::spawn_blocking(move || run(&conf2, &json2, &["report-summary"], &[]))
        .await
        .unwrap();
    let doc = one_json(&out);
    let fields = doc.as_object().unwrap();
    assert_eq!(fields.len(), 4, "{doc}");
    for key in [
        "cached",
        "cachedPercentage",
        "cacheCapacity",
        "cacheHitRatio",
    ] {
        assert!(fields[key].is_string(), "{key} is not a string: {doc}");
    }
    assert_eq!(doc["cached"], "3.00MiB");
    assert_eq!(doc["cachedPercentage"], "100.0%");
    assert_eq!(doc["cacheHitRatio"], "100.0%");
    assert!(
        doc["cacheCapacity"].as_str().unwrap().ends_with("iB"),
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dataload_reads_every_file_and_fails_on_a_missing_path() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let client = cluster.client();
    client.mkdir("/data/train/a", true).await.unwrap();
    client
        .write_file("/data/train/a/1.bin", &pattern(5 << 20, 1))
        .await
        .unwrap();
    client
        .write_file("/data/train/2.bin", &pattern(1000, 2))
        .await
        .unwrap();
    client
        .write_file("/data/val.bin", &pattern(10, 3))
        .await
        .unwrap();
    client
        .set_mounts(vec![curvine_fluid::rpc::pb::master::MountEntry {
            path: "/curvine".into(),
            source: "curvine:///data".into(),
            target: "/data".into(),
            read_only: false,
            ufs: String::new(),
        }])
        .await
        .unwrap();
    let endpoints = cluster
        .base
        .client
        .master_addrs
        .iter()
        .map(|a| format!("{}:{}", a.hostname, a.port))
        .collect::<Vec<_>>()
        .join(",");
    // Exactly a DataLoad pod's environment (no runtime config file), plus the masters.
    let pod = move |paths: &str| -> Vec<(String, String)> {
        [
            ("FLUID_DATALOAD_METADATA", "false"),
            ("FLUID_DATALOAD_DATA_PATH", paths),
            ("FLUID_DATALOAD_PATH_REPLICAS", "1:2"),
            (
                "FLUID_RUNTIME_CONFIG_PATH",
                "/etc/fluid/config/runtime.json",
            ),
            ("HOSTNAME", "curvine-demo-load-loader-job-x7k2m"),
            ("CURVINE_MASTER_ENDPOINTS", endpoints.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let (ok, bad) = tokio::task::spawn_blocking(move || {
        (
            run_binary(&["load"], &pod("/curvine/train:/curvine/val.bin")),
            run_binary(&["load"], &pod("/curvine/train:/curvine/nope")),
        )
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for file in ["/data/train/a/1.bin", "/data/train/2.bin", "/data/val.bin"] {
        assert!(
            log.lines()
                .any(|l| l.contains("loaded") && l.contains(file)),
            "{file} not logged: {log}"
        );
    }
    assert!(log.contains("files=3"), "{log}");
    assert!(log.contains("one copy of each block"), "{log}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("/curvine/nope"), "{err}");

    // Without endpoints the pod name names the dataset; here no such service resolves.
    let out = tokio::task::spawn_blocking(|| {
        run_binary(
            &["load"],
            &[
                ("FLUID_DATALOAD_DATA_PATH".into(), "/".into()),
                (
                    "HOSTNAME".into(),
                    "nosuchdataset-load-loader-job-x7k2m".into(),
                ),
                ("CURVINE_CLUSTER_DOMAIN".into(), "invalid".into()),
            ],
        )
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("svc-<dataset>-master") && err.contains("nosuchdataset-load"),
        "{err}"
    );
}
