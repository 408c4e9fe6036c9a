//! Talking to the masters: tries `client.master_addrs` in turn, follows leader hints,
//! retries unavailable masters with backoff until a deadline
//! (`client.rpc_retry_max_duration_ms`).

use crate::fs_error::FsError;
use crate::rpc::pb::master::master_service_client::MasterServiceClient;
use crate::rpc::status::from_status;
use crate::rpc::MAX_MESSAGE;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Response, Status};
use tracing::debug;

/// Connection settings of a [`MasterClient`].
#[derive(Debug, Clone)]
pub struct MasterClientConfig {
    /// Master addresses (`host:port`), tried in order.
    pub addrs: Vec<String>,
    /// Deadline of one attempt.
    pub rpc_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long a call keeps retrying.
    pub retry_for: Duration,
}

/// A client of the master API that finds the leader by itself.
#[derive(Debug)]
pub struct MasterClient {
    config: MasterClientConfig,
    leader: Mutex<Option<String>>,
    channels: Mutex<HashMap<String, MasterServiceClient<Channel>>>,
}

impl MasterClient {
    /// A client of the given masters (no connection is made yet).
    pub fn new(config: MasterClientConfig) -> Result<MasterClient, FsError> {
        if config.addrs.is_empty() {
            return Err(FsError::InvalidArgument(
                "no master address: set client.master_addrs".into(),
            ));
        }
        Ok(MasterClient {
            config,
            leader: Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
        })
    }

    fn client(&self, addr: &str) -> Result<MasterServiceClient<Channel>, FsError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let channel = crate::rpc::channel(
            addr,
            self.config.connect_timeout,
            Some(self.config.rpc_timeout),
        )?;
        let client = MasterServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        channels.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// The leader address last seen.
    pub fn leader(&self) -> Option<String> {
        self.leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_leader(&self, addr: Option<String>) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// Calls `f` on the leader. `NotLeader` with a hint is followed at once; an
    /// unreachable master or one without a leader is retried on the next address with
    /// backoff, until the deadline. Other errors return at once.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, FsError>
    where
        F: Fn(MasterServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.config.retry_for;
        let mut backoff = Duration::from_millis(20);
        let mut next = 0usize;
        let mut last_error: FsError;
        loop {
            let addr = match self.leader() {
                Some(a) => a,
                None => {
                    let a = self.config.addrs[next % self.config.addrs.len()].clone();
                    next += 1;
                    a
                }
            };
            let result = match self.client(&addr) {
                Ok(client) => f(client)
                    .await
                    .map(Response::into_inner)
                    .map_err(|s| from_status(&s)),
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => {
                    if self.leader().as_deref() != Some(addr.as_str()) {
                        self.set_leader(Some(addr));
                    }
                    return Ok(v);
                }
                Err(FsError::NotLeader { leader: Some(hint) }) if hint != addr => {
                    debug!(from = %addr, to = %hint, "following leader hint");
                    self.set_leader(Some(hint));
                    last_error = FsError::NotLeader { leader: None };
                    // A hint is followed at once, but a loop of stale hints still backs off.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) if e.is_retryable() => {
                    debug!(master = %addr, error = %e, "master unavailable, trying the next");
                    self.set_leader(None);
                    last_error = e;
                    if next % self.config.addrs.len() == 0 || self.config.addrs.len() == 1 {
                        tokio::time::sleep(backoff).await;
                        // Capped well below an election (0.4-0.8 s), so a client notices
                        // the new leader soon after it is elected.
                        backoff = (backoff * 2).min(Duration::from_millis(250));
                    }
                }
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(match last_error {
                    FsError::Unavailable(why) => FsError::Unavailable(format!(
                        "no master leader reachable within {:?} (tried {}): {why}",
                        self.config.retry_for,
                        self.config.addrs.join(", ")
                    )),
                    other => FsError::Unavailable(format!(
                        "no master leader within {:?}: {other}",
                        self.config.retry_for
                    )),
                });
            }
        }
    }
}
