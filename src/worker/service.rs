//! The worker's block API: streamed block writes into the block store and ranged block
//! reads streamed back in 1 MiB chunks, read ahead of the client by a small queue. A
//! read that names an under-storage source fetches a missing block first
//! ([`super::ufs_fetch`]); `LoadBlock` only fetches (DataLoad, read-ahead). Every call
//! first checks the block token the master issued for the block (when the cluster has
//! a token): a write token for writes, a read token for reads and loads.

use super::block_store::{BlockStore, BlockWriter, StoreError};
use super::ufs_fetch::UfsFetcher;
use crate::client::CHUNK_SIZE;
use crate::fs_error::FsError;
use crate::metrics::RpcMetrics;
use crate::rpc::block_token::{Checker, Mode};
use crate::rpc::pb::worker::worker_service_server::WorkerService;
use crate::rpc::pb::worker::{
    CopySource, DataChunk, LoadBlockResponse, ReadBlockRequest, SyncBlocksRequest,
    SyncBlocksResponse, WriteBlockRequest, WriteBlockResponse,
};
use crate::rpc::status::to_status;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Counters the worker reports in heartbeats and metrics.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Bytes sent to readers.
    pub bytes_read: AtomicU64,
    /// Bytes stored.
    pub bytes_written: AtomicU64,
    /// Reads of blocks held here.
    pub reads_hit: AtomicU64,
    /// Reads of blocks not held here.
    pub reads_miss: AtomicU64,
    /// Bytes served from blocks held when the read came.
    pub bytes_hit: AtomicU64,
    /// Bytes served that were fetched from under storage for the read.
    pub bytes_fetched: AtomicU64,
    /// Block files opened for clients' short-circuit reads.
    pub short_circuit_reads: AtomicU64,
    /// Block files created for clients' short-circuit writes.
    pub short_circuit_writes: AtomicU64,
    /// New blocks filled from a block of this worker (rewrites of part of a block).
    pub block_copies: AtomicU64,
    /// Block files made durable (`SyncBlocks`, for a client's fsync).
    pub block_syncs: AtomicU64,
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct WorkerApi {
    store: Arc<BlockStore>,
    counters: Arc<IoCounters>,
    metrics: RpcMetrics,
    fetcher: Arc<UfsFetcher>,
    tokens: Checker,
}

impl WorkerApi {
    /// Serves `store`; `fetcher` fills it from under storage; `tokens` checks the
    /// block token of every request.
    pub fn new(
        store: Arc<BlockStore>,
        counters: Arc<IoCounters>,
        metrics: RpcMetrics,
        fetcher: Arc<UfsFetcher>,
        tokens: Checker,
    ) -> Self {
        WorkerApi {
            store,
            counters,
            metrics,
            fetcher,
            tokens,
        }
    }

