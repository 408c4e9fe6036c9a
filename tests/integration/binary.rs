//! The binary's behaviour around the renderer: writing the file, the base file, `--conf`,
//! and `detect`.

use crate::harness::*;

#[test]
fn running_a_role_writes_the_rendered_file_first() {
    // The client waits for masters that do not exist here; SIGTERM stops it cleanly.
    let pod = Pod::new("cache", "c01-emptydir-1m1w", ".client");
    let rendered = pod.run(&["render"]).stdout;
    let (status, stdout) = pod.run_client(&["client", "start"]);
    assert!(status.success(), "exit {status}: {stdout}");
    assert!(
        stdout.contains("looking up the mounted directory"),
        "no wait logged: {stdout}"
    );
    let written = std::fs::read(pod.config_file()).expect("config written");
    assert_eq!(written, rendered, "the file is what render prints");
    assert!(
        stdout.contains("detected mode") && stdout.contains("mode=cache-runtime"),
        "{stdout}"
    );
    assert!(
        stdout.contains("config [journal]"),
        "the rendered config is logged: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .all(|l| l.contains(" INFO ") || l.contains(" WARN ")),
        "one line per event: {stdout}"
    );
}

#[test]
fn a_base_file_keeps_its_comments_and_unmanaged_keys() {
    let pod = Pod::new("cache", "c01-emptydir-1m1w", ".client");
    std::fs::create_dir_all(pod.config_file().parent().expect("parent")).expect("mkdir");
    std::fs::write(
        pod.config_file(),
        "# my cluster\nnet_interface = \"\"\n[worker]\n# fast disks\nenable_splice = false # keep\nrpc_port = 7777\nio_threads = 7\n[transfer]\nenabled = false\n",
    )
    .expect("write base");
    let (status, log) = pod.run_client(&[]);
    assert!(status.success(), "{log}");
    let text = std::fs::read_to_string(pod.config_file()).expect("read");
    for kept in [
        "# my cluster",
        "# fast disks",
        "enable_splice = false # keep",
        "[transfer]",
        "io_threads = 7",
    ] {
        assert!(text.contains(kept), "{kept:?} lost:\n{text}");
    }
    assert!(
        text.contains("mnt_path = \"/runtime-mnt/cache/default/curvine-demo/cache-fuse\""),
        "{text}"
    );
    assert!(
        text.contains("rpc_port = 8997") && !text.contains("7777"),
        "Fluid's options beat the base file:\n{text}"
    );
    // Rendering again on top of its own output changes nothing.
    let (status, log) = pod.run_client(&[]);
    assert!(status.success(), "{log}");
    assert_eq!(
        std::fs::read_to_string(pod.config_file()).expect("read"),
        text
    );
}

#[test]
fn an_invalid_base_file_is_an_input_error_and_is_left_alone() {
    let pod = Pod::new("cache", "c01-emptydir-1m1w", "");
    std::fs::create_dir_all(pod.config_file().parent().expect("parent")).expect("mkdir");
    std::fs::write(pod.config_file(), "[master\n").expect("write");
    let out = pod.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the base config is not valid TOML"));
    assert_eq!(
        std::fs::read_to_string(pod.config_file()).expect("read"),
        "[master\n"
    );
}

