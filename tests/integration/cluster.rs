//! An in-process cluster for tests: masters and workers on loopback ports with a
//! temp dir each, started with one call and stopped by [`TestCluster::shutdown`].

use crate::harness::wait_for;
use crate::ports::listener;
use curvine_fluid::client::Client;
use curvine_fluid::config::{ClusterConfig, DurationText, HostPort, Peer};
use curvine_fluid::master::{Master, MasterListeners};
use curvine_fluid::worker::{Worker, WorkerListeners};
use std::time::Duration;
use tokio::net::TcpListener;

/// Ports of one master.
#[derive(Debug, Clone, Copy)]
pub struct MasterPorts {
    pub rpc: u16,
    pub journal: u16,
    pub web: u16,
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub masters: Vec<Option<Master>>,
    /// Masters not started yet (see [`TestCluster::start_deferred`]).
    pub deferred: Vec<bool>,
    /// Per master, the `journal.journal_addrs` it uses instead of the shared one (a test
    /// routing Raft traffic through proxies sets them before starting the masters).
    pub journal_views: Vec<Option<Vec<Peer>>>,
    pub master_ports: Vec<MasterPorts>,
    pub workers: Vec<Option<Worker>>,
    pub worker_configs: Vec<ClusterConfig>,
    pub base: ClusterConfig,
}

fn port(l: &TcpListener) -> u16 {
    l.local_addr().expect("local addr").port()
}

impl TestCluster {
    /// Starts `masters` masters and `workers` workers; `tweak` adjusts the shared config
    /// (and `tweak_worker` each worker's). Returns once a leader serves and every worker
    /// registered.
    pub async fn start(
        masters: usize,
        workers: usize,
        tweak: impl Fn(&mut ClusterConfig),
    ) -> TestCluster {
        Self::start_with(masters, workers, tweak, |_, _| {}).await
    }

    pub async fn start_with(
        masters: usize,
        workers: usize,
        tweak: impl Fn(&mut ClusterConfig),
        tweak_worker: impl Fn(usize, &mut ClusterConfig),
    ) -> TestCluster {
        let cluster = Self::start_deferred(masters, workers, &[], tweak, tweak_worker).await;
        cluster.wait_ready().await;
        cluster
    }

