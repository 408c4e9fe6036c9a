//! The under-storage layer against a real S3 server (s3s-fs, which checks signatures)
//! and against a local directory: specs and secrets, probing, listing, stat, ranged
//! reads, multipart writes, copy and deletes.
//!
//! s3s-fs keeps objects as files, so a marker object `dir/` is a directory on its disk:
//! an empty marker does not show in its listings, and a HEAD of a prefix is a server
//! error there. The tests that need markers on S3 give them content beside them.

use crate::cluster::pattern;
use crate::s3_server::{free_port, S3Server};
use bytes::Bytes;
use curvine_fluid::ufs::{SecretSource, Ufs, UfsEntry, UfsError, UfsSpec, PAGE};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const ACCESS: &str = "test-access";
const SECRET: &str = "test-secret-0123456789";

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A local mount of a new temporary directory.
fn local_mount() -> (tempfile::TempDir, Ufs) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp = format!("local://{}", dir.path().display());
    let (spec, _) = UfsSpec::from_fluid(&mp, &BTreeMap::new(), &BTreeMap::new()).expect("spec");
    let ufs = Ufs::open(&spec).expect("open");
    (dir, ufs)
}

/// Every entry of directory `dir`, page by page; checks the page bound on the way.
async fn list_all(ufs: &Ufs, dir: &str) -> (Vec<UfsEntry>, usize) {
    let mut lister = ufs.lister(dir).await.expect("lister");
    let (mut all, mut pages) = (Vec::new(), 0);
    loop {
        let page = lister.next_page().await.expect("page");
        if page.is_empty() {
            return (all, pages);
        }
        assert!(page.len() <= PAGE, "a page of {}", page.len());
        pages += 1;
        all.extend(page);
    }
}

/// `name/` for directories, `name` for files, sorted.
async fn names(ufs: &Ufs, dir: &str) -> Vec<String> {
    let (entries, _) = list_all(ufs, dir).await;
    let mut names: Vec<String> = entries
        .iter()
        .map(|e| {
            if e.is_dir {
                format!("{}/", e.name)
            } else {
                e.name.clone()
            }
        })
        .collect();
    names.sort();
    names
}

