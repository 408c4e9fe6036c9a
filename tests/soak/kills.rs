//! The killer: at random moments SIGKILL the leading master (found through the cluster
//! report) or a worker, measure how long until a new leader serves a metadata write,
//! restart the killed process on its directories and wait until the cluster is whole
//! again before the next kill.

use crate::cluster::{Cluster, MASTERS, WORKERS};
use crate::writers::{Rng, Tally};
use curvine_fluid::client::Client;
use curvine_fluid::rpc::pb::master::ClusterReport;
use std::time::{Duration, Instant};

/// How long a new leader may take to serve a write before the soak fails.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// The kills of one run.
pub struct Plan {
    /// SIGKILLs of the leading master.
    pub leader_kills: u64,
    /// SIGKILLs of a worker.
    pub worker_kills: u64,
    /// The run's seed (order and moments of the kills).
    pub seed: u64,
}

/// What the kills measured.
pub struct Record {
    /// Per leader kill: kill -> a new leader served a mkdir.
    pub failovers: Vec<Duration>,
    /// Per worker kill: restarted -> registered again.
    pub worker_restarts: Vec<Duration>,
}

/// Runs the plan: kills in a seeded random order, 1-4 s apart.
pub fn run(
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    client: &Client,
    tally: &Tally,
    plan: Plan,
) -> Record {
    let mut rng = Rng::new(plan.seed ^ 0x4B11);
    // true: the leader, false: a worker; shuffled (Fisher-Yates).
    let mut events: Vec<bool> = (0..plan.leader_kills)
        .map(|_| true)
        .chain((0..plan.worker_kills).map(|_| false))
        .collect();
    for i in (1..events.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        events.swap(i, j);
    }
    let mut record = Record {
        failovers: Vec::new(),
        worker_restarts: Vec::new(),
    };
    println!("| # | killed | measured | files acknowledged so far |");
    println!("|---:|---|---:|---:|");
    for (k, leader) in events.into_iter().enumerate() {
        let report = wait_whole(rt, client, cluster, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.range(1000, 4000)));
        if leader {
            let (victim, took, term) = kill_leader(cluster, rt, client, &report, k);
            record.failovers.push(took);
            println!(
                "| {} | master-{victim} (leader) | failover {} ms (term {} -> {term}) | {} |",
                k + 1,
                took.as_millis(),
                report.term,
                tally.acked_count()
            );
        } else {
            let victim = rng.range(0, WORKERS as u64) as usize;
            cluster.kill_worker(victim);
            std::thread::sleep(Duration::from_millis(rng.range(500, 2000)));
            cluster.start_worker(victim);
            let restarted = Instant::now();
            let back = poll(Duration::from_secs(60), || cluster.worker_healthy(victim));
            assert!(
                back,
                "worker-{victim} did not register within 60 s of its restart"
            );
            let took = restarted.elapsed();
            record.worker_restarts.push(took);
            println!(
                "| {} | worker-{victim} | registered {} ms after restart | {} |",
                k + 1,
                took.as_millis(),
                tally.acked_count()
            );
        }
    }
    record
}

/// SIGKILLs the leader named by `report`, measures until a new leader serves a mkdir,
/// restarts the killed master and waits until it follows again. (which, how long, the
/// new term: more than one past the old term means an election was retried)
fn kill_leader(
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    client: &Client,
    report: &ClusterReport,
    k: usize,
) -> (usize, Duration, u64) {
    let victim = report.leader_id as usize - 1;
    let applied = report.last_applied;
    let killed = Instant::now();
    cluster.kill_master(victim);
    // The client retries by itself (30 s); each try started after the kill.
    let mut attempt = 0u32;
    let took = loop {
        let probe = format!("/soak/probe/k{k}-{attempt}");
        match rt.block_on(client.mkdir(&probe, true)) {
            Ok(_) => break killed.elapsed(),
            Err(e) if killed.elapsed() >= FAILOVER_LIMIT => {
                panic!(
                    "no new leader served a write within {FAILOVER_LIMIT:?} of killing master-{victim}: {e}"
                )
            }
            Err(_) => attempt += 1,
        }
    };
    let term = rt
        .block_on(client.report())
        .map(|r| r.term)
        .unwrap_or_default();
    cluster.start_master(victim);
    // Back: it answers the leader's probe, in the current term, and applied at least what
    // the cluster had applied before the kill.
    let id = victim as u64 + 1;
    let rejoined = poll(Duration::from_secs(60), || {
        rt.block_on(client.report()).is_ok_and(|r| {
            r.masters.iter().any(|m| {
                m.id == id
                    && m.reachable
                    && m.role == "follower"
                    && m.term == r.term
                    && m.last_applied >= applied
            })
        })
    });
    assert!(
        rejoined,
        "master-{victim} did not rejoin within 60 s of its restart"
    );
    (victim, took, term)
}

/// Waits until a leader is known, every master answers and every worker is registered
/// and live; the report then. Fails the soak after `limit`.
pub fn wait_whole(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    cluster: &Cluster,
    limit: Duration,
) -> ClusterReport {
    let mut last = None;
    let whole = poll(limit, || {
        let Ok(r) = rt.block_on(client.report()) else {
            return false;
        };
        let ok = r.leader_id != 0
            && r.masters.len() == MASTERS
            && r.masters.iter().all(|m| m.reachable)
            && r.live_workers == WORKERS as u64
            && (0..WORKERS).all(|j| cluster.worker_healthy(j));
        last = Some(r);
        ok
    });
    assert!(
        whole,
        "the cluster was not whole within {limit:?}: {last:?}"
    );
    last.expect("a report")
}

/// Checks `check` every 50 ms for at most `limit`; whether it held.
fn poll(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `p50 X ms, p99 Y ms, max Z ms (n)` of the durations (nearest rank).
pub fn summary(times: &[Duration]) -> String {
    if times.is_empty() {
        return "none measured".into();
    }
    let mut ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    let rank = |p: f64| ms[((p / 100.0 * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    format!(
        "p50 {} ms, p99 {} ms, max {} ms ({} measured)",
        rank(50.0),
        rank(99.0),
        ms[ms.len() - 1],
        ms.len()
    )
}
