//! Block tokens: with a cluster token, a worker serves and stores a block's bytes only
//! for a valid token from the master naming that block and mode. Clients read and write
//! as before; raw worker calls carrying the cluster token but no block token, another
//! block's token, a read token for a write, a forged or an expired token read no data and
//! write nothing; a reader open longer than the token lifetime (through the client
//! library and through a FUSE mount) locates the file again and reads on, and a writer
//! whose block token expired mid-block finishes it; under-storage reads, write-through and
//! DataLoad carry tokens. Without a cluster token nothing is checked.

use crate::cluster::{pattern, TestCluster};
use crate::harness::wait_for;
use bytes::Bytes;
use curvine_fluid::client::{Client, FileReader};
use curvine_fluid::config::ByteSize;
use curvine_fluid::fs_error::FsError;
use curvine_fluid::rpc::auth::{AuthChannel, Token};
use curvine_fluid::rpc::block_token::{now_ms, BlockKey, Mode};
use curvine_fluid::rpc::pb::master::LocatedBlock;
use curvine_fluid::rpc::pb::worker::worker_service_client::WorkerServiceClient;
use curvine_fluid::rpc::pb::worker::{ReadBlockRequest, WriteBlockRequest};
use curvine_fluid::rpc::status::from_status;
use std::path::PathBuf;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A cluster token file in a temp dir.
fn token_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "c0rrect-h0rse-battery\n").expect("write token");
    (dir, file)
}

/// One master and one worker with the token in `file` (or none), 1 MiB blocks, and
/// block tokens living `lifetime`.
async fn cluster(file: Option<&PathBuf>, lifetime: &str) -> TestCluster {
    let file = file.map(|f| f.display().to_string()).unwrap_or_default();
    let lifetime = lifetime.to_string();
    TestCluster::start(1, 1, move |c| {
        c.security.token_file = file.clone();
        c.security.block_token_lifetime = lifetime.clone();
        c.client.block_size = ByteSize(MIB as u64);
    })
    .await
}

/// A raw block service client of the worker holding `block`, sending `token` (the
/// cluster token) and nothing else.
fn raw_worker(block: &LocatedBlock, token: &Option<Token>) -> WorkerServiceClient<AuthChannel> {
    let worker = block.worker.as_ref().expect("block on a worker");
    let addr = format!("{}:{}", worker.hostname, worker.rpc_port);
    let channel =
        curvine_fluid::rpc::channel(&addr, Duration::from_secs(2), None, None).expect("ch");
    WorkerServiceClient::new(curvine_fluid::rpc::auth::attach(channel, token))
}

fn read_req(block: u64, block_token: Bytes) -> ReadBlockRequest {
    ReadBlockRequest {
        block_id: block,
        offset: 0,
        length: 4096,
        ufs: None,
        block_token,
    }
}

/// The status is the block token refusal, and says `why`.
fn assert_denied(status: &tonic::Status, why: &str) {
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    match from_status(status) {
        FsError::BlockToken(text) => assert!(text.contains(why), "{why:?} not in {text:?}"),
        other => panic!("expected a block token refusal, got {other:?}"),
    }
}

/// Every way of reading `block` with `block_token` is refused saying `why`, and no
/// data comes back.
async fn assert_reads_refused(
    worker: &mut WorkerServiceClient<AuthChannel>,
    block: u64,
    block_token: Bytes,
    why: &str,
) {
    let req = read_req(block, block_token);
    let denied = worker
        .read_range(req.clone())
        .await
        .expect_err("range read");
    assert_denied(&denied, why);
    let denied = worker
        .read_block(req.clone())
        .await
        .expect_err("streamed read");
    assert_denied(&denied, why);
    let denied = worker.load_block(req).await.expect_err("load");
    assert_denied(&denied, why);
}

