//! Under storage through the cluster, as Fluid runs it: an S3 server that checks request
//! signatures (s3s-fs) and a local directory, mounted by the `mount-ufs` entry from a
//! runtime.json with secret files; files read byte-exact through the client API, the CLI
//! and a FUSE mount; listings refreshed after the freshness interval; DataLoad and the
//! report; writes through to the storage; eviction then refetch; bad credentials.

use crate::cluster::{pattern, TestCluster};
use crate::fluid_entries::{mounted, one_json, run};
use crate::fuse_mount::Mounted;
use crate::harness::{run_binary, wait_for};
use crate::s3_server::S3Server;
use curvine_fluid::fs_error::FsError;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const ACCESS: &str = "AKIAUFSTEST0001";
const SECRET: &str = "ufs-test-secret-key-0001";
const MIB: usize = 1 << 20;

pub(crate) async fn run_async(conf: &Path, json: &Path, args: &[&str]) -> Output {
    let (conf, json) = (conf.to_path_buf(), json.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&conf, &json, &args, &[])
    })
    .await
    .expect("join")
}

/// Secret files as Fluid mounts them (`/etc/fluid/secrets/<secret>/<key>`).
fn secrets(dir: &Path, access: &str, secret: &str) -> (PathBuf, PathBuf) {
    let d = dir.join("secrets/s3-cred");
    std::fs::create_dir_all(&d).unwrap();
    let (a, s) = (d.join("access-key"), d.join("secret-key"));
    std::fs::write(&a, access).unwrap();
    std::fs::write(&s, format!("{secret}\n")).unwrap();
    (a, s)
}

/// One runtime.json mount of `source` at `path` on `s3`, keys from secret files.
fn s3_mount(
    s3: &S3Server,
    keys: &(PathBuf, PathBuf),
    source: &str,
    path: &str,
    read_only: bool,
) -> String {
    format!(
        r#"{{"mountPoint":"{source}","options":{{"endpoint_url":"{}","path_style":"true","region_name":"us-east-1","sync_interval":"1s"}},"encryptOptions":{{"access":"{}","secret":"{}"}},"path":"{path}"{}}}"#,
        s3.endpoint,
        keys.0.display(),
        keys.1.display(),
        if read_only { r#","readOnly":true"# } else { "" }
    )
}

pub(crate) fn runtime_json(dir: &Path, name: &str, mounts: &[String]) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!(
            r#"{{"mounts":[{}],"accessModes":["ReadWriteMany"],"targetPath":"/runtime-mnt/cache/default/ufs-demo/cache-fuse","master":{{"enabled":true,"name":"ufs-demo-master","replicas":1,"service":{{"name":"svc-ufs-demo-master"}}}}}}"#,
            mounts.join(",")
        ),
    )
    .unwrap();
    file
}

/// Puts an object by writing the server's file (s3s-fs serves its root's files).
fn put_file(s3: &S3Server, bucket: &str, key: &str, data: &[u8]) {
    let file = s3.root().join(bucket).join(key);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, data).unwrap();
}

/// The entries' names, sorted.
pub(crate) fn names(list: &[curvine_fluid::client::FileStatus]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.name.clone()).collect();
    v.sort();
    v
}

