//! Every case of `../shared/fluid-fixtures`, rendered by the built binary and compared
//! with the expected results written in the case's `.md`.

use crate::harness::*;

const C01: &str = "c01-emptydir-1m1w";
const C02: &str = "c02-hostpath-3m3w";
const C03: &str = "c03-process-memory";
const C04: &str = "c04-legacy-topology";
const C05: &str = "c05-s3-ufs";
const C06: &str = "c06-no-headless-service";

/// Every fixture in the shared folder has a test here.
#[test]
fn every_fixture_is_covered() {
    let covered = [
        C01,
        C02,
        C03,
        C04,
        C05,
        C06,
        "t01-single-endpoint",
        "t02-three-endpoints-mixed-separators",
        "t03-advanced-options",
        "t04-encrypt-option-file",
        "t10-invalid-two-mounts",
        "t11-invalid-endpoint-missing-port",
        "t12-invalid-port-70000",
        "t13-invalid-managed-fuse-mnt-path",
        "t14-invalid-empty-file",
        "t15-invalid-string-wrapped-json",
        "t16-invalid-missing-master-endpoints",
    ];
    for kind in ["cache", "thin"] {
        for entry in std::fs::read_dir(fixtures_dir().join(kind)).expect("fixtures") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if let Some(stem) = name.strip_suffix(".json") {
                assert!(covered.contains(&stem), "fixture {kind}/{stem} has no test");
            }
        }
    }
}

const C01_MASTER0: &str = "curvine-demo-master-0.svc-curvine-demo-master.default.svc.cluster.local";

#[test]
fn c01_same_file_in_every_pod_but_the_identity() {
    for suffix in ["", ".worker", ".client"] {
        let doc = Pod::new("cache", C01, suffix).render();
        assert_eq!(str_at(&doc, "cluster_id"), "curvine-demo");
        assert!(bool_at(&doc, "format_master"));
        assert!(bool_at(&doc, "format_worker"));
        assert_eq!(int_at(&doc, "master.rpc_port"), 8995);
        assert_eq!(int_at(&doc, "master.web_port"), 9000);
        assert_eq!(str_at(&doc, "master.meta_dir"), "/app/curvine/data/meta");
        assert_eq!(int_at(&doc, "journal.rpc_port"), 8996);
        assert_eq!(
            str_at(&doc, "journal.journal_dir"),
            "/app/curvine/data/journal"
        );
        assert_eq!(
            addrs_at(&doc, "journal.journal_addrs"),
            vec![(1, C01_MASTER0.to_string(), 8996)]
        );
        assert_eq!(int_at(&doc, "worker.rpc_port"), 8997);
        assert_eq!(int_at(&doc, "worker.web_port"), 9001);
        assert_eq!(str_at(&doc, "worker.dir_reserved"), "0");
        assert_eq!(
            strings_at(&doc, "worker.data_dir"),
            vec!["[HDD:5GB]/etc/fluid/mount/tiered-store/level-0-index-0-emptydir"]
        );
        assert_eq!(float_at(&doc, "worker.high_watermark"), 0.8);
        assert_eq!(float_at(&doc, "worker.low_watermark"), 0.5);
        assert_eq!(
            addrs_at(&doc, "client.master_addrs"),
            vec![(0, C01_MASTER0.to_string(), 8995)]
        );
        assert_eq!(
            str_at(&doc, "fuse.mnt_path"),
            "/runtime-mnt/cache/default/curvine-demo/cache-fuse"
        );
        // The client option `debug` is a FUSE setting.
        assert!(!bool_at(&doc, "fuse.debug"));
        assert!(!has(&doc, "client.debug"));
        match suffix {
            "" => {
                assert_eq!(str_at(&doc, "master.hostname"), C01_MASTER0);
                assert_eq!(str_at(&doc, "journal.hostname"), C01_MASTER0);
            }
            ".worker" => assert_eq!(
                str_at(&doc, "worker.hostname"),
                "curvine-demo-worker-0.svc-curvine-demo-worker.default.svc.cluster.local"
            ),
            _ => assert!(
                !has(&doc, "worker.hostname"),
                "no worker identity for the client"
            ),
        }
    }
}

