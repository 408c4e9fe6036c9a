//! The cluster report as JSON (`report --json`, the master's `/api/overview`) and as text
//! (`curvine-fluid report`).

use crate::rpc::pb::master::ClusterReport;
use serde_json::{json, Value};

/// The report as a JSON document.
pub fn to_json(r: &ClusterReport) -> Value {
    json!({
        "cluster_id": r.cluster_id,
        "leader": { "id": r.leader_id, "address": r.leader_address },
        "term": r.term,
        "last_applied": r.last_applied,
        "masters": r.masters.iter().map(|m| json!({
            "id": m.id, "address": m.address, "role": m.role, "term": m.term,
            "last_applied": m.last_applied, "reachable": m.reachable,
        })).collect::<Vec<_>>(),
        "capacity": r.capacity,
        "used": r.used,
        "available": r.capacity.saturating_sub(r.used),
        "files": r.files,
        "dirs": r.dirs,
        "live_workers": r.live_workers,
        "lost_workers": r.lost_workers,
        "bytes_read": r.bytes_read,
        "bytes_written": r.bytes_written,
        "cache_hit_ratio": hit_ratio(r),
        "workers": r.workers.iter().map(|w| json!({
            "id": w.id, "hostname": w.hostname, "rpc_port": w.rpc_port, "web_port": w.web_port,
            "state": if w.live { "live" } else { "lost" },
            "capacity": w.capacity, "used": w.used, "blocks": w.blocks,
            "last_heartbeat_ms": w.last_heartbeat_ms,
            "tiers": w.tiers.iter().map(|t| json!({
                "medium": t.medium, "path": t.path, "capacity": t.capacity, "used": t.used, "blocks": t.blocks,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Reads served by a worker that had the block, over all reads.
pub fn hit_ratio(r: &ClusterReport) -> f64 {
    let total = r.reads_hit + r.reads_miss;
    if total == 0 {
        0.0
    } else {
        r.reads_hit as f64 / total as f64
    }
}

/// Bytes with a binary unit, two decimals (`1.50GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

/// The report as text.
pub fn to_text(r: &ClusterReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("cluster:      {}\n", r.cluster_id));
    out.push_str(&format!(
        "leader:       {} (id {}, term {})\n",
        r.leader_address, r.leader_id, r.term
    ));
    out.push_str(&format!(
        "capacity:     {} used, {} free, {} total\n",
        human_bytes(r.used),
        human_bytes(r.capacity.saturating_sub(r.used)),
        human_bytes(r.capacity)
    ));
    out.push_str(&format!(
        "files:        {}   directories: {}\n",
        r.files, r.dirs
    ));
    out.push_str(&format!(
        "workers:      {} live, {} lost\n",
        r.live_workers, r.lost_workers
    ));
    out.push_str("masters:\n");
    for m in &r.masters {
        out.push_str(&format!(
            "  {:>3}  {:<40} {:<9} term {} applied {}{}\n",
            m.id,
            m.address,
            m.role,
            m.term,
            m.last_applied,
            if m.reachable { "" } else { "  (unreachable)" }
        ));
    }
    out.push_str("workers:\n");
    for w in &r.workers {
        out.push_str(&format!(
            "  {:>3}  {:<40} {:<5} {} / {}  {} blocks\n",
            w.id,
            format!("{}:{}", w.hostname, w.rpc_port),
            if w.live { "live" } else { "lost" },
            human_bytes(w.used),
            human_bytes(w.capacity),
            w.blocks
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1536), "1.50KiB");
        assert_eq!(human_bytes(5 << 30), "5.00GiB");
    }
}
