//! The cluster as one master sees it: masters (Raft metrics, and each peer's own answer
//! when asked), workers (heartbeats), totals. Shared by the Report RPC, `/api/overview`
//! and `/metrics`.

use super::state::MasterState;
use crate::rpc::auth::Token;
use crate::rpc::pb::master as pb;
use openraft::ServerState;
use std::time::Duration;

/// Capacity and usage summed over live workers.
pub fn usage(state: &MasterState) -> (u64, u64) {
    state
        .workers
        .live()
        .iter()
        .fold((0, 0), |(c, u), (_, r)| (c + r.capacity(), u + r.used()))
}

/// The cluster report: masters (from Raft metrics), workers (from heartbeats), totals.
pub fn build_report(state: &MasterState) -> pb::ClusterReport {
    let m = state.raft.metrics().borrow().clone();
    let leader = m.current_leader;
    let replication = m.replication.clone().unwrap_or_default();
    let membership = m.membership_config.membership().clone();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let masters = membership
        .nodes()
        .map(|(id, node)| {
            let (last_applied, reachable) = if *id == state.node_id {
                (m.last_applied.map_or(0, |l| l.index), true)
            } else {
                match replication.get(id) {
                    Some(Some(matched)) => (matched.index, true),
                    _ => (0, false),
                }
            };
            let role = if Some(*id) == leader {
                "leader"
            } else if voters.contains(id) {
                "follower"
            } else {
                "learner"
            };
            pb::MasterInfo {
                id: *id,
                address: node.addr.clone(),
                role: role.to_string(),
                term: m.current_term,
                last_applied,
                reachable,
            }
        })
        .collect();
    let ns = state.ns.read();
    let (files, dirs) = ns.counts();
    let mut report = pb::ClusterReport {
        cluster_id: state.cluster_id.clone(),
        leader_id: leader.unwrap_or(0),
        leader_address: leader
            .and_then(|l| membership.get_node(&l))
            .map(|n| n.addr.clone())
            .unwrap_or_default(),
        term: m.current_term,
        last_applied: m.last_applied.map_or(0, |l| l.index),
        masters,
        files,
        dirs,
        ..Default::default()
    };
    for w in ns.workers() {
        let last = state.workers.report(w.id);
        let live = state.workers.is_live(w.id);
        let mut info = pb::WorkerInfo {
            id: w.id,
            hostname: w.hostname.clone(),
            rpc_port: u32::from(w.rpc_port),
            web_port: u32::from(w.web_port),
            live,
            ..Default::default()
        };
        if let Some(r) = last {
            info.capacity = r.capacity();
            info.used = r.used();
            info.blocks = r.blocks;
            info.last_heartbeat_ms = r.seen.elapsed().as_millis() as u64;
            info.tiers = r.tiers.clone();
            if live {
                report.capacity += info.capacity;
                report.used += info.used;
            }
            report.bytes_read += r.bytes_read;
            report.bytes_written += r.bytes_written;
            report.reads_hit += r.reads_hit;
            report.reads_miss += r.reads_miss;
            report.bytes_hit += r.bytes_hit;
            report.bytes_fetched += r.bytes_fetched;
        }
        if live {
            report.live_workers += 1;
        } else {
            report.lost_workers += 1;
        }
        report.workers.push(info);
    }
    report
}

/// This master as it sees itself.
pub fn own_view(state: &MasterState) -> pb::MasterInfo {
    let m = state.raft.metrics().borrow().clone();
    pb::MasterInfo {
        id: state.node_id,
        address: state.address.clone(),
        role: role_name(m.state).to_string(),
        term: m.current_term,
        last_applied: m.last_applied.map_or(0, |l| l.index),
        reachable: true,
    }
}

/// Asks the master at `addr` for its own view (sending `token`, over `tls` when set);
/// `None` when it does not answer in `timeout`.
pub async fn node_status(
    addr: &str,
    timeout: Duration,
    token: &Option<Token>,
    tls: Option<&crate::rpc::tls::ClientTls>,
) -> Option<pb::MasterInfo> {
    use crate::rpc::pb::master::master_service_client::MasterServiceClient;
    let channel = crate::rpc::channel(addr, timeout, Some(timeout), tls).ok()?;
    MasterServiceClient::new(crate::rpc::auth::attach(channel, token))
        .node_status(pb::Empty {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Replaces the leader's idea of each peer with the peer's own answer (its role, term and
/// applied index); a peer that does not answer within half a second is unreachable.
pub async fn peer_views(state: &MasterState, masters: &mut [pb::MasterInfo]) {
    let asks = masters.iter().map(|info| {
        let (id, addr) = (info.id, info.address.clone());
        async move {
            if id == state.node_id {
                return (id, Some(own_view(state)));
            }
            (
                id,
                node_status(
                    &addr,
                    Duration::from_millis(500),
                    &state.token,
                    state.tls.as_ref(),
                )
                .await,
            )
        }
    });
    let answers: std::collections::HashMap<u64, Option<pb::MasterInfo>> =
        futures::future::join_all(asks).await.into_iter().collect();
    for info in masters.iter_mut() {
        match answers.get(&info.id) {
            Some(Some(seen)) => {
                info.role = seen.role.clone();
                info.term = seen.term;
                info.last_applied = seen.last_applied;
                info.reachable = true;
            }
            _ => info.reachable = false,
        }
    }
}

/// The name of a Raft role, as reports and metrics show it.
pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