#[test]
fn c02_three_masters_typed_options_and_hostpath_tiers() {
    let hosts: Vec<String> = (0..3)
        .map(|i| format!("cv-prod-master-{i}.svc-cv-prod-master.ai-team.svc.cluster.local"))
        .collect();
    for suffix in ["", ".worker", ".client"] {
        let doc = Pod::new("cache", C02, suffix).render();
        assert_eq!(str_at(&doc, "cluster_id"), "cv-prod");
        let peers: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (i as i64 + 1, h.clone(), 8996))
            .collect();
        assert_eq!(addrs_at(&doc, "journal.journal_addrs"), peers);
        let masters: Vec<_> = hosts.iter().map(|h| (0, h.clone(), 8995)).collect();
        assert_eq!(addrs_at(&doc, "client.master_addrs"), masters);
        assert_eq!(int_at(&doc, "master.worker_threads"), 64);
        assert_eq!(int_at(&doc, "worker.io_threads"), 32);
        assert!(bool_at(&doc, "master.audit_logging_enabled"));
        assert!(bool_at(&doc, "client.audit_logging_enabled"));
        assert_eq!(str_at(&doc, "worker.dir_reserved"), "10GB");
        assert_eq!(
            strings_at(&doc, "worker.data_dir"),
            vec![
                "[HDD:500GB]/etc/fluid/mount/tiered-store/level-0-index-0-hostpath",
                "[HDD:1TB]/etc/fluid/mount/tiered-store/level-0-index-1-hostpath"
            ]
        );
        assert_eq!(float_at(&doc, "worker.high_watermark"), 0.9);
        assert_eq!(float_at(&doc, "worker.low_watermark"), 0.7);
        if suffix.is_empty() {
            assert_eq!(str_at(&doc, "master.hostname"), hosts[1]);
            assert_eq!(str_at(&doc, "journal.hostname"), hosts[1]);
        }
        if suffix == ".worker" {
            assert_eq!(
                str_at(&doc, "worker.hostname"),
                "cv-prod-worker-2.svc-cv-prod-worker.ai-team.svc.cluster.local"
            );
        }
    }
}

#[test]
fn c03_process_memory_and_defaults() {
    for suffix in ["", ".worker", ".client"] {
        let doc = Pod::new("cache", C03, suffix).render();
        assert_eq!(
            strings_at(&doc, "worker.data_dir"),
            vec![
                "[MEM:4GB]/dev/shm",
                "[HDD:50GB]/etc/fluid/mount/tiered-store/level-1-index-0-emptydir"
            ]
        );
        assert_eq!(str_at(&doc, "cluster_id"), "cv-mem");
        for (path, port) in [
            ("master.rpc_port", 8995),
            ("journal.rpc_port", 8996),
            ("worker.rpc_port", 8997),
            ("master.web_port", 9000),
            ("worker.web_port", 9001),
        ] {
            assert_eq!(int_at(&doc, path), port, "{path}");
        }
        assert_eq!(
            addrs_at(&doc, "journal.journal_addrs"),
            vec![(
                1,
                "cv-mem-master-0.svc-cv-mem-master.default.svc.cluster.local".to_string(),
                8996
            )]
        );
        assert_eq!(str_at(&doc, "master.meta_dir"), "/app/curvine/data/meta");
        assert_eq!(
            str_at(&doc, "journal.journal_dir"),
            "/app/curvine/data/journal"
        );
        // The lowest thresholds of the two levels.
        assert_eq!(float_at(&doc, "worker.high_watermark"), 0.9);
        assert_eq!(float_at(&doc, "worker.low_watermark"), 0.6);
    }
}

#[test]
fn c04_legacy_topology_is_ordered_by_ordinal_and_uses_raft_port_everywhere() {
    for suffix in ["", ".worker", ".client"] {
        let doc = Pod::new("cache", C04, suffix).render();
        let peers: Vec<_> = (0..3)
            .map(|i| (i + 1, format!("curvine-legacy-master-{i}.svc-curvine-legacy-master.default.svc.cluster.local"), 9996))
            .collect();
        assert_eq!(addrs_at(&doc, "journal.journal_addrs"), peers);
        assert_eq!(int_at(&doc, "journal.rpc_port"), 9996);
        assert!(!has(&doc, "master.raft_port"));
        assert_eq!(
            strings_at(&doc, "worker.data_dir"),
            vec!["[MEM:2GB]/dev/shm/curvine", "[HDD:20GB]/cache-data"]
        );
        assert_eq!(
            str_at(&doc, "fuse.mnt_path"),
            "/runtime-mnt/cache/default/curvine-legacy/cache-fuse"
        );
        assert!(!bool_at(&doc, "format_master"));
    }
    let doc = Pod::new("cache", C04, ".worker").render();
    assert_eq!(
        str_at(&doc, "worker.hostname"),
        "curvine-legacy-worker-0.svc-curvine-legacy-worker.default.svc.cluster.local"
    );
}

