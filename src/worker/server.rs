//! Starting and stopping a worker: open the block store on `worker.data_dir`, serve the
//! block API and HTTP, keep the heartbeat going; stop in reverse order.

use super::block_store::{BlockStore, StoreConfig};
use super::heartbeat::{self, Identity};
use super::service::{IoCounters, WorkerApi};
use super::ufs_fetch::UfsFetcher;
use crate::client::master::{MasterClient, MasterClientConfig};
use crate::config::{ClusterConfig, DataDir};
use crate::metrics::{self, RpcMetrics};
use crate::rpc::auth::{Guard, Token};
use crate::rpc::pb::worker::worker_service_server::WorkerServiceServer;
use crate::rpc::tls::TlsSettings;
use crate::rpc::{host_port, MAX_MESSAGE};
use crate::shutdown::{self, ShutdownTrigger};
use crate::web::{self, WebApp};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn};

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The config is unusable.
    #[error("worker config: {0}")]
    Config(String),
    /// The block store could not be opened.
    #[error("worker storage: {0}")]
    Store(#[from] super::block_store::StoreError),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The listening sockets of a worker, bound before start.
#[derive(Debug)]
pub struct WorkerListeners {
    /// Block API (`worker.rpc_port`).
    pub rpc: TcpListener,
    /// HTTP (`worker.web_port`).
    pub web: TcpListener,
}

impl WorkerListeners {
    /// Binds the ports of the config on `host`.
    pub async fn bind(config: &ClusterConfig, host: &str) -> Result<WorkerListeners, WorkerError> {
        let bind = |port: u16| {
            let addr = host_port(host, port);
            async move {
                TcpListener::bind(&addr)
                    .await
                    .map_err(|source| WorkerError::Bind { addr, source })
            }
        };
        Ok(WorkerListeners {
            rpc: bind(config.worker.rpc_port).await?,
            web: bind(config.worker.web_port).await?,
        })
    }
}

/// A running worker.
pub struct Worker {
    trigger: ShutdownTrigger,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    store: Arc<BlockStore>,
    worker_id: Arc<AtomicU32>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

/// The block store settings from the config.
pub fn store_config(config: &ClusterConfig) -> Result<StoreConfig, WorkerError> {
    let dirs = config
        .worker
        .data_dir
        .iter()
        .map(|d| DataDir::parse(d).map_err(WorkerError::Config))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoreConfig {
        dirs,
        reserved: config.worker.dir_reserved.0,
        high_watermark: config.worker.high_watermark,
        low_watermark: config.worker.low_watermark,
        format: config.format_worker,
    })
}

impl Worker {
    /// Starts a worker on bound listeners; it registers with the masters in the background.
    pub async fn start(
        config: &ClusterConfig,
        listeners: WorkerListeners,
    ) -> Result<Worker, WorkerError> {
        let store_cfg = store_config(config)?;
        let store = Arc::new(
            tokio::task::spawn_blocking(move || BlockStore::open(store_cfg))
                .await
                .map_err(|e| WorkerError::Config(e.to_string()))??,
        );
        let counters = Arc::new(IoCounters::default());
        let registry = prometheus::Registry::new();
        let rpc_metrics = RpcMetrics::new(&registry, "curvine_worker");
        let rpc_port = listeners
            .rpc
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(config.worker.rpc_port);
        let web_port = listeners
            .web
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(config.worker.web_port);
        let identity = Identity {
            hostname: config.worker.hostname.clone(),
            rpc_port,
            web_port,
        };

        let token = Token::from_config(config).map_err(WorkerError::Config)?;
        let token_for_local = token.clone();
        crate::rpc::auth::note_open("worker", token.is_some());
        let tls = TlsSettings::from_config(config).map_err(WorkerError::Config)?;
        crate::rpc::tls::note("worker", &tls);
        let masters = config.master_endpoints();
        let interval = config
            .master
            .heartbeat_interval
            .0
            .max(Duration::from_millis(50));
        let master = Arc::new(
            MasterClient::new(MasterClientConfig {
                addrs: masters,
                rpc_timeout: Duration::from_millis(config.client.rpc_timeout_ms.max(100))
                    .min(Duration::from_secs(10)),
                connect_timeout: Duration::from_millis(config.client.conn_timeout_ms.max(50)),
                retry_for: interval.max(Duration::from_secs(1)),
                token: token.clone(),
                tls: tls.client.clone(),
            })
            .map_err(|e| WorkerError::Config(e.to_string()))?,
        );

        let (trigger, shutdown) = shutdown::channel();
        let worker_id = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        let fetcher = Arc::new(UfsFetcher::new(store.clone(), master.clone()));
        let api = InterceptedService::new(
            WorkerServiceServer::new(WorkerApi::new(
                store.clone(),
                counters.clone(),
                rpc_metrics,
                fetcher.clone(),
                crate::rpc::block_token::Checker::new(token.as_ref()),
            ))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
            Guard::new("worker", token.clone()),
        );
        let router = crate::rpc::server_builder(tls.server.as_ref())
            .map_err(|e| WorkerError::Config(format!("TLS: {e}")))?
            .add_service(api);
        let mut grpc_shutdown = shutdown.clone();
        let rpc = listeners.rpc;
        tasks.push((
            "rpc",
            tokio::spawn(async move {
                let incoming = crate::rpc::incoming(rpc);
                if let Err(e) = router
                    .serve_with_incoming_shutdown(
                        incoming,
                        async move { grpc_shutdown.wait().await },
                    )
                    .await
                {
                    warn!(error = %e, "worker gRPC server stopped");
                }
            }),
        ));
        if !config.worker.domain_socket_path.is_empty() {
            let dir = std::path::Path::new(&config.worker.domain_socket_path);
            let (listener, path) = super::short_circuit::bind(dir, &identity.hostname, rpc_port)
                .map_err(|e| {
                    WorkerError::Config(format!(
                        "worker.domain_socket_path {}: cannot listen there: {e}; make it a \
                         writable directory shared with the clients, or leave it empty",
                        dir.display()
                    ))
                })?;
            let local = Arc::new(super::short_circuit::LocalIo {
                store: store.clone(),
                counters: counters.clone(),
                tokens: crate::rpc::block_token::Checker::new(token_for_local.as_ref()),
                hostname: identity.hostname.clone(),
                rpc_port,
                worker_id: worker_id.clone(),
            });
            tasks.push((
                "short-circuit",
                tokio::spawn(super::short_circuit::serve(
                    listener,
                    path,
                    local,
                    shutdown.clone(),
                )),
            ));
        }
        let web_app: Arc<dyn WebApp> = Arc::new(WorkerWeb::new(
            store.clone(),
            counters.clone(),
            worker_id.clone(),
            registry,
        ));
        let web_shutdown = shutdown.clone();
        let web_listener = listeners.web;
        let web_token = token.clone();
        tasks.push((
            "web",
            tokio::spawn(async move {
                if let Err(e) = web::serve(web_listener, web_app, web_token, web_shutdown).await {
                    warn!(error = %e, "worker web server stopped");
                }
            }),
        ));
        tasks.push((
            "heartbeat",
            tokio::spawn(heartbeat::run(
                master,
                store.clone(),
                counters,
                fetcher,
                identity.clone(),
                interval,
                worker_id.clone(),
                shutdown,
            )),
        ));
        let usage = heartbeat::tiers(&store);
        info!(
            host = %identity.hostname, rpc_port, web_port,
            dirs = %usage.iter().map(|t| format!("{}:{}", t.medium, t.path)).collect::<Vec<_>>().join(","),
            capacity = usage.iter().map(|t| t.capacity).sum::<u64>(),
            blocks = usage.iter().map(|t| t.blocks).sum::<u64>(),
            "worker serving"
        );
        Ok(Worker {
            trigger,
            tasks,
            store,
            worker_id,
        })
    }

    /// The block store.
    pub fn store(&self) -> &Arc<BlockStore> {
        &self.store
    }

    /// The id the master gave this worker (0 until registered).
    pub fn id(&self) -> u32 {
        self.worker_id.load(Ordering::Relaxed)
    }

    /// Stops the heartbeat and the servers.
    pub async fn shutdown(self) {
        self.trigger.fire();
        let id = self.id();
        for (name, task) in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                warn!(task = name, "did not stop within 5 s");
            }
        }
        info!(worker_id = id, "worker stopped");
    }
}

