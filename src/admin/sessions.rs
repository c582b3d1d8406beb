//! Admin routes for sessions: list, show (record, recent calls, pending approvals), and
//! pause / resume / stop. A state change goes to the store, so it holds on every replica.

use super::{AdminState, error};
use crate::session::store::SessionState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

const SHOW_HISTORY: usize = 50;

fn unavailable(e: impl std::fmt::Display) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("state store unavailable: {e}"))
}

pub async fn list(State(state): State<Arc<AdminState>>) -> Response {
    match state.registry.shared().store.list_sessions().await {
        Ok(mut sessions) => {
            sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
            Json(json!({ "sessions": sessions })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

pub async fn show(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    let store = &state.registry.shared().store;
    let record = match store.get_session(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no session {id} (ended, expired or never existed)")),
        Err(e) => return unavailable(e),
    };
    let history = match store.history(&id, SHOW_HISTORY).await {
        Ok(h) => h,
        Err(e) => return unavailable(e),
    };
    let approvals = match store.pending_approvals().await {
        Ok(a) => a.into_iter().filter(|a| a.session == id).collect::<Vec<_>>(),
        Err(e) => return unavailable(e),
    };
    let here = state.registry.local(&id).map(|s| json!({ "in_flight": s.in_flight() }));
    // Costs are micro-units of this gateway's configured currency.
    let currency = state.registry.shared().cost.currency();
    Json(json!({
        "session": record,
        "history": history,
        "pending_approvals": approvals,
        "here": here,
        "currency": currency,
    }))
    .into_response()
}

pub async fn steer(State(state): State<Arc<AdminState>>, Path((id, action)): Path<(String, String)>) -> Response {
    let target = match action.as_str() {
        "pause" => SessionState::Paused,
        "resume" => SessionState::Active,
        "stop" => SessionState::Stopped,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown session action {other:?}; use pause, resume or stop"),
            );
        }
    };
    let store = &state.registry.shared().store;
    match store.get_session(&id).await {
        Ok(Some(r)) if r.state == SessionState::Stopped && target != SessionState::Stopped => {
            return error(
                StatusCode::CONFLICT,
                format!("session {id} was stopped; a stopped session cannot be resumed"),
            );
        }
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no session {id} (ended, expired or never existed)")),
        Err(e) => return unavailable(e),
    }
    let result = match state.registry.local(&id) {
        // Served here: also wake held calls at once, or cancel in-flight ones on stop.
        Some(session) => session.set_state(target).await.map_err(|e| e.to_string()),
        None => store.set_session_state(&id, target).await.map_err(|e| e.to_string()),
    };
    if target == SessionState::Stopped {
        state.registry.remove(&id).await;
    }
    match result {
        Ok(_) => Json(json!({ "session": id, "state": target.as_str() })).into_response(),
        Err(e) => unavailable(e),
    }
}