#[test]
fn c05_mounts_do_not_leak_into_the_config() {
    for suffix in ["", ".worker", ".client"] {
        let pod = Pod::new("cache", C05, suffix);
        let out = pod.run(&["render"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("s3://") && !text.contains("/etc/fluid/secrets"),
            "{text}"
        );
        let doc: toml_edit::DocumentMut = text.parse().expect("toml");
        assert_eq!(str_at(&doc, "cluster_id"), "imagenet-cache");
        assert_eq!(int_at(&doc, "master.rpc_port"), 8995);
        assert_eq!(
            strings_at(&doc, "worker.data_dir"),
            vec!["[HDD:100GB]/etc/fluid/mount/tiered-store/level-0-index-0-emptydir"]
        );
    }
}

#[test]
fn c06_without_headless_services_every_pod_fails_clearly() {
    for suffix in ["", ".worker", ".client"] {
        let pod = Pod::new("cache", C06, suffix);
        for args in [&["render"][..], &[][..]] {
            let out = pod.run(args);
            assert_rejected(&out, "master.service.name is empty", pod.home.path());
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("topology.master.service.headless")
            );
        }
    }
}

const T01_HOST: &str = "curvine-demo-master-0.svc-curvine-demo-master.default.svc.cluster.local";

#[test]
fn t01_single_endpoint() {
    let doc = Pod::new("thin", "t01-single-endpoint", "").render();
    assert_eq!(str_at(&doc, "master.hostname"), T01_HOST);
    assert_eq!(int_at(&doc, "master.rpc_port"), 8995);
    assert_eq!(
        addrs_at(&doc, "client.master_addrs"),
        vec![(0, T01_HOST.to_string(), 8995)]
    );
    assert_eq!(
        str_at(&doc, "fuse.mnt_path"),
        "/runtime-mnt/thin/default/curvine-thin/thin-fuse"
    );
    assert_eq!(str_at(&doc, "fuse.fs_path"), "/data");
    assert!(
        bool_at(&doc, "fuse.readonly"),
        "ReadOnlyMany mounts read-only"
    );
    assert_eq!(str_at(&doc, "cluster_id"), "curvine-thin");
    assert!(!has(&doc, "journal.journal_addrs"));
}