/// Streams `data` as block `block` with `block_token` in the first message.
async fn raw_write(
    worker: &mut WorkerServiceClient<AuthChannel>,
    block: u64,
    block_token: Bytes,
    data: &'static [u8],
) -> Result<u64, tonic::Status> {
    let first = WriteBlockRequest {
        block_id: block,
        expected_len: data.len() as u64,
        data: Bytes::from_static(data),
        block_token,
        ..WriteBlockRequest::default()
    };
    worker
        .write_block(tokio_stream::iter(vec![first]))
        .await
        .map(|r| r.into_inner().length)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocks_need_a_token() {
    let (_dir, file) = token_file();
    let cluster = cluster(Some(&file), "10min").await;
    let client = cluster.client();
    let data = pattern(2 * MIB + 1000, 11);
    client.write_file("/f", &data).await.expect("write");
    assert_eq!(client.read_file("/f").await.expect("read"), data);
    let mut reader = client.open("/f").await.expect("open");
    let across = reader
        .read_at((MIB - 10) as u64, 20)
        .await
        .expect("read_at");
    assert_eq!(across, data[MIB - 10..MIB + 10]);

    let located = client.locate("/f").await.expect("locate");
    let (b0, b1) = (&located.blocks[0], &located.blocks[1]);
    assert!(!b0.block_token.is_empty(), "located blocks carry a token");
    let cluster_token = Some(Token::read(&file, "test").expect("token"));
    let mut worker = raw_worker(b0, &cluster_token);

    // The cluster token alone, another block's token, forged and expired ones.
    assert_reads_refused(&mut worker, b0.id, Bytes::new(), "no block token").await;
    assert_reads_refused(
        &mut worker,
        b0.id,
        b1.block_token.clone(),
        &format!("the block token is for block {}", b1.id),
    )
    .await;
    let mut forged = b0.block_token.to_vec();
    *forged.last_mut().expect("a byte") ^= 1;
    assert_reads_refused(&mut worker, b0.id, forged.into(), "not issued").await;
    let mut truncated = b0.block_token.clone();
    truncated.truncate(20);
    assert_reads_refused(&mut worker, b0.id, truncated, "malformed").await;
    let key = BlockKey::derive(cluster_token.as_ref().expect("token"));
    let expired = key.mint(b0.id, Mode::Read, now_ms() - 1, None);
    assert_reads_refused(&mut worker, b0.id, expired, "expired").await;
    // Another cluster's token is forged here.
    let other = BlockKey::derive(&Token::parse(b"another-cluster").expect("token"));
    let theirs = other.mint(b0.id, Mode::Read, now_ms() + 60_000, None);
    assert_reads_refused(&mut worker, b0.id, theirs, "not issued").await;

    // The token the master gave reads.
    let chunk = worker
        .read_range(read_req(b0.id, b0.block_token.clone()))
        .await
        .expect("a read with the block token")
        .into_inner();
    assert_eq!(&chunk.data[..], &data[..4096]);

    // Writes: a read token, another block's write token and none store nothing, over an
    // existing block or as a new one.
    let fresh_id = b1.id + 1_000;
    let read_token = key.mint(fresh_id, Mode::Read, now_ms() + 60_000, None);
    let denied = raw_write(&mut worker, fresh_id, read_token, b"intruder")
        .await
        .expect_err("a write with a read token");
    assert_denied(&denied, "only grants read");
    let elsewhere = key.mint(b1.id, Mode::Write, now_ms() + 60_000, None);
    let denied = raw_write(&mut worker, fresh_id, elsewhere, b"intruder")
        .await
        .expect_err("a write with another block's token");
    assert_denied(&denied, "is for block");
    let denied = raw_write(&mut worker, b0.id, b0.block_token.clone(), b"overwrite")
        .await
        .expect_err("overwriting a block with its read token");
    assert_denied(&denied, "only grants read");
    let denied = raw_write(&mut worker, fresh_id, Bytes::new(), b"intruder")
        .await
        .expect_err("a write without a token");
    assert_denied(&denied, "no block token");
    let probe = key.mint(fresh_id, Mode::Read, now_ms() + 60_000, None);
    let missing = worker
        .read_range(read_req(fresh_id, probe))
        .await
        .expect_err("nothing was stored");
    assert!(
        matches!(from_status(&missing), FsError::Unavailable(_)),
        "{missing:?}"
    );
    assert_eq!(client.read_file("/f").await.expect("read again"), data);

    // A valid write token stores (the key is the cluster's: the same derivation).
    let write = key.mint(fresh_id, Mode::Write, now_ms() + 60_000, None);
    let stored = raw_write(&mut worker, fresh_id, write, b"allowed")
        .await
        .expect("a write with a write token");
    assert_eq!(stored, 7);
    cluster.shutdown().await;
}

/// Waits until a worker refuses `block`'s token as expired: every token issued before
/// it has expired too.
async fn wait_expired(client: &Client, path: &str) {
    let located = client.locate(path).await.expect("locate");
    let block = located.blocks[0].clone();
    let token = Token::parse(b"c0rrect-h0rse-battery").expect("token");
    let worker = raw_worker(&block, &Some(token));
    wait_for("a block token to expire", Duration::from_secs(20), || {
        let mut worker = worker.clone();
        let req = read_req(block.id, block.block_token.clone());
        async move {
            match worker.read_range(req).await {
                Err(s) => {
                    matches!(from_status(&s), FsError::BlockToken(t) if t.contains("expired"))
                }
                Ok(_) => false,
            }
        }
    })
    .await;
}

/// A client config file of `cluster` with the token file `token`, in a new directory.
fn client_conf(cluster: &TestCluster, token: &std::path::Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("c.toml");
    let toml = format!(
        "{}[security]\ntoken_file = \"{}\"\n",
        cluster.client_toml(),
        token.display()
    );
    std::fs::write(&conf, toml).expect("write conf");
    (dir, conf)
}

/// Reads what is left of `reader` onto `got` (after its tokens expired: each read must
/// renew them unseen).
async fn read_rest(reader: &mut FileReader, got: &mut Vec<u8>) {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = reader.read(&mut buf).await.expect("read after expiry");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_files_outlive_their_block_tokens() {
    let (_dir, file) = token_file();
    let cluster = cluster(Some(&file), "1s").await;
    let client = cluster.client();
    let data = pattern(3 * MIB - 500, 12);
    client.write_file("/long", &data).await.expect("write");

    // A sequential reader: its first block's stream is open; the next opens after the
    // tokens it was given expired.
    let mut reader = client.open("/long").await.expect("open");
    let mut got = vec![0u8; 1000];
    let n = reader.read(&mut got).await.expect("first read");
    got.truncate(n);
    wait_expired(&client, "/long").await;
    read_rest(&mut reader, &mut got).await;
    assert_eq!(got, data);
    // Ranged reads (one request per range) after the renewed tokens expired too.
    wait_expired(&client, "/long").await;
    let range = reader
        .read_at((2 * MIB + 5) as u64, 100)
        .await
        .expect("read_at");
    assert_eq!(range, data[2 * MIB + 5..2 * MIB + 105]);
    wait_expired(&client, "/long").await;
    let long = reader.read_at(100, 2 * MIB).await.expect("long read_at");
    assert_eq!(long, data[100..2 * MIB + 100]);

    // A writer whose block stream opened before its token expired finishes the block
    // and the next ones.
    let mut writer = client.create("/slow", true).await.expect("create");
    writer.write(&data[..1000]).await.expect("first write");
    wait_expired(&client, "/long").await;
    writer
        .write(&data[1000..])
        .await
        .expect("write after expiry");
    writer.close().await.expect("close");
    assert_eq!(client.read_file("/slow").await.expect("read"), data);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_cluster_checks_no_block_tokens() {
    let cluster = cluster(None, "10min").await;
    let client = cluster.client();
    client
        .write_file("/open", b"no tokens here")
        .await
        .expect("write");
    let located = client.locate("/open").await.expect("locate");
    let block = &located.blocks[0];
    assert!(block.block_token.is_empty(), "an open cluster issues none");
    let chunk = raw_worker(block, &None)
        .read_range(read_req(block.id, Bytes::new()))
        .await
        .expect("a read without any token")
        .into_inner();
    assert_eq!(&chunk.data[..], b"no tokens here");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_storage_reads_write_through_and_loads_carry_tokens() {
    use crate::ufs_cluster::{run_async, runtime_json};
    let (_dir, file) = token_file();
    let cluster = cluster(Some(&file), "1s").await;
    let client = cluster.client();
    client
        .write_file("/plain", b"a clock")
        .await
        .expect("write");
    let local = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(local.path().join("sub")).expect("mkdir");
    let stored = pattern(2 * MIB + 11, 13);
    std::fs::write(local.path().join("sub/f.bin"), &stored).expect("write");
    let (dir, conf) = client_conf(&cluster, &file);
    let mount = format!(
        r#"{{"mountPoint":"local://{}","options":{{"sync_interval":"1s"}},"name":"local"}}"#,
        local.path().display()
    );
    let json = runtime_json(dir.path(), "runtime.json", &[mount]);
    let out = run_async(&conf, &json, &["mount-ufs"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Fetched by the worker on a read token bound to the source; an open reader outlives
    // its tokens here too.
    let mut reader = client.open("/local/sub/f.bin").await.expect("open");
    let mut got = vec![0u8; 100];
    let n = reader.read(&mut got).await.expect("first read");
    got.truncate(n);
    wait_expired(&client, "/plain").await;
    read_rest(&mut reader, &mut got).await;
    assert!(got == stored, "the under-storage file read back differs");

    // A valid read token with another source named is refused: a token cannot make the
    // worker fill a block from elsewhere.
    let located = client.locate("/local/sub/f.bin").await.expect("locate");
    let block = &located.blocks[1];
    let mut elsewhere = block.ufs.clone().expect("an under-storage block");
    elsewhere.path = "sub/other.bin".into();
    let req = ReadBlockRequest {
        ufs: Some(elsewhere),
        ..read_req(block.id, block.block_token.clone())
    };
    let cluster_token = Some(Token::read(&file, "test").expect("token"));
    let denied = raw_worker(block, &cluster_token)
        .load_block(req)
        .await
        .expect_err("another source");
    assert_denied(&denied, "not issued");

    // The master reads the blocks it writes through with tokens of its own.
    let written = pattern(2 * MIB + 500, 14);
    client
        .write_file("/local/out.bin", &written)
        .await
        .expect("write through");
    let on_disk = std::fs::read(local.path().join("out.bin")).expect("written through");
    assert!(on_disk == written, "the file written through differs");

    // DataLoad loads through the workers with the tokens it is given.
    std::fs::write(local.path().join("sub/g.bin"), pattern(MIB + 3, 15)).expect("write");
    let load = run_async(&conf, &json, &["load", "/local"]).await;
    let log =
        String::from_utf8_lossy(&load.stderr).to_string() + &String::from_utf8_lossy(&load.stdout);
    assert!(load.status.success(), "load failed: {log}");
    assert!(log.contains("DataLoad finished"), "{log}");
    cluster.shutdown().await;
}

#[test]
fn a_file_open_through_fuse_outlives_its_block_tokens() {
    use crate::fuse_mount::Mounted;
    use std::io::Read;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_dir, file) = token_file();
    let cluster = rt.block_on(cluster(Some(&file), "1s"));
    let client = cluster.client();
    let data = pattern(3 * MIB + 77, 16);
    rt.block_on(client.write_file("/held.bin", &data))
        .expect("write");
    let (dir, conf) = client_conf(&cluster, &file);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let m = Mounted::client(&conf, &mnt, "");

    let mut held = std::fs::File::open(m.path("held.bin")).expect("open through FUSE");
    let mut got = vec![0u8; 1000];
    held.read_exact(&mut got).expect("first read");
    rt.block_on(wait_expired(&client, "/held.bin"));
    held.read_to_end(&mut got)
        .expect("read after the tokens expired");
    assert!(got == data, "the file read through FUSE differs");
    drop(held);
    drop(m);
    rt.block_on(cluster.shutdown());
}
