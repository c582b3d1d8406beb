//! A downstream session: one client, its upstream connections, and the routing between them.
//!
//! Invariants:
//! - every upstream connection belongs to exactly one session, so upstream-initiated requests
//!   (sampling, elicitation, roots) always reach the client they were meant for;
//! - a client request id is in flight at most once per session (a duplicate is refused, never
//!   queued: rmcp-based servers stall on duplicates);
//! - ids the gateway shows the client for upstream requests (`"tg-N"`) map back to exactly one
//!   upstream and its own id.

pub mod approvals;
pub mod catalog;
pub mod control;
pub mod embedded;
pub mod outbound;
pub mod pins;
pub mod redis;
pub mod registry;
pub mod request_state;
pub mod server_requests;
pub mod store;

use crate::config::{ApprovalsConfig, SessionsConfig, UpstreamConfig};
use crate::error::Error;
use crate::jsonrpc::raw_object::raw;
use crate::jsonrpc::{self, Frame, Kind, RawObject};
use crate::mcp::lifecycle::{self, ClientHello, ServerHello};
use crate::mcp::{self, names};
use crate::policy::handle::PolicyHandle;
use crate::policy::stack::{ToolCall, ToolCallService};
use crate::policy::{Decision, Policy, Roles, ToolDefinition};
use crate::telemetry::metrics::{self, CallRecord, Metrics};
use crate::telemetry::trace::{self as telemetry, TraceHeaders};
use crate::transport::upstream::{BuiltinContext, Peer, RelatedSink};
use catalog::{Catalog, ListKind, Route};
use outbound::Outbound;
use pins::{PinStatus, PinStore};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use store::{SessionRecord, SessionStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The slot of a tool call no upstream lists: never forwarded (`RequireAllowlisted` refuses it).
pub const UNKNOWN_SLOT: usize = usize::MAX;

/// Gateway-wide things every session uses.
pub struct Shared {
    pub upstreams: Vec<Arc<UpstreamConfig>>,
    pub separator: String,
    pub request_timeout: Duration,
    pub http: crate::transport::upstream::clients::UpstreamClients,
    pub tool_stack: ToolCallService,
    pub policy: Arc<PolicyHandle>,
    pub pins: Arc<PinStore>,
    /// Who sessions are attributed to when the transport names nobody else (stdio: the person
    /// who launched the wrapper; HTTP sessions carry their authenticated principal).
    pub principal: String,
    /// The roles that go with `principal` (stdio).
    pub roles: Roles,
    /// Where sessions, approvals, pins and counters outlive this process.
    pub store: Arc<dyn SessionStore>,
    /// A session's stored state expires after this long without activity.
    pub session_ttl: Duration,
    pub sessions: SessionsConfig,
    pub approvals: ApprovalsConfig,
    /// Wakes calls waiting on an approval decided through this process.
    pub decisions: approvals::Decisions,
    /// Signs the `requestState` of approvals asked through `input_required`.
    pub state_key: request_state::StateKey,
    /// Measures and prices tool calls (`[cost]`).
    pub cost: Arc<crate::cost::CostModel>,
    /// Requests one session may have in flight (`server.max_in_flight_per_session`): each holds
    /// a task and an upstream request, so one client cannot pile up work without bound.
    pub max_in_flight_per_session: usize,
    /// Counters and histograms for `GET /metrics` (and OTLP when configured).
    pub metrics: Arc<Metrics>,
    /// The audit log the tool stack writes to, for what is refused outside a tool call
    /// (an upstream's request the client must not see).
    pub audit: Option<Arc<crate::audit::sink::AuditLog>>,
}

impl Shared {
    #[cfg(test)]
    pub fn for_tests() -> Shared {
        let store: Arc<dyn SessionStore> = embedded::EmbeddedStore::in_memory().expect("in-memory store");
        Shared {
            upstreams: Vec::new(),
            separator: "__".into(),
            request_timeout: Duration::from_secs(5),
            http: crate::transport::upstream::clients::UpstreamClients::new([]).expect("clients"),
            tool_stack: crate::policy::stack::build(Duration::from_secs(5), None),
            policy: PolicyHandle::fixed(crate::policy::Policy::annotations_only(false)),
            pins: Arc::new(PinStore::new(store.clone())),
            principal: "test".into(),
            roles: Roles::none(),
            store,
            session_ttl: Duration::from_secs(3600),
            sessions: SessionsConfig::default(),
            approvals: ApprovalsConfig::default(),
            decisions: Default::default(),
            state_key: request_state::StateKey::random(),
            cost: Default::default(),
            max_in_flight_per_session: 128,
            metrics: Arc::new(Metrics::new()),
            audit: None,
        }
    }
}

/// How a transport hands one client request to the session.
pub struct RequestCtx {
    /// Unique among this session's in-flight requests; usually the JSON-RPC id.
    pub key: String,
    /// The open stream for messages that belong to this request, if the transport has one.
    pub related: Option<RelatedSink>,
    /// The roles of the identity that sent this request: lists are filtered and calls decided
    /// with them (the principal is fixed per session).
    pub roles: Roles,
    /// Trace context the transport carried (HTTP `traceparent` headers), read only when
    /// tracing is on; `params._meta.traceparent` takes precedence.
    pub trace: Option<TraceHeaders>,
}

struct Inflight {
    /// Tells this entry from a later request that reuses the key after a cancellation.
    serial: u64,
    related: Option<RelatedSink>,
    progress_token: Option<String>,
    cancel: CancellationToken,
}

/// Reconnect pacing for a crashed or unreachable upstream.
#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

struct Slot {
    config: Arc<UpstreamConfig>,
    /// The live connection, read without waiting on every call.
    live: Mutex<Option<Arc<Peer>>>,
    /// Held while (re)connecting, so concurrent calls start one connection, not several.
    peer: tokio::sync::Mutex<Option<Arc<Peer>>>,
    backoff: Mutex<Backoff>,
    lists: Mutex<HashMap<ListKind, Arc<UpstreamList>>>,
}

/// One upstream's whole list, plus the other members of its result (vendor fields survive).
struct UpstreamList {
    items: Vec<Box<RawValue>>,
    extras: Vec<(String, Box<RawValue>)>,
}

pub struct Session {
    pub id: String,
    /// The digest handle logs, spans and audit records show instead of the id.
    handle: String,
    /// Who this session's calls are attributed to; fixed at creation.
    principal: String,
    created_ms: u64,
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    client: RwLock<Option<ClientHello>>,
    inflight: Mutex<HashMap<String, Inflight>>,
    server_requests: Mutex<HashMap<String, (usize, String)>>,
    /// Requests the gateway itself sent the client (approval prompts), by the id it used.
    gateway_requests: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Frame>>>,
    next_server_request: AtomicU64,
    pub outbound: Outbound,
    catalog: Mutex<Catalog>,
    closed: CancellationToken,
    last_seen: Mutex<Instant>,
    /// When the store last heard of this session's activity (its TTL is refreshed lazily).
    store_touched: Mutex<Instant>,
    /// Calls held while the session is paused queue here, so they are released in order.
    pause_queue: tokio::sync::Mutex<()>,
    /// Signalled when an operator changes this session's state through this process.
    state_changed: tokio::sync::Notify,
    /// Ended by an operator (not by its client or a shutdown).
    stopped: AtomicBool,
    /// Read from an untrusted source (see `control::mark_tainted`).
    taint: Mutex<Option<store::Taint>>,
    /// Usage and history gathered for the next store write (see `control::record_call`).
    bookkeeping: Mutex<control::Bookkeeping>,
    me: Weak<Session>,
}

/// A registered request: its place in the in-flight set.
pub struct Ticket {
    serial: u64,
    cancel: CancellationToken,
}

/// Removes an in-flight entry however the request ends (unless a cancellation already did and
/// a new request now uses the key).
struct InflightGuard<'a>(&'a Session, String, u64);
impl Drop for Session {
    fn drop(&mut self) {
        // A session that was closed was counted out then.
        if !self.closed.is_cancelled() {
            self.shared.metrics.sessions_changed(-1);
            // Ends the tasks that watch its upstream connections.
            self.closed.cancel();
        }
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut inflight = self.0.inflight.lock().expect("inflight lock");
        if inflight.get(&self.1).is_some_and(|e| e.serial == self.2) {
            inflight.remove(&self.1);
        }
    }
}

