//! Short-circuit I/O: with `worker.domain_socket_path` shared by worker and client, the
//! client reads and writes block files through descriptors the worker hands over its Unix
//! socket, byte-exact, and the worker's `/metrics` counts the opens (while no gRPC block
//! read or write happens). Without the socket, with a stale one or with the switch off,
//! the client falls back to gRPC. With a cluster token the socket refuses opens without a
//! valid block token (no descriptor comes back). A writer dropped mid-block leaves no
//! visible block and no temp file; a commit claiming a length the file does not hold is
//! refused.

use crate::cli_cluster::http_get;
use crate::cluster::{pattern, TestCluster};
use crate::harness::wait_for;
use bytes::Bytes;
use curvine_fluid::client::Client;
use curvine_fluid::config::{ByteSize, ClusterConfig};
use curvine_fluid::rpc::auth::Token;
use curvine_fluid::rpc::block_token::{now_ms, BlockKey, Mode};
use curvine_fluid::rpc::local;
use curvine_fluid::rpc::pb::master::LocatedBlock;
use curvine_fluid::rpc::pb::worker::local_request::Kind;
use curvine_fluid::rpc::pb::worker::{LocalHello, LocalOpen, LocalReply, LocalRequest};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;

const MIB: usize = 1 << 20;

/// One master and one worker with 1 MiB blocks, the worker's socket in `sockets`, and
/// the cluster token in `token_file` (or none).
async fn cluster(sockets: &Path, token_file: Option<&Path>) -> TestCluster {
    let sockets = sockets.display().to_string();
    let token = token_file
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    TestCluster::start(1, 1, move |c| {
        c.worker.domain_socket_path = sockets.clone();
        c.security.token_file = token.clone();
        c.client.block_size = ByteSize(MIB as u64);
    })
    .await
}

/// A client of `cluster` with its config changed by `tweak`.
fn client_with(cluster: &TestCluster, tweak: impl FnOnce(&mut ClusterConfig)) -> Client {
    let mut config = cluster.base.clone();
    tweak(&mut config);
    Client::new(&config).expect("client")
}

/// The worker's `/metrics` text.
pub(crate) async fn worker_metrics(cluster: &TestCluster) -> String {
    let port = cluster.worker_configs[0].worker.web_port;
    tokio::task::spawn_blocking(move || http_get(port, "/metrics").1)
        .await
        .expect("metrics task")
}

/// The value of the metric line starting with `series` (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn opens(text: &str, mode: &str) -> f64 {
    metric(
        text,
        &format!("curvine_worker_short_circuit_opens_total{{mode=\"{mode}\"}}"),
    )
}

/// gRPC block calls the worker answered (any outcome).
pub(crate) fn grpc_calls(text: &str, method: &str) -> f64 {
    ["ok", "error"]
        .iter()
        .map(|o| {
            metric(
                text,
                &format!(
                    "curvine_worker_rpc_requests_total{{method=\"{method}\",outcome=\"{o}\"}}"
                ),
            )
        })
        .sum()
}

