//! Watching for the other masters at start-up. Fluid starts every master pod at once, and a
//! peer's DNS name resolves only once its pod exists, so the first seconds are spent
//! waiting; this says for whom and why, every few seconds, until every peer answered once.
//! (Raft itself retries its connections; this only makes the wait visible in the log.)

use crate::shutdown::Shutdown;
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::info;

/// How often the wait is logged.
const EVERY: Duration = Duration::from_secs(5);

/// Why a peer is not reachable yet.
async fn probe(addr: &str, timeout: Duration) -> Result<(), &'static str> {
    let resolved = tokio::time::timeout(timeout, tokio::net::lookup_host(addr.to_string())).await;
    let mut addrs = match resolved {
        Ok(Ok(addrs)) => addrs,
        _ => return Err("DNS name does not resolve yet"),
    };
    let Some(first) = addrs.next() else {
        return Err("DNS name does not resolve yet");
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(first)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err("not accepting connections yet"),
    }
}

/// Logs the peers still awaited until each answered once (or shutdown).
pub fn spawn_watch(
    node_id: u64,
    members: &BTreeMap<u64, BasicNode>,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    let mut waiting: BTreeMap<u64, String> = members
        .iter()
        .filter(|(id, _)| **id != node_id)
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut last_log: Option<std::time::Instant> = None;
        while !waiting.is_empty() {
            let mut why = Vec::new();
            let mut reached = Vec::new();
            for (id, addr) in &waiting {
                match probe(addr, Duration::from_secs(2)).await {
                    Ok(()) => reached.push(*id),
                    Err(reason) => why.push(format!("{id}={addr} ({reason})")),
                }
            }
            for id in reached {
                if let Some(addr) = waiting.remove(&id) {
                    info!(peer = id, addr = %addr, "peer master reachable");
                }
            }
            if waiting.is_empty() {
                info!("every peer master is reachable");
                return;
            }
            if last_log.is_none_or(|t| t.elapsed() >= EVERY) {
                info!(awaiting = %why.join(", "), "waiting for peer masters");
                last_log = Some(std::time::Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.wait() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_say_why_a_peer_is_not_there() {
        let t = Duration::from_secs(2);
        assert_eq!(
            probe("no-such-master.invalid:8996", t).await,
            Err("DNS name does not resolve yet")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert_eq!(probe(&addr, t).await, Ok(()));
        drop(listener);
        assert_eq!(probe(&addr, t).await, Err("not accepting connections yet"));
    }
}