/// The request's `_meta.progressToken` as raw JSON (a targeted read: no value tree is built).
fn progress_token(frame: &Frame) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<Meta<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Meta<'a> {
        #[serde(rename = "progressToken", borrow)]
        token: Option<&'a RawValue>,
    }
    let params: Params = frame.params_as().ok()?;
    params.meta?.token.map(|t| t.get().to_string())
}

impl Session {
    /// A new session, attributed to the gateway's default principal.
    pub fn new(shared: Arc<Shared>, id: String) -> Arc<Session> {
        let principal = shared.principal.clone();
        Session::with_principal(shared, id, principal, store::now_ms())
    }

    /// A session from its stored record (after a restart, or on another replica): the client
    /// need not initialize again; upstream connections are re-established on first use.
    pub fn restore(shared: Arc<Shared>, record: SessionRecord) -> Arc<Session> {
        let session = Session::with_principal(shared, record.id, record.principal, record.created_ms);
        *session.client.write().expect("client lock") = record.client.map(ClientHello::from);
        *session.taint.lock().expect("taint lock") = record.taint;
        session
    }

    pub(crate) fn with_principal(shared: Arc<Shared>, id: String, principal: String, created_ms: u64) -> Arc<Session> {
        let slots = shared
            .upstreams
            .iter()
            .map(|c| Slot {
                config: c.clone(),
                live: Mutex::new(None),
                peer: tokio::sync::Mutex::new(None),
                backoff: Mutex::new(Backoff::default()),
                lists: Mutex::new(HashMap::new()),
            })
            .collect();
        shared.metrics.sessions_changed(1);
        Arc::new_cyclic(|me| Session {
            handle: crate::audit::session_handle(&id),
            id,
            principal,
            created_ms,
            shared,
            slots,
            client: RwLock::new(None),
            inflight: Mutex::new(HashMap::new()),
            server_requests: Mutex::new(HashMap::new()),
            gateway_requests: Mutex::new(HashMap::new()),
            next_server_request: AtomicU64::new(1),
            outbound: Outbound::default(),
            catalog: Mutex::new(Catalog::default()),
            closed: CancellationToken::new(),
            last_seen: Mutex::new(Instant::now()),
            store_touched: Mutex::new(Instant::now()),
            pause_queue: tokio::sync::Mutex::new(()),
            state_changed: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
            taint: Mutex::new(None),
            bookkeeping: Mutex::new(Default::default()),
            me: me.clone(),
        })
    }

    pub fn idle_for(&self) -> Duration {
        self.last_seen.lock().expect("last_seen lock").elapsed()
    }