/// Writes `data` to `path`, reads it back whole, sequentially in odd pieces and at
/// ranges across block edges, and checks every byte.
async fn round_trip(client: &Client, path: &str, data: &[u8]) {
    client.write_file(path, data).await.expect("write");
    assert_eq!(client.read_file(path).await.expect("read"), data);
    let mut reader = client.open(path).await.expect("open");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 300_007];
    loop {
        let n = reader.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == data, "sequential reads differ");
    for (offset, len) in [(0, 10), (MIB - 5, 10), (MIB, MIB), (3 * MIB - 7, 2 * MIB)] {
        let want = &data[offset.min(data.len())..(offset + len).min(data.len())];
        let ranged = reader.read_at(offset as u64, len).await.expect("read_at");
        assert!(ranged == want, "range {offset}+{len} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_worker_is_read_and_written_through_its_socket() {
    let sockets = tempfile::tempdir().expect("tempdir");
    let cluster = cluster(sockets.path(), None).await;
    let client = cluster.client();
    let data = pattern(3 * MIB + 4321, 7);
    round_trip(&client, "/local.bin", &data).await;

    assert_eq!(client.short_circuit().write_opens(), 4, "4 blocks written");
    assert!(client.short_circuit().read_opens() >= 4);
    let text = worker_metrics(&cluster).await;
    assert_eq!(opens(&text, "write"), 4.0, "{text}");
    assert!(opens(&text, "read") >= 4.0, "{text}");
    // Not a byte went through gRPC.
    for method in ["write_block", "read_block", "read_range"] {
        assert_eq!(grpc_calls(&text, method), 0.0, "{method}: {text}");
    }
    // The worker accounted the blocks as its own writes.
    let used: u64 = cluster.workers[0]
        .as_ref()
        .expect("worker")
        .store()
        .usage()
        .iter()
        .map(|t| t.used)
        .sum();
    assert_eq!(used, data.len() as u64);

    // A file opened before its blocks are evicted reads on: eviction unlinks names only.
    let mut reader = client.open("/local.bin").await.expect("open");
    let first = reader.read_at(0, 100).await.expect("read");
    assert_eq!(first, data[..100]);
    let store = cluster.workers[0].as_ref().expect("worker").store().clone();
    let located = client.locate("/local.bin").await.expect("locate");
    store.delete(located.blocks[0].id).expect("delete");
    let again = reader.read_at(MIB as u64 - 50, 50).await.expect("read on");
    assert_eq!(again, data[MIB - 50..MIB]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_socket_clients_fall_back_to_grpc() {
    let sockets = tempfile::tempdir().expect("tempdir");
    let cluster = cluster(sockets.path(), None).await;
    let data = pattern(2 * MIB + 17, 3);

    // A socket directory without this worker's socket: the worker is not local.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let dir = elsewhere.path().display().to_string();
    let client = client_with(&cluster, |c| c.worker.domain_socket_path = dir.clone());
    round_trip(&client, "/absent.bin", &data).await;
    assert_eq!(client.short_circuit().read_opens(), 0);
    assert_eq!(client.short_circuit().write_opens(), 0);

    // The worker's socket name, but nobody listening there (a worker that died).
    let stale_dir = tempfile::tempdir().expect("tempdir");
    let worker = &cluster.worker_configs[0].worker;
    let stale = local::socket_path(stale_dir.path(), &worker.hostname, worker.rpc_port);
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let dir = stale_dir.path().display().to_string();
    let client = client_with(&cluster, |c| c.worker.domain_socket_path = dir.clone());
    round_trip(&client, "/stale.bin", &data).await;
    assert_eq!(client.short_circuit().read_opens(), 0);
    assert_eq!(client.short_circuit().write_opens(), 0);

    // Short circuit switched off on the client.
    let client = client_with(&cluster, |c| c.client.short_circuit = false);
    assert!(!client.short_circuit().enabled());
    round_trip(&client, "/off.bin", &data).await;

    let text = worker_metrics(&cluster).await;
    assert_eq!(opens(&text, "read"), 0.0, "{text}");
    assert_eq!(opens(&text, "write"), 0.0, "{text}");
    assert!(grpc_calls(&text, "write_block") >= 9.0, "{text}");
}

/// A sequential writer's checkpoint (what a flush or fsync does mid-write) records the
/// data so far with the master, durable, and keeps its short-circuit block open: later
/// writes append to the same block, and readers see each checkpoint's length. Through
/// gRPC the block cannot stay open: the checkpoint does nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_keeps_the_block_open_and_shows_what_was_written() {
    let sockets = tempfile::tempdir().expect("tempdir");
    let cluster = cluster(sockets.path(), None).await;
    let client = cluster.client();
    let reader = client_with(&cluster, |c| c.client.short_circuit = false);
    let data = pattern(MIB / 2 + 300, 9);
    let mut writer = client.create("/log", false).await.expect("create");
    let mut end = 0;
    for piece in [1000, 70_000, 3] {
        writer.write(&data[end..end + piece]).await.expect("write");
        end += piece;
        let (status, finished) = writer
            .checkpoint()
            .await
            .expect("checkpoint")
            .expect("a short-circuit block stays open");
        assert_eq!(status.size, end as u64);
        assert!(finished.is_empty(), "no block was finished");
        assert_eq!(reader.read_file("/log").await.expect("read"), &data[..end]);
    }
    // Nothing new: nothing to record.
    let (status, _) = writer.checkpoint().await.expect("again").expect("open");
    assert_eq!(status.size, end as u64);
    writer.write(&data[end..]).await.expect("write the rest");
    writer.close().await.expect("close");
    assert_eq!(reader.read_file("/log").await.expect("read"), data);
    assert_eq!(
        client.short_circuit().write_opens(),
        1,
        "one block, kept open"
    );
    let located = client.locate("/log").await.expect("locate");
    assert_eq!(located.blocks.len(), 1);
    let text = worker_metrics(&cluster).await;
    assert_eq!(grpc_calls(&text, "write_block"), 0.0, "{text}");

    let mut streamed = reader.create("/streamed", false).await.expect("create");
    streamed.write(&data[..1000]).await.expect("write");
    assert!(streamed.checkpoint().await.expect("checkpoint").is_none());
    streamed.close().await.expect("close");
    assert_eq!(
        reader.read_file("/streamed").await.expect("read"),
        &data[..1000]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_answered_by_another_worker_is_not_used() {
    let sockets = tempfile::tempdir().expect("tempdir");
    let cluster = cluster(sockets.path(), None).await;
    // Another process answers at this worker's socket name, claiming another address.
    let fake_dir = tempfile::tempdir().expect("tempdir");
    let worker = &cluster.worker_configs[0].worker;
    let path = local::socket_path(fake_dir.path(), &worker.hostname, worker.rpc_port);
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let impostor = tokio::spawn(async move {
        let mut answered = 0;
        while let Ok((stream, _)) = listener.accept().await {
            let hello = LocalHello {
                worker_id: 99,
                hostname: "elsewhere".into(),
                rpc_port: 1,
            };
            let _ = local::send(&stream, &hello, None).await;
            answered += 1;
            if answered == 2 {
                break;
            }
        }
        answered
    });
    let dir = fake_dir.path().display().to_string();
    let client = client_with(&cluster, |c| c.worker.domain_socket_path = dir.clone());
    let data = pattern(MIB + 5, 1);
    client.write_file("/f", &data).await.expect("write");
    assert_eq!(client.read_file("/f").await.expect("read"), data);
    assert_eq!(client.short_circuit().write_opens(), 0);
    assert_eq!(client.short_circuit().read_opens(), 0);
    impostor.abort();
}

/// A raw connection to the worker's socket, past its hello.
async fn raw_socket(sockets: &Path, cluster: &TestCluster) -> UnixStream {
    let worker = &cluster.worker_configs[0].worker;
    let path: PathBuf = local::socket_path(sockets, &worker.hostname, worker.rpc_port);
    let stream = UnixStream::connect(&path).await.expect("connect");
    let hello: LocalHello = local::recv(&stream).await.expect("hello").expect("hello");
    assert_eq!(hello.rpc_port, u32::from(worker.rpc_port));
    assert_eq!(hello.hostname, worker.hostname);
    stream
}

/// Sends an open and returns the reply and whether a descriptor came with it.
async fn raw_open(stream: &UnixStream, open: LocalOpen) -> (LocalReply, bool) {
    let req = LocalRequest {
        kind: Some(Kind::Open(open)),
    };
    local::send(stream, &req, None).await.expect("send");
    let (reply, fd) = local::recv_with_fd::<LocalReply>(stream)
        .await
        .expect("reply")
        .expect("a reply");
    (reply, fd.is_some())
}

fn open_req(block: &LocatedBlock, write: bool, block_token: Bytes) -> LocalOpen {
    LocalOpen {
        block_id: block.id,
        write,
        expected_len: 10,
        block_token,
        ufs: None,
        copy_from: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_cluster_token_the_socket_needs_a_valid_block_token() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "c0rrect-h0rse-battery\n").expect("write token");
    let sockets = tempfile::tempdir().expect("tempdir");
    let cluster = cluster(sockets.path(), Some(&token_file)).await;
    let client = cluster.client();
    let data = pattern(2 * MIB, 5);
    round_trip(&client, "/t.bin", &data).await;
    assert!(client.short_circuit().read_opens() > 0);
    assert_eq!(client.short_circuit().write_opens(), 2);

    let located = client.locate("/t.bin").await.expect("locate");
    let (b0, b1) = (&located.blocks[0], &located.blocks[1]);
    let key = BlockKey::derive(&Token::read(&token_file, "test").expect("token"));
    let mut forged = b0.block_token.to_vec();
    *forged.last_mut().expect("a byte") ^= 1;
    let other = BlockKey::derive(&Token::parse(b"another-cluster").expect("token"));
    let fresh = b1.id + 1_000;
    let refused: Vec<(LocalOpen, &str)> = vec![
        (open_req(b0, false, Bytes::new()), "no block token"),
        (open_req(b0, false, b1.block_token.clone()), "is for block"),
        (open_req(b0, false, forged.into()), "not issued"),
        (
            open_req(b0, false, key.mint(b0.id, Mode::Read, now_ms() - 1, None)),
            "expired",
        ),
        (
            open_req(
                b0,
                false,
                other.mint(b0.id, Mode::Read, now_ms() + 60_000, None),
            ),
            "not issued",
        ),
        (
            open_req(b0, true, b0.block_token.clone()),
            "only grants read",
        ),
        (
            LocalOpen {
                block_id: fresh,
                ..open_req(b0, true, Bytes::new())
            },
            "no block token",
        ),
        (
            LocalOpen {
                block_id: fresh,
                ..open_req(
                    b0,
                    true,
                    key.mint(b1.id, Mode::Write, now_ms() + 60_000, None),
                )
            },
            "is for block",
        ),
    ];
    let before = worker_metrics(&cluster).await;
    let stream = raw_socket(sockets.path(), &cluster).await;
    for (open, why) in refused {
        let (reply, fd) = raw_open(&stream, open).await;
        assert_eq!(
            reply.code,
            tonic::Code::PermissionDenied as i32,
            "{reply:?}"
        );
        assert!(reply.message.contains(why), "{why:?} not in {reply:?}");
        assert!(!fd, "no descriptor with a refusal");
    }
    let after = worker_metrics(&cluster).await;
    assert_eq!(opens(&before, "read"), opens(&after, "read"));
    assert_eq!(opens(&before, "write"), opens(&after, "write"));
    let store = cluster.workers[0].as_ref().expect("worker").store().clone();
    assert!(!store.contains(fresh), "nothing stored");

    // The master's token opens, on the same connection.
    let (reply, fd) = raw_open(&stream, open_req(b0, false, b0.block_token.clone())).await;
    assert_eq!((reply.code, reply.length, fd), (0, MIB as u64, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_local_write_leaves_no_block() {
    let sockets = tempfile::tempdir().expect("tempdir");
    let cluster = cluster(sockets.path(), None).await;
    let client = cluster.client();
    let store = cluster.workers[0].as_ref().expect("worker").store().clone();
    let tmp = cluster.dir.path().join("worker-0/tmp");

    let data = pattern(MIB + MIB / 2, 9);
    let mut writer = client.create("/dropped.bin", true).await.expect("create");
    writer.write(&data).await.expect("write");
    assert_eq!(client.short_circuit().write_opens(), 2);
    // The first block is committed; the second is half written into its temp file.
    assert_eq!(store.block_ids().len(), 1);
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 1);
    drop(writer);
    wait_for(
        "the abandoned block's temp file gone",
        Duration::from_secs(10),
        || {
            let tmp = tmp.clone();
            async move {
                std::fs::read_dir(&tmp)
                    .map(|d| d.count() == 0)
                    .unwrap_or(false)
            }
        },
    )
    .await;
    assert_eq!(
        store.block_ids().len(),
        1,
        "the half block never became visible"
    );
    let status = client.stat("/dropped.bin").await.expect("stat");
    assert_eq!(status.size, 0, "the file was never completed");
    // The worker's room came back: a full-size write still fits and commits.
    round_trip(&client, "/after.bin", &data).await;

    // A commit claiming more than the file holds is refused; the block stays invisible.
    let located = client.locate("/after.bin").await.expect("locate");
    let fresh = located.blocks[1].id + 500;
    let stream = raw_socket(sockets.path(), &cluster).await;
    let (reply, fd) = raw_open(
        &stream,
        LocalOpen {
            block_id: fresh,
            write: true,
            expected_len: 10,
            block_token: Bytes::new(),
            ufs: None,
            copy_from: None,
        },
    )
    .await;
    assert_eq!((reply.code, fd), (0, true), "{reply:?}");
    let commit = LocalRequest {
        kind: Some(Kind::Commit(curvine_fluid::rpc::pb::worker::LocalCommit {
            length: 10,
        })),
    };
    local::send(&stream, &commit, None).await.expect("send");
    let reply: LocalReply = local::recv(&stream).await.expect("reply").expect("reply");
    assert_ne!(reply.code, 0, "{reply:?}");
    assert!(reply.message.contains("holds 0"), "{reply:?}");
    assert!(!store.contains(fresh));
}

/// A standalone mount in `dir` whose worker's socket is in `sockets`, and the worker's
/// web port (its `/metrics`).
fn standalone_with_socket(dir: &Path, sockets: &Path) -> (crate::fuse_mount::Mounted, u16) {
    let line = format!("[worker]\ndomain_socket_path = \"{}\"\n", sockets.display());
    let m = crate::fuse_mount::Mounted::standalone(dir, |t| t.replace("[worker]\n", &line));
    let text = std::fs::read_to_string(dir.join("c.toml")).expect("conf");
    let doc: toml_edit::DocumentMut = text.parse().expect("toml");
    let web = doc["worker"]["web_port"]
        .as_integer()
        .expect("worker web_port") as u16;
    (m, web)
}

/// `standalone --mnt` (one process: master, worker and FUSE client) with a socket
/// directory: files written and read through the mount take the short circuit, as the
/// worker's `/metrics` shows, and read back byte-exact.
#[test]
fn a_standalone_mount_takes_the_short_circuit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sockets = dir.path().join("sockets");
    let (m, web) = standalone_with_socket(dir.path(), &sockets);

    let data = pattern(5 * MIB + 333, 21);
    std::fs::write(m.path("big.bin"), &data).expect("write through the mount");
    // A new open of the file: its blocks are read from the worker (through the socket).
    let back = std::fs::read(m.path("big.bin")).expect("read through the mount");
    assert!(back == data, "bytes read back differ");
    let (_, text) = http_get(web, "/metrics");
    assert!(opens(&text, "write") >= 1.0, "{text}");
    assert!(opens(&text, "read") >= 1.0, "{text}");
    assert_eq!(grpc_calls(&text, "write_block"), 0.0, "{text}");
    assert!(
        std::fs::read_dir(&sockets).expect("sockets").count() == 1,
        "the worker's socket is in the directory"
    );

    // A client in another process (Fluid's client DaemonSet beside a worker pod), its
    // own counters on its /metrics.
    let port = crate::cli_cluster::free_port();
    let client = crate::fuse_mount::Mounted::client(
        &dir.path().join("c.toml"),
        &dir.path().join("mnt-b"),
        &format!("web_port = {port}"),
    );
    let other = pattern(2 * MIB + 1, 22);
    std::fs::write(client.path("other.bin"), &other).expect("write through the client");
    assert!(std::fs::read(client.path("other.bin")).expect("read") == other);
    assert!(std::fs::read(client.path("big.bin")).expect("read") == data);
    let (_, text) = http_get(port, "/metrics");
    let series = |mode: &str| {
        metric(
            &text,
            &format!("curvine_client_short_circuit_opens_total{{mode=\"{mode}\"}}"),
        )
    };
    // Once, even when a parallel test's fork + exec closes an inherited copy of the
    // writer's descriptor mid-write: that flush checkpoints the open block.
    assert_eq!(series("write"), 1.0, "one block (64 MiB blocks): {text}");
    assert!(series("read") >= 1.0, "{text}");
    let (_, worker) = http_get(web, "/metrics");
    assert_eq!(grpc_calls(&worker, "write_block"), 0.0, "{worker}");
    drop(client);
    drop(m);
}

/// Through the mount, a flush in the middle of a sequential write (a forked child
/// closing its copy of the descriptor) and an fsync keep the file's block open: the
/// whole file is one block written once, nothing is read back to be rewritten, and
/// another client sees what the flush recorded.
#[test]
fn flushes_and_fsyncs_in_the_middle_of_a_write_keep_one_block() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let sockets = dir.path().join("sockets");
    let (m, web) = standalone_with_socket(dir.path(), &sockets);
    let port = crate::cli_cluster::free_port();
    let other = crate::fuse_mount::Mounted::client(
        &dir.path().join("c.toml"),
        &dir.path().join("mnt-b"),
        &format!("web_port = {port}"),
    );
    let (_, before) = http_get(web, "/metrics");
    let data = pattern(3 * MIB + 77, 31);
    let mut file = std::fs::File::create(m.path("log")).expect("create");
    file.write_all(&data[..MIB]).expect("write");
    drop(file.try_clone().expect("dup"));
    assert!(
        std::fs::read(other.path("log")).expect("read in another mount") == data[..MIB],
        "the flush recorded the first MiB"
    );
    file.write_all(&data[MIB..2 * MIB + 5]).expect("write");
    file.sync_all().expect("fsync");
    file.write_all(&data[2 * MIB + 5..]).expect("write");
    drop(file);
    assert!(std::fs::read(m.path("log")).expect("read") == data);
    let (_, after) = http_get(web, "/metrics");
    // The worker's counts: the writes opened one block once; the reads are the other
    // mount's and the read back (a block rewritten after the flush would have been
    // read once more and opened for writing twice).
    assert_eq!(
        opens(&after, "write") - opens(&before, "write"),
        1.0,
        "{after}"
    );
    assert_eq!(
        opens(&after, "read") - opens(&before, "read"),
        2.0,
        "{after}"
    );
    assert_eq!(grpc_calls(&after, "write_block"), 0.0, "{after}");
    drop(other);
    drop(m);
}

#[tokio::test]
async fn a_socket_directory_that_cannot_be_used_stops_the_worker_naming_the_key() {
    use curvine_fluid::config::HostPort;
    use curvine_fluid::worker::{Worker, WorkerListeners};
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let mut config = ClusterConfig::default();
    config.worker.hostname = "127.0.0.1".into();
    config.worker.data_dir = vec![format!("[DISK]{}", dir.path().join("w").display())];
    config.worker.domain_socket_path = file.join("sockets").display().to_string();
    config.client.master_addrs = vec![HostPort {
        hostname: "127.0.0.1".into(),
        port: 1,
    }];
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let listeners = WorkerListeners {
        rpc: bind().await.expect("bind"),
        web: bind().await.expect("bind"),
    };
    let e = Worker::start(&config, listeners)
        .await
        .expect_err("an unusable socket directory");
    let text = e.to_string();
    assert!(text.contains("worker.domain_socket_path"), "{text}");
    assert!(text.contains("a-file/sockets"), "{text}");
}
