//! Overwrites inside files through a real FUSE mount of a real cluster (master, worker
//! and clients as separate processes): block-level copy-on-write keeps the content
//! byte for byte, rewrites only the blocks it touches (one new block id each, copied by
//! the worker), stages nothing on the client's disk, and fsync survives a killed
//! worker. Through the short circuit, fsync keeps the rewritten blocks open: rounds of
//! writes and fsyncs copy each block once. Needs root and /dev/fuse.

use crate::cli_cluster::{free_port, http_get};
use crate::cluster::pattern;
use crate::fuse_mount::{config, spawn, Mounted};
use crate::harness::{wait_until, KillOnDrop};
use curvine_fluid::client::Client;
use curvine_fluid::config::ClusterConfig;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A master and a worker (processes) with 1 MiB blocks; the config and the worker's
/// web port.
struct Cluster {
    conf: PathBuf,
    worker_web: u16,
    master: KillOnDrop,
    worker: Option<KillOnDrop>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        Cluster::start_with(dir, |t| t)
    }

    /// [`Cluster::start`] with `edit` applied to the config text too.
    fn start_with(dir: &Path, edit: impl FnOnce(String) -> String) -> Cluster {
        let conf = config(dir, |t| {
            edit(t.replace("[client]\n", "[client]\nblock_size = \"1MB\"\n"))
        });
        let text = std::fs::read_to_string(&conf).expect("conf");
        let doc: toml_edit::DocumentMut = text.parse().expect("toml");
        let worker_web = doc["worker"]["web_port"].as_integer().expect("web_port") as u16;
        let master = KillOnDrop(spawn(&conf, &["master", "start"], &dir.join("master.log")));
        let mut cluster = Cluster {
            conf,
            worker_web,
            master,
            worker: None,
        };
        cluster.start_worker(dir, "worker.log");
        cluster
    }

    /// Starts the worker and waits until it has registered.
    fn start_worker(&mut self, dir: &Path, log: &str) {
        self.worker = Some(KillOnDrop(spawn(
            &self.conf,
            &["worker", "start"],
            &dir.join(log),
        )));
        let port = self.worker_web;
        let registered = wait_until(Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http_get(port, "/healthz").0 == 200
        });
        assert!(registered, "the worker did not register");
    }

    /// SIGKILL of the worker process.
    fn kill_worker(&mut self) {
        let mut worker = self.worker.take().expect("a worker");
        worker.0.kill().expect("kill");
        worker.0.wait().expect("wait");
    }

    /// A client mount at `mnt` whose temporary directory is `tmp`.
    fn mount(&self, mnt: &Path, tmp: &Path) -> Mounted {
        let fuse = format!("web_port = {}", free_port());
        Mounted::client_env(
            &self.conf,
            mnt,
            &fuse,
            &[("TMPDIR", tmp.to_str().expect("tmp"))],
        )
    }

    /// The worker's counter `name` (0 when absent).
    fn worker_metric(&self, name: &str) -> f64 {
        let (_, text) = http_get(self.worker_web, "/metrics");
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// A client library handle on the cluster.
    fn client(&self) -> Client {
        let text = std::fs::read_to_string(&self.conf).expect("conf");
        let config = ClusterConfig::from_toml(&text, "test").expect("config");
        Client::new(&config).expect("client")
    }

    fn master_alive(&mut self) -> bool {
        self.master.0.try_wait().expect("try_wait").is_none()
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Bytes and entries in `dir` and below.
fn used_in(dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut entries = 0;
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        entries += 1;
        let meta = e.metadata().expect("metadata");
        if meta.is_dir() {
            let (b, n) = used_in(&e.path());
            bytes += b;
            entries += n;
        } else {
            bytes += meta.len();
        }
    }
    (bytes, entries)
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("{what}: first difference at byte {i}");
    }
}