    /// Whether the read token of `r` (from `peer`) lets it read its block.
    fn check_read(
        &self,
        r: &ReadBlockRequest,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<(), FsError> {
        self.tokens
            .check(&r.block_token, r.block_id, Mode::Read, r.ufs.as_ref(), peer)
    }

    /// Fetches the block from under storage when the request names a source and the
    /// store lacks it; whether it was fetched for this read.
    async fn fetch_if_missing(&self, r: &ReadBlockRequest) -> Result<bool, FsError> {
        match &r.ufs {
            Some(source) => Ok(self.fetcher.ensure(r.block_id, source).await? > 0),
            None => Ok(false),
        }
    }

    fn count_served(&self, bytes: u64, fetched: bool) {
        let counter = if fetched {
            &self.counters.bytes_fetched
        } else {
            &self.counters.bytes_hit
        };
        counter.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Block store errors as file system errors.
pub fn fs_error(e: StoreError) -> FsError {
    match e {
        StoreError::NotFound(id) => FsError::Unavailable(format!(
            "block {id} is not on this worker (evicted or deleted)"
        )),
        StoreError::AlreadyExists(id) => FsError::AlreadyExists(format!("block {id}")),
        StoreError::NoSpace { needed } => {
            FsError::NoSpace(format!("the worker has no room for {needed} bytes"))
        }
        other => FsError::Io(other.to_string()),
    }
}

/// A new block file, empty or a copy of `copy_from` (its read token checked); shared by
/// `WriteBlock` and the short-circuit socket.
pub(crate) async fn create_block(
    store: &Arc<BlockStore>,
    tokens: &Checker,
    counters: &IoCounters,
    id: u64,
    expected: u64,
    copy_from: Option<&CopySource>,
    peer: Option<std::net::SocketAddr>,
) -> Result<BlockWriter, FsError> {
    let store = store.clone();
    let Some(source) = copy_from else {
        return blocking(move || store.create(id, expected)).await;
    };
    tokens.check(&source.block_token, source.block_id, Mode::Read, None, peer)?;
    let (from, len) = (source.block_id, source.len);
    let writer = blocking(move || store.create_copy(id, expected, from, len)).await?;
    counters.block_copies.fetch_add(1, Ordering::Relaxed);
    Ok(writer)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FsError::Io(format!("block I/O task: {e}")))?
        .map_err(fs_error)
}

impl WorkerApi {
    /// A new block file: empty, or (a rewrite) a copy of a block held here, whose read
    /// token the request must carry.
    pub(crate) async fn create_block(
        &self,
        id: u64,
        expected: u64,
        copy_from: Option<&CopySource>,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<BlockWriter, FsError> {
        create_block(
            &self.store,
            &self.tokens,
            &self.counters,
            id,
            expected,
            copy_from,
            peer,
        )
        .await
    }

    /// One range of a block, at most [`CHUNK_SIZE`] bytes.
    async fn range(&self, r: ReadBlockRequest) -> Result<DataChunk, FsError> {
        if r.length > CHUNK_SIZE as u64 {
            return Err(FsError::InvalidArgument(format!(
                "a range read takes at most {CHUNK_SIZE} bytes, not {}",
                r.length
            )));
        }
        let fetched = self.fetch_if_missing(&r).await?;
        let Some(block_len) = self.store.block_len(r.block_id) else {
            self.counters.reads_miss.fetch_add(1, Ordering::Relaxed);
            return Err(fs_error(StoreError::NotFound(r.block_id)));
        };
        self.counters.reads_hit.fetch_add(1, Ordering::Relaxed);
        let len = r.length.min(block_len.saturating_sub(r.offset)) as usize;
        // Small and usually from the page cache: read in place rather than paying a hop to
        // the blocking pool, which would cost more than the read.
        let data = self
            .store
            .read(r.block_id, r.offset, len)
            .map_err(fs_error)?;
        if data.len() != len {
            return Err(FsError::Io(format!(
                "block {} is shorter than expected",
                r.block_id
            )));
        }
        self.counters
            .bytes_read
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.count_served(data.len() as u64, fetched);
        Ok(DataChunk { data: data.into() })
    }
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    async fn write_block(
        &self,
        req: Request<Streaming<WriteBlockRequest>>,
    ) -> Result<Response<WriteBlockResponse>, Status> {
        let start = Instant::now();
        let peer = req.remote_addr();
        let mut stream = req.into_inner();
        let result: Result<u64, FsError> = async {
            let first = stream
                .message()
                .await
                .map_err(|s| FsError::Io(format!("block stream: {}", s.message())))?
                .ok_or_else(|| FsError::InvalidArgument("empty block stream".into()))?;
            self.tokens
                .check(&first.block_token, first.block_id, Mode::Write, None, peer)?;
            let (id, expected) = (
                first.block_id,
                first.expected_len.max(first.data.len() as u64),
            );
            let mut writer = self
                .create_block(id, expected, first.copy_from.as_ref(), peer)
                .await?;
            let (mut data, mut offset) = (first.data, first.offset);
            loop {
                if !data.is_empty() {
                    let chunk = data;
                    writer = tokio::task::spawn_blocking(move || {
                        match offset {
                            Some(at) => writer.write_at(at, &chunk),
                            None => writer.write(&chunk),
                        }
                        .map(|()| writer)
                    })
                    .await
                    .map_err(|e| FsError::Io(format!("block I/O task: {e}")))?
                    .map_err(fs_error)?;
                }
                match stream
                    .message()
                    .await
                    .map_err(|s| FsError::Io(format!("block stream: {}", s.message())))?
                {
                    Some(msg) => (data, offset) = (msg.data, msg.offset),
                    None => break,
                }
            }
            let len = blocking(move || writer.commit()).await?;
            self.counters
                .bytes_written
                .fetch_add(len, Ordering::Relaxed);
            Ok(len)
        }
        .await;
        self.metrics
            .observe("write_block", result.is_ok(), start.elapsed());
        result
            .map(|length| Response::new(WriteBlockResponse { length }))
            .map_err(to_status)
    }

    async fn read_range(
        &self,
        req: Request<ReadBlockRequest>,
    ) -> Result<Response<DataChunk>, Status> {
        let start = Instant::now();
        let peer = req.remote_addr();
        let r = req.into_inner();
        let result = match self.check_read(&r, peer) {
            Ok(()) => self.range(r).await,
            Err(e) => Err(e),
        };
        self.metrics
            .observe("read_range", result.is_ok(), start.elapsed());
        result.map(Response::new).map_err(to_status)
    }

    type ReadBlockStream = ReceiverStream<Result<DataChunk, Status>>;

    async fn read_block(
        &self,
        req: Request<ReadBlockRequest>,
    ) -> Result<Response<Self::ReadBlockStream>, Status> {
        let start = Instant::now();
        let peer = req.remote_addr();
        let r = req.into_inner();
        if let Err(e) = self.check_read(&r, peer) {
            self.metrics.observe("read_block", false, start.elapsed());
            return Err(to_status(e));
        }
        let fetched = match self.fetch_if_missing(&r).await {
            Ok(f) => f,
            Err(e) => {
                self.metrics.observe("read_block", false, start.elapsed());
                return Err(to_status(e));
            }
        };
        let Some(block_len) = self.store.block_len(r.block_id) else {
            self.counters.reads_miss.fetch_add(1, Ordering::Relaxed);
            self.metrics.observe("read_block", false, start.elapsed());
            return Err(to_status(fs_error(StoreError::NotFound(r.block_id))));
        };
        self.counters.reads_hit.fetch_add(1, Ordering::Relaxed);
        let end = r.offset.saturating_add(r.length).min(block_len);
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let counters = self.counters.clone();
        let metrics = self.metrics.clone();
        let served = if fetched {
            &counters.bytes_fetched
        } else {
            &counters.bytes_hit
        };
        served.fetch_add(end.saturating_sub(r.offset), Ordering::Relaxed);
        tokio::spawn(async move {
            let mut offset = r.offset;
            let mut ok = true;
            while offset < end {
                let len = ((end - offset) as usize).min(CHUNK_SIZE);
                let store = store.clone();
                let id = r.block_id;
                let read = blocking(move || store.read(id, offset, len)).await;
                match read {
                    Ok(data) if !data.is_empty() => {
                        offset += data.len() as u64;
                        counters
                            .bytes_read
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        if tx.send(Ok(DataChunk { data: data.into() })).await.is_err() {
                            break; // the reader went away
                        }
                    }
                    Ok(_) => {
                        ok = false;
                        let _ = tx
                            .send(Err(to_status(FsError::Io(format!(
                                "block {id} is shorter than expected"
                            )))))
                            .await;
                        break;
                    }
                    Err(e) => {
                        ok = false;
                        let _ = tx.send(Err(to_status(e))).await;
                        break;
                    }
                }
            }
            metrics.observe("read_block", ok, start.elapsed());
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn sync_blocks(
        &self,
        req: Request<SyncBlocksRequest>,
    ) -> Result<Response<SyncBlocksResponse>, Status> {
        // No block token: syncing reveals and changes nothing (the cluster token still
        // guards the call).
        let start = Instant::now();
        let ids = req.into_inner().block_ids;
        let store = self.store.clone();
        let result = blocking(move || store.sync(&ids)).await;
        if let Ok(n) = &result {
            self.counters.block_syncs.fetch_add(*n, Ordering::Relaxed);
        }
        self.metrics
            .observe("sync_blocks", result.is_ok(), start.elapsed());
        result
            .map(|synced| Response::new(SyncBlocksResponse { synced }))
            .map_err(to_status)
    }

    async fn load_block(
        &self,
        req: Request<ReadBlockRequest>,
    ) -> Result<Response<LoadBlockResponse>, Status> {
        let start = Instant::now();
        let peer = req.remote_addr();
        let r = req.into_inner();
        let result = async {
            self.check_read(&r, peer)?;
            let fetched = match &r.ufs {
                Some(source) => self.fetcher.ensure(r.block_id, source).await?,
                None => 0,
            };
            let len = self
                .store
                .block_len(r.block_id)
                .ok_or_else(|| fs_error(StoreError::NotFound(r.block_id)))?;
            Ok(LoadBlockResponse { fetched, len })
        }
        .await;
        self.metrics
            .observe("load_block", result.is_ok(), start.elapsed());
        result.map(Response::new).map_err(to_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::master::{MasterClient, MasterClientConfig};
    use crate::config::{DataDir, Medium};
    use crate::worker::block_store::StoreConfig;
    use futures::StreamExt;
    use std::time::Duration;

    fn api(root: &std::path::Path) -> WorkerApi {
        api_checking(root, Checker::new(None))
    }

    fn api_checking(root: &std::path::Path, tokens: Checker) -> WorkerApi {
        let store = Arc::new(
            BlockStore::open(StoreConfig {
                dirs: vec![DataDir {
                    medium: Medium::Disk,
                    capacity: Some(1 << 20),
                    path: root.to_string_lossy().into_owned(),
                }],
                reserved: 0,
                high_watermark: 1.0,
                low_watermark: 1.0,
                format: false,
            })
            .unwrap(),
        );
        let mut writer = store.create(7, 10).unwrap();
        writer.write(b"0123456789").unwrap();
        writer.commit().unwrap();
        // Never called: no request here names under storage.
        let master = Arc::new(
            MasterClient::new(MasterClientConfig {
                addrs: vec!["127.0.0.1:1".into()],
                rpc_timeout: Duration::from_millis(100),
                connect_timeout: Duration::from_millis(100),
                retry_for: Duration::from_millis(100),
                token: None,
                tls: None,
            })
            .unwrap(),
        );
        let fetcher = Arc::new(UfsFetcher::new(store.clone(), master));
        let registry = prometheus::Registry::new();
        WorkerApi::new(
            store,
            Arc::default(),
            RpcMetrics::new(&registry, "test"),
            fetcher,
            tokens,
        )
    }

    fn req(block_id: u64, offset: u64, length: u64) -> ReadBlockRequest {
        ReadBlockRequest {
            block_id,
            offset,
            length,
            ufs: None,
            block_token: bytes::Bytes::new(),
        }
    }

    #[tokio::test]
    async fn reads_and_loads_need_a_read_token_for_the_block() {
        use crate::rpc::auth::Token;
        use crate::rpc::block_token::Issuer;
        let dir = tempfile::tempdir().unwrap();
        let token = Token::parse(b"cluster-secret").unwrap();
        let api = api_checking(dir.path(), Checker::new(Some(&token)));
        let issuer = Issuer::new(Some(&token), Duration::from_secs(60));
        let with = |block_token: bytes::Bytes| ReadBlockRequest {
            block_token,
            ..req(7, 0, 4)
        };
        for refused in [
            bytes::Bytes::new(),
            issuer.read(8, None),
            issuer.write(7),
            bytes::Bytes::from_static(b"forged"),
        ] {
            let r = with(refused);
            let e = api.read_range(Request::new(r.clone())).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
            assert!(api.read_block(Request::new(r.clone())).await.is_err());
            assert!(api.load_block(Request::new(r)).await.is_err());
        }
        let ok = with(issuer.read(7, None));
        let data = api.read_range(Request::new(ok.clone())).await.unwrap();
        assert_eq!(&data.into_inner().data[..], b"0123");
        assert_eq!(
            api.load_block(Request::new(ok))
                .await
                .unwrap()
                .into_inner()
                .len,
            10
        );
    }

    #[tokio::test]
    async fn range_reads_refuse_long_lengths_and_clip_at_the_block_end() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        for length in [CHUNK_SIZE as u64 + 1, u64::MAX] {
            let e = api.range(req(7, 0, length)).await.unwrap_err();
            assert!(matches!(e, FsError::InvalidArgument(_)), "{e}");
        }
        let data = api.range(req(7, 4, CHUNK_SIZE as u64)).await.unwrap().data;
        assert_eq!(&data[..], b"456789");
        for offset in [10, 11, u64::MAX] {
            let data = api.range(req(7, offset, 5)).await.unwrap().data;
            assert!(data.is_empty(), "offset {offset}");
        }
        let e = api.range(req(u64::MAX, 0, 1)).await.unwrap_err();
        assert!(matches!(e, FsError::Unavailable(_)), "{e}");
    }

    #[tokio::test]
    async fn streamed_reads_stop_at_the_block_end_whatever_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let api = api(dir.path());
        for (offset, length, want) in [
            (4, u64::MAX, &b"456789"[..]),
            (u64::MAX, u64::MAX, &b""[..]),
            (9, 1, &b"9"[..]),
        ] {
            let stream = api
                .read_block(Request::new(req(7, offset, length)))
                .await
                .unwrap()
                .into_inner();
            let chunks: Vec<DataChunk> = stream.map(|c| c.unwrap()).collect().await;
            let got: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
            assert_eq!(got, want, "offset {offset} length {length}");
        }
    }
}
