//! Prometheus metrics: one registry per running role (tests run several roles in one
//! process), RPC counters and latency histograms, and the text exposition format.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

/// Counts and times the RPCs a server answers.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl RpcMetrics {
    /// Registers `<prefix>_rpc_requests_total{method,outcome}` and
    /// `<prefix>_rpc_duration_seconds{method}`.
    pub fn new(registry: &Registry, prefix: &str) -> RpcMetrics {
        let requests = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_rpc_requests_total"),
                "RPCs answered, by method and outcome",
            ),
            &["method", "outcome"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let latency = HistogramVec::new(
            HistogramOpts::new(
                format!("{prefix}_rpc_duration_seconds"),
                "RPC latency, by method",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            &["method"],
        )
        .unwrap_or_else(|_| unreachable_histogram());
        let _ = registry.register(Box::new(requests.clone()));
        let _ = registry.register(Box::new(latency.clone()));
        RpcMetrics { requests, latency }
    }

    /// Records one RPC.
    pub fn observe(&self, method: &str, ok: bool, elapsed: Duration) {
        self.requests
            .with_label_values(&[method, if ok { "ok" } else { "error" }])
            .inc();
        self.latency
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
    }
}

// Metric names and labels above are constants that prometheus accepts; these fallbacks
// only satisfy the type checker without a panic path.
fn unreachable_metric() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new("invalid_metric", "invalid"),
        &["method", "outcome"],
    )
    .unwrap_or_else(|_| std::process::abort())
}

fn unreachable_histogram() -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new("invalid_histogram", "invalid"),
        &["method"],
    )
    .unwrap_or_else(|_| std::process::abort())
}

/// A gauge family registered once, set at scrape time.
pub fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
    let g = prometheus::GaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| {
        prometheus::GaugeVec::new(Opts::new("invalid_gauge", "invalid"), labels)
            .unwrap_or_else(|_| std::process::abort())
    });
    let _ = registry.register(Box::new(g.clone()));
    g
}

/// A counter family.
pub fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric());
    let _ = registry.register(Box::new(c.clone()));
    c
}

/// The registry in Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
