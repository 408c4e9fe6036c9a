//! Loopback ports for the tests, taken below the kernel's ephemeral range.
//!
//! A port the kernel hands out for `bind(:0)` comes from the same range as the local
//! ports of outgoing connections. A test that picks a port, frees it and binds it again
//! later (a process started on it, a master restarted on its old ports) could then find it
//! held by some client's connection: "Address already in use". Ports below that range are
//! only ever handed out here, once each per test run.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const FIRST: u32 = 12_000;

/// The first port of the kernel's ephemeral range (Linux's default when unreadable).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The next port to try: starts at a place that depends on the process id, so two test
/// runs one after the other do not try the same ports first.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A loopback port that nothing listens on now and that no other call hands out again.
pub fn free_port() -> u16 {
    let span = ephemeral_start().saturating_sub(FIRST).max(1_000);
    let _ = NEXT.compare_exchange(
        0,
        1 + std::process::id() % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = (FIRST + offset) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + span);
}

/// A listener on a port from [`free_port`], for servers started in this process.
pub async fn listener() -> tokio::net::TcpListener {
    for _ in 0..100 {
        let port = free_port();
        // Another process may have bound the port since the check: take the next one.
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            return l;
        }
    }
    panic!("100 free loopback ports were all taken before they could be bound");
}
