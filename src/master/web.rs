//! The master's HTTP view: `/healthz` (a leader is known), `/api/overview` (the cluster
//! report) and `/metrics` (Raft and cluster gauges, refreshed at each scrape).

use super::report::{build_report, peer_views, role_name};
use super::state::MasterState;
use crate::metrics;
use crate::web::WebApp;
use std::sync::Arc;

/// The master's HTTP view.
pub struct MasterWeb {
    state: Arc<MasterState>,
    term: prometheus::GaugeVec,
    leader: prometheus::GaugeVec,
    applied: prometheus::GaugeVec,
    role: prometheus::GaugeVec,
    files: prometheus::GaugeVec,
    workers: prometheus::GaugeVec,
    bytes: prometheus::GaugeVec,
    retry_calls: prometheus::GaugeVec,
}

impl MasterWeb {
    /// Registers the gauges in the master's registry.
    pub fn new(state: Arc<MasterState>) -> Self {
        let r = &state.registry;
        MasterWeb {
            term: metrics::gauge(r, "curvine_master_raft_term", "Current Raft term", &[]),
            leader: metrics::gauge(
                r,
                "curvine_master_raft_leader_id",
                "Raft id of the leader (0 when unknown)",
                &[],
            ),
            applied: metrics::gauge(
                r,
                "curvine_master_raft_last_applied_index",
                "Last log index applied here",
                &[],
            ),
            role: metrics::gauge(
                r,
                "curvine_master_raft_role",
                "1 for this master's current role",
                &["role"],
            ),
            files: metrics::gauge(
                r,
                "curvine_master_inodes",
                "Files and directories",
                &["kind"],
            ),
            workers: metrics::gauge(r, "curvine_master_workers", "Workers by state", &["state"]),
            bytes: metrics::gauge(
                r,
                "curvine_cluster_bytes",
                "Cluster capacity and usage over live workers",
                &["kind"],
            ),
            retry_calls: metrics::gauge(
                r,
                "curvine_master_retry_cache_calls",
                "Client calls whose first result the retry cache keeps",
                &[],
            ),
            state,
        }
    }
}

impl WebApp for MasterWeb {
    fn healthy(&self) -> Result<(), String> {
        let m = self.state.raft.metrics().borrow().clone();
        if let Err(e) = &m.running_state {
            return Err(format!("raft stopped: {e}"));
        }
        match m.current_leader {
            Some(_) => Ok(()),
            None => Err("no leader known yet".to_string()),
        }
    }

    fn overview(&self) -> futures::future::BoxFuture<'_, serde_json::Value> {
        Box::pin(async move {
            let m = self.state.raft.metrics().borrow().clone();
            let mut report = build_report(&self.state);
            peer_views(&self.state, &mut report.masters).await;
            let mut doc = crate::report::to_json(&report);
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("node_id".into(), self.state.node_id.into());
                obj.insert("role".into(), role_name(m.state).into());
            }
            doc
        })
    }

    fn metrics(&self) -> String {
        let m = self.state.raft.metrics().borrow().clone();
        self.term
            .with_label_values::<&str>(&[])
            .set(m.current_term as f64);
        self.leader
            .with_label_values::<&str>(&[])
            .set(m.current_leader.unwrap_or(0) as f64);
        self.applied
            .with_label_values::<&str>(&[])
            .set(m.last_applied.map_or(0, |l| l.index) as f64);
        for role in ["leader", "follower", "candidate", "learner", "shutdown"] {
            self.role
                .with_label_values(&[role])
                .set(if role_name(m.state) == role { 1.0 } else { 0.0 });
        }
        self.retry_calls
            .with_label_values::<&str>(&[])
            .set(self.state.ns.read().retry_calls() as f64);
        let report = build_report(&self.state);
        self.files
            .with_label_values(&["file"])
            .set(report.files as f64);
        self.files
            .with_label_values(&["dir"])
            .set(report.dirs as f64);
        self.workers
            .with_label_values(&["live"])
            .set(report.live_workers as f64);
        self.workers
            .with_label_values(&["lost"])
            .set(report.lost_workers as f64);
        self.bytes
            .with_label_values(&["capacity"])
            .set(report.capacity as f64);
        self.bytes
            .with_label_values(&["used"])
            .set(report.used as f64);
        metrics::encode(&self.state.registry)
    }
}