    /// Like [`TestCluster::start_with`], but the masters in `deferred` only get their
    /// ports (start them with [`TestCluster::start_master`]), and nothing is awaited.
    pub async fn start_deferred(
        masters: usize,
        workers: usize,
        deferred: &[usize],
        tweak: impl Fn(&mut ClusterConfig),
        tweak_worker: impl Fn(usize, &mut ClusterConfig),
    ) -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut master_listeners = Vec::new();
        let mut master_ports = Vec::new();
        for _ in 0..masters {
            let (rpc, journal, web) = (listener().await, listener().await, listener().await);
            master_ports.push(MasterPorts {
                rpc: port(&rpc),
                journal: port(&journal),
                web: port(&web),
            });
            master_listeners.push(MasterListeners { rpc, journal, web });
        }
        let mut base = ClusterConfig {
            cluster_id: "test".into(),
            ..Default::default()
        };
        base.journal.journal_addrs = master_ports
            .iter()
            .enumerate()
            .map(|(i, p)| Peer {
                id: i as u64 + 1,
                hostname: "127.0.0.1".into(),
                port: p.journal,
            })
            .collect();
        base.client.master_addrs = master_ports
            .iter()
            .map(|p| HostPort {
                hostname: "127.0.0.1".into(),
                port: p.rpc,
            })
            .collect();
        base.master.heartbeat_interval = DurationText(Duration::from_millis(100));
        base.master.worker_lost_interval = DurationText(Duration::from_millis(1500));
        base.client.rpc_retry_max_duration_ms = 15_000;
        base.client.rpc_timeout_ms = 10_000;
        base.client.block_size = curvine_fluid::config::ByteSize(4 << 20);
        base.worker.hostname = "127.0.0.1".into();
        tweak(&mut base);
        let mut cluster = TestCluster {
            dir,
            masters: Vec::new(),
            deferred: Vec::new(),
            journal_views: vec![None; masters],
            master_ports,
            workers: Vec::new(),
            worker_configs: Vec::new(),
            base,
        };
        for (i, listeners) in master_listeners.into_iter().enumerate() {
            if deferred.contains(&i) {
                // Not listening, as a pod that does not exist yet: connections are refused.
                drop(listeners);
                cluster.masters.push(None);
                cluster.deferred.push(true);
                continue;
            }
            let config = cluster.master_config(i);
            cluster.masters.push(Some(
                Master::start(&config, listeners)
                    .await
                    .expect("master starts"),
            ));
            cluster.deferred.push(false);
        }
        for i in 0..workers {
            let (rpc, web) = (listener().await, listener().await);
            let mut config = cluster.base.clone();
            config.worker.rpc_port = port(&rpc);
            config.worker.web_port = port(&web);
            config.worker.data_dir = vec![format!(
                "[DISK]{}",
                cluster.dir.path().join(format!("worker-{i}")).display()
            )];
            tweak_worker(i, &mut config);
            let worker = Worker::start(&config, WorkerListeners { rpc, web })
                .await
                .expect("worker starts");
            cluster.workers.push(Some(worker));
            cluster.worker_configs.push(config);
        }
        cluster
    }

    /// Starts a deferred master for the first time, on its ports.
    pub async fn start_master(&mut self, i: usize) {
        assert!(std::mem::take(&mut self.deferred[i]), "a deferred master");
        self.restart_master(i).await;
    }

    /// The config of master `i`.
    pub fn master_config(&self, i: usize) -> ClusterConfig {
        let mut config = self.base.clone();
        let p = self.master_ports[i];
        config.master.hostname = "127.0.0.1".into();
        config.master.rpc_port = p.rpc;
        config.master.web_port = p.web;
        config.journal.hostname = "127.0.0.1".into();
        config.journal.rpc_port = p.journal;
        config.master.meta_dir = self
            .dir
            .path()
            .join(format!("master-{i}/meta"))
            .display()
            .to_string();
        config.journal.journal_dir = self
            .dir
            .path()
            .join(format!("master-{i}/journal"))
            .display()
            .to_string();
        if let Some(Some(view)) = self.journal_views.get(i) {
            config.journal.journal_addrs = view.clone();
        }
        config
    }

    /// A client that knows only the masters in `which`, retrying for `retry`.
    pub fn client_of(&self, which: &[usize], retry: Duration) -> Client {
        let mut config = self.base.clone();
        config.client.master_addrs = which
            .iter()
            .map(|i| HostPort {
                hostname: "127.0.0.1".into(),
                port: self.master_ports[*i].rpc,
            })
            .collect();
        config.client.rpc_retry_max_duration_ms = retry.as_millis() as u64;
        config.client.rpc_timeout_ms = 1000;
        Client::new(&config).expect("client")
    }

    /// A client of the cluster.
    pub fn client(&self) -> Client {
        Client::new(&self.base).expect("client")
    }

    /// Waits for a leader and for every running worker to be registered and live.
    pub async fn wait_ready(&self) {
        let client = self.client();
        let expected = self.workers.iter().filter(|w| w.is_some()).count() as u64;
        wait_for("a leader and live workers", Duration::from_secs(20), || {
            let client = client.clone();
            async move {
                client
                    .report()
                    .await
                    .map(|r| r.live_workers == expected && r.leader_id != 0)
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// Stops master `i`.
    pub async fn stop_master(&mut self, i: usize) {
        if let Some(m) = self.masters[i].take() {
            m.shutdown().await.expect("master stops");
        }
    }

    /// Starts master `i` again on its ports, with its journal and metadata.
    pub async fn restart_master(&mut self, i: usize) {
        let p = self.master_ports[i];
        let bind = |port: u16| async move {
            TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("rebind")
        };
        let listeners = MasterListeners {
            rpc: bind(p.rpc).await,
            journal: bind(p.journal).await,
            web: bind(p.web).await,
        };
        let config = self.master_config(i);
        self.masters[i] = Some(
            Master::start(&config, listeners)
                .await
                .expect("master restarts"),
        );
    }

    /// Stops worker `i`.
    pub async fn stop_worker(&mut self, i: usize) {
        if let Some(w) = self.workers[i].take() {
            w.shutdown().await;
        }
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        for i in 0..self.workers.len() {
            self.stop_worker(i).await;
        }
        for i in 0..self.masters.len() {
            self.stop_master(i).await;
        }
    }

    /// The config as TOML, for the CLI.
    pub fn client_toml(&self) -> String {
        let addrs: Vec<String> = self
            .base
            .client
            .master_addrs
            .iter()
            .map(|a| format!("{{ hostname = \"{}\", port = {} }}", a.hostname, a.port))
            .collect();
        format!(
            "cluster_id = \"test\"\n[client]\nmaster_addrs = [{}]\nblock_size = \"4MB\"\nrpc_retry_max_duration_ms = 5000\n",
            addrs.join(", ")
        )
    }
}

/// `count` deterministic pseudo-random ranges (offset, length) in a file of `file_len`
/// bytes, with lengths in `lens` (a range may run past the end).
pub fn random_ranges(
    file_len: u64,
    lens: std::ops::Range<usize>,
    count: usize,
    seed: u64,
) -> Vec<(u64, usize)> {
    let mut x = seed;
    (0..count)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let offset = (x >> 11) % file_len;
            let len = lens.start + ((x >> 3) as usize) % (lens.end - lens.start);
            (offset, len)
        })
        .collect()
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
