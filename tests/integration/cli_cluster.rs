//! The CLI and the HTTP endpoints against a real cluster, and the `standalone` binary
//! started, used and stopped with SIGTERM.

use crate::cluster::{pattern, TestCluster};
use crate::harness::wait_for;
use crate::harness::{poll_until, run_binary, wait_until};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cli(conf: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--conf", conf.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    run_binary(&all, &[])
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plain HTTP/1.0 GET on loopback: (status code, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_get_with(port, path, "")
}

/// [`http_get`] with extra header lines (each ending in `\r\n`).
pub fn http_get_with(port: u16, path: &str, headers: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_round_trip_on_a_real_cluster() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, cluster.client_toml()).unwrap();
    let local = dir.path().join("in.bin");
    let data = pattern((9 << 20) + 7, 5);
    std::fs::write(&local, &data).unwrap();
    let conf2 = conf.clone();
    let local2 = local.clone();
    let back = dir.path().join("out.bin");
    let back2 = back.clone();
    tokio::task::spawn_blocking(move || {
        let conf = conf2.as_path();
        stdout(&cli(conf, &["fs", "mkdir", "-p", "/cli/sub"]));
        stdout(&cli(
            conf,
            &["fs", "put", local2.to_str().unwrap(), "/cli/sub/data.bin"],
        ));
        assert_eq!(stdout(&cli(conf, &["fs", "ls", "/cli/sub"])), "data.bin\n");
        assert!(stdout(&cli(conf, &["fs", "ls", "-l", "/cli"])).starts_with('d'));
        stdout(&cli(
            conf,
            &["fs", "get", "/cli/sub/data.bin", back2.to_str().unwrap()],
        ));
        let stat = stdout(&cli(conf, &["fs", "stat", "/cli/sub/data.bin"]));
        assert!(stat.contains(&format!("size: {}", (9 << 20) + 7)), "{stat}");
        stdout(&cli(
            conf,
            &["fs", "mv", "/cli/sub/data.bin", "/cli/moved.bin"],
        ));
        let du = stdout(&cli(conf, &["fs", "du", "/cli"]));
        assert!(
            du.starts_with(&format!("{}\t1 files\t2 directories", (9 << 20) + 7)),
            "{du}"
        );
        let missing = cli(conf, &["fs", "cat", "/cli/sub/data.bin"]);
        assert_eq!(missing.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file or directory"));
        let rm = cli(conf, &["fs", "rm", "/cli"]);
        assert!(String::from_utf8_lossy(&rm.stderr).contains("directory not empty"));
        stdout(&cli(conf, &["fs", "rm", "-r", "/cli"]));
        assert_eq!(stdout(&cli(conf, &["fs", "ls", "/"])), "");
    })
    .await
    .unwrap();
    assert!(
        std::fs::read(&back).unwrap() == data,
        "fs get returns what fs put stored"
    );
    // The report, in JSON, once the worker's heartbeat counted the bytes.
    let conf3 = conf.clone();
    wait_for("report shows usage", Duration::from_secs(10), || {
        let conf = conf3.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || cli(&conf, &["report", "--json"]))
                .await
                .unwrap();
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            doc["live_workers"] == 1
                && doc["masters"][0]["role"] == "leader"
                && doc["bytes_written"].as_u64().unwrap_or(0) >= (9 << 20)
        }
    })
    .await;
    let text = tokio::task::spawn_blocking(move || stdout(&cli(&conf, &["report"])))
        .await
        .unwrap();
    assert!(text.contains("workers:      1 live, 0 lost"), "{text}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_metrics_and_overview_endpoints() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let c = cluster.client();
    c.write_file("/m/f", &pattern(2 << 20, 3)).await.unwrap();
    c.read_file("/m/f").await.unwrap();
    let master_web = cluster.master_ports[0].web;
    let worker_web = cluster.worker_configs[0].worker.web_port;
    let (m, w) = tokio::task::spawn_blocking(move || {
        assert_eq!(http_get(master_web, "/healthz").0, 200);
        assert_eq!(http_get(worker_web, "/healthz").0, 200);
        (
            http_get(master_web, "/metrics").1,
            http_get(worker_web, "/metrics").1,
        )
    })
    .await
    .unwrap();
    for needle in [
        "curvine_master_raft_term 1",
        "curvine_master_raft_leader_id 1",
        "curvine_master_raft_role{role=\"leader\"} 1",
        "curvine_master_rpc_requests_total{method=\"create\",outcome=\"ok\"} 1",
        "curvine_master_rpc_duration_seconds_bucket",
        "curvine_master_raft_last_applied_index",
        "curvine_cluster_bytes{kind=\"capacity\"}",
    ] {
        assert!(m.contains(needle), "master metrics lack {needle}:\n{m}");
    }
    for needle in [
        "curvine_worker_bytes_total{direction=\"read\"} 2097152",
        "curvine_worker_bytes_total{direction=\"written\"} 2097152",
        "curvine_worker_used_bytes",
        "curvine_worker_blocks_evicted_total 0",
        "curvine_worker_rpc_requests_total{method=\"read_block\",outcome=\"ok\"}",
    ] {
        assert!(w.contains(needle), "worker metrics lack {needle}:\n{w}");
    }
    let overview = tokio::task::spawn_blocking(move || http_get(master_web, "/api/overview").1)
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&overview).unwrap();
    assert_eq!(doc["role"], "leader");
    assert_eq!(doc["files"], 1);
    assert_eq!(doc["workers"][0]["state"], "live");
    cluster.shutdown().await;
}

