//! Streamable HTTP downstream (POST/GET/DELETE on one path) for both protocol generations.
//!
//! Checks happen in this order, before a session sees the body: Host and Origin (DNS
//! rebinding), authentication (the `Authorization` header → an [`Identity`], or 401/403 with a
//! `WWW-Authenticate` challenge), body size, JSON-RPC validity, protocol-version and
//! mirrored-header agreement (decisions are taken on the parsed body; headers are claims
//! checked against it), then the session, which must belong to the caller's principal.
//!
//! The Protected Resource Metadata (RFC 9728) is served here too, without authentication. A POST answers with JSON unless a message related to the request must be streamed
//! first, in which case the reply becomes an SSE stream.
//!
//! Capacity: a POST needs one of `max_in_flight_requests` slots before its body is read, and
//! its body bytes come out of a budget all bodies share (`max_buffered_body_bytes`); either
//! running out answers 503 with a JSON-RPC error, never a queue. CORS headers go only to
//! origins in `cors_allowed_origins` (none by default).

use crate::audit::security::Event;
use crate::auth::{Authenticator, Identity, Rejection, challenge};
use crate::config::ServerConfig;
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind};
use crate::mcp;
use crate::session::registry::Registry;
use crate::session::{RequestCtx, Session};
use crate::telemetry::Throttle;
use crate::telemetry::trace::TraceHeaders;
use crate::transport::downstream::listener::overloaded_response;
use crate::transport::sse;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

const KEEPALIVE: Duration = Duration::from_secs(15);

static OVERLOADED: Throttle = Throttle::new();

pub struct HttpState {
    pub registry: Arc<Registry>,
    pub config: ServerConfig,
    pub auth: Arc<Authenticator>,
    seq: AtomicU64,
    /// One permit per POST being handled.
    in_flight: Arc<Semaphore>,
    /// One permit per body byte held in memory.
    body_budget: Arc<Semaphore>,
}

impl HttpState {
    /// Records a request refused before any session took it (see `audit::security`).
    fn security_event(&self, event: Event, principal: &str, error: &Error) {
        crate::audit::security::record(self.registry.shared().audit.as_ref(), event, principal, error.code());
    }

    pub fn new(registry: Arc<Registry>, config: ServerConfig, auth: Arc<Authenticator>) -> Arc<HttpState> {
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight_requests));
        let body_budget = Arc::new(Semaphore::new(config.max_buffered_body_bytes.min(Semaphore::MAX_PERMITS)));
        Arc::new(HttpState { registry, config, auth, seq: AtomicU64::new(1), in_flight, body_budget })
    }
}