    fn touch(&self) {
        let now = Instant::now();
        *self.last_seen.lock().expect("last_seen lock") = now;
        self.touch_store(now);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the session has been closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.lock().expect("inflight lock").len()
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The session's digest handle (what logs, spans and audit records name it by).
    pub fn audit_handle(&self) -> &str {
        &self.handle
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn pins(&self) -> &PinStore {
        &self.shared.pins
    }

    /// Upstream name → that upstream's own session id, for the live connections that have one.
    fn upstream_session_ids(&self) -> std::collections::BTreeMap<String, String> {
        self.slots
            .iter()
            .filter_map(|s| {
                let peer = s.live.lock().expect("live lock").clone()?;
                Some((s.config.name.clone(), peer.upstream_session_id()?))
            })
            .collect()
    }

    pub fn client_hello(&self) -> Option<ClientHello> {
        self.client.read().expect("client lock").clone()
    }

    /// Ends the session: cancels in-flight requests and stops every upstream connection.
    pub async fn close(&self) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        self.shared.metrics.sessions_changed(-1);
        for entry in self.inflight.lock().expect("inflight lock").values() {
            entry.cancel.cancel();
        }
        let peers: Vec<Arc<Peer>> = {
            let mut out = Vec::new();
            for slot in &self.slots {
                slot.live.lock().expect("live lock").take();
                if let Some(p) = slot.peer.lock().await.take() {
                    out.push(p);
                }
            }
            out
        };
        futures::future::join_all(peers.iter().map(|p| p.shutdown())).await;
        self.flush_bookkeeping().await;
        self.outbound.detach();
        tracing::info!(session = %self.handle, "session closed");
    }

    // ---------------------------------------------------------------- client → gateway

    /// Handles one client message. Returns the reply for requests (None when cancelled).
    pub async fn handle(&self, frame: Frame, ctx: RequestCtx) -> Option<String> {
        if frame.kind() != Kind::Request {
            self.touch(); // requests touch when they run
        }
        match frame.kind() {
            Kind::Request => self.handle_request(frame, ctx).await,
            Kind::Notification => {
                self.handle_notification(frame).await;
                None
            }
            Kind::Response => {
                self.handle_response(frame).await;
                None
            }
        }
    }

    async fn handle_request(&self, frame: Frame, ctx: RequestCtx) -> Option<String> {
        match self.register(&frame, &ctx) {
            Ok(ticket) => self.run_registered(frame, ctx, ticket).await,
            Err(reply) => Some(reply),
        }
    }

    /// Puts a request in the in-flight set, synchronously, so a transport can register requests
    /// in arrival order and run them concurrently: a cancellation that arrives after the request
    /// always finds it. `Err` is the reply to send at once (duplicate id, session closing).
    pub fn register(&self, frame: &Frame, ctx: &RequestCtx) -> Result<Ticket, String> {
        let id = frame.id().unwrap_or("null");
        if self.is_closed() {
            return Err(Error::ShuttingDown.to_jsonrpc(Some(id)));
        }
        let cancel = CancellationToken::new();
        let serial = self.next_server_request.fetch_add(1, Ordering::Relaxed);
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if inflight.contains_key(&ctx.key) {
            return Err(Error::DuplicateRequestId(id.to_string()).to_jsonrpc(Some(id)));
        }
        // Not for a stateless session: unrelated 2026-07-28 clients share it (and pick its key),
        // so a per-session cap would only set them against each other; the global HTTP cap
        // (max_in_flight_requests) bounds them instead.
        if !self.id.starts_with(registry::STATELESS_PREFIX) && inflight.len() >= self.shared.max_in_flight_per_session {
            let limit = self.shared.max_in_flight_per_session;
            return Err(Error::Overloaded(format!(
                "this session already has {limit} requests in flight (server.max_in_flight_per_session); wait for replies before sending more"
            ))
            .to_jsonrpc(Some(id)));
        }
        inflight.insert(
            ctx.key.clone(),
            Inflight {
                serial,
                related: ctx.related.clone(),
                progress_token: progress_token(frame),
                cancel: cancel.clone(),
            },
        );
        Ok(Ticket { serial, cancel })
    }

    /// Runs a request [`Session::register`]ed before; the reply (None when cancelled by the client).
    pub async fn run_registered(&self, frame: Frame, ctx: RequestCtx, ticket: Ticket) -> Option<String> {
        self.touch();
        let id = frame.id().unwrap_or("null").to_string();
        let Ticket { serial, cancel } = ticket;
        let _guard = InflightGuard(self, ctx.key.clone(), serial);
        let span = telemetry::request_span(&frame, &self.handle, &self.principal, ctx.trace.as_ref());
        let outcome = tokio::select! {
            r = tracing::Instrument::instrument(self.dispatch_request(&frame, ctx.related, &ctx.roles), span.clone()) => Some(r),
            _ = cancel.cancelled() => None,
        };
        let outcome = match outcome {
            // An operator's stop ends the call whichever way it noticed first (its cancellation,
            // or the upstream connection the stop closed): say so.
            Some(Err(_)) | None if self.stopped.load(Ordering::Acquire) => Err(Error::SessionStopped),
            Some(o) => o,
            // Cancelled by the client: nothing to say.
            None => return None,
        };
        match outcome {
            Ok(reply) => Some(reply),
            Err(e) => {
                telemetry::record_error(&span, e.code());
                if e.source_kind() == crate::error::Source::Upstream {
                    let _entered = span.enter();
                    tracing::warn!(session = %self.handle, method = %frame.method(), error = %e, "request failed upstream");
                }
                Some(e.to_jsonrpc(Some(&id)))
            }
        }
    }

    /// Answers one request; the reply carries the client's id.
    async fn dispatch_request(
        &self,
        frame: &Frame,
        related: Option<RelatedSink>,
        roles: &Roles,
    ) -> Result<String, Error> {
        let id = frame.id().unwrap_or("null");
        let method = frame.method();
        match method {
            "initialize" => return self.initialize(frame).await.map(|r| jsonrpc::result(id, &r)),
            "ping" => return Ok(jsonrpc::result(id, "{}")),
            _ => {}
        }
        self.adopt_stateless_client(frame)?;
        let reply = match method {
            "server/discover" => {
                let hellos = self.connect_all().await?;
                return Ok(jsonrpc::result(id, &lifecycle::discover_result(hellos.iter())));
            }
            "logging/setLevel" => {
                self.broadcast_request(frame, "logging").await;
                return Ok(jsonrpc::result(id, "{}"));
            }
            _ => match ListKind::from_method(method) {
                Some(kind) => return self.merged_list(kind, roles).await.map(|r| jsonrpc::result(id, &r)),
                None if method == "tools/call" => self.route_request(frame, related, roles).await?,
                // Tool output is redacted in the policy stack; everything else here.
                None => self.redact_for_client(self.route_request(frame, related, roles).await?)?,
            },
        };
        Ok(reply.with_id(id).into_string())
    }

    async fn route_request(&self, frame: &Frame, related: Option<RelatedSink>, roles: &Roles) -> Result<Frame, Error> {
        let method = frame.method();
        if let Err(e) = check_meta(frame) {
            if method == "tools/call" {
                self.count_unroutable_call(&e);
            }
            return Err(e);
        }
        match method {
            "tools/call" => {
                let (route, upstream_frame, public) = match self.resolve_named(frame, ListKind::Tools, roles).await {
                    Ok((route, upstream_frame, public)) => (Some(route), upstream_frame, public),
                    // No upstream lists it: still through the stack (audited, rate-limited, held
                    // while paused), refused there exactly like a hidden tool.
                    Err(Error::UnknownTool(public)) => (None, frame.clone(), public),
                    Err(e) => {
                        self.count_unroutable_call(&e);
                        return Err(e);
                    }
                };
                // One targeted read of `params.arguments` (raw), parsed once for the policy layers.
                let arguments_text = crate::cost::arguments_text(frame);
                let arguments = match arguments_text {
                    "" => serde_json::json!({}),
                    text => serde_json::from_str(text).unwrap_or_else(|_| serde_json::json!({})),
                };
                // An unknown tool has no upstream ("") and one shared tool name, so a client's
                // names never become rate-limit keys, metric labels or span fields.
                let (slot, upstream, original) = match &route {
                    Some(route) => (route.slot, self.slots[route.slot].config.name.clone(), route.original.clone()),
                    None => (UNKNOWN_SLOT, String::new(), metrics::UNKNOWN.to_string()),
                };
                let tool = route
                    .as_ref()
                    .and_then(|r| r.tool.clone())
                    .unwrap_or_else(|| Arc::new(ToolDefinition::new(&original, None, None, "")));
                let trail: Arc<crate::policy::trail::Trail> = Default::default();
                let policy = self.shared.policy.load();
                let source_rule = route.as_ref().and_then(|_| policy.untrusted_source(roles, &upstream, &original));
                let tool_name = tool.name.clone();
                let input = self.shared.cost.measure(arguments_text);
                let (upstream_label, public_label) = match route {
                    Some(_) => (upstream.as_str(), public.as_str()),
                    None => (metrics::UNKNOWN, metrics::UNKNOWN),
                };
                let call = ToolCall {
                    session: self.me.upgrade().ok_or(Error::ShuttingDown)?,
                    slot,
                    upstream: upstream.clone(),
                    public_name: public.clone(),
                    tool,
                    arguments,
                    policy,
                    roles: roles.clone(),
                    trail: trail.clone(),
                    frame: upstream_frame,
                    related,
                    admission: None,
                    input,
                };
                let span = telemetry::tool_call_span(&telemetry::ToolCallSpan {
                    session: &self.handle,
                    principal: &self.principal,
                    upstream: upstream_label,
                    tool: public_label,
                    upstream_tool: &original,
                    jsonrpc_id: frame.id(),
                });
                let started = Instant::now();
                let stack = self.shared.tool_stack.clone().oneshot(call);
                let result = tracing::Instrument::instrument(stack, span.clone()).await;
                let latency = started.elapsed();
                let deciding = trail.deciding();
                let cost = self.shared.cost.settle(&trail, &upstream, &tool_name, input, &result);
                let decision = deciding.as_ref().map_or("allow", |d| d.decision);
                let outcome = if decision == "deny" { "denied" } else { crate::audit::outcome_of(&result) };
                let rule = deciding.map(|d| d.rule);
                telemetry::record_tool_call(&span, &trail, decision, rule.as_deref(), outcome);
                self.shared.metrics.record_call(&CallRecord {
                    upstream: upstream_label,
                    tool: &original,
                    decision,
                    outcome,
                    rule: rule.as_deref(),
                    latency,
                    redactions: trail.redactions(),
                    cost: Some(&cost),
                    currency: self.shared.cost.currency(),
                });
                span.in_scope(|| {
                    tracing::info!(
                        target: crate::telemetry::CALL_TARGET,
                        session = %self.handle,
                        upstream = %upstream_label,
                        tool = %public_label,
                        decision,
                        rule = rule.as_deref(),
                        outcome,
                        latency_us = latency.as_micros() as u64,
                        "tool call"
                    )
                });
                let summary = store::CallSummary {
                    at_ms: store::now_ms(),
                    upstream: upstream.clone(),
                    tool: public,
                    outcome: outcome.into(),
                    rule,
                    latency_ms: latency.as_millis() as u64,
                    bytes_in: cost.bytes_in,
                    bytes_out: cost.bytes_out,
                    tokens_in: cost.tokens_in,
                    tokens_out: cost.tokens_out,
                    cost_micros: cost.cost_micros,
                };
                self.record_call(summary);
                // What an untrusted source returned is now in the client's context.
                if let (Some(rule), Ok(reply)) = (source_rule, &result)
                    && !reply.is_error()
                {
                    let taint = store::Taint {
                        upstream: upstream.clone(),
                        tool: original.clone(),
                        at_ms: store::now_ms(),
                        rule,
                    };
                    if let Err(e) = self.mark_tainted(taint).await {
                        tracing::warn!(session = %self.id, error = %e, "could not record the session's taint in the store");
                    }
                }
                result
            }
            "prompts/get" => {
                let (route, upstream_frame, _) = self.resolve_named(frame, ListKind::Prompts, roles).await?;
                self.forward_to(route.slot, &upstream_frame, related).await
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = mcp::target_name(method, frame.params())
                    .ok_or_else(|| Error::InvalidParams(format!("{method} needs a string \"uri\"")))?;
                let slot = self.slot_for_uri(&uri, roles).await?;
                self.forward_to(slot, frame, related).await
            }
            "completion/complete" => self.complete(frame, related, roles).await,
            _ => {
                // Methods the gateway does not know go to the first upstream, unchanged.
                if self.slots.is_empty() {
                    return Err(Error::MethodNotFound(method.to_string()));
                }
                self.forward_to(0, frame, related).await
            }
        }
    }

    /// A `tools/call` no catalog could route (malformed params, lists unavailable): counted
    /// under "unknown", never under the name the client sent. (Unknown tools go through the
    /// policy stack instead, see `route_request`.)
    fn count_unroutable_call(&self, e: &Error) {
        self.shared.metrics.record_call(&CallRecord {
            upstream: metrics::UNKNOWN,
            tool: metrics::UNKNOWN,
            decision: "none",
            outcome: e.outcome(),
            rule: None,
            latency: Duration::ZERO,
            redactions: 0,
            cost: None,
            currency: self.shared.cost.currency(),
        });
        tracing::info!(session = %self.handle, outcome = e.outcome(), code = e.code(), "tool call not routed");
    }

    async fn handle_notification(&self, frame: Frame) {
        match frame.method() {
            // The gateway did its own handshake with every upstream.
            "notifications/initialized" => {}
            "notifications/cancelled" => {
                #[derive(serde::Deserialize)]
                struct P<'a> {
                    #[serde(rename = "requestId", borrow)]
                    request_id: &'a RawValue,
                }
                if let Ok(p) = frame.params_as::<P>() {
                    let key = p.request_id.get().to_string();
                    // The id is free again at once; dropping the forward tells its upstream to
                    // cancel, with the upstream's own id.
                    if let Some(entry) = self.inflight.lock().expect("inflight lock").remove(&key) {
                        entry.cancel.cancel();
                    }
                }
            }
            _ => {
                for peer in self.connected_peers().await {
                    let _ = peer.notify(frame.as_str()).await;
                }
            }
        }
    }

