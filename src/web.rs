//! HTTP endpoints every role serves on its web port: `/healthz` (200 only when serving),
//! `/metrics` (Prometheus text format) and `/api/overview` (JSON).

use crate::shutdown::Shutdown;
use axum::extract::State;
use axum::http::StatusCode;
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

async fn overview(State(app): State<Arc<dyn WebApp>>) -> impl IntoResponse {
    axum::Json(app.overview().await)
}

/// Serves the endpoints on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<dyn WebApp>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/overview", get(overview))
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
