//! The one error type. Every JSON-RPC error the gateway itself produces is built in `to_jsonrpc`.
//!
//! Codes: the standard JSON-RPC ones keep their meaning; the gateway's own decisions use
//! -31xxx, outside the ranges the MCP spec reserves (-32768..-32000), so a client can tell a
//! gateway decision from an upstream's error. ARCHITECTURE.md has the table.

use crate::jsonrpc;
use serde_json::json;
use std::time::Duration;

/// Who caused an error: decides log level and whether details may reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Client,
    Policy,
    Upstream,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("method not found: {0}")]
    MethodNotFound(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("unknown tool: {0}")]
    UnknownTool(String),
    #[error("request id {0} is already in flight on this session")]
    DuplicateRequestId(String),
    #[error("header mismatch: {0}")]
    HeaderMismatch(String),
    #[error("unsupported protocol version {requested}")]
    UnsupportedProtocolVersion { requested: String },
    #[error("upstream {upstream} unavailable: {reason}")]
    UpstreamUnavailable { upstream: String, reason: String },
    #[error("upstream {upstream} did not answer within {after:?}")]
    UpstreamTimeout { upstream: String, after: Duration },
    #[error("upstream {upstream} broke the protocol: {detail}")]
    UpstreamProtocol { upstream: String, detail: String },
    #[error("{reason} (rule {rule})")]
    ReadOnly { rule: String, reason: String },
    #[error("{reason} (rule {rule})")]
    PolicyDenied { rule: String, reason: String },
    #[error("{reason} (rule {rule})")]
    ToolDefinitionChanged { rule: String, reason: String },
    #[error("tool output withheld: {reason} (rule {rule})")]
    OutputWithheld { rule: String, reason: String },
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
    #[error("gateway is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{reason} (rule {rule})")]
    ApprovalDenied { rule: String, reason: String },
    #[error("{reason} (rule {rule})")]
    RateLimited { rule: String, reason: String, retry_after: Duration },
    #[error("session state store unavailable: {0}")]
    StoreUnavailable(String),
    /// An operator paused the session and did not resume it in time.
    #[error("session is paused by an operator; the call waited {waited:?} and was not released")]
    SessionPaused { waited: Duration },
    #[error("session was stopped by an operator")]
    SessionStopped,
    /// No credentials, or credentials that did not verify (HTTP 401 with a challenge).
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// Valid credentials without a role the endpoint requires (HTTP 403 `insufficient_scope`).
    #[error("the presented credentials lack the required scope {scope:?}")]
    InsufficientScope { scope: String },
    /// A capacity limit of the gateway (connections, requests in flight, sessions, buffered
    /// bytes) was reached; the message names the limit. Retrying later may succeed.
    #[error("{0}")]
    Overloaded(String),
}

impl From<crate::session::store::StoreError> for Error {
    fn from(e: crate::session::store::StoreError) -> Self {
        Error::StoreUnavailable(e.to_string())
    }
}

pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP 2026-07-28: an HTTP header disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP 2026-07-28: the requested protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    pub const POLICY_DENIED: i64 = -31001;
    pub const READ_ONLY: i64 = -31002;
    pub const UPSTREAM_TIMEOUT: i64 = -31004;
    pub const UPSTREAM_UNAVAILABLE: i64 = -31005;
    pub const TOOL_DEFINITION_CHANGED: i64 = -31006;
    pub const AUDIT_UNAVAILABLE: i64 = -31007;
    pub const OUTPUT_WITHHELD: i64 = -31009;
    pub const SHUTTING_DOWN: i64 = -31010;
    pub const APPROVAL_DENIED: i64 = -31003;
    pub const RATE_LIMITED: i64 = -31008;
    pub const STORE_UNAVAILABLE: i64 = -31011;
    pub const SESSION_PAUSED: i64 = -31012;
    pub const SESSION_STOPPED: i64 = -31013;
    pub const UNAUTHENTICATED: i64 = -31014;
    pub const INSUFFICIENT_SCOPE: i64 = -31015;
    pub const OVERLOADED: i64 = -31016;
}

