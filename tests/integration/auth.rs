//! The cluster token: a cluster started with `[security] token_file` serves clients that
//! send it, refuses (UNAUTHENTICATED, not retried) those that send none or a wrong one, on
//! the master and on a worker; a worker with a wrong token never registers; Raft between
//! three masters carries it; `/healthz` and `/metrics` need no token, `/api/overview` does.

use crate::cli_cluster::{http_get, http_get_with};
use crate::cluster::TestCluster;
use crate::harness::wait_for;
use curvine_fluid::client::Client;
use curvine_fluid::config::ClusterConfig;
use curvine_fluid::fs_error::FsError;
use curvine_fluid::rpc::auth::Token;
use curvine_fluid::rpc::pb::worker::worker_service_client::WorkerServiceClient;
use curvine_fluid::rpc::pb::worker::ReadBlockRequest;
use curvine_fluid::worker::{Worker, WorkerListeners};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A directory with the right token (`token`, with a trailing newline as a Secret
/// written by `kubectl create secret --from-file` may have) and a wrong one (`wrong`).
fn token_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let right = dir.path().join("token");
    let wrong = dir.path().join("wrong");
    std::fs::write(&right, "c0rrect-h0rse-battery\n").expect("write token");
    std::fs::write(&wrong, "not-the-token").expect("write wrong token");
    (dir, right, wrong)
}

fn with_token(base: &ClusterConfig, file: Option<&PathBuf>) -> ClusterConfig {
    let mut config = base.clone();
    config.security.token_file = file.map(|f| f.display().to_string()).unwrap_or_default();
    config
}

