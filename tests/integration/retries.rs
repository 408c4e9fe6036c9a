//! Idempotent retries: master processes behind a loopback proxy that forwards a request
//! but loses its reply (drops the connection, or holds the reply while the test kills the
//! leader). The client retries the same call and gets the first result; the namespace
//! shows one application; the masters count the repeats they answered from their retry
//! cache.

use crate::cli_cluster::{free_port, http_get, terminate};
use crate::cluster::pattern;
use crate::harness::{wait_for, KillOnDrop};
use crate::ufs_cluster::names;
use curvine_fluid::client::{Client, Owner};
use curvine_fluid::config::{ClusterConfig, HostPort};
use curvine_fluid::fs_error::FsError;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next reply.
const PASS: u8 = 0;
/// Drop the connection when the reply's first bytes arrive; forward none of them.
const DROP: u8 = 1;
/// Keep the reply (forward nothing more) until the server's side closes.
const HOLD: u8 = 2;

/// A TCP proxy in front of one master's gRPC port that can lose one reply: it reads the
/// server's HTTP/2 frames and, when armed, catches the first HEADERS or DATA frame of a
/// stream (a response: the master has applied the call by then).
struct ReplyProxy {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Replies caught so far.
    caught: tokio::sync::watch::Receiver<u32>,
}

impl ReplyProxy {
    async fn start(target: u16) -> ReplyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let (tx, caught) = tokio::sync::watch::channel(0u32);
        let tx = Arc::new(tx);
        let m = mode.clone();
        tokio::spawn(async move {
            // Bounded by the test: the task ends with the runtime.
            while let Ok((inbound, _)) = listener.accept().await {
                let (mode, tx) = (m.clone(), tx.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    relay(inbound, outbound, mode, tx).await;
                });
            }
        });
        ReplyProxy { port, mode, caught }
    }

    fn arm(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn caught(&self) -> u32 {
        *self.caught.borrow()
    }
}

/// Client bytes go to the server as they are; server bytes go back frame by frame, unless
/// an armed proxy catches a reply.
async fn relay(
    inbound: TcpStream,
    outbound: TcpStream,
    mode: Arc<AtomicU8>,
    caught: Arc<tokio::sync::watch::Sender<u32>>,
) {
    let (mut client_rx, mut client_tx) = inbound.into_split();
    let (mut server_rx, mut server_tx) = outbound.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
    });
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    'relay: loop {
        let n = match server_rx.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Whole frames: 9-byte header (24-bit length, type, flags, stream id), payload.
        let mut sent = 0;
        while buf.len() - sent >= 9 {
            let head = &buf[sent..sent + 9];
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let kind = head[3];
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if buf.len() - sent < 9 + len {
                break;
            }
            let reply = stream != 0 && (kind == 0x0 || kind == 0x1);
            if reply {
                let armed = mode.swap(PASS, Ordering::SeqCst);
                if armed != PASS {
                    caught.send_modify(|c| *c += 1);
                    if armed == HOLD {
                        // Forward nothing more; end when the server's side closes.
                        while matches!(server_rx.read(&mut chunk).await, Ok(n) if n > 0) {}
                    }
                    break 'relay;
                }
            }
            if client_tx
                .write_all(&buf[sent..sent + 9 + len])
                .await
                .is_err()
            {
                break 'relay;
            }
            sent += 9 + len;
        }
        buf.drain(..sent);
    }
    upstream.abort();
    // Both sides dropped here: the client sees its connection end without the reply.
}

/// Master processes (and optionally one worker) on loopback ports.
struct Procs {
    dir: tempfile::TempDir,
    rpc: Vec<u16>,
    web: Vec<u16>,
    masters: Vec<Option<KillOnDrop>>,
    worker: Option<KillOnDrop>,
}