    /// A client's reply to an upstream's request: back to that upstream, with its id.
    async fn handle_response(&self, frame: Frame) {
        let Some(id) = frame.id() else { return };
        if let Some(waiter) = self.gateway_requests.lock().expect("gateway_requests lock").remove(id) {
            let _ = waiter.send(frame);
            return;
        }
        let target = self.server_requests.lock().expect("server_requests lock").remove(id);
        let Some((slot, upstream_id)) = target else {
            tracing::debug!(session = %self.handle, id, "dropping a reply to no upstream request");
            return;
        };
        let peer = self.slots[slot].peer.lock().await.clone();
        if let Some(peer) = peer {
            let _ = peer.notify(frame.with_id(&upstream_id).as_str()).await;
        }
    }

    // ---------------------------------------------------------------- lifecycle

    async fn initialize(&self, frame: &Frame) -> Result<String, Error> {
        let hello = ClientHello::from_initialize(frame.params()).map_err(Error::InvalidParams)?;
        {
            let mut client = self.client.write().expect("client lock");
            if client.as_ref().is_some_and(|c| !c.stateless) {
                return Err(Error::InvalidRequest("this session is already initialized".into()));
            }
            *client = Some(hello.clone());
        }
        let hellos = self.connect_all().await?;
        // Fail closed: a session the store does not know could not be resumed or steered.
        self.persist().await?;
        Ok(lifecycle::initialize_result(&hello.version, hellos.iter()))
    }

