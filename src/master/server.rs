//! Starting and stopping a master: open the journal and the state machine, build Raft,
//! serve the client API, the peer API and HTTP, initialise the cluster on node 1, and stop
//! in reverse order.

use super::api::MasterApi;
use super::batcher::Batcher;
use super::log_store::LogStore;
use super::network::{Network, RaftServer};
use super::report::node_status;
use super::state::MasterState;
use super::state_machine::StateMachine;
use super::types::{NodeId, Raft};
use super::web::MasterWeb;
use super::workers::lost_after;
use super::workers::WorkerRegistry;
use crate::config::ClusterConfig;
use crate::metrics::RpcMetrics;
use crate::rpc::auth::{Guard, Token};
use crate::rpc::pb::master::master_service_server::MasterServiceServer;
use crate::rpc::pb::raft::raft_service_server::RaftServiceServer;
use crate::rpc::tls::TlsSettings;
use crate::rpc::{host_port, MAX_MESSAGE};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::web::{self, WebApp};
use openraft::{BasicNode, SnapshotPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn};

/// Why a master could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// The config does not describe this master.
    #[error("master config: {0}")]
    Config(String),
    /// The journal or metadata store could not be opened or flushed.
    #[error("master storage ({path}): {message}")]
    Storage {
        /// The directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Raft failed to start or to initialise.
    #[error("raft: {0}")]
    Raft(String),
}

/// The three listening sockets of a master, bound before start (tests bind port 0).
#[derive(Debug)]
pub struct MasterListeners {
    /// Client API (`master.rpc_port`).
    pub rpc: TcpListener,
    /// Peer API and client API (`journal.rpc_port`).
    pub journal: TcpListener,
    /// HTTP (`master.web_port`).
    pub web: TcpListener,
}

impl MasterListeners {
    /// Binds the ports of the config on `host`.
    pub async fn bind(config: &ClusterConfig, host: &str) -> Result<MasterListeners, MasterError> {
        Ok(MasterListeners {
            rpc: bind(host, config.master.rpc_port).await?,
            journal: bind(host, config.journal.rpc_port).await?,
            web: bind(host, config.master.web_port).await?,
        })
    }
}

/// Binds `host:port`.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, MasterError> {
    let addr = host_port(host, port);
    TcpListener::bind(&addr)
        .await
        .map_err(|source| MasterError::Bind { addr, source })
}