impl Error {
    pub fn source_kind(&self) -> Source {
        match self {
            Error::Parse(_)
            | Error::InvalidRequest(_)
            | Error::MethodNotFound(_)
            | Error::InvalidParams(_)
            | Error::UnknownTool(_)
            | Error::DuplicateRequestId(_)
            | Error::HeaderMismatch(_)
            | Error::UnsupportedProtocolVersion { .. }
            | Error::Unauthenticated(_)
            | Error::InsufficientScope { .. }
            // Load the clients cause; logged (throttled) where it is detected, not per reply.
            | Error::Overloaded(_) => Source::Client,
            Error::UpstreamUnavailable { .. } | Error::UpstreamTimeout { .. } | Error::UpstreamProtocol { .. } => {
                Source::Upstream
            }
            Error::ReadOnly { .. }
            | Error::PolicyDenied { .. }
            | Error::OutputWithheld { .. }
            | Error::ToolDefinitionChanged { .. }
            | Error::ApprovalDenied { .. }
            | Error::RateLimited { .. }
            | Error::SessionPaused { .. }
            | Error::SessionStopped => Source::Policy,
            Error::ShuttingDown | Error::Internal(_) | Error::AuditUnavailable(_) | Error::StoreUnavailable(_) => {
                Source::Internal
            }
        }
    }

    pub fn code(&self) -> i64 {
        match self {
            Error::Parse(_) => code::PARSE_ERROR,
            Error::InvalidRequest(_) | Error::DuplicateRequestId(_) => code::INVALID_REQUEST,
            Error::MethodNotFound(_) => code::METHOD_NOT_FOUND,
            Error::InvalidParams(_) | Error::UnknownTool(_) => code::INVALID_PARAMS,
            Error::HeaderMismatch(_) => code::HEADER_MISMATCH,
            Error::UnsupportedProtocolVersion { .. } => code::UNSUPPORTED_PROTOCOL_VERSION,
            Error::UpstreamTimeout { .. } => code::UPSTREAM_TIMEOUT,
            Error::UpstreamUnavailable { .. } | Error::UpstreamProtocol { .. } => code::UPSTREAM_UNAVAILABLE,
            Error::ReadOnly { .. } => code::READ_ONLY,
            Error::PolicyDenied { .. } => code::POLICY_DENIED,
            Error::ToolDefinitionChanged { .. } => code::TOOL_DEFINITION_CHANGED,
            Error::OutputWithheld { .. } => code::OUTPUT_WITHHELD,
            Error::AuditUnavailable(_) => code::AUDIT_UNAVAILABLE,
            Error::ShuttingDown => code::SHUTTING_DOWN,
            Error::Internal(_) => code::INTERNAL_ERROR,
            Error::ApprovalDenied { .. } => code::APPROVAL_DENIED,
            Error::RateLimited { .. } => code::RATE_LIMITED,
            Error::StoreUnavailable(_) => code::STORE_UNAVAILABLE,
            Error::SessionPaused { .. } => code::SESSION_PAUSED,
            Error::SessionStopped => code::SESSION_STOPPED,
            Error::Unauthenticated(_) => code::UNAUTHENTICATED,
            Error::InsufficientScope { .. } => code::INSUFFICIENT_SCOPE,
            Error::Overloaded(_) => code::OVERLOADED,
        }
    }