/// The error is the clear unauthenticated one, and came back without the retries an
/// unavailable master gets (the retry budget is 15 s).
fn assert_refused<T: std::fmt::Debug>(result: Result<T, FsError>, started: Instant) {
    match result {
        Err(FsError::Unauthenticated(why)) => {
            assert!(why.contains("[security] token_file"), "{why}");
            assert!(why.contains("CURVINE_TOKEN_FILE"), "{why}");
        }
        other => panic!("expected an unauthenticated error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused only after {:?}: retried as if transient",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_clients_with_the_token_are_served() {
    let (_tokens, right, wrong) = token_files();
    let cluster = TestCluster::start(1, 1, |c| {
        c.security.token_file = right.display().to_string();
    })
    .await;

    // With the token: metadata and data.
    let client = cluster.client();
    client.mkdir("/secure", true).await.expect("mkdir");
    let data = crate::cluster::pattern(300_000, 7);
    client.write_file("/secure/f", &data).await.expect("write");
    assert_eq!(client.read_file("/secure/f").await.expect("read"), data);

    // Without a token and with a wrong one: refused at once on metadata calls.
    for file in [None, Some(&wrong)] {
        let stranger = Client::new(&with_token(&cluster.base, file)).expect("client");
        let started = Instant::now();
        assert_refused(stranger.mkdir("/intruder", true).await, started);
        let started = Instant::now();
        assert_refused(stranger.read_file("/secure/f").await, started);
    }
    assert!(matches!(
        client.stat("/intruder").await,
        Err(FsError::NotFound(_))
    ));

    // A worker call straight to the block service, without the token and with a wrong one.
    let blocks = client.locate("/secure/f").await.expect("locate");
    let block = blocks.blocks.first().expect("a block");
    let worker = block.worker.as_ref().expect("block on a worker");
    let addr = format!("{}:{}", worker.hostname, worker.rpc_port);
    let req = ReadBlockRequest {
        block_id: block.id,
        offset: 0,
        length: 1024,
        ufs: None,
        block_token: block.block_token.clone(),
    };
    let channel =
        curvine_fluid::rpc::channel(&addr, Duration::from_secs(2), None, None).expect("ch");
    let denied = WorkerServiceClient::new(channel.clone())
        .read_range(req.clone())
        .await
        .expect_err("a worker read without the token");
    assert_eq!(denied.code(), tonic::Code::Unauthenticated, "{denied:?}");
    assert!(denied.message().contains("token_file"), "{denied:?}");
    let wrong_token = Token::read(&wrong, "test").expect("wrong token");
    let denied = WorkerServiceClient::new(curvine_fluid::rpc::auth::attach(
        channel.clone(),
        &Some(wrong_token),
    ))
    .read_block(req.clone())
    .await
    .expect_err("a worker stream with a wrong token");
    assert_eq!(denied.code(), tonic::Code::Unauthenticated, "{denied:?}");
    let right_token = Token::read(&right, "test").expect("token");
    let chunk = WorkerServiceClient::new(curvine_fluid::rpc::auth::attach(
        channel,
        &Some(right_token),
    ))
    .read_range(req)
    .await
    .expect("a worker read with the token")
    .into_inner();
    assert_eq!(&chunk.data[..], &data[..1024]);

    // A worker with a wrong token never registers.
    let rpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let web = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = with_token(&cluster.worker_configs[0], Some(&wrong));
    config.worker.rpc_port = rpc.local_addr().expect("addr").port();
    config.worker.web_port = web.local_addr().expect("addr").port();
    config.worker.data_dir = vec![format!(
        "[DISK]{}",
        cluster.dir.path().join("intruder").display()
    )];
    let intruder = Worker::start(&config, WorkerListeners { rpc, web })
        .await
        .expect("worker starts");
    // Twenty heartbeat intervals.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(intruder.id(), 0, "a worker with a wrong token registered");
    let report = client.report().await.expect("report");
    assert_eq!(report.workers.len(), 1, "{:?}", report.workers);
    intruder.shutdown().await;

    // Health and metrics need no token.
    let web = cluster.master_ports[0].web;
    let (code, _) = tokio::task::spawn_blocking(move || http_get(web, "/healthz"))
        .await
        .expect("join");
    assert_eq!(code, 200);
    let (code, body) = tokio::task::spawn_blocking(move || http_get(web, "/metrics"))
        .await
        .expect("join");
    assert_eq!(code, 200);
    assert!(body.contains("curvine_master_raft_term"), "{body}");
    // The overview shows the cluster: it asks for the token like the RPCs.
    let get = |headers: String| async move {
        tokio::task::spawn_blocking(move || http_get_with(web, "/api/overview", &headers))
            .await
            .expect("join")
    };
    let (code, body) = get(String::new()).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("requires its token"), "{body}");
    assert_eq!(
        get("Authorization: Bearer not-the-token\r\n".into())
            .await
            .0,
        401
    );
    let (code, body) = get("Authorization: Bearer c0rrect-h0rse-battery\r\n".into()).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"workers\""), "{body}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_between_three_masters_carries_the_token() {
    let (_tokens, right, _) = token_files();
    let cluster = TestCluster::start(3, 1, |c| {
        c.security.token_file = right.display().to_string();
    })
    .await;
    let client = cluster.client();
    client.mkdir("/ha", true).await.expect("mkdir");
    client
        .write_file("/ha/f", b"replicated with the token")
        .await
        .expect("write");
    assert_eq!(
        client.read_file("/ha/f").await.expect("read"),
        b"replicated with the token"
    );
    // Every master applies the writes: the leader's appends reach both followers.
    wait_for(
        "every master reachable and caught up",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            async move {
                client.report().await.is_ok_and(|r| {
                    r.masters.len() == 3
                        && r.masters
                            .iter()
                            .all(|m| m.reachable && m.last_applied >= r.last_applied)
                })
            }
        },
    )
    .await;
    // A follower asked directly (the client API on its journal port) knows the file.
    let leader = client.report().await.expect("report").leader_id;
    let follower = (0..3)
        .find(|i| *i as u64 + 1 != leader)
        .expect("a follower");
    let via_follower = cluster.client_of(&[follower], Duration::from_secs(5));
    assert_eq!(
        via_follower.read_file("/ha/f").await.expect("read"),
        b"replicated with the token"
    );
    cluster.shutdown().await;
}