    /// A 2026-07-28 client never initializes: its `_meta` tells us who it is.
    fn adopt_stateless_client(&self, frame: &Frame) -> Result<(), Error> {
        if self.client.read().expect("client lock").is_some() {
            return Ok(());
        }
        match ClientHello::from_meta(frame.params()) {
            Some(hello) if hello.version == mcp::STATELESS_VERSION => {
                *self.client.write().expect("client lock") = Some(hello);
                Ok(())
            }
            Some(hello) => Err(Error::UnsupportedProtocolVersion { requested: hello.version }),
            None if frame.method() == "server/discover" => {
                // A discovery probe without `_meta`: answer it as a 2026-07-28 client would be.
                let hello = ClientHello {
                    version: mcp::STATELESS_VERSION.into(),
                    stateless: true,
                    client_info: serde_json::json!({"name": "unknown", "version": "0"}),
                    capabilities: serde_json::json!({}),
                };
                *self.client.write().expect("client lock") = Some(hello);
                Ok(())
            }
            None => Err(Error::InvalidRequest(
                "send initialize first (2025-11-25), or put io.modelcontextprotocol/protocolVersion in params._meta (2026-07-28)".into(),
            )),
        }
    }

    /// Connects every upstream; fail-open upstreams that are down are left out.
    async fn connect_all(&self) -> Result<Vec<ServerHello>, Error> {
        let results = futures::future::join_all((0..self.slots.len()).map(|i| self.peer(i))).await;
        let mut hellos = Vec::new();
        for (slot, result) in self.slots.iter().zip(results) {
            match result {
                Ok(peer) => hellos.push(peer.hello().clone()),
                Err(e) if slot.config.required => return Err(e),
                Err(e) => {
                    tracing::warn!(session = %self.handle, upstream = %slot.config.name, error = %e, "upstream left out (fail-open)")
                }
            }
        }
        Ok(hellos)
    }

    /// The live connection to upstream `slot`, (re)connecting if needed, with backoff.
    async fn peer(&self, slot: usize) -> Result<Arc<Peer>, Error> {
        let s = &self.slots[slot];
        if let Some(peer) = s.live.lock().expect("live lock").as_ref().filter(|p| !p.is_closed()) {
            return Ok(peer.clone());
        }
        let mut current = s.peer.lock().await;
        let replaces_lost = current.is_some();
        if let Some(peer) = current.as_ref() {
            if !peer.is_closed() {
                return Ok(peer.clone());
            }
            tracing::warn!(session = %self.handle, upstream = %s.config.name, "upstream connection lost; reconnecting");
        }
        if self.is_closed() {
            return Err(Error::ShuttingDown);
        }
        if let Some(at) = s.backoff.lock().expect("backoff lock").not_before {
            let now = Instant::now();
            if at > now {
                return Err(Error::UpstreamUnavailable {
                    upstream: s.config.name.clone(),
                    reason: format!("restarting after a failure; retry in {} ms", (at - now).as_millis()),
                });
            }
        }
        let client = self.client_hello().ok_or_else(|| Error::InvalidRequest("send initialize first".into()))?;
        let local = BuiltinContext { principal: self.principal.clone(), store: self.shared.store.clone() };
        match Peer::connect(
            &s.config,
            &client,
            self.shared.http.for_upstream(&s.config.name),
            &local,
            self.shared.request_timeout,
        )
        .await
        {
            Ok(peer) => {
                *s.backoff.lock().expect("backoff lock") = Backoff::default();
                s.lists.lock().expect("lists lock").clear();
                let me = self.me.clone();
                peer.set_event_sink(Box::new(move |frame, related| {
                    if let Some(session) = me.upgrade() {
                        session.on_upstream_event(slot, frame, related);
                    }
                }));
                *current = Some(peer.clone());
                *s.live.lock().expect("live lock") = Some(peer.clone());
                let metrics = &self.shared.metrics;
                metrics.upstream_up(&s.config.name, true);
                if replaces_lost {
                    metrics.upstream_restarted(&s.config.name);
                }
                self.watch_upstream(slot, &peer);
                Ok(peer)
            }
            Err(e) => {
                self.shared.metrics.upstream_up(&s.config.name, false);
                let mut b = s.backoff.lock().expect("backoff lock");
                b.failures += 1;
                let delay = Duration::from_millis(250u64.saturating_mul(1 << b.failures.min(7)));
                b.not_before = Some(Instant::now() + delay);
                Err(e)
            }
        }
    }

    /// Notices at once when an upstream connection is lost (its process exited, its HTTP session
    /// ended) rather than at the next call, for the health metric and the log.
    fn watch_upstream(&self, slot: usize, peer: &Peer) {
        let lost = peer.lost();
        let session_closed = self.closed.clone();
        let metrics = self.shared.metrics.clone();
        let name = self.slots[slot].config.name.clone();
        let handle = self.handle.clone();
        tokio::spawn(async move {
            tokio::select! {
                // Closing the session ends its connections on purpose: that is not "down".
                _ = session_closed.cancelled() => {}
                reason = lost => if let Some(reason) = reason {
                    metrics.upstream_up(&name, false);
                    tracing::warn!(session = %handle, upstream = %name, %reason, "upstream connection lost");
                },
            }
        });
    }

    async fn connected_peers(&self) -> Vec<Arc<Peer>> {
        let mut out = Vec::new();
        for slot in &self.slots {
            if let Some(p) = slot.peer.lock().await.as_ref()
                && !p.is_closed()
            {
                out.push(p.clone());
            }
        }
        out
    }

    async fn broadcast_request(&self, frame: &Frame, capability: &str) {
        for peer in self.connected_peers().await {
            if peer.hello().has_capability(capability) {
                let _ = peer.forward(frame, None, self.shared.request_timeout).await;
            }
        }
    }

    // ---------------------------------------------------------------- forwarding

    /// Sends a client request to upstream `slot` and returns its reply (with the gateway's id).
    pub async fn forward_to(&self, slot: usize, frame: &Frame, related: Option<RelatedSink>) -> Result<Frame, Error> {
        self.forward_with_timeout(slot, frame, related, self.shared.request_timeout).await
    }