/// Fluid accepts a Dataset of several mounts (unique names and paths); each shows as a
/// directory of the mount root (the fixture's note predates this).
#[test]
fn t10_two_mounts_show_as_two_directories() {
    let doc = Pod::new("thin", "t10-invalid-two-mounts", "").render();
    assert_eq!(str_at(&doc, "fuse.fs_path"), "/");
    let mounts = item(&doc, "fuse.mounts")
        .as_array()
        .expect("fuse.mounts is an array");
    let got: Vec<String> = mounts
        .iter()
        .map(|m| {
            let t = m.as_inline_table().expect("a table");
            format!(
                "{}={}",
                t.get("path").and_then(|v| v.as_str()).unwrap_or("?"),
                t.get("fs_path").and_then(|v| v.as_str()).unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(got, vec!["/a=/a", "/b=/b"]);
    assert!(bool_at(&doc, "fuse.readonly"), "ReadOnlyMany");
}

#[test]
fn t01_also_detected_from_the_argument_alone() {
    let pod = Pod::new("thin", "t01-single-endpoint", "").set("FLUID_RUNTIME_TYPE", "");
    let out = pod.run(&["detect", "fluid-thin-runtime"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mode: thin-runtime") && text.contains("argument \"fluid-thin-runtime\""),
        "{text}"
    );
}

#[test]
fn t02_mixed_separators() {
    let doc = Pod::new("thin", "t02-three-endpoints-mixed-separators", "").render();
    let masters: Vec<_> = (0..3)
        .map(|i| {
            (
                0,
                format!("cv-master-{i}.svc-cv-master.prod.svc.cluster.local"),
                8995,
            )
        })
        .collect();
    assert_eq!(addrs_at(&doc, "client.master_addrs"), masters);
    assert_eq!(str_at(&doc, "master.hostname"), masters[0].1);
    assert_eq!(int_at(&doc, "master.web_port"), 9000);
    assert_eq!(str_at(&doc, "fuse.fs_path"), "/");
    assert_eq!(
        str_at(&doc, "fuse.mnt_path"),
        "/runtime-mnt/thin/prod/cv-thin/thin-fuse"
    );
    assert!(!has(&doc, "fuse.readonly"));
}

#[test]
fn t03_advanced_options_land_once_and_typed() {
    let pod = Pod::new("thin", "t03-advanced-options", "");
    let out = pod.run(&["render"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"prefetch\" is not known"),
        "unknown option warned: {stderr}"
    );
    let doc: toml_edit::DocumentMut = String::from_utf8_lossy(&out.stdout).parse().expect("toml");
    assert_eq!(str_at(&doc, "client.block_size_str"), "128MB");
    assert!(!bool_at(&doc, "client.enable_unified_fs"));
    assert_eq!(int_at(&doc, "client.read_parallel"), 4);
    assert_eq!(int_at(&doc, "fuse.entry_timeout_ms"), 300000);
    assert_eq!(str_at(&doc, "fuse.meta_cache_timeout"), "12h");
    assert_eq!(str_at(&doc, "fuse.node_cache_timeout"), "24h");
    assert!(bool_at(&doc, "fuse.write_back_cache"));
    assert_eq!(int_at(&doc, "fuse.io_threads"), 48);
    assert_eq!(int_at(&doc, "fuse.worker_threads"), 96);
    assert_eq!(int_at(&doc, "fuse.mnt_number"), 2);
    assert_eq!(int_at(&doc, "fuse.tasks_per_mnt"), 2);
    assert!(!bool_at(&doc, "fuse.direct_io"));
    assert_eq!(int_at(&doc, "fuse.max_background"), 256);
    assert_eq!(int_at(&doc, "fuse.congestion_threshold"), 192);
    assert_eq!(
        strings_at(&doc, "fuse.fuse_opts"),
        vec!["attr_timeout=7200"]
    );
    assert_eq!(addrs_at(&doc, "client.master_addrs").len(), 2);
    assert_eq!(int_at(&doc, "master.web_port"), 9000);
    assert_eq!(str_at(&doc, "fuse.fs_path"), "/starrocks/datacache");
    assert!(!has(&doc, "fuse.enable_write_back") && !has(&doc, "fuse.meta_cache_ttl"));
}

#[test]
fn t04_secret_endpoints_are_read_from_the_file_and_never_logged() {
    let secrets = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(secrets.path().join("curvine-endpoints")).expect("mkdir");
    std::fs::write(
        secrets.path().join("curvine-endpoints/endpoints"),
        "sec-master-0.example:8995,sec-master-1.example:8995\n",
    )
    .expect("write");
    let pod = Pod::new("thin", "t04-encrypt-option-file", "")
        .set("CURVINE_SECRETS_DIR", &secrets.path().display().to_string());
    let hosts = |doc: &toml_edit::DocumentMut| -> Vec<String> {
        addrs_at(doc, "client.master_addrs")
            .into_iter()
            .map(|(_, h, _)| h)
            .collect()
    };
    // `render` masks what came from the secret file; `--show-secrets` prints it.
    assert_eq!(hosts(&pod.render()), vec!["<redacted>", "<redacted>"]);
    let shown = pod.run(&["render", "--show-secrets"]);
    assert!(shown.status.success());
    let doc: toml_edit::DocumentMut = String::from_utf8_lossy(&shown.stdout).parse().unwrap();
    assert_eq!(
        hosts(&doc),
        vec!["sec-master-0.example", "sec-master-1.example"]
    );

    // Running the role writes the file and logs the config with the secret masked.
    let (_, stdout) = pod.run_client(&[]);
    assert!(stdout.contains("<redacted>"), "{stdout}");
    assert!(
        !stdout.contains("sec-master-0.example"),
        "secret value logged: {stdout}"
    );
    // The written file holds the real values, owner-only.
    let written = std::fs::read_to_string(pod.config_file()).expect("config written");
    assert!(written.contains("sec-master-0.example"));

    // Without the secret mounted, the error names the file, not a literal endpoint.
    let pod =
        Pod::new("thin", "t04-encrypt-option-file", "").set("CURVINE_SECRETS_DIR", "/nonexistent");
    assert_rejected(
        &pod.run(&["render"]),
        "cannot read secret file /etc/fluid/secrets/curvine-endpoints/endpoints",
        pod.home.path(),
    );
}

#[test]
fn invalid_thin_fixtures_exit_2_with_one_line_and_write_nothing() {
    let cases = [
        (
            "t11-invalid-endpoint-missing-port",
            "invalid master endpoint \"cv-master-1.svc-cv-master.default.svc.cluster.local\"",
        ),
        ("t12-invalid-port-70000", "from 1 to 65535"),
        (
            "t13-invalid-managed-fuse-mnt-path",
            "fuse.mnt_path is managed",
        ),
        ("t14-invalid-empty-file", "the config file is empty"),
        (
            "t15-invalid-string-wrapped-json",
            "must be a JSON object, got a JSON string",
        ),
        (
            "t16-invalid-missing-master-endpoints",
            "master endpoints not found",
        ),
    ];
    for (name, needle) in cases {
        let pod = Pod::new("thin", name, "");
        for args in [&["render"][..], &[][..], &["fluid-thin-runtime"][..]] {
            assert_rejected(&pod.run(args), needle, pod.home.path());
        }
    }
}