/// The worker's HTTP view.
struct WorkerWeb {
    store: Arc<BlockStore>,
    counters: Arc<IoCounters>,
    worker_id: Arc<AtomicU32>,
    registry: prometheus::Registry,
    capacity: prometheus::GaugeVec,
    used: prometheus::GaugeVec,
    io: prometheus::GaugeVec,
    evicted: prometheus::GaugeVec,
    short_circuit: prometheus::GaugeVec,
    copies: prometheus::GaugeVec,
    syncs: prometheus::GaugeVec,
}

impl WorkerWeb {
    fn new(
        store: Arc<BlockStore>,
        counters: Arc<IoCounters>,
        worker_id: Arc<AtomicU32>,
        registry: prometheus::Registry,
    ) -> Self {
        WorkerWeb {
            capacity: metrics::gauge(
                &registry,
                "curvine_worker_capacity_bytes",
                "Capacity per cache directory",
                &["medium", "path"],
            ),
            used: metrics::gauge(
                &registry,
                "curvine_worker_used_bytes",
                "Used bytes per cache directory",
                &["medium", "path"],
            ),
            io: metrics::gauge(
                &registry,
                "curvine_worker_bytes_total",
                "Bytes read by clients and written to the cache",
                &["direction"],
            ),
            evicted: metrics::gauge(
                &registry,
                "curvine_worker_blocks_evicted_total",
                "Blocks evicted since start",
                &[],
            ),
            short_circuit: metrics::gauge(
                &registry,
                "curvine_worker_short_circuit_opens_total",
                "Block files handed to clients on this node (short-circuit I/O), by mode",
                &["mode"],
            ),
            copies: metrics::gauge(
                &registry,
                "curvine_worker_block_copies_total",
                "New blocks filled from a block held here (rewrites of part of a block)",
                &[],
            ),
            syncs: metrics::gauge(
                &registry,
                "curvine_worker_block_syncs_total",
                "Block files made durable for clients' fsync",
                &[],
            ),
            store,
            counters,
            worker_id,
            registry,
        }
    }
}

