//! The admin HTTP API: a separate listener (loopback by default) where operators list, inspect
//! and steer sessions and decide pending approvals. Every request needs the admin token as a
//! bearer token; the token comes from a secret reference in config, never from the file itself.
//!
//! Routes (JSON):
//! - `GET  /v1/health`
//! - `GET  /v1/sessions`, `GET /v1/sessions/{id}`
//! - `POST /v1/sessions/{id}/pause|resume|stop`
//! - `GET  /v1/approvals`, `POST /v1/approvals/{id}/approve|deny` (body `{"reason": "..."}`
//!   optional; header `X-Tollgate-Operator` names who decided, for the audit trail)
//! - `GET  /v1/pins`, `POST /v1/pins/{upstream}/{tool}/approve`
//! - `GET  /metrics`: Prometheus (OpenMetrics text); the token too unless
//!   `telemetry.metrics_require_token = false`

mod approvals;
mod pins;
mod sessions;

use crate::config::AdminConfig;
use crate::session::registry::Registry;
use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub struct AdminState {
    pub registry: Arc<Registry>,
    /// SHA-256 of the token: compared in constant time, and the token itself is not kept.
    token_digest: [u8; 32],
    /// `GET /metrics` needs the token too.
    metrics_need_token: bool,
}

/// Starts the admin listener; the task ends with the process.
pub async fn serve(
    config: &AdminConfig,
    base_dir: &Path,
    registry: Arc<Registry>,
    metrics_need_token: bool,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let token = crate::secrets::resolve(&config.token, base_dir).map_err(|e| anyhow::anyhow!("admin.token: {e}"))?;
    let state =
        Arc::new(AdminState { registry, token_digest: Sha256::digest(token.as_bytes()).into(), metrics_need_token });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin.listen)", config.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read the bound address from this line (port 0 picks a free port).
    println!("admin listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "admin API serving");
    let app = router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin listener failed");
        }
    }))
}

pub fn router(state: Arc<AdminState>) -> Router {
    let guarded = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/sessions", get(sessions::list))
        .route("/v1/sessions/{id}", get(sessions::show))
        .route("/v1/sessions/{id}/{action}", post(sessions::steer))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::show))
        .route("/v1/approvals/{id}/{action}", post(approvals::decide))
        .route("/v1/pins", get(pins::list))
        .route("/v1/pins/{upstream}/{tool}/approve", post(pins::approve));
    // A route is guarded when it is added before the token layer.
    let metrics_route = Router::new().route("/metrics", get(metrics));
    if state.metrics_need_token {
        guarded
            .merge(metrics_route)
            .layer(middleware::from_fn_with_state(state.clone(), require_token))
            .with_state(state)
    } else {
        guarded
            .layer(middleware::from_fn_with_state(state.clone(), require_token))
            .merge(metrics_route)
            .with_state(state)
    }
}

/// Prometheus metrics: counters and histograms by upstream, tool, decision and rule.
async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let body = state.registry.shared().metrics.render();
    ([(axum::http::header::CONTENT_TYPE, crate::telemetry::metrics::CONTENT_TYPE)], body).into_response()
}

/// A JSON error body with a message that says what to fix.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn require_token(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let ok = presented.is_some_and(|d| constant_time_eq(&d, &state.token_digest));
    if !ok {
        let mut resp =
            error(StatusCode::UNAUTHORIZED, "admin API needs `Authorization: Bearer <token>` (the admin.token secret)");
        resp.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        return resp;
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(state): State<Arc<AdminState>>) -> Response {
    let store = &state.registry.shared().store;
    let store_ok = store.ping().await.is_ok();
    let status = if store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "ok": store_ok,
        "store": store.kind(),
        "store_ok": store_ok,
        "sessions_here": state.registry.len(),
        "in_flight": state.registry.in_flight(),
    });
    (status, axum::Json(body)).into_response()
}
