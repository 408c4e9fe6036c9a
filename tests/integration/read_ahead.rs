//! Read-ahead across block boundaries over gRPC: a sequential reader within
//! `client.read_ahead_len` of a block's end has the next block's stream opened (the
//! worker's `read_block` count goes up before the reader gets there), uses that stream
//! when it arrives (each block is streamed once) and reads every byte right.

use crate::cluster::{pattern, TestCluster};
use crate::harness::wait_for;
use crate::short_circuit::{grpc_calls, worker_metrics};
use curvine_fluid::client::{Client, FileReader};
use curvine_fluid::config::{ByteSize, ClusterConfig};
use std::time::Duration;

const MIB: usize = 1 << 20;
const KIB: usize = 1 << 10;

/// The `read_block` streams the worker has served (any outcome).
async fn streams(cluster: &TestCluster) -> u64 {
    grpc_calls(&worker_metrics(cluster).await, "read_block") as u64
}

/// Reads `len` bytes from the reader's position.
async fn read_exactly(reader: &mut FileReader, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = reader.read(&mut out[filled..]).await.expect("read");
        assert!(n > 0, "the file ended early at {filled}");
        filled += n;
    }
    out
}

/// One master and one worker with 1 MiB blocks and no short circuit, a 5-block file,
/// and a client whose config `tweak` sets.
async fn setup(tweak: impl FnOnce(&mut ClusterConfig)) -> (TestCluster, Client, Vec<u8>) {
    let cluster = TestCluster::start(1, 1, |c| c.client.block_size = ByteSize(MIB as u64)).await;
    let mut config = cluster.base.clone();
    tweak(&mut config);
    let client = Client::new(&config).expect("client");
    let data = pattern(5 * MIB, 11);
    client.write_file("/ahead.bin", &data).await.expect("write");
    (cluster, client, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_reader_has_the_next_block_streaming_before_it_gets_there() {
    let (cluster, client, data) = setup(|c| c.client.read_ahead_len = ByteSize(512 << 10)).await;
    let mut reader = client.open("/ahead.bin").await.expect("open");
    // 600 KiB into the first block: 424 KiB from its end, inside the 512 KiB distance.
    let head = read_exactly(&mut reader, 600 * KIB).await;
    assert!(head == data[..600 * KIB]);
    wait_for(
        "the second block's stream, opened ahead",
        Duration::from_secs(10),
        || async { streams(&cluster).await == 2 },
    )
    .await;
    let rest = read_exactly(&mut reader, data.len() - 600 * KIB).await;
    assert!(rest == data[600 * KIB..], "the bytes read ahead differ");
    assert_eq!(
        reader.read(&mut [0u8; 16]).await.expect("read at the end"),
        0
    );
    // Each block was streamed once: the stream opened ahead was the one read.
    assert_eq!(streams(&cluster).await, 5);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_read_ahead_off_each_block_is_asked_for_when_the_reader_enters_it() {
    let (cluster, client, data) = setup(|c| c.client.enable_read_ahead = false).await;
    let mut reader = client.open("/ahead.bin").await.expect("open");
    let head = read_exactly(&mut reader, MIB - 1).await;
    assert!(head == data[..MIB - 1]);
    wait_for(
        "the first block's stream",
        Duration::from_secs(10),
        || async { streams(&cluster).await == 1 },
    )
    .await;
    // One byte before the boundary nothing else is asked for; entering the block is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(streams(&cluster).await, 1);
    let next = read_exactly(&mut reader, 2).await;
    assert_eq!(next, data[MIB - 1..MIB + 1]);
    wait_for(
        "the second block's stream",
        Duration::from_secs(10),
        || async { streams(&cluster).await == 2 },
    )
    .await;
    let rest = read_exactly(&mut reader, data.len() - MIB - 1).await;
    assert!(rest == data[MIB + 1..]);
    assert_eq!(streams(&cluster).await, 5);
    cluster.shutdown().await;
}