async fn put(ufs: &Ufs, path: &str, data: &[u8]) -> UfsEntry {
    let mut w = ufs.writer(path).await.expect("writer");
    w.write(Bytes::copy_from_slice(data)).await.expect("write");
    w.finish().await.expect("finish")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_come_from_files_and_never_show() {
    let server = S3Server::start(ACCESS, SECRET);
    server.create_bucket("creds");
    let dir = tempfile::tempdir().unwrap();
    let (ak, sk) = (dir.path().join("access-key"), dir.path().join("secret-key"));
    std::fs::write(&ak, format!("{ACCESS}\n")).unwrap();
    std::fs::write(&sk, format!("{SECRET}\n")).unwrap();
    let encrypt = map(&[
        ("access", ak.to_str().unwrap()),
        ("secret", sk.to_str().unwrap()),
    ]);
    let options = map(&[
        ("endpoint_url", &server.endpoint),
        ("region_name", "us-east-1"),
        ("path_style", "true"),
        ("foo", "bar"),
    ]);
    let (spec, warnings) = UfsSpec::from_fluid("s3://creds/p", &options, &encrypt).unwrap();
    assert_eq!(
        warnings,
        ["unknown option \"foo\" of mount s3://creds/p is ignored"]
    );
    assert_eq!(
        spec.secrets["secret"],
        SecretSource::File(sk.to_str().unwrap().into())
    );
    let ufs = Ufs::open(&spec).expect("open");
    ufs.probe(Duration::from_secs(5)).await.expect("probe");
    for shown in [format!("{spec:?}"), format!("{ufs:?}")] {
        assert!(!shown.contains(SECRET), "{shown}");
    }

    // ThinRuntime configmap mode: the option's value is the secret file's path.
    let thin = map(&[
        ("endpoint_url", &server.endpoint),
        ("access_key_id", ak.to_str().unwrap()),
        ("secret_access_key", sk.to_str().unwrap()),
    ]);
    let (thin_spec, _) = UfsSpec::from_fluid("s3://creds", &thin, &BTreeMap::new()).unwrap();
    Ufs::open(&thin_spec)
        .unwrap()
        .probe(Duration::from_secs(5))
        .await
        .expect("probe with secret files given as options");

    // Inline values work and are masked.
    let inline = server.spec("creds");
    assert!(!format!("{inline:?}").contains(SECRET));
    assert!(!serde_json::to_string(&inline.masked())
        .unwrap()
        .contains(SECRET));
    Ufs::open(&inline)
        .unwrap()
        .probe(Duration::from_secs(5))
        .await
        .unwrap();

    // A missing secret file: open names the file and the key.
    std::fs::remove_file(&sk).unwrap();
    let err = Ufs::open(&spec).unwrap_err();
    assert!(matches!(err, UfsError::PermissionDenied(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(sk.to_str().unwrap()) && text.contains("\"secret\""),
        "{text}"
    );
    assert!(!text.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probe_fails_fast_and_clearly() {
    let server = S3Server::start(ACCESS, SECRET);
    server.create_bucket("probe");
    let timeout = Duration::from_secs(3);

    let mut wrong = server.options();
    wrong.insert("secret".into(), "not-the-secret".into());
    let (spec, _) = UfsSpec::from_fluid("s3://probe", &wrong, &BTreeMap::new()).unwrap();
    let err = Ufs::open(&spec).unwrap().probe(timeout).await.unwrap_err();
    assert!(matches!(err, UfsError::PermissionDenied(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("s3://probe: the server refused the credentials (SignatureDoesNotMatch)")
            && text.contains("encryptOptions"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "{text}");
    assert_eq!(err.errno(), libc::EACCES);

    let mut unknown = server.options();
    unknown.insert("access".into(), "nobody".into());
    let (spec, _) = UfsSpec::from_fluid("s3://probe", &unknown, &BTreeMap::new()).unwrap();
    let err = Ufs::open(&spec).unwrap().probe(timeout).await.unwrap_err();
    assert!(matches!(err, UfsError::PermissionDenied(_)), "{err}");

    let err = server
        .ufs("missing-bucket")
        .probe(timeout)
        .await
        .unwrap_err();
    assert!(matches!(err, UfsError::NoBucket(_)), "{err}");
    assert!(
        err.to_string()
            .contains("\"missing-bucket\" does not exist"),
        "{err}"
    );

    // Nothing listens: refused at once (after opendal's few quick retries).
    let closed = format!("http://127.0.0.1:{}", free_port());
    let opts = map(&[("endpoint_url", &closed), ("access", "a"), ("secret", "s")]);
    let (spec, _) = UfsSpec::from_fluid("s3://probe", &opts, &BTreeMap::new()).unwrap();
    let started = Instant::now();
    let err = Ufs::open(&spec).unwrap().probe(timeout).await.unwrap_err();
    assert!(matches!(err, UfsError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains(&closed), "{err}");
    assert!(started.elapsed() <= timeout + Duration::from_secs(1));

    // A server that accepts and never answers: bounded by the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let opts = map(&[
        ("endpoint_url", &silent_url),
        ("access", "a"),
        ("secret", "s"),
    ]);
    let (spec, _) = UfsSpec::from_fluid("s3://probe", &opts, &BTreeMap::new()).unwrap();
    let started = Instant::now();
    let err = Ufs::open(&spec)
        .unwrap()
        .probe(Duration::from_secs(1))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, UfsError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains("within 1s"), "{err}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A local mount whose directory is missing on this node.
    let (spec, _) = UfsSpec::from_fluid(
        "local:///nonexistent/curvine-ufs-test",
        &BTreeMap::new(),
        &BTreeMap::new(),
    )
    .unwrap();
    let err = Ufs::open(&spec).unwrap_err();
    assert!(matches!(err, UfsError::NotFound(_)), "{err}");
    assert!(
        err.to_string().contains("does not exist on this node"),
        "{err}"
    );
    let (_dir, local) = local_mount();
    local.probe(timeout).await.expect("local probe");
}

/// The shared layout: files at several depths, a prefix with a marker and one without.
async fn nested_layout(ufs: &Ufs) {
    put(ufs, "top.txt", b"top").await;
    put(ufs, "a/x.txt", b"xx").await;
    put(ufs, "a/b/y.txt", b"yyy").await;
    ufs.create_dir("m").await.expect("marker m/");
    put(ufs, "m/z.txt", b"z").await;
    put(ufs, "n/deep/deeper/f", b"ffff").await;
}

async fn check_nested(ufs: &Ufs) {
    assert_eq!(names(ufs, "").await, ["a/", "m/", "n/", "top.txt"]);
    assert_eq!(names(ufs, "a").await, ["b/", "x.txt"]);
    assert_eq!(
        names(ufs, "m").await,
        ["z.txt"],
        "m's own marker is no entry"
    );
    assert_eq!(names(ufs, "n").await, ["deep/"]);
    assert_eq!(names(ufs, "n/deep/deeper").await, ["f"]);
    assert!(names(ufs, "nothing-here").await.is_empty());

    let (entries, _) = list_all(ufs, "a").await;
    let x = entries.iter().find(|e| e.name == "x.txt").unwrap();
    assert_eq!(x.size, 2);
    assert!(x.mtime_ms > 1_600_000_000_000, "{x:?}");

    let file = ufs.stat("a/x.txt").await.unwrap().expect("a file");
    assert!(!file.is_dir && file.size == 2 && file.name == "x.txt");
    assert!(!file.etag.is_empty());
    for dir in ["a", "m", "n/deep", "a/b"] {
        let entry = ufs
            .stat(dir)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{dir}"));
        assert!(entry.is_dir, "{dir}: {entry:?}");
    }
    assert_eq!(ufs.stat("").await.unwrap().map(|e| e.is_dir), Some(true));
    for missing in ["nope", "a/x", "a/x.txt2", "n/dee"] {
        assert_eq!(ufs.stat(missing).await.unwrap(), None, "{missing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_listing_and_stat_on_s3() {
    let server = S3Server::start(ACCESS, SECRET);
    server.create_bucket("nested");
    // A mount of a prefix sees only what is under it.
    server.put_object("nested", "outside.txt", b"o").await;
    let ufs = server.ufs("nested/data");
    nested_layout(&ufs).await;
    check_nested(&ufs).await;
    assert!(server.root().join("nested/data/a/x.txt").is_file());
    let whole = server.ufs("nested");
    assert_eq!(names(&whole, "").await, ["data/", "outside.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_listing_and_stat_on_a_local_directory() {
    let (dir, ufs) = local_mount();
    nested_layout(&ufs).await;
    // An empty directory shows, and the staging directory of writes never does.
    ufs.create_dir("empty").await.unwrap();
    assert_eq!(
        names(&ufs, "").await,
        ["a/", "empty/", "m/", "n/", "top.txt"]
    );
    std::fs::remove_dir(dir.path().join("empty")).unwrap();
    check_nested(&ufs).await;
    assert_eq!(ufs.stat(".curvine-ufs-staging").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_keys_list_in_pages() {
    const KEYS: usize = 10_000;
    let server = S3Server::start(ACCESS, SECRET);
    server.create_bucket("many");
    let ufs = server.ufs("many");
    let started = Instant::now();
    futures::stream::iter(0..KEYS)
        .map(|i| {
            let ufs = ufs.clone();
            async move {
                let mut w = ufs.writer(&format!("big/k{i:05}")).await.expect("writer");
                w.write(Bytes::from(i.to_string())).await.expect("write");
                w.finish().await.expect("finish")
            }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;
    let put_time = started.elapsed();
    put(&ufs, "big/sub/inner", b"i").await;

    let started = Instant::now();
    let (entries, pages) = list_all(&ufs, "big").await;
    let list_time = started.elapsed();
    assert_eq!(entries.len(), KEYS + 1);
    assert!(pages >= KEYS / PAGE, "{pages} pages");
    let unique: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(unique.len(), KEYS + 1, "no entry twice");
    assert!(unique.contains("k00000") && unique.contains("k09999"));
    let sub = entries.iter().find(|e| e.name == "sub").unwrap();
    assert!(sub.is_dir);
    let k42 = entries.iter().find(|e| e.name == "k00042").unwrap();
    assert_eq!(k42.size, 2);
    eprintln!("10,000 PUTs: {put_time:?}; listing in {pages} pages: {list_time:?}");

    // A local directory pages the same way.
    let (dir, local) = local_mount();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    for i in 0..2_500 {
        std::fs::write(dir.path().join(format!("d/f{i}")), b"x").unwrap();
    }
    let (entries, pages) = list_all(&local, "d").await;
    assert_eq!((entries.len(), pages), (2_500, 3));
    assert!(entries.iter().all(|e| e.size == 1 && !e.etag.is_empty()));
}

/// Ranged reads, etag checks, multipart writes and aborts, on any backend.
async fn reads_and_writes(ufs: &Ufs, staging_left: impl Fn() -> usize) {
    let len = 21 * 1024 * 1024 + 12_345;
    let data = pattern(len, 7);
    let mut w = ufs.writer("blob/big.bin").await.unwrap();
    for piece in data.chunks(3 * 1024 * 1024 + 17) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    assert_eq!(
        ufs.stat("blob/big.bin").await.unwrap(),
        None,
        "visible before finish"
    );
    let entry = w.finish().await.unwrap();
    assert_eq!(entry.size, len as u64);
    assert!(!entry.etag.is_empty());
    assert_eq!(
        ufs.stat("blob/big.bin").await.unwrap().as_ref(),
        Some(&entry)
    );

    let etag = entry.etag.as_str();
    for (offset, n) in [
        (0, 4096),
        (1, 1),
        (5 * 1024 * 1024 - 3, 3 * 1024 * 1024 + 11),
        (len - 100, 100),
    ] {
        let got = ufs
            .read_range("blob/big.bin", offset as u64, n as u64, etag)
            .await
            .unwrap();
        assert!(got[..] == data[offset..offset + n], "range {offset}+{n}");
    }
    let all = ufs
        .read_range_parallel("blob/big.bin", 0, len as u64, etag, 4)
        .await
        .unwrap();
    assert!(all[..] == data[..], "parallel read of the whole object");
    let mid = ufs
        .read_range_parallel("blob/big.bin", 777, 20 * 1024 * 1024, "", 3)
        .await
        .unwrap();
    assert!(mid[..] == data[777..777 + 20 * 1024 * 1024]);
    assert!(ufs
        .read_range("blob/big.bin", 10, 0, etag)
        .await
        .unwrap()
        .is_empty());

    let err = ufs
        .read_range("blob/big.bin", 0, 10, "0123456789abcdef")
        .await
        .unwrap_err();
    assert!(matches!(err, UfsError::Changed(_)), "{err}");
    assert_eq!(err.errno(), libc::ESTALE);
    let err = ufs
        .read_range("blob/big.bin", len as u64 - 5, 10, "")
        .await
        .unwrap_err();
    assert!(matches!(err, UfsError::Changed(_)), "short read: {err}");
    let err = ufs
        .read_range("blob/big.bin", len as u64 + 10, 10, "")
        .await
        .unwrap_err();
    assert!(
        matches!(err, UfsError::Changed(_)),
        "read past the end: {err}"
    );
    let err = ufs.read_range("blob/missing", 0, 10, "").await.unwrap_err();
    assert!(matches!(err, UfsError::NotFound(_)), "{err}");

    // Replaced under a reader that knows the old etag.
    let small = put(ufs, "blob/small", b"version one").await;
    put(ufs, "blob/small", b"version two!").await;
    let err = ufs
        .read_range_parallel("blob/small", 0, 5, &small.etag, 2)
        .await
        .unwrap_err();
    assert!(matches!(err, UfsError::Changed(_)), "{err}");

    // Abort, and a drop without finish: no object, nothing staged.
    let mut w = ufs.writer("blob/aborted").await.unwrap();
    w.write(Bytes::from(pattern(9 * 1024 * 1024, 3)))
        .await
        .unwrap();
    w.abort().await.unwrap();
    let mut w = ufs.writer("blob/dropped").await.unwrap();
    w.write(Bytes::from(pattern(9 * 1024 * 1024, 4)))
        .await
        .unwrap();
    drop(w);
    let settled = crate::harness::poll_until_async(Duration::from_secs(5), || async {
        (staging_left() == 0).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the dropped writer's upload was not aborted"
    );
    assert_eq!(ufs.stat("blob/aborted").await.unwrap(), None);
    assert_eq!(ufs.stat("blob/dropped").await.unwrap(), None);
    assert_eq!(names(ufs, "blob").await, ["big.bin", "small"]);
}

/// Files in s3s-fs's root that are not objects: unfinished multipart uploads.
fn pending_uploads(root: &std::path::Path) -> usize {
    std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranged_reads_and_multipart_writes_on_s3() {
    let server = S3Server::start(ACCESS, SECRET);
    server.create_bucket("readwrite");
    let ufs = server.ufs("readwrite/prefix");
    let root = server.root();
    let started = Instant::now();
    reads_and_writes(&ufs, || pending_uploads(&root)).await;
    eprintln!("s3 reads and writes: {:?}", started.elapsed());
    // The multipart upload left an S3 multipart etag.
    let big = ufs.stat("blob/big.bin").await.unwrap().unwrap();
    assert!(big.etag.ends_with("-3"), "{}", big.etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ranged_reads_and_writes_on_a_local_directory() {
    let (dir, ufs) = local_mount();
    let staging = dir.path().join(".curvine-ufs-staging");
    let staged = || std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0);
    reads_and_writes(&ufs, staged).await;
    assert_eq!(
        std::fs::read(dir.path().join("blob/small")).unwrap(),
        b"version two!"
    );
}

/// Copy, deletes and directories, on any backend.
async fn copy_delete_dirs(ufs: &Ufs) {
    put(ufs, "src/a.txt", b"alpha").await;
    let copied = ufs.copy("src/a.txt", "dst/deep/a-copy.txt").await.unwrap();
    assert_eq!((copied.name.as_str(), copied.size), ("a-copy.txt", 5));
    assert_eq!(
        &ufs.read_range("dst/deep/a-copy.txt", 0, 5, &copied.etag)
            .await
            .unwrap()[..],
        b"alpha"
    );
    let err = ufs.copy("src/none", "dst/none").await.unwrap_err();
    assert!(matches!(err, UfsError::NotFound(_)), "{err}");

    ufs.delete("src/a.txt").await.unwrap();
    assert_eq!(ufs.stat("src/a.txt").await.unwrap(), None);
    ufs.delete("src/a.txt")
        .await
        .expect("deleting a missing file is fine");

    ufs.create_dir("made/here").await.unwrap();
    put(ufs, "made/here/f1", b"1").await;
    put(ufs, "made/here/sub/f2", b"2").await;
    put(ufs, "made/keep", b"k").await;
    assert_eq!(names(ufs, "made/here").await, ["f1", "sub/"]);
    ufs.delete_dir_all("made/here").await.unwrap();
    assert_eq!(names(ufs, "made").await, ["keep"]);
    assert_eq!(ufs.stat("made/here/f1").await.unwrap(), None);
    ufs.delete_dir_all("never/was")
        .await
        .expect("nothing to delete");

    // Paths are checked before any request.
    for bad in ["../x", "/abs", "a//b", "a/./b", "a\0b"] {
        let err = ufs.stat(bad).await.unwrap_err();
        assert!(matches!(err, UfsError::Other(_)), "{bad}: {err}");
        assert!(err.to_string().contains("invalid path"), "{err}");
    }
    assert!(matches!(
        ufs.delete_dir_all("").await.unwrap_err(),
        UfsError::Other(_)
    ));
    assert!(matches!(
        ufs.writer("").await.err(),
        Some(UfsError::Other(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_delete_and_directories_on_s3() {
    let server = S3Server::start(ACCESS, SECRET);
    server.create_bucket("ops");
    copy_delete_dirs(&server.ufs("ops/p")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_delete_and_directories_on_a_local_directory() {
    let (dir, ufs) = local_mount();
    copy_delete_dirs(&ufs).await;
    ufs.create_dir("made/empty").await.unwrap();
    assert!(dir.path().join("made/empty").is_dir());
    assert_eq!(
        ufs.stat("made/empty").await.unwrap().map(|e| e.is_dir),
        Some(true)
    );
    assert!(!dir.path().join("made/here").exists());
}
