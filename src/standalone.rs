//! A master and a worker in one process: the `standalone` command and the benchmarks.

use crate::config::{self, ClusterConfig, HostPort, Peer};
use crate::master::{Master, MasterListeners};
use crate::worker::{Worker, WorkerListeners};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A running single-node cluster.
#[derive(Debug)]
pub struct Standalone {
    /// The master.
    pub master: Master,
    /// The worker.
    pub worker: Worker,
    /// How long the master took to become leader.
    pub leader_after: Duration,
}

/// Why a standalone cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// The master failed.
    #[error(transparent)]
    Master(#[from] crate::master::MasterError),
    /// The worker failed.
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    /// A port could not be bound.
    #[error("cannot bind a loopback port: {0}")]
    Bind(#[from] std::io::Error),
    /// The config could not be built.
    #[error(transparent)]
    Config(#[from] crate::error::InputError),
    /// No leader in time.
    #[error("the master elected no leader within {0:?}")]
    NoLeader(Duration),
}

impl Standalone {
    /// Starts on bound listeners; returns once the master leads.
    pub async fn start_on(
        config: &ClusterConfig,
        master: MasterListeners,
        worker: WorkerListeners,
    ) -> Result<Standalone, StandaloneError> {
        let started = Instant::now();
        let master = Master::start(config, master).await?;
        let wait = Duration::from_secs(30);
        master
            .raft()
            .wait(Some(wait))
            .metrics(|m| m.current_leader.is_some(), "leader")
            .await
            .map_err(|_| StandaloneError::NoLeader(wait))?;
        let leader_after = started.elapsed();
        let worker = Worker::start(config, worker).await?;
        Ok(Standalone {
            master,
            worker,
            leader_after,
        })
    }

    /// Starts on the ports of the config, on `host`.
    pub async fn start(config: &ClusterConfig, host: &str) -> Result<Standalone, StandaloneError> {
        let m = MasterListeners::bind(config, host).await?;
        let w = WorkerListeners::bind(config, host).await?;
        Self::start_on(config, m, w).await
    }

    /// Starts on free loopback ports with data under `data_dir`; returns the cluster and
    /// its config (for clients). Waits until the worker is registered.
    pub async fn start_ephemeral(
        data_dir: &Path,
        tweak: impl FnOnce(&mut ClusterConfig),
    ) -> Result<(Standalone, ClusterConfig), StandaloneError> {
        let rendered = config::render_standalone(
            &data_dir.display().to_string(),
            toml_edit::DocumentMut::new(),
        )?;
        let mut config = rendered.to_config()?;
        let bind = || TcpListener::bind((config::LOOPBACK, 0));
        let (rpc, journal, web, wrpc, wweb) = (
            bind().await?,
            bind().await?,
            bind().await?,
            bind().await?,
            bind().await?,
        );
        let port = |l: &TcpListener| l.local_addr().map(|a| a.port());
        config.master.rpc_port = port(&rpc)?;
        config.master.web_port = port(&web)?;
        config.journal.rpc_port = port(&journal)?;
        config.journal.journal_addrs = vec![Peer {
            id: 1,
            hostname: config::LOOPBACK.into(),
            port: config.journal.rpc_port,
        }];
        config.client.master_addrs = vec![HostPort {
            hostname: config::LOOPBACK.into(),
            port: config.master.rpc_port,
        }];
        config.worker.rpc_port = port(&wrpc)?;
        config.worker.web_port = port(&wweb)?;
        config.master.heartbeat_interval = config::DurationText(Duration::from_millis(200));
        tweak(&mut config);
        let cluster = Self::start_on(
            &config,
            MasterListeners { rpc, journal, web },
            WorkerListeners {
                rpc: wrpc,
                web: wweb,
            },
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.worker.id() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok((cluster, config))
    }

    /// Stops the worker, then the master.
    pub async fn shutdown(self) -> Result<(), crate::master::MasterError> {
        self.worker.shutdown().await;
        self.master.shutdown().await
    }
}