/// The web ports of a loopback cluster config (master, worker).
pub(crate) struct Ports {
    mweb: u16,
    wweb: u16,
}

/// Writes a single-node loopback config on free ports with data under `data`.
pub(crate) fn loopback_conf(conf: &std::path::Path, data: &std::path::Path) -> Ports {
    let (rpc, journal, mweb, wrpc, wweb) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    std::fs::write(
        conf,
        format!(
            "[master]\nhostname = \"127.0.0.1\"\nrpc_port = {rpc}\nweb_port = {mweb}\nmeta_dir = \"{d}/meta\"\n\
             heartbeat_interval = \"200ms\"\n\
             [journal]\nhostname = \"127.0.0.1\"\nrpc_port = {journal}\njournal_dir = \"{d}/journal\"\n\
             journal_addrs = [{{ id = 1, hostname = \"127.0.0.1\", port = {journal} }}]\n\
             [worker]\nhostname = \"127.0.0.1\"\nrpc_port = {wrpc}\nweb_port = {wweb}\ndata_dir = [\"[DISK]{d}/worker\"]\n\
             [client]\nmaster_addrs = [{{ hostname = \"127.0.0.1\", port = {rpc} }}]\n",
            d = data.display()
        ),
    )
    .unwrap();
    Ports { mweb, wweb }
}

pub(crate) use crate::ports::free_port;

#[test]
fn standalone_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    let Ports { mweb, wweb, .. } = loopback_conf(&conf, &dir.path().join("data"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
        .args(["--conf", conf.to_str().unwrap(), "standalone"])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Healthy master (a leader is known) and worker (registered).
    let up = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert!(
        wait_until(Duration::from_secs(20), || {
            up(mweb)
                && up(wweb)
                && http_get(mweb, "/healthz").0 == 200
                && http_get(wweb, "/healthz").0 == 200
        }),
        "standalone did not become healthy within 20 s"
    );
    let ready = started.elapsed();
    eprintln!("standalone healthy after {ready:?}");
    let out = cli(&conf, &["fs", "put", conf.to_str().unwrap(), "/conf.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        cli(&conf, &["fs", "cat", "/conf.toml"]).stdout,
        std::fs::read(&conf).unwrap()
    );

    let code = terminate(&mut child);
    assert!(code.success(), "exit status {code:?}");
    let logs = stdout_of(&mut child);
    assert!(
        logs.contains("stopping standalone cluster") && logs.contains("master stopped"),
        "{logs}"
    );
    assert!(
        logs.lines().all(|l| !l.trim().is_empty()),
        "one line per event"
    );
}

/// Everything a child we started wrote on stdout (call after it exited).
fn stdout_of(child: &mut std::process::Child) -> String {
    let mut logs = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut logs).unwrap();
    }
    logs
}

/// Sends SIGTERM to a child we started and returns its exit status (bounded wait).
pub(crate) fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    poll_until(Duration::from_secs(10), || child.try_wait().unwrap())
        .expect("no exit within 10 s of SIGTERM")
}

#[test]
fn master_and_worker_processes_from_one_config_serve_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let conf = home.join("conf/curvine-cluster.toml");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    let Ports { wweb, .. } = loopback_conf(&conf, dir.path());
    let start = |role: &str| {
        Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
            .args([role, "start"])
            .env_clear()
            .env("CURVINE_HOME", &home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut master = start("master");
    let mut worker = start("worker");
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", wweb)).is_ok()
                && http_get(wweb, "/healthz").0 == 200
        }),
        "worker never registered"
    );
    let local = dir.path().join("x");
    std::fs::write(&local, pattern(3 << 20, 9)).unwrap();
    let put = cli(&conf, &["fs", "put", local.to_str().unwrap(), "/x"]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert!(cli(&conf, &["fs", "cat", "/x"]).stdout == pattern(3 << 20, 9));
    assert!(terminate(&mut worker).success());
    assert!(terminate(&mut master).success());
    let logs = stdout_of(&mut master);
    assert!(
        logs.contains("mode=standalone")
            && logs.contains("master serving")
            && logs.contains("master stopped"),
        "{logs}"
    );
}