impl Procs {
    fn start(masters: usize, with_worker: bool) -> Procs {
        let dir = tempfile::tempdir().unwrap();
        let rpc: Vec<u16> = (0..masters).map(|_| free_port()).collect();
        let journal: Vec<u16> = (0..masters).map(|_| free_port()).collect();
        let web: Vec<u16> = (0..masters).map(|_| free_port()).collect();
        let peers: Vec<String> = journal
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{{ id = {}, hostname = \"127.0.0.1\", port = {p} }}", i + 1))
            .collect();
        let addrs: Vec<String> = rpc
            .iter()
            .map(|p| format!("{{ hostname = \"127.0.0.1\", port = {p} }}"))
            .collect();
        let (wrpc, wweb) = (free_port(), free_port());
        let conf = |i: usize| {
            let d = dir.path().join(format!("m{i}"));
            let path = dir.path().join(format!("m{i}.toml"));
            std::fs::write(
                &path,
                format!(
                    "cluster_id = \"retries\"\n\
                     [master]\nhostname = \"127.0.0.1\"\nrpc_port = {}\nweb_port = {}\nmeta_dir = \"{d}/meta\"\n\
                     heartbeat_interval = \"200ms\"\n\
                     [journal]\nhostname = \"127.0.0.1\"\nrpc_port = {}\njournal_dir = \"{d}/journal\"\n\
                     journal_addrs = [{}]\n\
                     [worker]\nhostname = \"127.0.0.1\"\nrpc_port = {wrpc}\nweb_port = {wweb}\ndata_dir = [\"[DISK]{d}/worker\"]\n\
                     [client]\nmaster_addrs = [{}]\nblock_size = \"4MB\"\n",
                    rpc[i],
                    web[i],
                    journal[i],
                    peers.join(", "),
                    addrs.join(", "),
                    d = d.display()
                ),
            )
            .unwrap();
            path
        };
        let spawn = |path: &Path, role: &str, log: &str| {
            let out = std::fs::File::create(dir.path().join(log)).unwrap();
            KillOnDrop(
                Command::new(env!("CARGO_BIN_EXE_curvine-fluid"))
                    .args(["--conf", path.to_str().unwrap(), role, "start"])
                    .env_clear()
                    .stdin(Stdio::null())
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .spawn()
                    .unwrap(),
            )
        };
        let confs: Vec<_> = (0..masters).map(conf).collect();
        let procs = confs
            .iter()
            .enumerate()
            .map(|(i, c)| Some(spawn(c, "master", &format!("master-{i}.log"))))
            .collect();
        let worker = with_worker.then(|| spawn(&confs[0], "worker", "worker.log"));
        Procs {
            dir,
            rpc,
            web,
            masters: procs,
            worker,
        }
    }

    /// A client of these masters' addresses (`ports`), retrying for 30 s.
    fn client(ports: &[u16]) -> Client {
        let mut config = ClusterConfig::default();
        config.client.master_addrs = ports
            .iter()
            .map(|p| HostPort {
                hostname: "127.0.0.1".into(),
                port: *p,
            })
            .collect();
        config.client.rpc_retry_max_duration_ms = 30_000;
        config.client.rpc_timeout_ms = 10_000;
        config.client.block_size = curvine_fluid::config::ByteSize(4 << 20);
        Client::new(&config).unwrap()
    }

    /// Waits for a leader (and the worker, when there is one); the leader's index.
    async fn leader(&self) -> usize {
        let c = Procs::client(&self.rpc);
        let workers = u64::from(self.worker.is_some());
        wait_for("a leader and live workers", Duration::from_secs(30), || {
            let c = c.clone();
            async move {
                c.report()
                    .await
                    .map(|r| r.leader_id != 0 && r.live_workers == workers)
                    .unwrap_or(false)
            }
        })
        .await;
        c.report().await.expect("the cluster report").leader_id as usize - 1
    }

