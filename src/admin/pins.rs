//! Admin routes for tool-definition pins: list them, approve a changed definition.

use super::{AdminState, error};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

pub async fn list(State(state): State<Arc<AdminState>>) -> Response {
    match state.registry.shared().pins.list().await {
        Ok(pins) => Json(json!({ "pins": pins })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("state store unavailable: {e}")),
    }
}

pub async fn approve(State(state): State<Arc<AdminState>>, Path((upstream, tool)): Path<(String, String)>) -> Response {
    match state.registry.shared().pins.approve(&upstream, &tool).await {
        Ok(digest) => Json(json!({ "upstream": upstream, "tool": tool, "pinned": digest })).into_response(),
        Err(e) if e.starts_with("no changed definition") => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
