//! A real cluster (masters and workers in-process on loopback) through the client library.

use crate::cluster::{pattern, random_ranges, TestCluster};
use crate::harness::wait_for;
use curvine_fluid::fs_error::FsError;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_200_mib_file_reads_back_byte_identical() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let client = cluster.client();
    let data = pattern(200 << 20, 1);
    let mut w = client.create("/big/file.bin", false).await.unwrap();
    for chunk in data.chunks(1 << 20) {
        w.write(chunk).await.unwrap();
    }
    let status = w.close().await.unwrap();
    assert_eq!(status.size, data.len() as u64);
    let back = client.read_file("/big/file.bin").await.unwrap();
    assert!(back == data, "content differs");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_ranged_reads_match() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let client = cluster.client();
    let data = pattern((13 << 20) + 12345, 2);
    client.write_file("/r.bin", &data).await.unwrap();
    let mut reader = client.open("/r.bin").await.unwrap();
    for (offset, len) in random_ranges(data.len() as u64, 0..3 << 20, 200, 42) {
        let got = reader.read_at(offset, len).await.unwrap();
        let end = (offset as usize + len).min(data.len());
        assert_eq!(got, &data[offset as usize..end], "range {offset}+{len}");
    }
    // Sequential reads after seeks.
    let mut reader = client.open("/r.bin").await.unwrap();
    reader.seek(5 << 20);
    let mut buf = vec![0u8; 100];
    let n = reader.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], &data[5 << 20..(5 << 20) + n]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_files_in_one_directory_list_completely() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let client = cluster.client();
    client.mkdir("/many", false).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..10_000).step_by(32) {
                let w = client
                    .create(&format!("/many/f{i:05}"), false)
                    .await
                    .unwrap();
                w.close().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries = client.list("/many").await.unwrap();
    assert_eq!(entries.len(), 10_000);
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    let expected: Vec<String> = (0..10_000).map(|i| format!("f{i:05}")).collect();
    assert_eq!(names, expected);
    assert_eq!(client.stat("/many").await.unwrap().children, 10_000);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_delete_and_typed_errors() {
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let c = cluster.client();
    c.mkdir("/a/b", true).await.unwrap();
    c.write_file("/a/f", b"one").await.unwrap();
    c.write_file("/a/g", b"two").await.unwrap();
    // Rename replaces a file; the old target is gone.
    c.rename("/a/g", "/a/f", false).await.unwrap();
    assert_eq!(c.read_file("/a/f").await.unwrap(), b"two");
    assert!(matches!(c.stat("/a/g").await, Err(FsError::NotFound(_))));
    // Every typed error.
    assert!(matches!(
        c.mkdir("/a", false).await,
        Err(FsError::AlreadyExists(_))
    ));
    assert!(matches!(
        c.create("/a/f", false).await,
        Err(FsError::AlreadyExists(_))
    ));
    assert!(matches!(
        c.mkdir("/a/f/x", true).await,
        Err(FsError::NotADirectory(_))
    ));
    assert!(matches!(c.open("/a").await, Err(FsError::IsADirectory(_))));
    assert!(matches!(
        c.delete("/a", false).await,
        Err(FsError::NotEmpty(_))
    ));
    assert!(matches!(
        c.rename("/a", "/a/b/c", false).await,
        Err(FsError::InvalidArgument(_))
    ));
    assert!(matches!(
        c.stat("/../etc").await,
        Err(FsError::InvalidPath(_))
    ));
    assert!(matches!(
        c.stat("relative").await,
        Err(FsError::InvalidPath(_))
    ));
    assert!(matches!(
        c.rename("/a/f", "/a/b", false).await,
        Err(FsError::IsADirectory(_))
    ));
    c.write_file("/x", b"x").await.unwrap();
    assert!(matches!(
        c.rename("/x", "/a/f", true).await,
        Err(FsError::AlreadyExists(_))
    ));
    // Delete recursively only when asked.
    c.delete("/a", true).await.unwrap();
    assert!(matches!(c.stat("/a/b").await, Err(FsError::NotFound(_))));
    // Truncate, then extend: the tail reads as zeros.
    c.write_file("/t", b"hello world").await.unwrap();
    c.set_attr(curvine_fluid::rpc::pb::master::SetAttrRequest {
        path: "/t".into(),
        size: Some(5),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(c.read_file("/t").await.unwrap(), b"hello");
    c.set_attr(curvine_fluid::rpc::pb::master::SetAttrRequest {
        path: "/t".into(),
        size: Some(8),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(c.read_file("/t").await.unwrap(), b"hello\0\0\0");
    // Symlinks.
    let l = c.symlink("/t", "/link").await.unwrap();
    assert_eq!(l.symlink_target, "/t");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_master_keeps_every_acknowledged_file() {
    let mut cluster = TestCluster::start(1, 1, |_| {}).await;
    let c = cluster.client();
    for i in 0..300 {
        c.write_file(&format!("/keep/f{i}"), format!("content {i}").as_bytes())
            .await
            .unwrap();
    }
    cluster.stop_master(0).await;
    cluster.restart_master(0).await;
    cluster.wait_ready().await;
    let c = cluster.client();
    assert_eq!(c.list("/keep").await.unwrap().len(), 300);
    for i in (0..300).step_by(37) {
        assert_eq!(
            c.read_file(&format!("/keep/f{i}")).await.unwrap(),
            format!("content {i}").as_bytes()
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_under_a_small_quota_keeps_the_most_recently_read_blocks() {
    // One worker with 40 MiB, 4 MiB blocks, evict from 90% down to 50%.
    let cluster = TestCluster::start_with(
        1,
        1,
        |c| {
            c.worker.high_watermark = 0.9;
            c.worker.low_watermark = 0.5;
        },
        |_, c| {
            let dir = c.worker.data_dir[0]
                .trim_start_matches("[DISK]")
                .to_string();
            c.worker.data_dir = vec![format!("[DISK:40MB]{dir}")];
        },
    )
    .await;
    let c = cluster.client();
    for i in 0..8 {
        c.write_file(&format!("/e/f{i}"), &pattern(4 << 20, i))
            .await
            .unwrap();
    }
    // Read f0 and f1 so they are the most recently used.
    for i in 0..2 {
        assert_eq!(
            c.read_file(&format!("/e/f{i}")).await.unwrap(),
            pattern(4 << 20, i)
        );
    }
    // Two more files push usage past 90%: eviction removes the least recently read.
    for i in 8..10 {
        c.write_file(&format!("/e/f{i}"), &pattern(4 << 20, i))
            .await
            .unwrap();
    }
    // The master learns of evictions with the next heartbeat (until then the worker
    // answers that it no longer has the block).
    wait_for("evictions reported", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            matches!(c.read_file("/e/f2").await,
                Err(FsError::Unavailable(why)) if why.contains("no longer cached"))
        }
    })
    .await;
    for i in [0u64, 1, 9] {
        assert_eq!(
            c.read_file(&format!("/e/f{i}")).await.unwrap(),
            pattern(4 << 20, i),
            "f{i} kept"
        );
    }
    let err = c.read_file("/e/f2").await.unwrap_err();
    assert!(err.to_string().contains("no longer cached"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_worker_is_detected_and_its_blocks_read_as_errors() {
    let mut cluster = TestCluster::start(1, 2, |_| {}).await;
    let c = cluster.client();
    for i in 0..6 {
        c.write_file(&format!("/l/f{i}"), &pattern(1 << 20, i))
            .await
            .unwrap();
    }
    cluster.stop_worker(0).await;
    wait_for("worker 1 lost", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            c.report()
                .await
                .map(|r| r.lost_workers == 1 && r.live_workers == 1)
                .unwrap_or(false)
        }
    })
    .await;
    let mut unavailable = 0;
    for i in 0..6 {
        match c.read_file(&format!("/l/f{i}")).await {
            Ok(data) => assert_eq!(data, pattern(1 << 20, i)),
            Err(FsError::Unavailable(why)) => {
                assert!(why.contains("lost"), "{why}");
                unavailable += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(unavailable > 0, "some blocks were on the lost worker");
    // New blocks go to the live worker only.
    for i in 0..4 {
        c.write_file(&format!("/l/new{i}"), &pattern(1 << 20, i))
            .await
            .unwrap();
        assert_eq!(
            c.read_file(&format!("/l/new{i}")).await.unwrap(),
            pattern(1 << 20, i)
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn format_master_wipes_the_namespace_and_the_worker_drops_orphan_blocks() {
    let mut cluster = TestCluster::start(1, 1, |_| {}).await;
    let c = cluster.client();
    c.write_file("/gone", &pattern(3 << 20, 8)).await.unwrap();
    assert!(!cluster.workers[0]
        .as_ref()
        .unwrap()
        .store()
        .block_ids()
        .is_empty());
    cluster.stop_master(0).await;
    cluster.base.format_master = true;
    cluster.restart_master(0).await;
    cluster.wait_ready().await;
    let c = cluster.client();
    assert!(matches!(c.stat("/gone").await, Err(FsError::NotFound(_))));
    let store = cluster.workers[0].as_ref().unwrap().store().clone();
    wait_for("orphan blocks deleted", Duration::from_secs(10), || {
        let store = store.clone();
        async move { store.block_ids().is_empty() }
    })
    .await;
    cluster.shutdown().await;
}

/// A listener that accepts connections and never answers: a hung master.
async fn hung_master() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: a test makes a handful of connections; the task ends with the test.
        for _ in 0..64 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => return,
            }
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_that_accepts_and_never_answers_costs_only_the_connect_deadline() {
    use curvine_fluid::client::Client;
    use curvine_fluid::config::HostPort;
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let (hung, task) = hung_master().await;
    let mut config = cluster.base.clone();
    config.client.master_addrs.insert(
        0,
        HostPort {
            hostname: "127.0.0.1".into(),
            port: hung,
        },
    );
    // An RPC timeout longer than the whole retry budget: waiting on the hung master for
    // it would fail the call; the connect deadline lets it move on to the real one.
    config.client.conn_timeout_ms = 300;
    config.client.rpc_timeout_ms = 30_000;
    config.client.rpc_retry_max_duration_ms = 10_000;
    let client = Client::new(&config).unwrap();
    client.mkdir("/after-a-hung-master", true).await.unwrap();
    assert!(client.stat("/after-a-hung-master").await.is_ok());
    // With only the hung master, a call gives up within its budget, saying why.
    config.client.master_addrs.truncate(1);
    config.client.rpc_retry_max_duration_ms = 1_000;
    let alone = Client::new(&config).unwrap();
    let err = alone.stat("/").await.unwrap_err().to_string();
    assert!(err.contains("did not answer within"), "{err}");
    task.abort();
    cluster.shutdown().await;
}
