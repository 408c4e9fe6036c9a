//! HTTP endpoints every role serves on its web port: `/healthz` (200 only when serving),
//! `/metrics` (Prometheus text format) and `/api/overview` (JSON; with a cluster token it
//! asks for `Authorization: Bearer <token>` like the RPCs, while probes and scrapes of
//! the first two need none).

use crate::rpc::auth::Token;
use crate::shutdown::Shutdown;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// What a role shows over HTTP.
pub trait WebApp: Send + Sync + 'static {
    /// `Ok` when serving; otherwise why not.
    fn healthy(&self) -> Result<(), String>;
    /// The overview document (may ask other servers, hence async).
    fn overview(&self) -> futures::future::BoxFuture<'_, serde_json::Value>;
    /// Metrics in Prometheus text format.
    fn metrics(&self) -> String;
}

async fn healthz(State(app): State<Arc<dyn WebApp>>) -> impl IntoResponse {
    match app.healthy() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn metrics(State(app): State<Arc<dyn WebApp>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        app.metrics(),
    )
}

/// The app and the token `/api/overview` asks for.
#[derive(Clone)]
struct Served {
    app: Arc<dyn WebApp>,
    token: Option<Token>,
}

async fn overview(State(served): State<Served>, headers: HeaderMap) -> axum::response::Response {
    if let Some(token) = &served.token {
        let presented = headers
            .get(crate::rpc::auth::HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !token.accepts(presented) {
            let why = format!(
                "/api/overview: {}; send it as Authorization: Bearer <token>\n",
                crate::rpc::auth::FIX
            );
            return (StatusCode::UNAUTHORIZED, why).into_response();
        }
    }
    axum::Json(served.app.overview().await).into_response()
}

/// Serves the endpoints on `listener` until `shutdown` fires; `/api/overview` asks for
/// `token` when there is one.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<dyn WebApp>,
    token: Option<Token>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let open = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app.clone());
    let router = Router::new()
        .route("/api/overview", get(overview))
        .with_state(Served { app, token })
        .merge(open);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