#[test]
fn random_overwrites_match_a_model_after_close_remount_and_from_another_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(dir.path());
    let tmp = dir.path().join("client-tmp");
    std::fs::create_dir(&tmp).expect("tmp dir");
    let a = cluster.mount(&dir.path().join("mnt"), &tmp);

    let mut model = pattern(8 * MIB + 12_345, 7);
    std::fs::write(a.path("db.bin"), &model).expect("write");

    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(a.path("db.bin"))
        .expect("open rw");
    let mut rng = Rng(0x5EED);
    for i in 0..300u64 {
        // Mostly 4 KiB pages, some unaligned and some straddling block boundaries;
        // every 50th extends the file past its end.
        let len = if i % 7 == 0 {
            1 + rng.next() % 9000
        } else {
            4096
        } as usize;
        let offset = if i % 50 == 49 {
            model.len() as u64 + rng.next() % 5000
        } else if i % 5 == 0 {
            rng.next() % (model.len() as u64 - len as u64)
        } else {
            (rng.next() % (model.len() as u64 / 4096 - 1)) * 4096
        };
        let data = pattern(len, 1000 + i);
        f.write_all_at(&data, offset).expect("overwrite");
        let end = offset as usize + len;
        if end > model.len() {
            model.resize(end, 0);
        }
        model[offset as usize..end].copy_from_slice(&data);
        if i % 60 == 30 {
            f.sync_all().expect("fsync");
        }
        if i % 40 == 20 {
            // A read through the writing handle sees the writes not yet committed.
            let mut back = vec![0u8; len];
            f.read_exact_at(&mut back, offset).expect("read back");
            assert!(back == data, "read back at {offset} after write {i}");
        }
    }
    drop(f);
    let (staged, entries) = used_in(&tmp);
    assert_eq!(
        (staged, entries),
        (0, 0),
        "nothing is staged in the client's temp dir"
    );

    assert_same(
        &std::fs::read(a.path("db.bin")).expect("read a"),
        &model,
        "after close",
    );
    let b = cluster.mount(&dir.path().join("mnt-b"), &tmp);
    assert_same(
        &std::fs::read(b.path("db.bin")).expect("read b"),
        &model,
        "second client",
    );
    drop(a);
    let a = cluster.mount(&dir.path().join("mnt"), &tmp);
    assert_same(
        &std::fs::read(a.path("db.bin")).expect("read after remount"),
        &model,
        "after remount",
    );

    // Truncate, append and a hole still behave after rewrites.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(a.path("db.bin"))
        .expect("open rw");
    f.set_len(3 * MIB as u64 + 100).expect("truncate");
    model.truncate(3 * MIB + 100);
    f.write_all_at(b"middle", 2 * MIB as u64 + 7)
        .expect("overwrite");
    model[2 * MIB + 7..2 * MIB + 13].copy_from_slice(b"middle");
    f.seek(SeekFrom::End(0)).expect("seek");
    f.write_all(b"appended").expect("append");
    model.extend_from_slice(b"appended");
    f.write_all_at(b"past a hole", 6 * MIB as u64)
        .expect("hole");
    model.resize(6 * MIB, 0);
    model.extend_from_slice(b"past a hole");
    drop(f);
    let mut got = Vec::new();
    std::fs::File::open(b.path("db.bin"))
        .expect("open b")
        .read_to_end(&mut got)
        .expect("read b");
    assert_same(&got, &model, "truncate, append and hole seen by b");
    assert!(cluster.master_alive(), "the master runs");
}