    /// Master `i`'s metric `name` (0 when the master is down or has no such sample).
    async fn metric(&self, i: usize, name: &str) -> u64 {
        if self.masters[i].is_none() {
            return 0;
        }
        let port = self.web[i];
        let (code, body) = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
        let prefix = format!("{name} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0)
    }

    /// Repeated calls master `i` answered from its retry cache.
    async fn repeats(&self, i: usize) -> u64 {
        self.metric(i, "curvine_master_repeated_calls_total").await
    }

    async fn total_repeats(&self) -> u64 {
        let mut n = 0;
        for i in 0..self.masters.len() {
            n += self.repeats(i).await;
        }
        n
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn stop(mut self) {
        if let Some(mut w) = self.worker.take() {
            terminate(&mut w.0);
        }
        for mut m in self.masters.iter_mut().filter_map(Option::take) {
            terminate(&mut m.0);
        }
    }
}

/// Runs `call` with the proxy armed to drop the reply; checks that the reply was lost and
/// that the master answered the retry from its retry cache.
async fn with_lost_reply<T>(
    procs: &Procs,
    proxy: &ReplyProxy,
    what: &str,
    call: impl std::future::Future<Output = Result<T, FsError>>,
) -> T {
    let (caught, repeats) = (proxy.caught(), procs.total_repeats().await);
    proxy.arm(DROP);
    let out = call
        .await
        .unwrap_or_else(|e| panic!("{what} after a lost reply: {e}"));
    assert_eq!(proxy.caught(), caught + 1, "{what}: no reply was lost");
    assert_eq!(
        procs.total_repeats().await,
        repeats + 1,
        "{what}: the retry was not answered from the retry cache"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_whose_reply_is_lost_applies_once() {
    let procs = Procs::start(1, true);
    procs.leader().await;
    let proxy = ReplyProxy::start(procs.rpc[0]).await;
    let c = Procs::client(&[proxy.port]);
    c.mkdir("/r", true).await.unwrap();
    let owner = Owner::root(0o644);

    // Create with O_EXCL: the retry gets the created file, not AlreadyExists.
    let created = with_lost_reply(
        &procs,
        &proxy,
        "create (exclusive)",
        c.create_file("/r/excl", false, false, owner),
    )
    .await;
    assert_eq!(c.stat("/r/excl").await.unwrap().id, created.id);
    assert_eq!(names(&c.list("/r").await.unwrap()), ["excl"]);

    // Rename: the retry gets success, not NotFound for the moved source.
    let moved = c.create_file("/r/a", false, false, owner).await.unwrap();
    with_lost_reply(&procs, &proxy, "rename", c.rename("/r/a", "/r/b", false)).await;
    assert!(matches!(c.stat("/r/a").await, Err(FsError::NotFound(_))));
    assert_eq!(c.stat("/r/b").await.unwrap().id, moved.id);

    // Delete: the retry gets success, not NotFound.
    with_lost_reply(&procs, &proxy, "delete", c.delete("/r/b", false)).await;
    assert!(matches!(c.stat("/r/b").await, Err(FsError::NotFound(_))));

    // A block and the file's commit, each reply lost: one block, the data intact.
    let data = pattern(1 << 20, 3);
    let mut w = c.create("/r/data", false).await.unwrap();
    with_lost_reply(&procs, &proxy, "add block", w.write(&data)).await;
    let done = with_lost_reply(&procs, &proxy, "complete", w.close()).await;
    assert_eq!(done.size, data.len() as u64);
    assert!(done.complete);
    let located = c.locate("/r/data").await.unwrap();
    assert_eq!(located.blocks.len(), 1, "{located:?}");
    assert_eq!(c.read_file("/r/data").await.unwrap(), data);

    // Without a lost reply nothing is repeated: a second exclusive create is refused.
    let again = c.create_file("/r/excl", false, false, owner).await;
    assert!(matches!(again, Err(FsError::AlreadyExists(_))), "{again:?}");

    // Answered calls are forgotten: of this client's nine calls only the last is kept
    // (the next one would say it was answered), besides the worker's registration.
    let kept = procs.metric(0, "curvine_master_retry_cache_calls").await;
    assert!(
        (1..=2).contains(&kept),
        "the retry cache keeps {kept} calls"
    );
    procs.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_committed_by_a_leader_that_dies_before_replying_applies_once() {
    let mut procs = Procs::start(3, false);
    let leader = procs.leader().await;
    let proxy = ReplyProxy::start(procs.rpc[leader]).await;
    // The leader through the proxy first, then the other masters.
    let mut ports = vec![proxy.port];
    ports.extend((0..3).filter(|i| *i != leader).map(|i| procs.rpc[i]));
    let c = Procs::client(&ports);
    c.mkdir("/k", true).await.unwrap();

    let mut caught = proxy.caught.clone();
    proxy.arm(HOLD);
    let call = {
        let c = c.clone();
        tokio::spawn(async move {
            c.create_file("/k/excl", false, false, Owner::root(0o644))
                .await
        })
    };
    // The reply reached the proxy: the create is committed. The leader dies with it.
    tokio::time::timeout(Duration::from_secs(30), caught.wait_for(|n| *n == 1))
        .await
        .expect("the create's reply within 30 s")
        .unwrap();
    let mut dead = procs.masters[leader].take().unwrap();
    dead.0.kill().unwrap();
    dead.0.wait().unwrap();

    let created = call
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("create across a leader kill: {e}"));
    let survivors: Vec<u16> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| procs.rpc[i])
        .collect();
    let direct = Procs::client(&survivors);
    assert_eq!(direct.stat("/k/excl").await.unwrap().id, created.id);
    assert_eq!(names(&direct.list("/k").await.unwrap()), ["excl"]);
    assert_eq!(
        procs.total_repeats().await,
        1,
        "the retry was not answered from the new leader's retry cache; logs:\n{}",
        (0..3)
            .map(|i| procs.log(&format!("master-{i}.log")))
            .collect::<Vec<_>>()
            .join("\n")
    );
    procs.stop();
}