fn percent(doc: &serde_json::Value, key: &str) -> f64 {
    let text = doc[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {doc}"));
    text.trim_end_matches('%').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_s3_dataset_binds_reads_refreshes_loads_and_reports() {
    let s3 = S3Server::start(ACCESS, SECRET);
    s3.create_bucket("mlds");
    let small = b"hello under storage\n".to_vec();
    let nested = pattern(3 * MIB + 7, 1);
    let deep = pattern(5000, 2);
    let big = pattern(256 * MIB + 4097, 3);
    put_file(&s3, "mlds", "imagenet/a.txt", &small);
    put_file(&s3, "mlds", "imagenet/train/x.bin", &nested);
    put_file(&s3, "mlds", "imagenet/train/deep/er/y.bin", &deep);
    put_file(&s3, "mlds", "imagenet/train/big.bin", &big);
    put_file(&s3, "mlds", "other/outside.txt", b"not in the mount");

    let cluster = TestCluster::start(1, 2, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, cluster.client_toml()).unwrap();
    let keys = secrets(dir.path(), ACCESS, SECRET);
    let json = runtime_json(
        dir.path(),
        "runtime.json",
        &[s3_mount(
            &s3,
            &keys,
            "s3://mlds/imagenet",
            "/imagenet",
            true,
        )],
    );
    let out = run_async(&conf, &json, &["mount-ufs"]).await;
    assert_eq!(mounted(&one_json(&out)), vec!["/imagenet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(SECRET), "the secret was logged: {stderr}");
    // Idempotent.
    let again = run_async(&conf, &json, &["mount-ufs"]).await;
    assert_eq!(mounted(&one_json(&again)), vec!["/imagenet"]);

    let client = cluster.client();
    assert_eq!(
        names(&client.list("/imagenet").await.unwrap()),
        vec!["a.txt", "train"]
    );
    assert_eq!(
        names(&client.list("/imagenet/train").await.unwrap()),
        vec!["big.bin", "deep", "x.bin"]
    );
    assert_eq!(client.read_file("/imagenet/a.txt").await.unwrap(), small);
    assert_eq!(
        client.read_file("/imagenet/train/x.bin").await.unwrap(),
        nested
    );
    // A deep path stat'ed first: its directories are listed on the way.
    assert_eq!(
        client
            .stat("/imagenet/train/deep/er/y.bin")
            .await
            .unwrap()
            .size,
        deep.len() as u64
    );
    assert_eq!(
        client
            .read_file("/imagenet/train/deep/er/y.bin")
            .await
            .unwrap(),
        deep
    );
    // Ranged reads of the big object, then the whole of it.
    let mut reader = client.open("/imagenet/train/big.bin").await.unwrap();
    for (offset, len) in [(5 * MIB + 3, 2 * MIB + 9), (0, 100), (256 * MIB, 4097)] {
        let got = reader.read_at(offset as u64, len).await.unwrap();
        assert!(got == big[offset..offset + len], "range {offset}+{len}");
    }
    // Concurrent readers of one uncached block: one fetch (bytes served by fetching
    // grow by the file's length once, not once per reader).
    let fetched = || async {
        tokio::time::sleep(Duration::from_millis(400)).await; // a heartbeat or more
        client.report().await.unwrap().bytes_fetched
    };
    // Four concurrent readers of `path` (a copy of `nested`).
    let four_readers = |path: &'static str| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.read_file(path).await.unwrap() })
            })
            .collect();
        let nested = &nested;
        async move {
            for r in readers {
                assert!(r.await.unwrap() == *nested);
            }
        }
    };
    let before = fetched().await;
    four_readers("/imagenet/train/x.bin").await;
    assert_eq!(
        fetched().await - before,
        0,
        "x.bin was cached by the earlier read"
    );
    put_file(&s3, "mlds", "imagenet/train/same.bin", &nested);
    client.list_with("/imagenet/train", true).await.unwrap();
    let before = fetched().await;
    four_readers("/imagenet/train/same.bin").await;
    assert_eq!(
        fetched().await - before,
        nested.len() as u64,
        "four readers of one block fetched it more than once"
    );
    let whole = client.read_file("/imagenet/train/big.bin").await.unwrap();
    assert!(whole == big, "the 256 MiB object read back differs");

    // The CLI reads through the cluster too.
    let cli = {
        let conf = conf.clone();
        tokio::task::spawn_blocking(move || {
            run_binary(
                &[
                    "--conf",
                    conf.to_str().unwrap(),
                    "fs",
                    "cat",
                    "/imagenet/train/x.bin",
                ],
                &[],
            )
        })
        .await
        .unwrap()
    };
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(cli.stdout == nested, "fs cat differs");

    // Read-only mount: changes are refused.
    for e in [
        client.write_file("/imagenet/new", b"x").await.err(),
        client.mkdir("/imagenet/d", false).await.err(),
        client.delete("/imagenet/a.txt", false).await.err(),
    ] {
        assert!(matches!(e, Some(FsError::ReadOnly(_))), "{e:?}");
    }

    // DataLoad warms every file; the report then shows everything cached.
    let load = run_async(&conf, &json, &["load", "/imagenet"]).await;
    let log =
        String::from_utf8_lossy(&load.stderr).to_string() + &String::from_utf8_lossy(&load.stdout);
    assert!(load.status.success(), "load failed: {log}");
    assert!(log.contains("DataLoad finished"), "{log}");
    wait_for("everything cached", Duration::from_secs(20), || async {
        let out = run_async(&conf, &json, &["report-summary"]).await;
        percent(&one_json(&out), "cachedPercentage") == 100.0
    })
    .await;
    // Reads now come from the cache: the hit ratio moves up from where the cold reads left it.
    let before = percent(
        &one_json(&run_async(&conf, &json, &["report-summary"]).await),
        "cacheHitRatio",
    );
    assert!(before < 100.0, "cold reads were not counted as misses");
    for _ in 0..2 {
        assert!(client.read_file("/imagenet/train/big.bin").await.unwrap() == big);
    }
    wait_for("the hit ratio to rise", Duration::from_secs(10), || async {
        let doc = one_json(&run_async(&conf, &json, &["report-summary"]).await);
        percent(&doc, "cacheHitRatio") > before
    })
    .await;

    // Changes in the bucket show within the freshness interval (1 s).
    put_file(&s3, "mlds", "imagenet/new.txt", b"new object");
    wait_for("a new object", Duration::from_secs(15), || async {
        client.read_file("/imagenet/new.txt").await.ok() == Some(b"new object".to_vec())
    })
    .await;
    let changed = b"changed, and longer than before\n".to_vec();
    put_file(&s3, "mlds", "imagenet/a.txt", &changed);
    wait_for("a changed object", Duration::from_secs(15), || async {
        client.read_file("/imagenet/a.txt").await.ok() == Some(changed.clone())
    })
    .await;
    std::fs::remove_file(s3.root().join("mlds/imagenet/train/x.bin")).unwrap();
    wait_for("a removed object", Duration::from_secs(15), || async {
        matches!(
            client.stat("/imagenet/train/x.bin").await,
            Err(FsError::NotFound(_))
        )
    })
    .await;
    assert!(client.stat("/imagenet/outside.txt").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_keys_list_and_a_local_directory_writes_through() {
    let s3 = S3Server::start(ACCESS, SECRET);
    s3.create_bucket("logs");
    let mut want = Vec::new();
    for i in 0..10_000 {
        let name = format!("k{i:05}.json");
        put_file(
            &s3,
            "logs",
            &format!("many/{name}"),
            format!("{i}").as_bytes(),
        );
        want.push(name);
    }
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(local.path().join("sub")).unwrap();
    let local_data = pattern(MIB + 11, 4);
    std::fs::write(local.path().join("sub/f.bin"), &local_data).unwrap();

    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, cluster.client_toml()).unwrap();
    let keys = secrets(dir.path(), ACCESS, SECRET);
    let local_mount = format!(
        r#"{{"mountPoint":"local://{}","options":{{"sync_interval":"1s"}},"name":"local"}}"#,
        local.path().display()
    );
    let json = runtime_json(
        dir.path(),
        "runtime.json",
        &[
            s3_mount(&s3, &keys, "s3://logs/many", "/many", true),
            local_mount,
        ],
    );
    let out = run_async(&conf, &json, &["mount-ufs"]).await;
    // Fluid expects local:// mounts not to be reported.
    assert_eq!(mounted(&one_json(&out)), vec!["/many"]);

    let client = cluster.client();
    let started = Instant::now();
    let listed = client.list("/many").await.unwrap();
    eprintln!("first listing of 10,000 keys: {:?}", started.elapsed());
    assert_eq!(names(&listed), want);
    assert_eq!(
        client.read_file("/many/k04242.json").await.unwrap(),
        b"4242"
    );

    // The local directory: read, then writes go through to it.
    assert_eq!(
        client.read_file("/local/sub/f.bin").await.unwrap(),
        local_data
    );
    let data = pattern(9 * MIB + 5, 5);
    client.mkdir("/local/out", false).await.unwrap();
    assert!(local.path().join("out").is_dir());
    client.write_file("/local/out/w.bin", &data).await.unwrap();
    assert!(std::fs::read(local.path().join("out/w.bin")).unwrap() == data);
    client
        .rename("/local/out/w.bin", "/local/out/moved.bin", false)
        .await
        .unwrap();
    assert!(!local.path().join("out/w.bin").exists());
    assert!(std::fs::read(local.path().join("out/moved.bin")).unwrap() == data);
    assert!(client.read_file("/local/out/moved.bin").await.unwrap() == data);
    client.delete("/local/out/moved.bin", false).await.unwrap();
    assert!(!local.path().join("out/moved.bin").exists());
    // A move out of the mount is EXDEV (the caller copies).
    client.write_file("/local/x", b"x").await.unwrap();
    assert!(matches!(
        client.rename("/local/x", "/elsewhere", false).await,
        Err(FsError::CrossDevice(_))
    ));
    // rmdir of a directory that holds files in the storage: ENOTEMPTY.
    assert!(matches!(
        client.delete("/local/sub", false).await,
        Err(FsError::NotEmpty(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_writes_go_through_before_close_and_a_failed_upload_leaves_nothing() {
    let s3 = S3Server::start(ACCESS, SECRET);
    s3.create_bucket("out");
    put_file(&s3, "out", "results/keep.txt", b"keep");
    let cluster = TestCluster::start(1, 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, cluster.client_toml()).unwrap();
    let keys = secrets(dir.path(), ACCESS, SECRET);
    let json = runtime_json(
        dir.path(),
        "runtime.json",
        &[s3_mount(&s3, &keys, "s3://out/results", "/results", false)],
    );
    let out = run_async(&conf, &json, &["mount-ufs"]).await;
    assert_eq!(mounted(&one_json(&out)), vec!["/results"]);

    let client = cluster.client();
    let object = |key: &str| std::fs::read(s3.root().join("out/results").join(key)).ok();
    // 20 MiB: a multipart upload; complete in the bucket when close returns.
    let data = pattern(20 * MIB + 3, 6);
    client
        .write_file("/results/model.bin", &data)
        .await
        .unwrap();
    assert!(object("model.bin").as_deref() == Some(&data[..]));
    client.mkdir("/results/epoch1", false).await.unwrap();
    client
        .rename("/results/model.bin", "/results/epoch1/model.bin", false)
        .await
        .unwrap();
    assert!(object("model.bin").is_none());
    assert!(object("epoch1/model.bin").as_deref() == Some(&data[..]));
    assert!(client.read_file("/results/epoch1/model.bin").await.unwrap() == data);
    client.delete("/results/keep.txt", false).await.unwrap();
    assert!(object("keep.txt").is_none());

    // The server goes away: the write fails and no object appears.
    let root = s3.root();
    drop(s3);
    let err = client.write_file("/results/lost.bin", b"lost").await;
    assert!(err.is_err(), "a write acknowledged without the storage");
    assert!(!root.join("out/results/lost.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_credentials_a_missing_bucket_and_a_closed_port_fail_fast_with_one_line() {
    let s3 = S3Server::start(ACCESS, SECRET);
    s3.create_bucket("mlds");
    let dir = tempfile::tempdir().unwrap();
    // No cluster: the storage is checked before the masters are asked.
    let conf = dir.path().join("c.toml");
    std::fs::write(
        &conf,
        "cluster_id = \"t\"\n[client]\nmaster_addrs = [{ hostname = \"127.0.0.1\", port = 1 }]\n",
    )
    .unwrap();
    let good = secrets(dir.path(), ACCESS, SECRET);
    let wrong_dir = dir.path().join("wrong");
    let wrong = secrets(&wrong_dir, ACCESS, "not-the-secret");
    let closed = crate::ports::free_port();
    let cases = [
        (
            s3_mount(&s3, &wrong, "s3://mlds/imagenet", "/imagenet", true),
            "access and secret",
        ),
        (
            s3_mount(&s3, &good, "s3://no-such-bucket/x", "/x", true),
            "bucket",
        ),
        (
            s3_mount(&s3, &good, "s3://mlds/imagenet", "/imagenet", true)
                .replace(&s3.endpoint, &format!("http://127.0.0.1:{closed}")),
            "endpoint",
        ),
    ];
    for (i, (mount, fix)) in cases.into_iter().enumerate() {
        let json = runtime_json(dir.path(), &format!("r{i}.json"), &[mount]);
        let started = Instant::now();
        let out = run_async(&conf, &json, &["mount-ufs"]).await;
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} succeeded");
        assert!(out.stdout.is_empty(), "case {i} printed on stdout");
        assert!(took < Duration::from_secs(40), "case {i} took {took:?}");
        let line = stderr
            .lines()
            .find(|l| l.contains("mounts[0]"))
            .unwrap_or_else(|| panic!("case {i}: no line names mounts[0]: {stderr}"));
        assert!(line.contains(fix), "case {i}: {line}");
        assert!(!stderr.contains("not-the-secret") && !stderr.contains(SECRET));
    }
}

#[test]
fn an_s3_dataset_through_fuse_with_eviction_and_refetch() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = S3Server::start(ACCESS, SECRET);
    s3.create_bucket("mlds");
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("part-{i}.bin"), pattern(8 * MIB + i, 10 + i as u64)))
        .collect();
    for (name, data) in &files {
        put_file(&s3, "mlds", &format!("ds/{name}"), data);
    }
    put_file(&s3, "mlds", "ds/big/big.bin", &pattern(256 * MIB + 3, 20));
    // A worker with room for about two of the files: reading all evicts the first.
    let cluster = rt.block_on(TestCluster::start_with(
        1,
        1,
        |_| {},
        |_, c| {
            let path = c.worker.data_dir[0]
                .trim_start_matches("[DISK]")
                .to_string();
            c.worker.data_dir = vec![format!("[DISK:20MB]{path}")];
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(&conf, cluster.client_toml()).unwrap();
    let keys = secrets(dir.path(), ACCESS, SECRET);
    let json = runtime_json(
        dir.path(),
        "runtime.json",
        &[s3_mount(&s3, &keys, "s3://mlds/ds", "/ds", true)],
    );
    let out = run(&conf, &json, &["mount-ufs"], &[]);
    assert_eq!(mounted(&one_json(&out)), vec!["/ds"]);

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let m = Mounted::client(&conf, &mnt, "");
    let listing = m.ok("ls ds | sort | tr '\\n' ' '");
    assert_eq!(
        listing.trim(),
        "big part-0.bin part-1.bin part-2.bin part-3.bin"
    );
    // A 256 MiB object through the mount, block by block through the small worker.
    m.ok(&format!(
        "cmp ds/big/big.bin {}/mlds/ds/big/big.bin",
        s3.root().display()
    ));
    let source = s3.root().join("mlds/ds");
    for round in 0..2 {
        for (name, _) in &files {
            m.ok(&format!(
                "cmp {mnt}/ds/{name} {src}/{name}",
                mnt = mnt.display(),
                src = source.display()
            ));
        }
        eprintln!("round {round} read back byte-exact");
    }
    // All four files (32 MiB) went through a worker with 20 MB: the second round read
    // blocks that had been evicted, fetched again.
    let used: u64 = cluster.workers[0]
        .as_ref()
        .unwrap()
        .store()
        .usage()
        .iter()
        .map(|t| t.used)
        .sum();
    assert!(used <= 20_000_000, "nothing was evicted: {used} bytes held");
    // Read-only: a new file, and an existing one opened for appending, are EROFS at open.
    for script in ["echo x > ds/new.txt", "echo x >> ds/part-0.bin"] {
        let write = m.sh(script);
        assert!(!write.status.success(), "{script} succeeded");
        assert!(
            String::from_utf8_lossy(&write.stderr).contains("Read-only"),
            "{script}: {}",
            String::from_utf8_lossy(&write.stderr)
        );
    }
    drop(m);
}