/// A running master.
pub struct Master {
    state: Arc<MasterState>,
    trigger: ShutdownTrigger,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    state_machine: StateMachine,
    log_store: LogStore,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// This master's Raft id and the voters, from `journal.journal_addrs`.
pub fn identity(
    config: &ClusterConfig,
) -> Result<(NodeId, BTreeMap<NodeId, BasicNode>), MasterError> {
    let j = &config.journal;
    if j.journal_addrs.is_empty() {
        let mut members = BTreeMap::new();
        members.insert(1, BasicNode::new(host_port(&j.hostname, j.rpc_port)));
        return Ok((1, members));
    }
    let members: BTreeMap<NodeId, BasicNode> = j
        .journal_addrs
        .iter()
        .map(|p| (p.id, BasicNode::new(host_port(&p.hostname, p.port))))
        .collect();
    let exact = j
        .journal_addrs
        .iter()
        .find(|p| p.hostname == j.hostname && p.port == j.rpc_port);
    let by_name: Vec<_> = j
        .journal_addrs
        .iter()
        .filter(|p| p.hostname == j.hostname)
        .collect();
    let me = exact.or(if by_name.len() == 1 {
        by_name.first().copied()
    } else {
        None
    });
    match me {
        Some(peer) => Ok((peer.id, members)),
        None => Err(MasterError::Config(format!(
            "journal.hostname {}:{} is not in journal.journal_addrs [{}]; set journal.hostname to this master's entry",
            j.hostname,
            j.rpc_port,
            j.journal_addrs.iter().map(|p| format!("{}:{}", p.hostname, p.port)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn storage_err(path: &str, e: impl std::fmt::Display) -> MasterError {
    MasterError::Storage {
        path: path.to_string(),
        message: e.to_string(),
    }
}

impl Master {
    /// Starts a master on bound listeners. Returns once it serves; leadership follows.
    pub async fn start(
        config: &ClusterConfig,
        listeners: MasterListeners,
    ) -> Result<Master, MasterError> {
        let (node_id, members) = identity(config)?;
        let token = Token::from_config(config).map_err(MasterError::Config)?;
        crate::rpc::auth::note_open("master", token.is_some());
        let tls = TlsSettings::from_config(config).map_err(MasterError::Config)?;
        crate::rpc::tls::note("master", &tls);
        let meta_dir = config.master.meta_dir.clone();
        let journal_dir = config.journal.journal_dir.clone();
        if config.format_master {
            for dir in [&meta_dir, &journal_dir] {
                match std::fs::remove_dir_all(dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(storage_err(dir, format!("format: {e}")))
                    }
                    _ => info!(dir = %dir, "format_master: wiped"),
                }
            }
        }
        let log_store = LogStore::open(std::path::Path::new(&journal_dir))
            .map_err(|e| storage_err(&journal_dir, e))?;
        let state_machine = StateMachine::open(std::path::Path::new(&meta_dir))
            .map_err(|e| storage_err(&meta_dir, e))?;
        let ns = state_machine.namespace();

        let snapshot_entries = config.journal.snapshot_entries.max(100);
        let raft_config = openraft::Config {
            cluster_name: config.cluster_id.clone(),
            heartbeat_interval: 100,
            election_timeout_min: election_window(node_id).0,
            election_timeout_max: election_window(node_id).1,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_entries),
            // Logs behind a snapshot are purged, keeping at most one snapshot interval
            // (and 1,000) for followers slightly behind; further behind, a follower is
            // brought up by the snapshot.
            max_in_snapshot_log_to_keep: snapshot_entries.min(1000),
            ..Default::default()
        }
        .validate()
        .map_err(|e| MasterError::Raft(e.to_string()))?;
        let raft = Raft::new(
            node_id,
            Arc::new(raft_config),
            Network::new(
                Duration::from_millis(config.client.conn_timeout_ms.max(100)),
                members
                    .iter()
                    .map(|(id, node)| (*id, node.addr.clone()))
                    .collect(),
                token.clone(),
                tls.client.clone(),
            ),
            log_store.clone(),
            state_machine.clone(),
        )
        .await
        .map_err(|e| MasterError::Raft(e.to_string()))?;

        let ufs_interval = crate::ufs::parse_sync_interval(&config.master.ufs_sync_interval)
            .map_err(|e| {
                MasterError::Config(format!(
                    "master.ufs_sync_interval is {:?}: {e}",
                    config.master.ufs_sync_interval
                ))
            })?;
        let block_token_lifetime = config
            .security
            .block_token_lifetime()
            .map_err(MasterError::Config)?;
        let registry = prometheus::Registry::new();
        let address = members
            .get(&node_id)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        let state = Arc::new(MasterState {
            node_id,
            address: address.clone(),
            raft: raft.clone(),
            ns,
            workers: WorkerRegistry::new(lost_after(config.master.worker_lost_interval.0)),
            cluster_id: config.cluster_id.clone(),
            block_size: config.client.block_size.0,
            rpc_metrics: RpcMetrics::new(&registry, "curvine_master"),
            repeated_calls: crate::metrics::counter(
                &registry,
                "curvine_master_repeated_calls_total",
                "Client calls repeated after a lost reply, answered with their first result",
                &[],
            ),
            registry,
            batcher: Batcher::start(raft.clone()),
            // Half the shortest election timeout (400 ms): no other leader exists yet.
            lease: super::lease::ReadLease::start(&raft, node_id, Duration::from_millis(200)),
            ufs: super::ufs::UfsLayer::new(
                ufs_interval,
                config.client.block_size.0,
                crate::client::Client::with_token(config, token.clone()).ok(),
            ),
            block_tokens: crate::rpc::block_token::Issuer::new(
                token.as_ref(),
                block_token_lifetime,
            ),
            token: token.clone(),
            tls: tls.client.clone(),
        });

        let (trigger, shutdown) = shutdown::channel();
        let mut tasks = Vec::new();
        let api = InterceptedService::new(
            MasterServiceServer::new(MasterApi::new(state.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            Guard::new("master", token.clone()),
        );
        let peer = InterceptedService::new(
            RaftServiceServer::new(RaftServer::new(raft.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            Guard::new("raft", token.clone()),
        );
        let rpc_addr = local(&listeners.rpc);
        let journal_addr = local(&listeners.journal);
        let web_addr = local(&listeners.web);
        tasks.push((
            "rpc",
            spawn_grpc(
                crate::rpc::server_builder(tls.server.as_ref())
                    .map_err(|e| MasterError::Config(format!("TLS: {e}")))?
                    .add_service(api.clone()),
                listeners.rpc,
                shutdown.clone(),
            ),
        ));
        tasks.push((
            "journal",
            spawn_grpc(
                crate::rpc::server_builder(tls.server.as_ref())
                    .map_err(|e| MasterError::Config(format!("TLS: {e}")))?
                    .add_service(peer)
                    .add_service(api),
                listeners.journal,
                shutdown.clone(),
            ),
        ));
        let web_app: Arc<dyn WebApp> = Arc::new(MasterWeb::new(state.clone()));
        let web_shutdown = shutdown.clone();
        let web_token = token.clone();
        tasks.push((
            "web",
            tokio::spawn(async move {
                if let Err(e) = web::serve(listeners.web, web_app, web_token, web_shutdown).await {
                    warn!(error = %e, "master web server stopped");
                }
            }),
        ));
        tasks.push((
            "lost-workers",
            spawn_lost_worker_watch(state.clone(), shutdown.clone()),
        ));
        tasks.push((
            "peers",
            super::peers::spawn_watch(node_id, &members, shutdown.clone()),
        ));
        info!(node_id, rpc = %rpc_addr, journal = %journal_addr, web = %web_addr, peers = members.len(), "master serving");

        if node_id == 1 {
            let initialized = raft
                .is_initialized()
                .await
                .map_err(|e| MasterError::Raft(e.to_string()))?;
            if !initialized {
                match existing_cluster(node_id, &members, &token, tls.client.as_ref()).await {
                    Some((peer, term)) => info!(
                        peer,
                        term,
                        "empty journal, but the cluster exists: joining it (a snapshot brings this node up) instead of initialising"
                    ),
                    None => {
                        info!(voters = ?members.keys().collect::<Vec<_>>(), "initialising the cluster (node 1, empty journal)");
                        raft.initialize(members.clone())
                            .await
                            .map_err(|e| MasterError::Raft(format!("initialise: {e}")))?;
                    }
                }
            }
        } else {
            info!(
                node_id,
                "waiting for node 1 to initialise the cluster or for the leader to reach this node"
            );
        }
        Ok(Master {
            state,
            trigger,
            tasks,
            state_machine,
            log_store,
        })
    }

    /// The shared state (Raft, namespace, workers).
    pub fn state(&self) -> &Arc<MasterState> {
        &self.state
    }

    /// The Raft instance.
    pub fn raft(&self) -> &Raft {
        &self.state.raft
    }

    /// Stops serving, shuts Raft down and flushes the stores.
    pub async fn shutdown(self) -> Result<(), MasterError> {
        self.trigger.fire();
        for (name, task) in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                warn!(task = name, "did not stop within 5 s");
            }
        }
        if let Err(e) = self.state.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        self.state_machine
            .flush()
            .await
            .map_err(|e| storage_err("meta_dir", e))?;
        self.log_store
            .sync()
            .await
            .map_err(|e| storage_err("journal_dir", e))?;
        info!(node_id = self.state.node_id, "master stopped");
        Ok(())
    }
}

fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

fn spawn_grpc(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let incoming = crate::rpc::incoming(listener);
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await })
            .await
        {
            warn!(error = %e, "gRPC server stopped");
        }
    })
}

fn spawn_lost_worker_watch(state: Arc<MasterState>, mut shutdown: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            let leader = state.is_leader();
            state.workers.note_leadership(leader);
            if !leader {
                continue;
            }
            for id in state.workers.newly_lost() {
                warn!(worker = id, "worker lost: no heartbeat; its blocks read as unavailable and no new block goes there");
            }
        }
    })
}