    pub async fn forward_with_timeout(
        &self,
        slot: usize,
        frame: &Frame,
        related: Option<RelatedSink>,
        timeout: Duration,
    ) -> Result<Frame, Error> {
        let peer = self.peer(slot).await?;
        let reply = peer.forward(frame, related, timeout).await?;
        if reply.is_error() {
            return Ok(reply);
        }
        Ok(self.annotate_for_client(reply))
    }

    /// 2026-07-28 clients expect `resultType` on every result; older upstreams do not send it.
    fn annotate_for_client(&self, reply: Frame) -> Frame {
        let stateless = self.client.read().expect("client lock").as_ref().is_some_and(|c| c.stateless);
        let Some(result) = reply.result().filter(|_| stateless) else { return reply };
        let Ok(mut obj) = RawObject::parse(result) else { return reply };
        if obj.get("resultType").is_some() {
            return reply;
        }
        obj.set("resultType", raw(&"complete"));
        match Frame::parse(jsonrpc::result(reply.id().unwrap_or("null"), &obj.to_json())) {
            Ok(f) => f,
            Err(_) => reply,
        }
    }

    /// Finds the upstream of a namespaced tool or prompt; returns the frame to send upstream
    /// (with the original name) and the public name.
    async fn resolve_named(
        &self,
        frame: &Frame,
        kind: ListKind,
        roles: &Roles,
    ) -> Result<(Route, Frame, String), Error> {
        let mut params = frame
            .params()
            .and_then(|p| RawObject::parse(p).ok())
            .ok_or_else(|| Error::InvalidParams(format!("{} needs params with a string \"name\"", frame.method())))?;
        let public: String = params
            .get("name")
            .and_then(|n| serde_json::from_str(n.get()).ok())
            .ok_or_else(|| Error::InvalidParams(format!("{} needs a string \"name\"", frame.method())))?;
        let mut route = self.catalog.lock().expect("catalog lock").route(kind, &public);
        if route.is_none() {
            // The client may call without listing first, or the list changed: look again once.
            self.merged_list(kind, roles).await?;
            route = self.catalog.lock().expect("catalog lock").route(kind, &public);
        }
        let unknown = || match kind {
            ListKind::Tools => Error::UnknownTool(public.clone()),
            _ => Error::InvalidParams(format!("Unknown prompt: {public}")),
        };
        let route = route.ok_or_else(unknown)?;
        if route.original == public {
            return Ok((route, frame.clone(), public));
        }
        params.set("name", raw(&route.original));
        Ok((route.clone(), frame.with_params(&params.to_json()), public))
    }

