//! The worker's link to the masters: register (reporting the blocks it holds), then send
//! a heartbeat every `master.heartbeat_interval` with usage, counters and evicted blocks,
//! to whichever master leads. Deletes the blocks the master names; registers again when a
//! new leader does not know it.

use super::block_store::BlockStore;
use super::service::IoCounters;
use super::ufs_fetch::UfsFetcher;
use crate::client::master::MasterClient;
use crate::rpc::pb::master as pb;
use crate::shutdown::Shutdown;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How this worker is reached.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Hostname clients use.
    pub hostname: String,
    /// Block data port.
    pub rpc_port: u16,
    /// HTTP port.
    pub web_port: u16,
}

/// Per-directory usage for the master.
pub fn tiers(store: &BlockStore) -> Vec<pb::TierUsage> {
    store
        .usage()
        .into_iter()
        .map(|t| pb::TierUsage {
            medium: format!("{:?}", t.medium).to_uppercase(),
            path: t.path,
            capacity: t.capacity,
            used: t.used,
            blocks: t.blocks,
        })
        .collect()
}

fn delete_blocks(store: &BlockStore, ids: &[u64]) {
    for id in ids {
        if let Err(e) = store.delete(*id) {
            warn!(block = id, error = %e, "cannot delete block");
        }
    }
}

/// Runs until shutdown. `worker_id` holds the id once registered (0 before).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    master: Arc<MasterClient>,
    store: Arc<BlockStore>,
    counters: Arc<IoCounters>,
    fetcher: Arc<UfsFetcher>,
    identity: Identity,
    interval: Duration,
    worker_id: Arc<AtomicU32>,
    mut shutdown: Shutdown,
) {
    let mut unsent_evicted: Vec<u64> = Vec::new();
    let mut unsent_cached: Vec<u64> = Vec::new();
    let mut failing = false;
    loop {
        let id = worker_id.load(Ordering::Relaxed);
        let result = if id == 0 {
            let req = pb::RegisterWorkerRequest {
                hostname: identity.hostname.clone(),
                rpc_port: u32::from(identity.rpc_port),
                web_port: u32::from(identity.web_port),
                tiers: tiers(&store),
                block_ids: store.block_ids(),
            };
            master
                .call_once(|mut c, id| {
                    let r = id.request(req.clone());
                    async move { c.register_worker(r).await }
                })
                .await
                .map(|resp| {
                    delete_blocks(&store, &resp.delete_blocks);
                    worker_id.store(resp.worker_id, Ordering::Relaxed);
                    info!(worker_id = resp.worker_id, leader = ?master.leader(), orphans_deleted = resp.delete_blocks.len(), "registered with the master");
                })
        } else {
            unsent_evicted.extend(store.take_evicted());
            unsent_cached.extend(fetcher.take_cached());
            let tiers = tiers(&store);
            let req = pb::HeartbeatRequest {
                worker_id: id,
                blocks: tiers.iter().map(|t| t.blocks).sum(),
                tiers,
                evicted: unsent_evicted.clone(),
                bytes_read: counters.bytes_read.load(Ordering::Relaxed),
                bytes_written: counters.bytes_written.load(Ordering::Relaxed),
                reads_hit: counters.reads_hit.load(Ordering::Relaxed),
                reads_miss: counters.reads_miss.load(Ordering::Relaxed),
                cached: unsent_cached.clone(),
                bytes_hit: counters.bytes_hit.load(Ordering::Relaxed),
                bytes_fetched: counters.bytes_fetched.load(Ordering::Relaxed),
            };
            master
                .call(|mut c| {
                    let r = req.clone();
                    async move { c.heartbeat(r).await }
                })
                .await
                .map(|resp| {
                    unsent_evicted.clear();
                    unsent_cached.clear();
                    delete_blocks(&store, &resp.delete_blocks);
                    if resp.register_again {
                        info!("the master does not know this worker; registering again");
                        worker_id.store(0, Ordering::Relaxed);
                    }
                })
        };
        match result {
            Ok(()) if failing => {
                info!("master reachable again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                warn!(error = %e, "cannot reach the master leader; retrying");
                failing = true;
            }
            Err(_) => {}
        }
        // Register again at once; otherwise wait for the next beat.
        if worker_id.load(Ordering::Relaxed) == 0 && !failing {
            continue;
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