    /// Short name of the outcome for audit records.
    pub fn outcome(&self) -> &'static str {
        match self {
            Error::UpstreamTimeout { .. } => "timeout",
            Error::UpstreamUnavailable { .. } | Error::UpstreamProtocol { .. } => "upstream_unavailable",
            Error::ReadOnly { .. }
            | Error::PolicyDenied { .. }
            | Error::UnknownTool(_)
            | Error::ToolDefinitionChanged { .. }
            | Error::ApprovalDenied { .. }
            | Error::SessionStopped => "denied",
            Error::RateLimited { .. } => "rate_limited",
            Error::SessionPaused { .. } => "paused",
            Error::OutputWithheld { .. } => "withheld",
            Error::Overloaded(_) => "overloaded",
            _ => "error",
        }
    }

    /// The message a client sees. Internal details stay in the logs.
    fn client_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal gateway error; the operator's logs have the details".into(),
            Error::AuditUnavailable(_) => {
                "The audit log cannot record this call, so it was stopped (fail closed); the operator's logs say why"
                    .into()
            }
            Error::StoreUnavailable(_) => {
                "The session state store is unavailable, so this was refused (fail closed); retry shortly".into()
            }
            Error::UnknownTool(name) => format!("Unknown tool: {name}"),
            // Policy messages start with a tool name; keep its case.
            Error::ReadOnly { .. }
            | Error::PolicyDenied { .. }
            | Error::ToolDefinitionChanged { .. }
            | Error::ApprovalDenied { .. }
            | Error::RateLimited { .. } => self.to_string(),
            other => {
                let mut s = other.to_string();
                if let Some(first) = s.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                s
            }
        }
    }

    fn data(&self) -> Option<serde_json::Value> {
        match self {
            Error::UnsupportedProtocolVersion { requested } => Some(json!({
                "requested": requested,
                "supported": crate::mcp::SUPPORTED_VERSIONS,
            })),
            Error::UpstreamUnavailable { upstream, .. }
            | Error::UpstreamTimeout { upstream, .. }
            | Error::UpstreamProtocol { upstream, .. } => Some(json!({ "upstream": upstream })),
            Error::ReadOnly { rule, .. }
            | Error::PolicyDenied { rule, .. }
            | Error::OutputWithheld { rule, .. }
            | Error::ToolDefinitionChanged { rule, .. }
            | Error::ApprovalDenied { rule, .. } => Some(json!({ "rule": rule })),
            Error::RateLimited { rule, retry_after, .. } => {
                Some(json!({ "rule": rule, "retryAfterMs": retry_after.as_millis() as u64 }))
            }
            Error::InsufficientScope { scope } => Some(json!({ "scope": scope })),
            _ => None,
        }
    }

    /// The JSON-RPC error response for request `id` (raw JSON; `None` if it could not be read).
    pub fn to_jsonrpc(&self, id: Option<&str>) -> String {
        if self.source_kind() == Source::Internal {
            tracing::error!(error = %self, "internal error");
        }
        jsonrpc::error(id, self.code(), &self.client_message(), self.data().as_ref())
    }

    /// HTTP status for errors answered before a session could process the body.
    pub fn http_status(&self) -> http::StatusCode {
        match self {
            Error::Parse(_)
            | Error::InvalidRequest(_)
            | Error::HeaderMismatch(_)
            | Error::UnsupportedProtocolVersion { .. } => http::StatusCode::BAD_REQUEST,
            Error::MethodNotFound(_) => http::StatusCode::NOT_FOUND,
            Error::Unauthenticated(_) => http::StatusCode::UNAUTHORIZED,
            Error::InsufficientScope { .. } => http::StatusCode::FORBIDDEN,
            Error::ShuttingDown | Error::Overloaded(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::OK,
        }
    }
}

impl From<jsonrpc::FrameError> for Error {
    fn from(e: jsonrpc::FrameError) -> Self {
        match e {
            jsonrpc::FrameError::Parse(m) => Error::Parse(m),
            jsonrpc::FrameError::Invalid { reason, .. } => Error::InvalidRequest(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_do_not_reach_the_client() {
        let text = Error::Internal("redis password hunter2 rejected".into()).to_jsonrpc(Some("1"));
        assert!(!text.contains("hunter2"));
        assert!(text.contains("-32603"));
    }

    #[test]
    fn gateway_codes_are_outside_the_reserved_range() {
        let e = Error::UpstreamTimeout { upstream: "fs".into(), after: Duration::from_secs(1) };
        assert!(!(-32768..=-32000).contains(&e.code()));
    }
}
