//! Master scale benchmark: a real master process (the release binary) and a namespace
//! of BENCH_MASTER_FILES empty files (default 1,000,000 = 20 directories × 50,000),
//! created through the client library with bounded concurrency. Reports the create
//! rate, the master's RSS and bytes per file, the snapshots it wrote (size, time), the
//! restart time to serving (SIGTERM, start, until a GetStatus answers) and the listing
//! of one directory page by page (first page, all of it).
//!
//! Run with `scripts/bench-master.sh`. Environment: BENCH_MASTER_BIN (the binary,
//! default `target/release/curvine-fluid`), BENCH_MASTER_FILES, BENCH_MASTER_DIRS (20),
//! BENCH_MASTER_CONCURRENCY (64 calls in flight), BENCH_MASTER_SNAPSHOT_ENTRIES
//! (`journal.snapshot_entries`, default the product's 100,000), BENCH_DIR (where the
//! master's dirs go).

use curvine_fluid::client::{Client, Owner};
use curvine_fluid::config::{ClusterConfig, HostPort};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The master process and where it logs.
struct MasterProcess {
    bin: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl MasterProcess {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(&self.bin)
            .args([
                "--conf",
                &self.conf.display().to_string(),
                "master",
                "start",
            ])
            .env_clear()
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// SIGTERM, then waits for the exit (bounded; SIGKILL after 120 s).
    fn stop(&mut self) -> Duration {
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..1200 {
            if child.try_wait().ok().flatten().is_some() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        started.elapsed()
    }

    /// The master's resident memory, bytes.
    fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls GetStatus on `/` until it answers; the time it took.
async fn until_serving(client: &Client) -> Duration {
    let started = Instant::now();
    for _ in 0..6000 {
        if client.stat("/").await.is_ok() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the master did not serve within 5 minutes");
}

/// The snapshots the master logged: (bytes, ms) each.
fn snapshots_logged(log: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let field = |line: &str, name: &str| -> Option<u64> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    text.lines()
        .filter(|l| l.contains("snapshot written"))
        .filter_map(|l| Some((field(l, "bytes")?, field(l, "ms")?)))
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let files = env_or("BENCH_MASTER_FILES", 1_000_000);
    let dirs = env_or("BENCH_MASTER_DIRS", 20).max(1);
    let concurrency = env_or("BENCH_MASTER_CONCURRENCY", 64).max(1);
    let snapshot_entries = env_or("BENCH_MASTER_SNAPSHOT_ENTRIES", 100_000);
    let bin = std::env::var_os("BENCH_MASTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/curvine-fluid")
        });
    let base = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .expect("tempdir");
    let (rpc, journal, web) = (free_port(), free_port(), free_port());
    let d = base.path().display();
    let conf = base.path().join("curvine-cluster.toml");
    std::fs::write(
        &conf,
        format!(
            "[master]\nhostname = \"127.0.0.1\"\nrpc_port = {rpc}\nweb_port = {web}\nmeta_dir = \"{d}/meta\"\n\
             [journal]\nhostname = \"127.0.0.1\"\nrpc_port = {journal}\njournal_dir = \"{d}/journal\"\n\
             snapshot_entries = {snapshot_entries}\n\
             journal_addrs = [{{ id = 1, hostname = \"127.0.0.1\", port = {journal} }}]\n\
             [client]\nmaster_addrs = [{{ hostname = \"127.0.0.1\", port = {rpc} }}]\n"
        ),
    )
    .expect("config");
    let mut master = MasterProcess {
        bin,
        conf,
        log: base.path().join("master.log"),
        child: None,
    };
    let mut config = ClusterConfig::default();
    config.client.master_addrs = vec![HostPort {
        hostname: "127.0.0.1".into(),
        port: rpc,
    }];
    println!(
        "# master scale bench: {files} files in {dirs} directories, {concurrency} calls in flight, snapshot every {snapshot_entries} log entries, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    master.start();
    let client = Client::new(&config).expect("client");
    let first = until_serving(&client).await;
    let rss_empty = master.rss();
    println!(
        "serving after               {:>10.0} ms, RSS {:.1} MiB (empty)",
        first.as_secs_f64() * 1e3,
        mib(rss_empty)
    );
    for dir in 0..dirs {
        client
            .mkdir(&format!("/d{dir:02}"), false)
            .await
            .expect("mkdir");
    }

    // Creates: `concurrency` tasks over a few clients (connections), taking numbers in turn.
    let clients: Vec<Client> = (0..concurrency.div_ceil(8))
        .map(|_| Client::new(&config).expect("client"))
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let client = clients[(t as usize) % clients.len()].clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    break;
                }
                let path = format!("/d{:02}/f{:07}", i % dirs, i / dirs);
                client
                    .create_file(&path, false, false, Owner::root(0o644))
                    .await
                    .unwrap_or_else(|e| panic!("create {path}: {e}"));
                if (i + 1) % (files / 10).max(1) == 0 {
                    println!(
                        "  {:>9} files  {:>8.1} s",
                        i + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("create task");
    }
    let took = started.elapsed().as_secs_f64();
    let rss_full = master.rss();
    println!(
        "create                      {files:>10} files in {took:.1} s = {:.0} creates/s",
        files as f64 / took
    );
    println!(
        "master RSS                  {:>10.1} MiB = {:.0} B/file ({:.0} B/file above the empty master)",
        mib(rss_full),
        rss_full as f64 / files as f64,
        rss_full.saturating_sub(rss_empty) as f64 / files as f64
    );
    let status = client.statfs().await.expect("statfs");
    println!("namespace                   {status:?}");

    // Listing one directory, page by page.
    let per_dir = files.div_ceil(dirs);
    let started = Instant::now();
    let (page, mut more) = client.list_page("/d00", "", 1000).await.expect("list");
    let first_page = started.elapsed();
    let mut listed = page.len() as u64;
    let mut after = page.last().map(|s| s.name.clone()).unwrap_or_default();
    while more {
        let (page, m) = client.list_page("/d00", &after, 1000).await.expect("list");
        listed += page.len() as u64;
        after = page.last().map(|s| s.name.clone()).unwrap_or_default();
        more = m;
    }
    let all = started.elapsed();
    assert_eq!(listed, per_dir, "the listing of /d00");
    println!(
        "list {listed} entries        first page (1,000) {:.1} ms, all {:.0} ms",
        first_page.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3
    );

    // Restart: SIGTERM, start, until GetStatus answers.
    let stopped = master.stop();
    let snapshots = snapshots_logged(&master.log);
    let snapshot_file = std::fs::metadata(base.path().join("meta/raft-snapshot.bin"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "snapshots written           {:>10} (snapshot file {:.1} MiB)",
        snapshots.len(),
        mib(snapshot_file)
    );
    if let Some((bytes, ms)) = snapshots.last() {
        println!(
            "last snapshot               {:>10.1} MiB in {ms} ms",
            mib(*bytes)
        );
    }
    println!(
        "stop (SIGTERM)              {:>10.0} ms",
        stopped.as_secs_f64() * 1e3
    );
    let started = Instant::now();
    master.start();
    let client = Client::new(&config).expect("client");
    until_serving(&client).await;
    let restart = started.elapsed();
    let probe = format!("/d{:02}/f{:07}", (files - 1) % dirs, (files - 1) / dirs);
    client
        .stat(&probe)
        .await
        .expect("the last file after the restart");
    println!(
        "restart to serving          {:>10.0} ms, RSS {:.1} MiB = {:.0} B/file",
        restart.as_secs_f64() * 1e3,
        mib(master.rss()),
        master.rss() as f64 / files as f64
    );
    master.stop();
}
