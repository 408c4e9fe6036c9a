//! Talking to the masters: tries `client.master_addrs` in turn, follows leader hints,
//! retries unavailable masters with backoff until a deadline
//! (`client.rpc_retry_max_duration_ms`). A master is first asked for its status, bounded
//! by the connect deadline: one that accepts connections but never answers costs that
//! deadline (`client.conn_timeout_ms`), not a whole RPC timeout, before the next is tried.
//!
//! A call that changes the namespace goes through [`MasterClient::call_once`]: it carries
//! this client's random id and its own call number, the same on every retry, so a call
//! retried after its reply was lost (a dropped connection, a timeout, a leader that died
//! after committing) is answered with its first result by the master's retry cache.

use crate::fs_error::FsError;
use crate::rpc::auth::{AuthChannel, Token};
use crate::rpc::call::CallId;
use crate::rpc::pb::master::master_service_client::MasterServiceClient;
use crate::rpc::pb::master::Empty;
use crate::rpc::status::from_status;
use crate::rpc::tls::ClientTls;
use crate::rpc::MAX_MESSAGE;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tonic::{Response, Status};
use tracing::debug;

/// The call numbers a client gave out and the calls still waiting for their answer.
#[derive(Debug, Default)]
struct CallNumbers {
    last: u64,
    in_flight: BTreeSet<u64>,
}

impl CallNumbers {
    /// The next call's number, in flight from now on (one lock: a number is never given
    /// out without being in flight, so the mark never passes a call waiting for its answer).
    fn start(&mut self) -> u64 {
        self.last += 1;
        self.in_flight.insert(self.last);
        self.last
    }

    /// Every call numbered below this has had its answer or was given up.
    fn answered_below(&self) -> u64 {
        self.in_flight.first().copied().unwrap_or(self.last + 1)
    }
}

/// A call in flight; done when dropped.
struct InFlight<'a> {
    client: &'a MasterClient,
    number: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.client.numbers().in_flight.remove(&self.number);
    }
}

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
    /// The cluster token every request carries (none: the cluster is open).
    pub token: Option<Token>,
    /// TLS to the masters (none: plain RPCs).
    pub tls: Option<ClientTls>,
}

/// A client of the master API that finds the leader by itself.
#[derive(Debug)]
pub struct MasterClient {
    config: MasterClientConfig,
    leader: Mutex<Option<String>>,
    channels: Mutex<HashMap<String, MasterServiceClient<AuthChannel>>>,
    /// Masters that answered on their current channel.
    answered: Mutex<HashSet<String>>,
    /// This client's id in the masters' retry cache (random).
    id: u64,
    /// The numbers of the calls that change the namespace.
    calls: Mutex<CallNumbers>,
}

impl MasterClient {
    /// A client of the given masters (no connection is made yet).
    pub fn new(config: MasterClientConfig) -> Result<MasterClient, FsError> {
        if config.addrs.is_empty() {
            return Err(FsError::InvalidArgument(
                "no master address: set client.master_addrs".into(),
            ));
        }
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes).map_err(|e| {
            FsError::Io(format!(
                "cannot draw a random client id from the system's random source: {e}"
            ))
        })?;
        let id = u64::from_le_bytes(bytes);
        debug!(client = %format_args!("{id:016x}"), "master client id");
        Ok(MasterClient {
            config,
            leader: Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
            answered: Mutex::new(HashSet::new()),
            id,
            calls: Mutex::new(CallNumbers::default()),
        })
    }

    /// This client's id in the masters' retry cache.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Calls `f` on the leader as one call that changes the namespace: `f` gets the
    /// call's identity and sends its request through [`CallId::request`]; every retry
    /// (see [`MasterClient::call`]) sends the same identity, so the masters apply the call
    /// once and answer a repeat with the first result.
    pub async fn call_once<T, F, Fut>(&self, f: F) -> Result<T, FsError>
    where
        F: Fn(MasterServiceClient<AuthChannel>, CallId) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let number = self.numbers().start();
        // Answered (or given up) however this future ends, even dropped mid-call.
        let _in_flight = InFlight {
            client: self,
            number,
        };
        self.call(|c| {
            let id = CallId {
                client: self.id,
                call: number,
                answered_below: self.numbers().answered_below(),
            };
            f(c, id)
        })
        .await
    }

    fn numbers(&self) -> std::sync::MutexGuard<'_, CallNumbers> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self, addr: &str) -> Result<MasterServiceClient<AuthChannel>, FsError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let channel = crate::rpc::channel(
            addr,
            self.config.connect_timeout,
            Some(self.config.rpc_timeout),
            self.config.tls.as_ref(),
        )?;
        let client =
            MasterServiceClient::new(crate::rpc::auth::attach(channel, &self.config.token))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
        channels.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// A client of `addr` that answered: a master not heard from on its current channel
    /// is first asked for its status within the connect deadline; one that does not
    /// answer is unavailable (its channel is dropped, so the next try connects anew).
    async fn answering(&self, addr: &str) -> Result<MasterServiceClient<AuthChannel>, FsError> {
        let client = self.client(addr)?;
        if self.has_answered(addr) {
            return Ok(client);
        }
        let deadline = self.config.connect_timeout;
        let probe = tokio::time::timeout(deadline, client.clone().node_status(Empty {})).await;
        match probe {
            Ok(Ok(_)) => {
                self.answered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(addr.to_string());
                Ok(client)
            }
            Ok(Err(status)) => {
                self.forget(addr);
                Err(from_status(&status))
            }
            Err(_) => {
                self.forget(addr);
                Err(FsError::Unavailable(format!(
                    "master {addr} accepted the connection but did not answer within {deadline:?}"
                )))
            }
        }
    }

    fn has_answered(&self, addr: &str) -> bool {
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr)
    }

    /// Drops the channel of `addr` and what is known of it.
    fn forget(&self, addr: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr);
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr);
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
        F: Fn(MasterServiceClient<AuthChannel>) -> Fut,
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
            let result = match self.answering(&addr).await {
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
                    if matches!(e, FsError::Unavailable(_)) {
                        // Heard from again before it is trusted (it may hang now).
                        self.answered
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&addr);
                    }
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
