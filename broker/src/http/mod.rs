//! The HTTP endpoint: `/healthz` for readiness, `/metrics` for Prometheus, `/admin/*` for
//! operators (see `admin_api.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod admin_api;

use sluice_client::admin_api as paths;

/// Shared by the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// Set once the node can serve Kafka requests.
    pub ready: Arc<AtomicBool>,
    /// Renders the Prometheus text.
    pub metrics: Option<PrometheusHandle>,
    /// The running broker, once started (admin endpoints answer 503 before).
    pub broker: Arc<OnceLock<crate::context::Ctx>>,
}

async fn healthz(State(s): State<HttpState>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn metrics(State(s): State<HttpState>) -> String {
    s.metrics.as_ref().map(|h| h.render()).unwrap_or_default()
}

/// Serves HTTP on `listener` until shutdown.
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(paths::STATUS, get(admin_api::status))
        .route(paths::BROKERS, get(admin_api::brokers))
        .route(paths::TOPICS, get(admin_api::topics))
        .route(paths::DIGEST, get(admin_api::digest))
        .route(paths::VOTERS, post(admin_api::change_voters))
        .route(paths::LEADER, post(admin_api::transfer_leader))
        .with_state(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "http server failed");
    }
}