    async fn slot_for_uri(&self, uri: &str, roles: &Roles) -> Result<usize, Error> {
        if let Some(slot) = self.catalog.lock().expect("catalog lock").uri_slot(uri) {
            return Ok(slot);
        }
        let _ = self.merged_list(ListKind::Resources, roles).await;
        if let Some(slot) = self.catalog.lock().expect("catalog lock").uri_slot(uri) {
            return Ok(slot);
        }
        // Unlisted uris (templates, dynamic resources): the first upstream that serves resources.
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(peer) = s.peer.lock().await.as_ref()
                && peer.hello().has_capability("resources")
            {
                return Ok(i);
            }
        }
        Err(Error::InvalidParams(format!("no upstream serves resource {uri}")))
    }

    async fn complete(&self, frame: &Frame, related: Option<RelatedSink>, roles: &Roles) -> Result<Frame, Error> {
        let params: serde_json::Value = frame.params_as().map_err(|e| Error::InvalidParams(e.to_string()))?;
        let reference = params.get("ref").cloned().unwrap_or_default();
        match reference.get("type").and_then(|t| t.as_str()) {
            Some("ref/prompt") => {
                let name = reference.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
                let route = match self.catalog.lock().expect("catalog lock").route(ListKind::Prompts, &name) {
                    Some(r) => r,
                    None => return Err(Error::InvalidParams(format!("Unknown prompt: {name}"))),
                };
                let mut obj = RawObject::parse(frame.params().unwrap_or("{}"))
                    .map_err(|e| Error::InvalidParams(e.to_string()))?;
                let mut r = reference.clone();
                r["name"] = serde_json::json!(route.original);
                obj.set("ref", raw(&r));
                self.forward_to(route.slot, &frame.with_params(&obj.to_json()), related).await
            }
            Some("ref/resource") => {
                let uri = reference.get("uri").and_then(|n| n.as_str()).unwrap_or_default();
                let slot = self.slot_for_uri(uri, roles).await?;
                self.forward_to(slot, frame, related).await
            }
            _ => Err(Error::InvalidParams("completion/complete needs ref of type ref/prompt or ref/resource".into())),
        }
    }

    // ---------------------------------------------------------------- merged lists

    /// One list across all upstreams, renamed where needed, as an identity holding `roles` may
    /// see it. Pages are fetched whole.
    async fn merged_list(&self, kind: ListKind, roles: &Roles) -> Result<String, Error> {
        let fetches = (0..self.slots.len()).map(|i| self.slot_list(i, kind));
        let lists = futures::future::join_all(fetches).await;
        let mut items: Vec<Box<RawValue>> = Vec::new();
        let mut result = RawObject::default();
        let policy = self.shared.policy.load();
        let mut catalog = self.catalog.lock().expect("catalog lock");
        for (slot, list) in lists.into_iter().enumerate() {
            let list = match list {
                Ok(Some(list)) => list,
                Ok(None) => continue,
                Err(e) if self.slots[slot].config.required => return Err(e),
                Err(e) => {
                    tracing::warn!(session = %self.handle, upstream = %self.slots[slot].config.name, error = %e, "left out of {}", kind.method());
                    continue;
                }
            };
            catalog.clear_slot(kind, slot);
            for (key, value) in &list.extras {
                if result.get(key).is_none() {
                    result.set(key, value.clone());
                }
            }
            for item in list.items.iter() {
                if let Some(item) = self.publish_item(&mut catalog, &policy, roles, kind, slot, item) {
                    items.push(item);
                }
            }
        }
        drop(catalog);
        result.0.insert(0, (kind.key().to_string(), raw(&items)));
        if self.client.read().expect("client lock").as_ref().is_some_and(|c| c.stateless) {
            // 2026-07-28 lists carry cache hints. The merged list is per principal and can change
            // whenever an upstream's does, so: private, and re-list rather than cache.
            result.set("ttlMs", raw(&0));
            result.set("cacheScope", raw(&"private"));
            result.set("resultType", raw(&"complete"));
        }
        Ok(result.to_json())
    }

    /// Records one list item in the catalog; returns it as the client sees it.
    fn publish_item(
        &self,
        catalog: &mut Catalog,
        policy: &Policy,
        roles: &Roles,
        kind: ListKind,
        slot: usize,
        item: &RawValue,
    ) -> Option<Box<RawValue>> {
        // What the model reads about the item is cleaned like tool output; else sent as listed.
        let cleaned = crate::policy::listing::clean(policy.redactor(), item.get()).map(|(text, report)| {
            self.shared.metrics.record_message_redactions(report.total);
            tracing::info!(session = %self.handle, redactions = report.total, list = kind.method(), "cleaned a listed item's description");
            text
        });
        let text = cleaned.as_deref().unwrap_or(item.get());
        let mut obj = RawObject::parse(text).ok()?;
        if !kind.renamed() {
            let key = if kind == ListKind::Resources { "uri" } else { "uriTemplate" };
            if let Some(uri) = obj.get(key).and_then(|u| serde_json::from_str::<String>(u.get()).ok()) {
                catalog.add_uri(uri, slot);
            }
            return RawValue::from_string(text.to_string()).ok();
        }
        let original: String = serde_json::from_str(obj.get("name")?.get()).ok()?;
        let config = &self.slots[slot].config;
        let public = names::public_name(config.prefix(), &self.shared.separator, &original);
        let mut tool = None;
        if kind == ListKind::Tools {
            tool = ToolDefinition::from_listing(item.get()).map(Arc::new);
            // The same predicates as RequireAllowlisted: hidden here, refused (and audited) there.
            let quarantined = tool.as_ref().is_some_and(|t| policy.quarantine(t).is_some());
            if !names::is_valid_tool_name(&original) {
                tracing::warn!(upstream = %config.name, tool = ?original, "tool name outside MCP's alphabet; hidden");
            }
            let allowed = policy.allowlist(roles, &config.name, &original).allowed
                && !quarantined
                && names::is_valid_tool_name(&original);
            if !allowed && !policy.dry_run(roles, &config.name) {
                catalog.add_hidden_tool(public, Route { slot, original, tool });
                return None;
            }
            if let Some(t) = &tool {
                self.observe_definition(&config.name, t);
            }
        }
        if !catalog.add_name(kind, public.clone(), Route { slot, original: original.clone(), tool }) {
            tracing::warn!(upstream = %config.name, name = %public, "name already taken by another upstream; hidden");
            return None;
        }
        if public == original {
            return RawValue::from_string(text.to_string()).ok();
        }
        obj.set("name", raw(&public));
        RawValue::from_string(obj.to_json()).ok()
    }

    /// Pins a tool's definition on first sight and flags changes and suspicious descriptions.
    fn observe_definition(&self, upstream: &str, tool: &ToolDefinition) {
        if let PinStatus::Changed { pinned } = self.shared.pins.observe(upstream, &tool.name, &tool.digest) {
            tracing::warn!(session = %self.handle, upstream, tool = %tool.name, %pinned, new = %tool.digest, "tool definition differs from its pin");
        }
        if !tool.flags.is_empty() {
            let flags = &tool.flags;
            tracing::warn!(upstream, tool = %tool.name, ?flags, "tool description looks like it carries hidden instructions");
            self.shared.metrics.flagged_definition(upstream, &tool.name);
        }
    }

    /// One upstream's full list (all pages), cached until it says the list changed.
    async fn slot_list(&self, slot: usize, kind: ListKind) -> Result<Option<Arc<UpstreamList>>, Error> {
        if let Some(cached) = self.slots[slot].lists.lock().expect("lists lock").get(&kind) {
            return Ok(Some(cached.clone()));
        }
        let peer = self.peer(slot).await?;
        if !peer.hello().has_capability(kind.capability()) {
            return Ok(None);
        }
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(rename = "nextCursor")]
            next_cursor: Option<String>,
        }
        let mut all = Vec::new();
        let mut extras = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let params = cursor.as_ref().map(|c| serde_json::json!({ "cursor": c }).to_string());
            let reply = peer.request(kind.method(), params.as_deref()).await?;
            let Some(result) = reply.result() else {
                return Err(Error::UpstreamProtocol {
                    upstream: peer.name.clone(),
                    detail: format!("{} failed: {}", kind.method(), reply.error().unwrap_or("")),
                });
            };
            let obj = RawObject::parse(result)
                .map_err(|e| Error::UpstreamProtocol { upstream: peer.name.clone(), detail: e.to_string() })?;
            if extras.is_empty() {
                // Pagination and the cache hints of one upstream say nothing about the merged list.
                extras = obj
                    .0
                    .iter()
                    .filter(|(k, _)| k != kind.key() && k != "nextCursor" && k != "ttlMs" && k != "cacheScope")
                    .cloned()
                    .collect();
            }
            if let Some(items) = obj.get(kind.key()) {
                let items: Vec<Box<RawValue>> = serde_json::from_str(items.get())
                    .map_err(|e| Error::UpstreamProtocol { upstream: peer.name.clone(), detail: e.to_string() })?;
                all.extend(items);
            }
            cursor = serde_json::from_str::<Page>(result).ok().and_then(|p| p.next_cursor);
            if cursor.is_none() {
                break;
            }
        }
        let all = Arc::new(UpstreamList { items: all, extras });
        self.slots[slot].lists.lock().expect("lists lock").insert(kind, all.clone());
        Ok(Some(all))
    }

    // ---------------------------------------------------------------- upstream → client

    /// Called on the task that read the message, in arrival order; never waits.
    fn on_upstream_event(&self, slot: usize, frame: Frame, related: Option<RelatedSink>) {
        match frame.kind() {
            Kind::Request => self.relay_upstream_request(slot, frame, related),
            Kind::Notification => self.relay_upstream_notification(slot, frame, related),
            Kind::Response => {}
        }
    }

    fn relay_upstream_request(&self, slot: usize, frame: Frame, related: Option<RelatedSink>) {
        let upstream_id = frame.id().unwrap_or("null").to_string();
        if frame.method() == "ping" {
            // Liveness checks are answered here; the client need not know.
            if let Some(peer) = self.slots[slot].live.lock().expect("live lock").clone() {
                peer.send_now(jsonrpc::result(&upstream_id, "{}"));
            }
            return;
        }
        if let Some((method, capability)) = server_requests::capability_needed(frame.method()) {
            let policy = self.shared.policy.load();
            let client = self.client.read().expect("client lock").as_ref().map(|c| c.capabilities.clone());
            let decision = server_requests::decide(capability, client.as_ref(), &policy, &self.slots[slot].config.name);
            if !decision.allowed {
                self.refuse_server_request(slot, &upstream_id, method, decision);
                return;
            }
        }
        let frame = match self.redact_for_client(frame) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(session = %self.handle, error = %e, "withheld an upstream request");
                return;
            }
        };
        let n = self.next_server_request.fetch_add(1, Ordering::Relaxed);
        let client_id = format!("\"tg-{n}\"");
        self.server_requests.lock().expect("server_requests lock").insert(client_id.clone(), (slot, upstream_id));
        self.deliver(frame.with_id(&client_id).into_string(), related);
    }

    /// Answers an upstream's request the client must not see with -31001 naming the rule,
    /// and records the refusal (log, metric, audit record with the method as its `tool`).
    fn refuse_server_request(&self, slot: usize, upstream_id: &str, method: &'static str, decision: Decision) {
        let upstream = self.slots[slot].config.name.clone();
        tracing::warn!(session = %self.handle, upstream = %upstream, method, rule = %decision.rule, "refused an upstream request to the client");
        self.shared.metrics.refused_server_request(&upstream, method);
        let error =
            Error::PolicyDenied { rule: decision.rule.clone(), reason: format!("{method}: {}", decision.reason) };
        if let Some(peer) = self.slots[slot].live.lock().expect("live lock").clone() {
            peer.send_now(error.to_jsonrpc(Some(upstream_id)));
        }
        let Some(log) = self.shared.audit.clone() else { return };
        let record = crate::audit::AuditRecord {
            phase: "denied".into(),
            session: self.handle.clone(),
            principal: self.principal.clone(),
            upstream,
            tool: method.into(),
            jsonrpc_id: upstream_id.into(),
            decision: "deny".into(),
            rule: Some(decision.rule),
            outcome: Some("denied".into()),
            error_code: Some(error.code()),
            policy_version: Some(self.shared.policy.load().version.clone()),
            ..Default::default()
        };
        log.append_detached(record, "a refused upstream request");
    }

    fn relay_upstream_notification(&self, slot: usize, frame: Frame, related: Option<RelatedSink>) {
        let method = frame.method().to_string();
        let mut related = related;
        let mut frame = frame;
        for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources, ListKind::ResourceTemplates] {
            if method == kind.changed_notification() {
                self.slots[slot].lists.lock().expect("lists lock").remove(&kind);
            }
        }
        match method.as_str() {
            "notifications/progress" => {
                if let Ok(p) = frame.params_as::<serde_json::Value>()
                    && let Some(token) = p.get("progressToken").map(|t| t.to_string())
                {
                    let inflight = self.inflight.lock().expect("inflight lock");
                    if let Some(entry) = inflight.values().find(|e| e.progress_token.as_ref() == Some(&token)) {
                        related = entry.related.clone().or(related);
                    }
                }
            }
            "notifications/cancelled" => {
                // The upstream withdrew one of its requests: use the id the client knows.
                let mut params = RawObject::parse(frame.params().unwrap_or("{}")).unwrap_or_default();
                let upstream_id = params.get("requestId").map(|r| r.get().to_string());
                let mut map = self.server_requests.lock().expect("server_requests lock");
                let client_id = map
                    .iter()
                    .find(|(_, (s, u))| *s == slot && Some(u) == upstream_id.as_ref())
                    .map(|(c, _)| c.clone());
                let Some(client_id) = client_id else { return };
                map.remove(&client_id);
                drop(map);
                if let Ok(id) = RawValue::from_string(client_id) {
                    params.set("requestId", id);
                }
                frame = frame.with_params(&params.to_json());
            }
            _ => {}
        }
        match self.redact_for_client(frame) {
            Ok(frame) => self.deliver(frame.into_string(), related),
            Err(e) => tracing::warn!(session = %self.handle, error = %e, "withheld an upstream notification"),
        }
    }

    /// Applies the policy's redaction to a message from upstream (fail closed: a message that
    /// cannot be inspected is not passed on).
    fn redact_for_client(&self, frame: Frame) -> Result<Frame, Error> {
        let policy = self.shared.policy.load();
        match crate::layers::redact_output::redact_frame(policy.redactor(), frame) {
            Ok((frame, report)) => {
                if report.total > 0 {
                    self.shared.metrics.record_message_redactions(report.total);
                    tracing::info!(session = %self.handle, redactions = report.total, "redacted upstream message");
                }
                Ok(frame)
            }
            Err(reason) => Err(Error::OutputWithheld { rule: "redaction".into(), reason }),
        }
    }

    fn deliver(&self, text: String, related: Option<RelatedSink>) {
        let any_open = || {
            let inflight = self.inflight.lock().expect("inflight lock");
            inflight.values().filter_map(|e| e.related.clone()).find(|tx| !tx.is_closed())
        };
        for dropped in self.outbound.deliver(text, related, any_open) {
            self.refuse_undelivered(dropped);
        }
    }

    /// An upstream request the client will never see (it is not reading): answer the upstream
    /// now, so it does not wait for a reply that cannot come. Dropped notifications need nothing.
    fn refuse_undelivered(&self, text: String) {
        let Ok(frame) = Frame::parse(text) else { return };
        if frame.kind() != Kind::Request {
            return;
        }
        let Some(client_id) = frame.id().map(str::to_string) else { return };
        let Some((slot, upstream_id)) = self.server_requests.lock().expect("server_requests lock").remove(&client_id)
        else {
            return;
        };
        let error = Error::Overloaded(
            "the client is not reading its messages; the gateway dropped this request from its full outbound queue"
                .into(),
        );
        if let Some(peer) = self.slots[slot].live.lock().expect("live lock").clone() {
            peer.send_now(error.to_jsonrpc(Some(&upstream_id)));
        }
    }
}

/// A fresh session id: 256 bits from the OS CSPRNG, hex (visible ASCII, as MCP requires).
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    crate::hex::encode(&bytes)
}

/// `params._meta` is an object in every MCP request: anything else is refused here with the
/// reason, not handed to an upstream that may reject it silently and leave the call to time out.
fn check_meta(frame: &Frame) -> Result<(), Error> {
    // Only a request that names `_meta` pays for reading it.
    if !frame.params().is_some_and(|p| p.contains("\"_meta\"")) {
        return Ok(());
    }
    match mcp::meta::<serde_json::Value>(frame.params()) {
        Some(meta) if !meta.is_object() => {
            Err(Error::InvalidParams(format!("{}: params._meta must be an object, not {meta}", frame.method())))
        }
        _ => Ok(()),
    }
}
