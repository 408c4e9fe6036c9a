//! Cluster benchmark through the client library on loopback (one master, one worker, in
//! process): sequential write and read of 1 GiB in 1 MiB requests, then create, stat,
//! rename and delete of 10,000 files with 16 concurrent clients.
//!
//! Run with `scripts/bench-cluster.sh` (or `cargo bench --bench cluster`). Sizes can be
//! reduced with BENCH_BYTES and BENCH_FILES for a quick look.

use curvine_fluid::client::Client;
use curvine_fluid::standalone::Standalone;
use std::time::Instant;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn drop_caches() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

async fn phase<F, Fut>(name: &str, clients: &[Client], files: u64, op: F) -> f64
where
    F: Fn(Client, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let n = clients.len() as u64;
    let mut tasks = Vec::new();
    for (t, client) in clients.iter().enumerate() {
        let (client, op) = (client.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t as u64;
            while i < files {
                op(client.clone(), i).await;
                i += n;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let rate = files as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {files:>8} ops in {:>7.3} s = {rate:>10.0} ops/s",
        start.elapsed().as_secs_f64()
    );
    rate
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let bytes = env_or("BENCH_BYTES", 1 << 30);
    println!(
        "# bytes {bytes}, files {}, clients {}",
        env_or("BENCH_FILES", 10_000),
        env_or("BENCH_CLIENTS", 16)
    );
    let files = env_or("BENCH_FILES", 10_000);
    let dir = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .expect("tempdir");
    let (cluster, config) = Standalone::start_ephemeral(dir.path(), |_| {})
        .await
        .expect("cluster starts");
    println!(
        "# curvine-fluid cluster bench: {} CPUs, leader after {} ms",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cluster.leader_after.as_millis()
    );
    let client = Client::new(&config).expect("client");

    // Sequential write, 1 MiB requests.
    let chunk: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    let start = Instant::now();
    let mut w = client.create("/bench/seq", true).await.expect("create");
    let mut written = 0;
    while written < bytes {
        w.write(&chunk).await.expect("write");
        written += chunk.len() as u64;
    }
    w.close().await.expect("close");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:<28} {:>8} MiB in {secs:>7.3} s = {:>10.1} MB/s",
        "sequential write 1 MiB",
        written >> 20,
        written as f64 / secs / 1e6
    );

    // Sequential read, 1 MiB requests (page cache dropped first when allowed).
    let dropped = drop_caches();
    let start = Instant::now();
    let mut r = client.open("/bench/seq").await.expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    assert_eq!(read, written);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:<28} {:>8} MiB in {secs:>7.3} s = {:>10.1} MB/s{}",
        "sequential read 1 MiB",
        read >> 20,
        read as f64 / secs / 1e6,
        if dropped {
            " (page cache dropped)"
        } else {
            " (page cache warm)"
        }
    );
    client.delete("/bench/seq", false).await.expect("delete");

    // Metadata with 16 clients, each with its own connections.
    let n_clients = env_or("BENCH_CLIENTS", 16) as usize;
    let clients: Vec<Client> = (0..n_clients)
        .map(|_| Client::new(&config).expect("client"))
        .collect();
    client.mkdir("/meta", true).await.expect("mkdir");
    for d in 0..16 {
        client
            .mkdir(&format!("/meta/d{d:02}"), true)
            .await
            .expect("mkdir");
    }
    let path = |i: u64| format!("/meta/d{:02}/f{i:06}", i % 16);
    phase(
        "create (create + close)",
        &clients,
        files,
        move |c, i| async move {
            c.create(&path(i), false)
                .await
                .expect("create")
                .close()
                .await
                .expect("close");
        },
    )
    .await;
    phase("stat", &clients, files, move |c, i| async move {
        c.stat(&path(i)).await.expect("stat");
    })
    .await;
    phase("rename", &clients, files, move |c, i| async move {
        c.rename(&path(i), &format!("{}.r", path(i)), false)
            .await
            .expect("rename");
    })
    .await;
    phase("delete", &clients, files, move |c, i| async move {
        c.delete(&format!("{}.r", path(i)), false)
            .await
            .expect("delete");
    })
    .await;
    cluster.shutdown().await.expect("shutdown");
}