#[test]
fn conf_flag_uses_the_file_as_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("c.toml");
    std::fs::write(
        &conf,
        "[master]\nhostname = \"m\"\n[[client.master_addrs]]\nhostname = \"m\"\nport = 8995\n",
    )
    .expect("write");
    let env = vec![(
        "CURVINE_HOME".to_string(),
        dir.path().join("home").display().to_string(),
    )];
    let out = run_binary(&["--conf", conf.to_str().expect("utf-8"), "render"], &env);
    assert!(out.status.success());
    assert_eq!(out.stdout, std::fs::read(&conf).expect("read"));
    let pod = Pod::with_env(env.clone());
    let (status, log) = pod.run_client(&["--conf", conf.to_str().expect("utf-8"), "client"]);
    assert!(status.success(), "{log}");
    assert!(
        !dir.path().join("home").exists(),
        "nothing rendered or written with --conf"
    );

    std::fs::write(&conf, "[worker]\ndata_dir = [\"[NVME]/x\"]\n").expect("write");
    let out = run_binary(&["--conf", conf.to_str().expect("utf-8"), "worker"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker.data_dir"));
}

#[test]
fn detect_reports_mode_component_and_reason() {
    let pod = Pod::new("cache", "c02-hostpath-3m3w", ".worker");
    let out = pod.run(&["detect"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mode: cache-runtime\ncomponent: worker\nmode decided by: FLUID_RUNTIME_COMPONENT_TYPE=worker\ncomponent decided by: FLUID_RUNTIME_COMPONENT_TYPE=worker\n"
    );
}

#[test]
fn argument_and_component_type_must_agree() {
    let pod = Pod::new("cache", "c01-emptydir-1m1w", ".worker");
    assert_rejected(
        &pod.run(&["master"]),
        "the argument says master but FLUID_RUNTIME_COMPONENT_TYPE says worker",
        pod.home.path(),
    );
}

#[test]
fn cache_mode_errors_name_the_json_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            r#"{"master":{"replicas":"3","service":{"name":"s"}}}"#,
            "JSON path master.replicas",
        ),
        (
            r#"{"master":{"name":"rt-master","replicas":1,"service":{"name":"s"},"options":{"rpc_port":"99999"}},"targetPath":"/t"}"#,
            "JSON path master.options.rpc_port",
        ),
        (
            r#"{"master":{"name":"rt-master","replicas":1,"service":{"name":"s"},"options":{"worker_threads":"many"}},"targetPath":"/t"}"#,
            "\"many\" is not a whole number",
        ),
        (
            r#"{"master":{"name":"rt-master","replicas":0,"service":{"name":"s"}},"targetPath":"/t"}"#,
            "master.replicas is missing or 0",
        ),
        (
            r#"{"master":{"name":"rt-master","replicas":1,"service":{"name":"s"},"options":{"hostname":"x"}},"targetPath":"/t"}"#,
            "which curvine-fluid manages",
        ),
        (
            r#"{"master":{"name":"rt-master","replicas":1,"service":{"name":"s"}},"worker":{"service":{"name":"w"},"tieredStoreLevels":[{"mountPaths":["/a"],"mediumType":"HDD","quotas":["5Gb"]}]},"targetPath":"/t"}"#,
            "worker.tieredStoreLevels[0].quotas[0]",
        ),
        (
            r#"{"master":{"name":"rt-master","replicas":1,"service":{"name":"s"}},"worker":{"service":{"name":"w"},"tieredStoreLevels":[{"mountPaths":["/a"],"quotas":["5Gi"],"high":"0.5","low":"0.9"}]},"targetPath":"/t"}"#,
            "low 0.9 is above high 0.5",
        ),
        ("{\"mounts\": [", "invalid JSON"),
        ("", "the config file is empty"),
        ("[]", "got an array"),
    ];
    for (json, needle) in cases {
        let file = dir.path().join("runtime.json");
        std::fs::write(&file, json).expect("write");
        let home = dir.path().join("home");
        let env: Vec<(String, String)> = [
            ("FLUID_RUNTIME_COMPONENT_TYPE", "master"),
            ("FLUID_RUNTIME_CONFIG_PATH", file.to_str().expect("utf-8")),
            ("FLUID_DATASET_NAMESPACE", "ns"),
            ("FLUID_DATASET_NAME", "rt"),
            ("POD_NAME", "rt-master-0"),
            ("CURVINE_HOME", home.to_str().expect("utf-8")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_rejected(&run_binary(&[], &env), needle, &home);
    }
}

#[test]
fn a_master_pod_outside_the_peer_list_is_an_error_naming_both() {
    let pod = Pod::new("cache", "c02-hostpath-3m3w", "").set("POD_NAME", "cv-prod-master-7");
    assert_rejected(
        &pod.run(&[]),
        "pod cv-prod-master-7 (from POD_NAME) is not among the masters [cv-prod-master-0, cv-prod-master-1, cv-prod-master-2]",
        pod.home.path(),
    );
}

#[test]
fn journal_ids_stay_ordinal_plus_one_past_ten_masters_and_honour_the_cluster_domain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("runtime.json");
    std::fs::write(
        &file,
        r#"{"master":{"name":"big-master","replicas":12,"service":{"name":"svc-big-master"},"options":{"journal_port":"7000","rpc_port":"7001"}},"targetPath":"/t"}"#,
    )
    .expect("write");
    let env: Vec<(String, String)> = [
        ("FLUID_RUNTIME_COMPONENT_TYPE", "master"),
        ("FLUID_RUNTIME_CONFIG_PATH", file.to_str().expect("utf-8")),
        ("FLUID_DATASET_NAMESPACE", "ns"),
        ("HOSTNAME", "big-master-11"),
        ("CURVINE_CLUSTER_DOMAIN", "corp.example"),
        (
            "CURVINE_HOME",
            dir.path().join("home").to_str().expect("utf-8"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let out = run_binary(&["render"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: toml_edit::DocumentMut = String::from_utf8_lossy(&out.stdout).parse().expect("toml");
    let peers = addrs_at(&doc, "journal.journal_addrs");
    assert_eq!(peers.len(), 12);
    for (i, (id, host, port)) in peers.iter().enumerate() {
        assert_eq!(*id, i as i64 + 1);
        assert_eq!(
            host,
            &format!("big-master-{i}.svc-big-master.ns.svc.corp.example")
        );
        assert_eq!(*port, 7000);
    }
    assert_eq!(int_at(&doc, "journal.rpc_port"), 7000);
    assert_eq!(
        str_at(&doc, "master.hostname"),
        "big-master-11.svc-big-master.ns.svc.corp.example"
    );
    assert!(addrs_at(&doc, "client.master_addrs")
        .iter()
        .all(|(_, _, p)| *p == 7001));
}

#[test]
fn standalone_without_a_role_is_an_input_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = vec![("CURVINE_HOME".to_string(), dir.path().display().to_string())];
    let out = run_binary(&[], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot tell which component to run in standalone mode"));
}

#[test]
fn standalone_renders_a_local_single_node_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = vec![("CURVINE_HOME".to_string(), dir.path().display().to_string())];
    let out = run_binary(&["render", "master"], &env);
    assert!(out.status.success());
    let doc: toml_edit::DocumentMut = String::from_utf8_lossy(&out.stdout).parse().expect("toml");
    assert_eq!(
        addrs_at(&doc, "journal.journal_addrs"),
        vec![(1, "127.0.0.1".to_string(), 8996)]
    );
    assert_eq!(
        str_at(&doc, "master.meta_dir"),
        format!("{}/data/meta", dir.path().display())
    );
}
