//! Blocks of under-storage files fetched into this worker's store on a miss: a read
//! (or DataLoad's load) that names a block the store lacks fetches it from the mount's
//! storage with parallel ranged reads, stores it in the tiers, and reports it to the
//! master with the next heartbeat. Concurrent readers of one block wait for one fetch.
//! Mount specs (endpoint, secret files) come from the master's mount table.

use super::block_store::BlockStore;
use super::service::fs_error as store_error;
use crate::client::master::MasterClient;
use crate::fs_error::FsError;
use crate::rpc::pb::master as pb;
use crate::rpc::pb::worker::UfsSource;
use crate::ufs::{Ufs, UfsError, UfsSpec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// Bytes per ranged read of a fetch (a 64 MiB block is fetched as 8 parts).
const PART: u64 = 8 << 20;
/// Most parallel ranged reads per block.
const MAX_PARTS: u64 = 8;
/// Blocks fetched at once (each is held in memory while fetched).
const FETCHES_AT_ONCE: usize = 4;

/// The fetcher.
pub struct UfsFetcher {
    store: Arc<BlockStore>,
    master: Arc<MasterClient>,
    mounts: Mutex<HashMap<String, (String, Ufs)>>,
    inflight: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    cached: Mutex<Vec<u64>>,
    slots: Semaphore,
}

impl std::fmt::Debug for UfsFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UfsFetcher").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UfsFetcher {
    /// A fetcher filling `store`, reading mount specs from `master`.
    pub fn new(store: Arc<BlockStore>, master: Arc<MasterClient>) -> UfsFetcher {
        UfsFetcher {
            store,
            master,
            mounts: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            cached: Mutex::new(Vec::new()),
            slots: Semaphore::new(FETCHES_AT_ONCE),
        }
    }

    /// Makes sure block `id` is in the store, fetching it from `source` if not. Returns
    /// the bytes fetched (0: it was here).
    pub async fn ensure(&self, id: u64, source: &UfsSource) -> Result<u64, FsError> {
        if self.store.contains(id) {
            return Ok(0);
        }
        let one = lock(&self.inflight).entry(id).or_default().clone();
        let fetched = {
            let _only_fetch = one.lock().await;
            if self.store.contains(id) {
                Ok(0)
            } else {
                self.fetch(id, source).await
            }
        };
        let mut inflight = lock(&self.inflight);
        if Arc::strong_count(&one) <= 2 {
            inflight.remove(&id);
        }
        fetched
    }

    async fn fetch(&self, id: u64, source: &UfsSource) -> Result<u64, FsError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| FsError::Unavailable("the worker is stopping".into()))?;
        let ufs = self.ufs_for(&source.mount).await?;
        let started = Instant::now();
        let parts = source.len.div_ceil(PART).clamp(1, MAX_PARTS) as usize;
        let data = match ufs
            .read_range_parallel(&source.path, source.offset, source.len, &source.etag, parts)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                if !matches!(e, UfsError::NotFound(_) | UfsError::Changed(_)) {
                    // The spec may have changed (credentials, endpoint): read it again.
                    lock(&self.mounts).remove(&source.mount);
                }
                return Err(match e {
                    UfsError::NotFound(m) | UfsError::Changed(m) => FsError::Unavailable(format!(
                        "{}/{}: the file changed in under storage ({m}); open it again",
                        source.mount, source.path
                    )),
                    other => FsError::Io(format!(
                        "{}/{}: fetching block {id}: {other}",
                        source.mount, source.path
                    )),
                });
            }
        };
        if data.len() as u64 != source.len {
            return Err(FsError::Io(format!(
                "{}/{}: under storage gave {} bytes of block {id}, not {}",
                source.mount,
                source.path,
                data.len(),
                source.len
            )));
        }
        let store = self.store.clone();
        let len = tokio::task::spawn_blocking(move || {
            let mut w = store.create(id, data.len() as u64)?;
            w.write(&data)?;
            w.commit()
        })
        .await
        .map_err(|e| FsError::Io(format!("block I/O task: {e}")))?
        .map_err(store_error)?;
        lock(&self.cached).push(id);
        info!(
            block = id,
            mount = %source.mount,
            path = %source.path,
            bytes = len,
            ms = started.elapsed().as_millis() as u64,
            "fetched from under storage"
        );
        Ok(len)
    }

    /// The connection of a mount, from the master's mount table when not known yet.
    async fn ufs_for(&self, mount: &str) -> Result<Ufs, FsError> {
        if let Some((_, ufs)) = lock(&self.mounts).get(mount) {
            return Ok(ufs.clone());
        }
        let table = self
            .master
            .call(|mut c| async move { c.list_mounts(pb::Empty {}).await })
            .await?;
        let mut mounts = lock(&self.mounts);
        for m in table.mounts.iter().filter(|m| !m.ufs.is_empty()) {
            if mounts.get(&m.path).is_some_and(|(spec, _)| *spec == m.ufs) {
                continue;
            }
            let spec: UfsSpec = match serde_json::from_str(&m.ufs) {
                Ok(s) => s,
                Err(e) => {
                    warn!(mount = %m.path, error = %e, "the mount's spec does not parse");
                    continue;
                }
            };
            match Ufs::open(&spec) {
                Ok(ufs) => {
                    mounts.insert(m.path.clone(), (m.ufs.clone(), ufs));
                }
                Err(e) => warn!(mount = %m.path, error = %e, "cannot open the mount's storage"),
            }
        }
        mounts.get(mount).map(|(_, u)| u.clone()).ok_or_else(|| {
            FsError::Unavailable(format!(
                "mount {mount} is not in the master's mount table, or its storage cannot be \
                 opened on this worker (are its secrets mounted here?)"
            ))
        })
    }

    /// Blocks fetched since the last call (for the heartbeat).
    pub fn take_cached(&self) -> Vec<u64> {
        std::mem::take(&mut *lock(&self.cached))
    }
}