impl WebApp for WorkerWeb {
    fn healthy(&self) -> Result<(), String> {
        if self.worker_id.load(Ordering::Relaxed) == 0 {
            Err("not registered with a master yet".to_string())
        } else {
            Ok(())
        }
    }

    fn overview(&self) -> futures::future::BoxFuture<'_, serde_json::Value> {
        let tiers = heartbeat::tiers(&self.store);
        let doc = serde_json::json!({
            "worker_id": self.worker_id.load(Ordering::Relaxed),
            "blocks": tiers.iter().map(|t| t.blocks).sum::<u64>(),
            "evicted_total": self.store.evicted_total(),
            "bytes_read": self.counters.bytes_read.load(Ordering::Relaxed),
            "bytes_written": self.counters.bytes_written.load(Ordering::Relaxed),
            "short_circuit_reads": self.counters.short_circuit_reads.load(Ordering::Relaxed),
            "short_circuit_writes": self.counters.short_circuit_writes.load(Ordering::Relaxed),
            "block_copies": self.counters.block_copies.load(Ordering::Relaxed),
            "block_syncs": self.counters.block_syncs.load(Ordering::Relaxed),
            "tiers": tiers.iter().map(|t| serde_json::json!({
                "medium": t.medium, "path": t.path, "capacity": t.capacity, "used": t.used, "blocks": t.blocks,
            })).collect::<Vec<_>>(),
        });
        Box::pin(std::future::ready(doc))
    }

    fn metrics(&self) -> String {
        for t in heartbeat::tiers(&self.store) {
            self.capacity
                .with_label_values(&[t.medium.as_str(), t.path.as_str()])
                .set(t.capacity as f64);
            self.used
                .with_label_values(&[t.medium.as_str(), t.path.as_str()])
                .set(t.used as f64);
        }
        self.io
            .with_label_values(&["read"])
            .set(self.counters.bytes_read.load(Ordering::Relaxed) as f64);
        self.io
            .with_label_values(&["written"])
            .set(self.counters.bytes_written.load(Ordering::Relaxed) as f64);
        self.evicted
            .with_label_values::<&str>(&[])
            .set(self.store.evicted_total() as f64);
        for (mode, counter) in [
            ("read", &self.counters.short_circuit_reads),
            ("write", &self.counters.short_circuit_writes),
        ] {
            self.short_circuit
                .with_label_values(&[mode])
                .set(counter.load(Ordering::Relaxed) as f64);
        }
        self.copies
            .with_label_values::<&str>(&[])
            .set(self.counters.block_copies.load(Ordering::Relaxed) as f64);
        self.syncs
            .with_label_values::<&str>(&[])
            .set(self.counters.block_syncs.load(Ordering::Relaxed) as f64);
        metrics::encode(&self.registry)
    }
}

/// Runs a worker from the config until SIGTERM or SIGINT.
pub async fn run(config: &ClusterConfig, bind_host: &str) -> Result<(), WorkerError> {
    let listeners = WorkerListeners::bind(config, bind_host).await?;
    let worker = Worker::start(config, listeners).await?;
    match shutdown::wait_for_signal().await {
        Ok(signal) => info!(signal, "stopping worker"),
        Err(e) => warn!(error = %e, "cannot wait for signals; stopping"),
    }
    worker.shutdown().await;
    Ok(())
}
