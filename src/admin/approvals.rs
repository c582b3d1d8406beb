//! Admin routes for approvals: the pending list, one approval, and approve / deny. The store
//! records the first decision only, so two operators (or an operator and the client) cannot
//! both decide; the loser gets 409 with the decision that stands.

use super::{AdminState, error};
use crate::session::store::{ApprovalDecision, DecideOutcome, now_ms};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

fn unavailable(e: impl std::fmt::Display) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("state store unavailable: {e}"))
}

pub async fn list(State(state): State<Arc<AdminState>>) -> Response {
    match state.registry.shared().store.pending_approvals().await {
        Ok(mut approvals) => {
            approvals.sort_by_key(|a| a.created_ms);
            Json(json!({ "approvals": approvals })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

pub async fn show(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    match state.registry.shared().store.get_approval(&id).await {
        Ok(Some(a)) => Json(json!({ "approval": a })).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no approval {id}")),
        Err(e) => unavailable(e),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    reason: Option<String>,
}

pub async fn decide(
    State(state): State<Arc<AdminState>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let approved = match action.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return error(StatusCode::NOT_FOUND, format!("unknown approval action {other:?}; use approve or deny"));
        }
    };
    let body: DecideBody = if body.is_empty() {
        DecideBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("body must be {{\"reason\": \"...\"}}: {e}")),
        }
    };
    let operator = headers
        .get("x-tollgate-operator")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("operator");
    let decision = ApprovalDecision { approved, by: format!("admin:{operator}"), at_ms: now_ms(), reason: body.reason };
    let shared = state.registry.shared();
    match shared.store.decide_approval(&id, &decision).await {
        Ok(DecideOutcome::Decided(a)) => {
            shared.decisions.wake(&id);
            tracing::info!(approval = %id, approved, by = %decision.by, "approval decided");
            Json(json!({ "approval": a })).into_response()
        }
        Ok(DecideOutcome::AlreadyDecided(a)) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": format!("approval {id} was already decided (or expired)"), "approval": a })),
        )
            .into_response(),
        Ok(DecideOutcome::NotFound) => error(StatusCode::NOT_FOUND, format!("no approval {id}")),
        Err(e) => unavailable(e),
    }
}