/// A peer that already belongs to an initialised cluster (its id and term), if one answers
/// within a second: node 1 restarted with an empty journal must join, not initialise again.
async fn existing_cluster(
    node_id: NodeId,
    members: &BTreeMap<NodeId, BasicNode>,
    token: &Option<Token>,
    tls: Option<&crate::rpc::tls::ClientTls>,
) -> Option<(NodeId, u64)> {
    let asks = members
        .iter()
        .filter(|(id, _)| **id != node_id)
        .map(|(id, node)| async move {
            let seen = node_status(&node.addr, Duration::from_secs(1), token, tls).await?;
            (seen.term > 0).then_some((*id, seen.term))
        });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .next()
}

/// This master's election timeout window in ms, staggered by node id: 400–450 for node 1,
/// 500–550 for node 2, and so on. openraft draws one timeout per node for the node's whole
/// life, so two survivors with close draws would start their elections together after
/// every leader loss and split the vote again and again (the crash soak saw an election
/// retried twice: 4.7 s). Staggered, the survivor with the lowest id asks first and the
/// other, still inside its own window, votes for it. A follower waits its window's top
/// (openraft's leader lease) plus its timeout after the last heartbeat: 0.85–1.3 s with
/// three masters, instead of 1.2–1.6 s and the retries. Every window stays well above the
/// 200 ms read lease ([`super::lease`]).
fn election_window(node_id: NodeId) -> (u64, u64) {
    let slot = node_id.saturating_sub(1).min(9);
    let min = 400 + 100 * slot;
    (min, min + 50)
}

/// Runs a master from the config until SIGTERM or SIGINT.
pub async fn run(config: &ClusterConfig, bind_host: &str) -> Result<(), MasterError> {
    let listeners = MasterListeners::bind(config, bind_host).await?;
    let master = Master::start(config, listeners).await?;
    match shutdown::wait_for_signal().await {
        Ok(signal) => info!(signal, "stopping master"),
        Err(e) => warn!(error = %e, "cannot wait for signals; stopping"),
    }
    master.shutdown().await
}