#[test]
fn an_overwrite_of_one_block_changes_one_block_id_copied_by_the_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path());
    let tmp = dir.path().join("client-tmp");
    std::fs::create_dir(&tmp).expect("tmp dir");
    let a = cluster.mount(&dir.path().join("mnt"), &tmp);
    let data = pattern(10 * MIB, 3);
    std::fs::write(a.path("many.bin"), &data).expect("write");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = cluster.client();
    let ids = |client: &Client| -> Vec<u64> {
        rt.block_on(client.locate("/many.bin"))
            .expect("locate")
            .blocks
            .iter()
            .map(|b| b.id)
            .collect()
    };
    let before = ids(&client);
    assert_eq!(before.len(), 10, "ten 1 MiB blocks");
    let copies = cluster.worker_metric("curvine_worker_block_copies_total");

    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.path("many.bin"))
        .expect("open rw");
    f.write_all_at(&[0xCD; 4096], 4 * MIB as u64 + 8192)
        .expect("overwrite");
    f.sync_all().expect("fsync");
    drop(f);

    let after = ids(&client);
    assert_eq!(after.len(), 10);
    let changed: Vec<usize> = (0..10).filter(|&i| before[i] != after[i]).collect();
    assert_eq!(changed, vec![4], "only the fifth block is new");
    assert_eq!(
        cluster.worker_metric("curvine_worker_block_copies_total"),
        copies + 1.0,
        "the worker copied the old block"
    );
    assert!(
        cluster.worker_metric("curvine_worker_block_syncs_total") >= 1.0,
        "fsync synced the new block"
    );
    let mut want = data;
    want[4 * MIB + 8192..4 * MIB + 8192 + 4096].fill(0xCD);
    let got = rt.block_on(client.read_file("/many.bin")).expect("read");
    assert_same(&got, &want, "read through the client library");
    assert_eq!(used_in(&tmp), (0, 0), "nothing staged");
}

#[test]
fn fsynced_overwrites_survive_a_killed_worker() {
    fsynced_overwrites_survive_a_killed_worker_with(false);
}

#[test]
fn fsynced_overwrites_kept_open_through_the_short_circuit_survive_a_killed_worker() {
    fsynced_overwrites_survive_a_killed_worker_with(true);
}

/// Overwrites, fsync, SIGKILL of the worker with the file still open, restart: another
/// mount reads the fsynced data; with `short_circuit`, the blocks were checkpointed and
/// kept open when the worker died, and a write through the old handle fails rather than
/// patching a block the new worker serves as committed.
fn fsynced_overwrites_survive_a_killed_worker_with(short_circuit: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sockets = dir.path().join("sockets");
    let line = format!("[worker]\ndomain_socket_path = \"{}\"\n", sockets.display());
    let mut cluster = Cluster::start_with(dir.path(), |t| {
        if short_circuit {
            t.replace("[worker]\n", &line)
        } else {
            t
        }
    });
    let tmp = dir.path().join("client-tmp");
    std::fs::create_dir(&tmp).expect("tmp dir");
    let a = cluster.mount(&dir.path().join("mnt"), &tmp);
    let mut model = pattern(4 * MIB, 11);
    std::fs::write(a.path("durable.bin"), &model).expect("write");

    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.path("durable.bin"))
        .expect("open rw");
    for (i, offset) in [0usize, MIB + 4096, 3 * MIB - 100].into_iter().enumerate() {
        let data = pattern(8192, 50 + i as u64);
        f.write_all_at(&data, offset as u64).expect("overwrite");
        model[offset..offset + 8192].copy_from_slice(&data);
    }
    let syncs = cluster.worker_metric("curvine_worker_block_syncs_total");
    f.sync_all().expect("fsync");
    assert!(
        cluster.worker_metric("curvine_worker_block_syncs_total") > syncs,
        "fsync reached the worker"
    );
    // The file stays open in `a`: only fsync recorded the new blocks.
    cluster.kill_worker();
    cluster.start_worker(dir.path(), "worker-2.log");

    let b = cluster.mount(&dir.path().join("mnt-b"), &tmp);
    let mut last = None;
    let same = wait_until(Duration::from_secs(60), || {
        match std::fs::read(b.path("durable.bin")) {
            Ok(got) if got == model => true,
            other => {
                last = Some(other.map(|g| g.len()));
                false
            }
        }
    });
    assert!(
        same,
        "the fsynced data after the restart (last read: {last:?})"
    );
    if short_circuit {
        let late = f
            .write_all_at(&[0xEE; 4096], 4096)
            .and_then(|()| f.sync_all());
        assert!(late.is_err(), "a write to a block its worker let go fails");
        // Read from the worker itself (no page cache in between).
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let got = rt
            .block_on(cluster.client().read_file("/durable.bin"))
            .expect("read");
        assert_same(
            &got,
            &model,
            "the committed data after a write through the old handle",
        );
    }
    drop(f);
    drop(a);
}

