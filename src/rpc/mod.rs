//! Our own gRPC protocol between our own components: the generated message and service
//! types (`pb`), error mapping to and from `tonic::Status`, channel set-up, the cluster
//! token every request carries when one is configured (`auth`), the block tokens derived
//! from it that a worker requires for a block's bytes (`block_token`), optional TLS
//! (`tls`), and the identity of a namespace-changing call (`call`).
//!
//! Ports: clients and workers talk to masters on `master.rpc_port`, masters to each other
//! on `journal.rpc_port` (which also serves the client API, so a leader hint that names a
//! journal address can be followed), clients to workers on `worker.rpc_port`.

pub mod auth;
pub mod block_token;
pub mod call;
pub mod local;
pub mod status;
pub mod tls;

/// Generated protobuf types and gRPC stubs.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod pb {
    /// The master's API.
    pub mod master {
        tonic::include_proto!("curvine.master");
    }
    /// The worker's block API.
    pub mod worker {
        tonic::include_proto!("curvine.worker");
    }
    /// Raft between masters.
    pub mod raft {
        tonic::include_proto!("curvine.raft");
    }
}

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// The largest gRPC message we send or accept (a data chunk is 1 MiB; Raft batches and
/// snapshot chunks can be larger).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The HTTP/2 flow-control window of one stream: how much a sender may send ahead of
/// what the receiver has read.
pub const STREAM_WINDOW: u32 = 8 << 20;

/// The window of a whole connection (several streams).
const CONNECTION_WINDOW: u32 = 32 << 20;

/// A lazily connecting channel to `host:port` with our timeouts and window sizes, over
/// TLS when `tls` is given.
pub fn channel(
    addr: &str,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    tls: Option<&tls::ClientTls>,
) -> Result<Channel, crate::fs_error::FsError> {
    let bad = |e: &dyn std::fmt::Display| {
        crate::fs_error::FsError::InvalidArgument(format!("bad address {addr}: {e}"))
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = match addr.split_once("://") {
        Some((_, rest)) => format!("{scheme}://{rest}"),
        None => format!("{scheme}://{}", bracket_ipv6(addr)),
    };
    let mut endpoint = Endpoint::from_shared(uri).map_err(|e| bad(&e))?;
    if let Some(tls) = tls {
        let host = endpoint.uri().host().unwrap_or_default().to_string();
        endpoint = endpoint
            .tls_config(tls.config_for(&host))
            .map_err(|e| bad(&e))?;
    }
    let mut endpoint = endpoint
        .connect_timeout(connect_timeout)
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .http2_adaptive_window(false)
        .keep_alive_while_idle(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
    if let Some(t) = request_timeout {
        endpoint = endpoint.timeout(t);
    }
    // With a connector of our own, tonic bounds the whole connection set-up (TCP and the
    // TLS handshake) by the connect deadline: a peer that accepts TCP but never finishes a
    // handshake costs that deadline, not forever.
    Ok(endpoint.connect_with_connector_lazy(tower::service_fn(tcp_connect)))
}

/// Opens the TCP connection of a channel, Nagle's algorithm off.
async fn tcp_connect(
    uri: tonic::transport::Uri,
) -> std::io::Result<hyper_util::rt::TokioIo<tokio::net::TcpStream>> {
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(hyper_util::rt::TokioIo::new(stream))
}

/// `host:port` with an IPv6 host put in brackets (`fd00::1:8995` stays as given when the
/// caller already bracketed it).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn bracket_ipv6(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) if host.contains(':') && !host.starts_with('[') => {
            format!("[{host}]:{port}")
        }
        _ => addr.to_string(),
    }
}

/// Accepted connections of a bound listener, with Nagle's algorithm off (small gRPC
/// frames must not wait for the peer's delayed ACK).
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    })
}

/// A gRPC server builder with our flow-control windows and frame size (1 MiB data
/// messages travel in a few large frames instead of 64 small ones), accepting only TLS
/// when `tls` is given.
pub fn server_builder(
    tls: Option<&tls::ServerTls>,
) -> Result<tonic::transport::Server, tonic::transport::Error> {
    let builder = tonic::transport::Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(1 << 20));
    match tls {
        Some(tls) => builder.tls_config(tls.config()),
        None => Ok(builder),
    }
}