pub fn router(state: Arc<HttpState>) -> Router {
    let path = state.config.path.clone();
    let mcp = Router::new()
        .route(&path, post(post_message).get(open_stream).delete(end_session))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // The metadata is public: it is how a client that got a 401 finds the authorization server.
    let mut router = Router::new().merge(mcp);
    if let Some(metadata) = state.auth.metadata() {
        for p in &metadata.paths {
            router = router.route(p, get(resource_metadata));
        }
    }
    router.layer(middleware::from_fn_with_state(state.clone(), check_origin_and_host)).with_state(state)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn error_response(status: StatusCode, error: &Error, id: Option<&str>) -> Response {
    json_response(status, error.to_jsonrpc(id))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ------------------------------------------------------------------ Origin / Host

/// The host name of an authority that is exactly `host[:port]` — a DNS name or IPv4 address
/// (letters, digits, `.`, `-`) or a bracketed IPv6 address, and a port of digits only — or
/// `None` for anything else. Userinfo (`localhost:80@evil.example`), a path, query or fragment
/// (`evil.example#localhost`) would otherwise let a hostile name pass as a loopback one: a
/// browser resolves the part after `@`, a lax reader sees the part before it.
fn authority_host(authority: &str) -> Option<&str> {
    let (name, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                return None;
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (&authority[..inside.len() + 2], port)
        }
        None => {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
                return None;
            }
            (name, port)
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then_some(name)
}

fn is_loopback_name(name: &str) -> bool {
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

pub fn host_allowed(config: &ServerConfig, host: Option<&str>) -> bool {
    let Some(name) = host.and_then(authority_host) else { return false };
    config.allowed_hosts.iter().any(|h| h == "*" || h.eq_ignore_ascii_case(name))
}

/// An Origin is accepted when configured exactly, or when it is a plain `http(s)://host[:port]`
/// whose host is a loopback name.
pub fn origin_allowed(config: &ServerConfig, origin: Option<&str>) -> bool {
    let Some(origin) = origin else { return true }; // non-browser clients send none
    if config.allowed_origins.iter().any(|o| o == "*" || o == origin) || cors_allowed(config, Some(origin)) {
        return true;
    }
    let Some(authority) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    authority_host(authority).is_some_and(is_loopback_name)
}

/// CORS is opt-in per exact origin; without a match no CORS header is ever sent, so a page on
/// another origin cannot read a reply even where the Origin check lets the request through.
fn cors_allowed(config: &ServerConfig, origin: Option<&str>) -> bool {
    origin.is_some_and(|o| config.cors_allowed_origins.iter().any(|c| c == o))
}

/// Request headers a browser client of MCP sends (the preflight must name them all).
const CORS_REQUEST_HEADERS: &str =
    "content-type, accept, authorization, mcp-session-id, mcp-protocol-version, mcp-method, mcp-name, last-event-id";

fn add_cors_headers(resp: &mut Response, origin: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("mcp-session-id, mcp-protocol-version"));
}

async fn check_origin_and_host(State(state): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if !host_allowed(&state.config, header_str(headers, "host")) {
        let e = Error::InvalidRequest(
            "Host header not allowed (DNS rebinding protection); add it to server.allowed_hosts".into(),
        );
        state.security_event(Event::HostRefused, "", &e);
        return error_response(StatusCode::FORBIDDEN, &e, None);
    }
    let origin = header_str(headers, "origin").map(str::to_string);
    if !origin_allowed(&state.config, origin.as_deref()) {
        let e = Error::InvalidRequest("Origin not allowed; add it to server.allowed_origins".into());
        state.security_event(Event::OriginRefused, "", &e);
        return error_response(StatusCode::FORBIDDEN, &e, None);
    }
    let cors = cors_allowed(&state.config, origin.as_deref()).then_some(origin).flatten();
    if let Some(origin) = &cors
        && req.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        add_cors_headers(&mut resp, origin);
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(CORS_REQUEST_HEADERS));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(origin) = &cors {
        add_cors_headers(&mut resp, origin);
    }
    resp
}

// ------------------------------------------------------------------ authentication

/// Resolves the caller, or answers for the gateway: 401 with a challenge pointing at the
/// Protected Resource Metadata, 403 `insufficient_scope`, 400 for credentials in a form we never
/// take. The identity travels to the handlers as a request extension.
async fn authenticate(State(state): State<Arc<HttpState>>, mut req: Request, next: Next) -> Response {
    let query = req.uri().query().map(str::to_string);
    let outcome = state
        .auth
        .authenticate(req.headers().get_all(header::AUTHORIZATION).iter().map(|v| v.as_bytes()), query.as_deref())
        .await;
    match outcome {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(rejection) => {
            // A first request without a token is how OAuth discovery starts: not worth a warning.
            if rejection == Rejection::Missing {
                tracing::debug!(method = %req.method(), "request without credentials: 401");
            } else {
                tracing::warn!(reason = ?rejection, method = %req.method(), "request refused by authentication");
            }
            unauthorized(&state.auth, rejection)
        }
    }
}

/// The refusal for `rejection`, with its `WWW-Authenticate` challenge and a JSON-RPC error body.
fn unauthorized(auth: &Authenticator, rejection: Rejection) -> Response {
    let metadata = auth.metadata().map(|m| m.url.as_str());
    let (error, challenge) = match &rejection {
        Rejection::Missing => (
            Error::Unauthenticated("send Authorization: Bearer <token>".into()),
            challenge::bearer(metadata, None, None, None),
        ),
        Rejection::Malformed(why) => (
            Error::InvalidRequest((*why).to_string()),
            challenge::bearer(metadata, Some(challenge::INVALID_REQUEST), Some(why), None),
        ),
        Rejection::Invalid(why) => (
            Error::Unauthenticated(why.clone()),
            challenge::bearer(metadata, Some(challenge::INVALID_TOKEN), Some(why), None),
        ),
        Rejection::InsufficientScope(scope) => (
            Error::InsufficientScope { scope: scope.clone() },
            challenge::bearer(metadata, Some(challenge::INSUFFICIENT_SCOPE), None, Some(scope)),
        ),
    };
    let mut resp = error_response(error.http_status(), &error, None);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// RFC 9728 Protected Resource Metadata.
async fn resource_metadata(State(state): State<Arc<HttpState>>) -> Response {
    match state.auth.metadata() {
        Some(m) => {
            let mut resp = json_response(StatusCode::OK, m.document.clone());
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
            resp
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

// ------------------------------------------------------------------ POST

/// Checks the mirrored headers of a request against its body.
/// A 2026-07-28 request (by its header or its `_meta`) declares itself on every request: its
/// version and capabilities are in `params._meta`, never inferred from earlier requests. One
/// without them gets -32602 and HTTP 400, naming what is missing. `server/discover` is exempt:
/// it is how a client that knows nothing yet finds out what the gateway speaks.
fn check_stateless_meta(headers: &HeaderMap, frame: &Frame, claims: &mcp::MetaClaims) -> Result<(), Error> {
    let stateless = header_str(headers, "mcp-protocol-version") == Some(mcp::STATELESS_VERSION)
        || claims.version.as_deref() == Some(mcp::STATELESS_VERSION);
    if !stateless || frame.kind() != Kind::Request || frame.method() == "server/discover" {
        return Ok(());
    }
    let missing = claims.missing_for_stateless();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidParams(format!(
        "a 2026-07-28 request must carry {} in params._meta (the protocol version as a string, the client's capabilities as an object: {{}} for none)",
        missing.join(" and ")
    )))
}

fn check_headers(headers: &HeaderMap, frame: &Frame, claims: &mcp::MetaClaims) -> Result<(), Error> {
    let header_version = header_str(headers, "mcp-protocol-version");
    if let Some(v) = header_version
        && !mcp::is_supported(v)
    {
        return Err(Error::UnsupportedProtocolVersion { requested: v.to_string() });
    }
    let declared = claims.version.as_deref();
    if let (Some(h), Some(d)) = (header_version, declared)
        && h != d
    {
        return Err(Error::HeaderMismatch(format!("MCP-Protocol-Version header {h} but params._meta says {d}")));
    }
    let stateless = declared == Some(mcp::STATELESS_VERSION);
    let method_header = header_str(headers, "mcp-method");
    if frame.kind() != Kind::Response {
        match method_header {
            Some(m) if m != frame.method() => {
                return Err(Error::HeaderMismatch(format!(
                    "Mcp-Method header {m:?} but the body's method is {:?}",
                    frame.method()
                )));
            }
            None if stateless => {
                return Err(Error::HeaderMismatch("Mcp-Method header is required for 2026-07-28 requests".into()));
            }
            _ => {}
        }
    }
    let name_header = header_str(headers, "mcp-name");
    let target = mcp::target_name(frame.method(), frame.params());
    match (name_header, target.as_deref()) {
        (Some(h), Some(t)) if h != t => {
            Err(Error::HeaderMismatch(format!("Mcp-Name header {h:?} but the body names {t:?}")))
        }
        (Some(h), None) => Err(Error::HeaderMismatch(format!("Mcp-Name header {h:?} but the body names nothing"))),
        (None, Some(_)) if stateless => {
            Err(Error::HeaderMismatch(format!("Mcp-Name header is required for {}", frame.method())))
        }
        _ => Ok(()),
    }
}

enum Target {
    New(Arc<Session>),
    Existing(Arc<Session>),
    Stateless(Arc<Session>),
}

fn session_not_found() -> Error {
    Error::InvalidRequest("session not found or ended; send initialize to start a new one".into())
}

fn not_found(id: Option<&str>) -> Response {
    error_response(StatusCode::NOT_FOUND, &session_not_found(), id)
}

async fn pick_session(
    state: &HttpState,
    identity: &Identity,
    headers: &HeaderMap,
    frame: &Frame,
    claims: &mcp::MetaClaims,
) -> Result<Target, Box<Response>> {
    let principal = identity.principal.as_str();
    let unavailable = |e: Error| Box::new(error_response(StatusCode::SERVICE_UNAVAILABLE, &e, frame.id()));
    if frame.method() == "initialize" && frame.kind() == Kind::Request {
        return state.registry.create(principal).await.map(Target::New).map_err(unavailable);
    }
    if let Some(id) = header_str(headers, "mcp-session-id") {
        return match state.registry.get(id, principal).await {
            Ok(Some(s)) => Ok(Target::Existing(s)),
            Ok(None) => {
                state.security_event(Event::UnknownSession, principal, &session_not_found());
                Err(Box::new(not_found(frame.id())))
            }
            Err(e) => Err(unavailable(e)),
        };
    }
    let stateless = claims.version.as_deref() == Some(mcp::STATELESS_VERSION)
        || frame.method() == "server/discover"
        || header_str(headers, "mcp-protocol-version") == Some(mcp::STATELESS_VERSION);
    if stateless {
        return match state.registry.stateless(principal, claims.conversation.as_deref()).await {
            Ok(s) => Ok(Target::Stateless(s)),
            Err(Error::SessionStopped) => {
                Err(Box::new(error_response(StatusCode::OK, &Error::SessionStopped, frame.id())))
            }
            Err(e) => Err(unavailable(e)),
        };
    }
    Err(Box::new(error_response(
        StatusCode::BAD_REQUEST,
        &Error::InvalidRequest(
            "Mcp-Session-Id header is required; send initialize first (or use 2026-07-28 with params._meta)".into(),
        ),
        frame.id(),
    )))
}

fn overloaded(limit: &str) -> Response {
    if let Some(n) = OVERLOADED.hit() {
        tracing::warn!(limit, count = n, "request refused: capacity limit reached");
    }
    overloaded_response(&Error::Overloaded(format!("the gateway is at capacity ({limit}); retry shortly")))
}

/// Reads a body of at most `limit` bytes within `timeout`, taking its bytes from `budget` as
/// they arrive. The permit holds them for as long as the request is handled.
async fn read_body(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Response> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        let e = Error::InvalidRequest(format!(
            "message larger than {limit} bytes; raise server.max_body_bytes if this is expected"
        ));
        error_response(StatusCode::PAYLOAD_TOO_LARGE, &e, None)
    };
    // A declared length over the limit is refused before a byte of it is read.
    let declared = header_str(headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = bytes::BytesMut::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let Ok(chunk) = chunk else {
                let e = Error::InvalidRequest("the request body could not be read".into());
                return Err(error_response(StatusCode::BAD_REQUEST, &e, None));
            };
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            match state.body_budget.clone().try_acquire_many_owned(n) {
                Ok(p) => match &mut held {
                    Some(h) => h.merge(p),
                    None => held = Some(p),
                },
                Err(_) => return Err(overloaded("server.max_buffered_body_bytes")),
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((buf.freeze(), held))
    };
    match tokio::time::timeout(state.config.body_read_timeout(), read).await {
        Ok(r) => r,
        Err(_) => {
            let e = Error::InvalidRequest(format!(
                "the request body did not arrive within {} s (server.body_read_timeout_secs)",
                state.config.body_read_timeout_secs
            ));
            Err(error_response(StatusCode::REQUEST_TIMEOUT, &e, None))
        }
    }
}

async fn post_message(
    State(state): State<Arc<HttpState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Taken before the body is read: a refused request costs no buffering.
    let Ok(_slot) = state.in_flight.clone().try_acquire_owned() else {
        return overloaded("server.max_in_flight_requests");
    };
    let (bytes, _budget) = match read_body(&state, &headers, body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let frame = match Frame::decode(Vec::from(bytes)) {
        Ok(f) => f,
        Err(e) => {
            let error = Error::from(e.clone());
            state.security_event(Event::MalformedFrame, &identity.principal, &error);
            return error_response(StatusCode::BAD_REQUEST, &error, e.id());
        }
    };
    let claims = mcp::meta_claims(frame.params());
    if let Err(e) = check_headers(&headers, &frame, &claims) {
        state.security_event(Event::HeaderMismatch, &identity.principal, &e);
        return error_response(e.http_status(), &e, frame.id());
    }
    if let Err(e) = check_stateless_meta(&headers, &frame, &claims) {
        return error_response(StatusCode::BAD_REQUEST, &e, frame.id());
    }
    let target = match pick_session(&state, &identity, &headers, &frame, &claims).await {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let (session, new_id, stateless) = match target {
        Target::New(s) => (s.clone(), Some(s.id.clone()), false),
        Target::Existing(s) => (s, None, false),
        Target::Stateless(s) => (s, None, true),
    };
    if frame.kind() != Kind::Request {
        session
            .handle(frame, RequestCtx { key: String::new(), related: None, roles: identity.roles, trace: None })
            .await;
        return StatusCode::ACCEPTED.into_response();
    }
    let id = frame.id().unwrap_or("null").to_string();
    // Stateless clients share one gateway session: their ids need not be unique across POSTs.
    let key = if stateless { format!("{}#{id}", state.seq.fetch_add(1, Ordering::Relaxed)) } else { id };
    let accepts_sse =
        header_str(&headers, "accept").is_some_and(|a| a.contains("text/event-stream") || a.contains("*/*"));
    let (tx, rx) = mpsc::channel::<String>(64);
    let related = accepts_sse.then_some(tx);
    // Read only when spans are recorded: with telemetry off a traceparent costs nothing.
    let trace = if crate::telemetry::trace::enabled() { TraceHeaders::from_http(&headers) } else { None };
    // Driven by this handler (no spawn): if the client goes away, dropping it cancels the call.
    let handling: Handling = Box::pin({
        let session = session.clone();
        async move { session.handle(frame, RequestCtx { key, related, roles: identity.roles, trace }).await }
    });
    let mut resp = respond(handling, rx, stateless).await;
    if let Some(id) = new_id
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        resp.headers_mut().insert("mcp-session-id", v);
    }
    resp
}

/// One request being handled; the reply, or `None` if the client cancelled it.
type Handling = std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>;

/// JSON if the reply comes before anything related; otherwise an SSE stream ending in the reply.
async fn respond(mut task: Handling, mut rx: mpsc::Receiver<String>, stateless: bool) -> Response {
    let first = tokio::select! {
        biased;
        Some(msg) = rx.recv() => msg,
        reply = &mut task => {
            return match reply {
                Some(text) => {
                    let status = if stateless && is_method_not_found(&text) { StatusCode::NOT_FOUND } else { StatusCode::OK };
                    json_response(status, text)
                }
                // Cancelled by the client: nothing to say.
                None => StatusCode::ACCEPTED.into_response(),
            };
        }
    };
    enum St {
        Streaming(Handling, mpsc::Receiver<String>, Option<String>),
        Done,
    }
    let stream = futures::stream::unfold(St::Streaming(task, rx, Some(first)), |st| async move {
        match st {
            St::Streaming(task, rx, Some(msg)) => Some((sse_bytes(&msg), St::Streaming(task, rx, None))),
            St::Streaming(mut task, mut rx, None) => tokio::select! {
                biased;
                Some(msg) = rx.recv() => Some((sse_bytes(&msg), St::Streaming(task, rx, None))),
                reply = &mut task => reply.map(|text| (sse_bytes(&text), St::Done)),
            },
            St::Done => None,
        }
    });
    sse_response(Body::from_stream(stream))
}

/// 2026-07-28 answers a method nobody implements (the gateway or the upstream it routed to) with
/// HTTP 404 as well as -32601, so HTTP-level clients and proxies can tell.
fn is_method_not_found(reply: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Reply {
        error: Option<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Reply>(reply).is_ok_and(|r| r.error.is_some_and(|e| e.code == -32601))
}

fn sse_bytes(text: &str) -> Result<Bytes, Infallible> {
    Ok(Bytes::from(sse::encode(text)))
}

fn sse_response(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

// ------------------------------------------------------------------ GET / DELETE

async fn stateful_session(
    state: &HttpState,
    identity: &Identity,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Arc<Session>, Box<Response>> {
    let Some(id) = header_str(headers, "mcp-session-id") else {
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &Error::InvalidRequest(format!(
                "{method} needs an Mcp-Session-Id (2025-11-25 sessions); 2026-07-28 clients use POST only"
            )),
            None,
        );
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(Box::new(resp));
    };
    match state.registry.get(id, &identity.principal).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            state.security_event(Event::UnknownSession, &identity.principal, &session_not_found());
            Err(Box::new(not_found(None)))
        }
        Err(e) => Err(Box::new(error_response(StatusCode::SERVICE_UNAVAILABLE, &e, None))),
    }
}

async fn open_stream(
    State(state): State<Arc<HttpState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Response {
    let session = match stateful_session(&state, &identity, &headers, &Method::GET).await {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    if !header_str(&headers, "accept").is_some_and(|a| a.contains("text/event-stream")) {
        let e = Error::InvalidRequest("GET needs Accept: text/event-stream".into());
        return error_response(StatusCode::NOT_ACCEPTABLE, &e, None);
    }
    let (tx, rx) = mpsc::channel::<String>(256);
    session.outbound.attach(tx);
    // Ends when the session closes or another GET stream replaces this one.
    let stream = futures::stream::unfold((rx, session), |(mut rx, session)| async move {
        tokio::select! {
            msg = rx.recv() => msg.map(|m| (sse_bytes(&m), (rx, session))),
            _ = tokio::time::sleep(KEEPALIVE) => Some((Ok(Bytes::from_static(b": keepalive\n\n")), (rx, session))),
            _ = session.closed() => None,
        }
    });
    sse_response(Body::from_stream(stream))
}

async fn end_session(
    State(state): State<Arc<HttpState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Response {
    let session = match stateful_session(&state, &identity, &headers, &Method::DELETE).await {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    match state.registry.end(&session.id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, &e, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ServerConfig {
        ServerConfig::default()
    }

    #[test]
    fn loopback_hosts_pass_and_others_do_not() {
        assert!(host_allowed(&cfg(), Some("127.0.0.1:8080")));
        assert!(host_allowed(&cfg(), Some("localhost")));
        assert!(host_allowed(&cfg(), Some("[::1]:9")));
        assert!(!host_allowed(&cfg(), Some("evil.example:8080")));
        assert!(!host_allowed(&cfg(), None));
    }

    #[test]
    fn a_host_with_userinfo_path_or_a_bad_port_is_not_loopback() {
        for host in [
            "localhost@evil.example",
            "localhost:80@evil.example",
            "evil.example#localhost",
            "localhost/x",
            "localhost:",
            "localhost:80x",
            "localhost:8080:1",
            "[::1]evil.example",
            "[::1]:80@evil.example",
            "[evil.example]",
            "",
        ] {
            assert!(!host_allowed(&cfg(), Some(host)), "{host:?} passed as loopback");
        }
    }

    #[test]
    fn origins_are_checked() {
        assert!(origin_allowed(&cfg(), None));
        assert!(origin_allowed(&cfg(), Some("http://localhost:3000")));
        assert!(!origin_allowed(&cfg(), Some("https://evil.example")));
        assert!(!origin_allowed(&cfg(), Some("http://localhost.evil.example")));
        assert!(origin_allowed(&cfg(), Some("https://[::1]:8443")));
        for origin in [
            "http://localhost:80@evil.example",
            "http://localhost@evil.example",
            "http://127.0.0.1:1@evil.example:80",
            "http://localhost/",
            "http://localhost?x",
            "http://localhost#x",
            "http://localhost:3000x",
            "http://[::1]@evil.example",
            "null",
            "file://localhost",
        ] {
            assert!(!origin_allowed(&cfg(), Some(origin)), "{origin:?} passed as loopback");
        }
        let mut c = cfg();
        c.allowed_origins.push("https://app.example".into());
        assert!(origin_allowed(&c, Some("https://app.example")));
        assert!(!cors_allowed(&c, Some("https://app.example")), "allowed to call is not allowed to read");
    }

    #[test]
    fn cors_is_granted_only_to_configured_origins() {
        let mut c = cfg();
        assert!(!cors_allowed(&c, Some("http://localhost:5173")), "off by default, loopback too");
        c.cors_allowed_origins.push("https://app.example".into());
        assert!(cors_allowed(&c, Some("https://app.example")));
        assert!(origin_allowed(&c, Some("https://app.example")), "a CORS origin may call");
        assert!(!cors_allowed(&c, Some("https://app.example.evil")));
        assert!(!cors_allowed(&c, None));
    }

    #[test]
    fn stateless_requests_must_declare_version_and_capabilities() {
        let check = |header: Option<&'static str>, text: &str| {
            let mut h = HeaderMap::new();
            if let Some(v) = header {
                h.insert("mcp-protocol-version", HeaderValue::from_static(v));
            }
            let f = Frame::parse(text).unwrap();
            check_stateless_meta(&h, &f, &mcp::meta_claims(f.params()))
        };
        let v = r#""io.modelcontextprotocol/protocolVersion":"2026-07-28""#;
        let caps = r#""io.modelcontextprotocol/clientCapabilities":{}"#;
        let with =
            |meta: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{{meta}}}}}}}"#);
        assert!(check(Some("2026-07-28"), &with(&format!("{v},{caps}"))).is_ok());
        let e = check(Some("2026-07-28"), r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap_err();
        assert_eq!(e.code(), -32602);
        assert!(e.to_string().contains("protocolVersion and io.modelcontextprotocol/clientCapabilities"), "{e}");
        let e = check(None, &with(v)).unwrap_err();
        assert!(e.to_string().contains("clientCapabilities") && !e.to_string().contains("protocolVersion and"), "{e}");
        let not_an_object = format!(r#"{v},"io.modelcontextprotocol/clientCapabilities":[]"#);
        assert!(check(Some("2026-07-28"), &with(&not_an_object)).is_err());
        assert!(check(None, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_ok(), "a 2025-11-25 request");
        assert!(check(Some("2026-07-28"), r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#).is_ok());
        assert!(check(Some("2026-07-28"), r#"{"jsonrpc":"2.0","method":"notifications/x"}"#).is_ok());
    }

    #[test]
    fn mirrored_headers_must_match_the_body() {
        let f = Frame::parse(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("mcp-method", HeaderValue::from_static("tools/call"));
        h.insert("mcp-name", HeaderValue::from_static("echo"));
        let claims = mcp::meta_claims(f.params());
        assert!(check_headers(&h, &f, &claims).is_ok());
        h.insert("mcp-name", HeaderValue::from_static("delete_everything"));
        assert_eq!(check_headers(&h, &f, &claims).unwrap_err().code(), -32020);
        h.remove("mcp-name");
        assert_eq!(check_headers(&h, &f, &claims).unwrap_err().code(), -32020);
    }
}