#[test]
fn overwrites_through_the_short_circuit_patch_the_worker_copied_block_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    // With a socket directory, blocks of the worker on this node are opened, copied by
    // the worker and patched with pwrite.
    let sockets = dir.path().join("sockets");
    let line = format!("[worker]\ndomain_socket_path = \"{}\"\n", sockets.display());
    let m = Mounted::standalone(dir.path(), |t| {
        t.replace("[client]\n", "[client]\nblock_size = \"1MB\"\n")
            .replace("[worker]\n", &line)
    });
    let text = std::fs::read_to_string(dir.path().join("c.toml")).expect("conf");
    let doc: toml_edit::DocumentMut = text.parse().expect("toml");
    let web = doc["worker"]["web_port"].as_integer().expect("web_port") as u16;
    let metric = |name: &str| -> f64 {
        let (_, text) = http_get(web, "/metrics");
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let mut model = pattern(5 * MIB + 77, 21);
    std::fs::write(m.path("sc.bin"), &model).expect("write");
    let opens = metric("curvine_worker_short_circuit_opens_total{mode=\"write\"}");
    let copies = metric("curvine_worker_block_copies_total");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("sc.bin"))
        .expect("open rw");
    let mut rng = Rng(0xC0FFEE);
    for i in 0..100u64 {
        let offset = rng.next() % (model.len() as u64 - 4096);
        let data = pattern(4096, 500 + i);
        f.write_all_at(&data, offset).expect("overwrite");
        model[offset as usize..offset as usize + 4096].copy_from_slice(&data);
    }
    f.sync_all().expect("fsync");
    drop(f);
    assert!(
        metric("curvine_worker_short_circuit_opens_total{mode=\"write\"}") > opens,
        "the rewritten blocks went through the short circuit"
    );
    assert!(
        metric("curvine_worker_block_copies_total") > copies,
        "the worker copied the old blocks"
    );
    assert_same(
        &std::fs::read(m.path("sc.bin")).expect("read"),
        &model,
        "after close",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_placed_on_another_worker_is_copied_through_the_client() {
    use curvine_fluid::fuse::patch::Patch;
    let cluster = crate::cluster::TestCluster::start(1, 2, |c| {
        c.client.block_size = curvine_fluid::config::ByteSize(MIB as u64);
    })
    .await;
    let client = cluster.client();
    let data = pattern(3 * MIB + 10, 41);
    client.write_file("/moved.bin", &data).await.expect("write");
    let mut located = client.locate("/moved.bin").await.expect("locate");
    let before: Vec<u64> = located.blocks.iter().map(|b| b.id).collect();
    // The middle block's worker under an id no live worker has: the master cannot place
    // the new block next to it, so the client copies the old bytes itself (reading by
    // address, which still reaches the block).
    located.blocks[1]
        .worker
        .as_mut()
        .expect("a worker holds the block")
        .id = 999;
    let mut patch = Patch::new(client.clone(), located);
    let at = MIB as u64 + 1000;
    let new = bytes::Bytes::from(vec![0x5A; 4096]);
    assert!(patch.write(at, &new).await.expect("write").is_ok());
    patch.commit().await.expect("commit");

    let after: Vec<u64> = client
        .locate("/moved.bin")
        .await
        .expect("locate")
        .blocks
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!((after[0], after[2]), (before[0], before[2]));
    assert_ne!(after[1], before[1], "the middle block is new");
    let mut want = data;
    want[at as usize..at as usize + 4096].fill(0x5A);
    let got = client.read_file("/moved.bin").await.expect("read");
    assert_same(&got, &want, "after a copy through the client");
    let copies: f64 = cluster
        .worker_configs
        .iter()
        .map(|c| {
            let (_, text) = http_get(c.worker.web_port, "/metrics");
            text.lines()
                .filter(|l| l.starts_with("curvine_worker_block_copies_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum();
    assert_eq!(
        copies, 0.0,
        "no worker copied: the bytes went through the client"
    );
}

#[test]
fn fsync_rounds_through_the_short_circuit_copy_each_block_once_and_keep_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sockets = dir.path().join("sockets");
    let line = format!("[worker]\ndomain_socket_path = \"{}\"\n", sockets.display());
    let cluster = Cluster::start_with(dir.path(), |t| t.replace("[worker]\n", &line));
    let tmp = dir.path().join("client-tmp");
    std::fs::create_dir(&tmp).expect("tmp dir");
    let a = cluster.mount(&dir.path().join("mnt"), &tmp);
    let b = cluster.mount(&dir.path().join("mnt-b"), &tmp);
    let blocks = 6;
    let mut model = pattern(blocks * MIB + 333, 31);
    std::fs::write(a.path("wal.bin"), &model).expect("write");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = cluster.client();
    let ids = || -> Vec<u64> {
        rt.block_on(client.locate("/wal.bin"))
            .expect("locate")
            .blocks
            .iter()
            .map(|b| b.id)
            .collect()
    };
    let before = ids();
    assert_eq!(before.len(), blocks + 1, "six 1 MiB blocks and a short one");
    let copies = cluster.worker_metric("curvine_worker_block_copies_total");
    let opens = cluster.worker_metric("curvine_worker_short_circuit_opens_total{mode=\"write\"}");

    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(a.path("wal.bin"))
        .expect("open rw");
    let mut rng = Rng(0xF5_1C);
    let mut first_ids: Option<Vec<u64>> = None;
    for round in 0..12u64 {
        for i in 0..24u64 {
            // The first round touches every block; later ones land anywhere, some
            // pages straddling a block boundary.
            let offset = if round == 0 && i <= blocks as u64 {
                (i * MIB as u64 + 4096 * i).min(model.len() as u64 - 4096)
            } else if i % 6 == 0 {
                (rng.next() % (blocks as u64 - 1) + 1) * MIB as u64 - 1000
            } else {
                (rng.next() % (model.len() as u64 / 4096 - 1)) * 4096
            };
            let data = pattern(4096, 100 * round + i);
            f.write_all_at(&data, offset).expect("overwrite");
            model[offset as usize..offset as usize + 4096].copy_from_slice(&data);
            if i == 11 {
                // A read through the writing handle sees what it wrote.
                let mut back = vec![0u8; 4096];
                f.read_exact_at(&mut back, offset).expect("read back");
                assert!(back == data, "read back at {offset} in round {round}");
            }
        }
        f.sync_all().expect("fsync");
        let now = ids();
        match &first_ids {
            None => {
                assert!(
                    (0..=blocks).all(|i| now[i] != before[i]),
                    "the first round rewrote every block"
                );
                first_ids = Some(now);
            }
            Some(first) => assert_eq!(
                &now, first,
                "round {round}: the open handle keeps writing the same blocks"
            ),
        }
        // Another client opening after the fsync sees this round's data.
        assert_same(
            &std::fs::read(b.path("wal.bin")).expect("read b"),
            &model,
            &format!("second mount after fsync {round}"),
        );
    }
    let copied = cluster.worker_metric("curvine_worker_block_copies_total") - copies;
    assert!(
        copied <= (blocks + 1) as f64,
        "{copied} block copies over 12 rounds of writes and fsyncs: at most one per block"
    );
    assert!(
        cluster.worker_metric("curvine_worker_short_circuit_opens_total{mode=\"write\"}") > opens,
        "the rewritten blocks went through the short circuit"
    );
    drop(f);
    assert_same(
        &std::fs::read(a.path("wal.bin")).expect("read a"),
        &model,
        "after close",
    );
    assert_same(
        &std::fs::read(b.path("wal.bin")).expect("read b"),
        &model,
        "second mount after close",
    );
    drop(a);
    let a = cluster.mount(&dir.path().join("mnt"), &tmp);
    assert_same(
        &std::fs::read(a.path("wal.bin")).expect("read after remount"),
        &model,
        "after remount",
    );
    assert_eq!(used_in(&tmp), (0, 0), "nothing staged");
}
