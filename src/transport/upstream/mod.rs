//! One live connection to one upstream MCP server, whatever its transport.
//!
//! A [`Peer`] owns the request-id space towards its upstream: every request the gateway sends
//! gets a fresh integer id, so ids from different clients can never collide upstream. Replies are
//! matched back through `pending`; everything else the upstream sends (its requests to the
//! client, notifications) goes to the [`EventSink`] of the session that owns the peer.

pub mod builtin;
pub mod clients;
pub mod http;
pub mod lines;
pub mod sandbox;
pub mod stdio;

use crate::config::{ProtocolChoice, UpstreamConfig};
use crate::error::Error;
use crate::jsonrpc::{self, Frame, Kind};
use crate::mcp::lifecycle::{self, ClientHello, ServerHello};
use crate::secrets::Scrubber;
use crate::telemetry::trace::{self as telemetry, TraceHeaders};
pub use builtin::BuiltinContext;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Where messages related to one forwarded request should go (the client's open POST stream).
pub type RelatedSink = mpsc::Sender<String>;

/// Receives what the upstream sends that is not a reply to a gateway request (its requests to
/// the client, notifications), synchronously and in arrival order, on the task that read it.
/// `related` is set when the upstream tied the message to one of our requests (its POST's SSE
/// stream).
pub type EventSink = Box<dyn Fn(Frame, Option<RelatedSink>) + Send + Sync>;

struct PendingCall {
    reply: oneshot::Sender<Result<Frame, Error>>,
    related: Option<RelatedSink>,
}

/// Matches replies to requests and hands everything else to the session.
///
/// Order is kept without a queue: messages go to the sink on the reading task before any later
/// reply is completed, so a progress notification sent before a reply reaches the client first.
pub struct Dispatcher {
    upstream: String,
    pending: Mutex<HashMap<u64, PendingCall>>,
    sink: OnceLock<EventSink>,
    /// Messages that arrived before the session attached its sink (during the handshake).
    early: Mutex<Vec<(Frame, Option<RelatedSink>)>>,
    closed: CancellationToken,
    close_reason: OnceLock<String>,
    /// This connection's own credentials, replaced wherever the upstream echoes them.
    scrubber: OnceLock<Arc<Scrubber>>,
}

impl Dispatcher {
    fn new(upstream: &str) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            upstream: upstream.to_string(),
            pending: Mutex::new(HashMap::new()),
            sink: OnceLock::new(),
            early: Mutex::new(Vec::new()),
            closed: CancellationToken::new(),
            close_reason: OnceLock::new(),
            scrubber: OnceLock::new(),
        })
    }

    /// Set by the wire before it reads anything from the upstream.
    pub fn set_scrubber(&self, scrubber: Arc<Scrubber>) {
        if !scrubber.is_empty() {
            let _ = self.scrubber.set(scrubber);
        }
    }

    /// The frame with this upstream's credentials replaced; `None` if that broke it (a value
    /// spanning JSON structure), in which case it is not passed on.
    fn scrub(&self, frame: Frame) -> Option<Frame> {
        let Some(scrubber) = self.scrubber.get() else { return Some(frame) };
        let Some(text) = scrubber.scrub(frame.as_str()) else { return Some(frame) };
        tracing::warn!(upstream = %self.upstream, "the upstream echoed one of its own credentials; replaced it");
        match Frame::parse(text) {
            Ok(frame) => Some(frame),
            Err(_) => {
                tracing::warn!(upstream = %self.upstream, "dropping a message that carried a credential");
                None
            }
        }
    }

    /// Attaches the session's sink and hands it what arrived before.
    fn set_sink(&self, sink: EventSink) {
        let mut early = self.early.lock().expect("early lock");
        for (frame, related) in early.drain(..) {
            sink(frame, related);
        }
        let _ = self.sink.set(sink);
    }

    /// A frame arrived from upstream. `via` is the request whose HTTP response carried it.
    pub fn dispatch(&self, frame: Frame, via: Option<u64>) {
        let Some(frame) = self.scrub(frame) else { return };
        if frame.kind() == Kind::Response {
            let id = frame.id().and_then(|i| i.parse::<u64>().ok());
            let call = id.and_then(|id| self.pending.lock().expect("pending lock").remove(&id));
            match call {
                Some(call) => {
                    let _ = call.reply.send(Ok(frame));
                }
                None => {
                    tracing::debug!(upstream = %self.upstream, id = ?frame.id(), "dropping reply to no pending request")
                }
            }
            return;
        }
        let related =
            via.and_then(|id| self.pending.lock().expect("pending lock").get(&id).and_then(|c| c.related.clone()));
        if let Some(sink) = self.sink.get() {
            return sink(frame, related);
        }
        let mut early = self.early.lock().expect("early lock");
        match self.sink.get() {
            Some(sink) => sink(frame, related),
            None => early.push((frame, related)),
        }
    }

    /// The connection is gone: fail every waiting request with a clear error.
    pub fn close(&self, reason: String) {
        let _ = self.close_reason.set(reason.clone());
        self.closed.cancel();
        let calls: Vec<PendingCall> = self.pending.lock().expect("pending lock").drain().map(|(_, c)| c).collect();
        for call in calls {
            let _ = call.reply.send(Err(self.unavailable()));
        }
    }

    /// Fails one request (an HTTP POST that got no usable reply).
    pub fn fail(&self, id: u64, error: Error) {
        if let Some(call) = self.pending.lock().expect("pending lock").remove(&id) {
            let _ = call.reply.send(Err(error));
        }
    }

    fn unavailable(&self) -> Error {
        Error::UpstreamUnavailable {
            upstream: self.upstream.clone(),
            reason: self.close_reason.get().cloned().unwrap_or_else(|| "connection closed".into()),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

/// How frames leave the gateway towards the upstream.
pub enum Wire {
    Stdio(stdio::StdioWire),
    Http(http::HttpWire),
    /// Answered in-process (long-term memory); replies still go through the dispatcher.
    Builtin(builtin::BuiltinWire),
}

impl Wire {
    /// `trace` goes out as HTTP headers (HTTP); other wires carry it in the message itself.
    async fn send(
        &self,
        text: String,
        request_id: Option<u64>,
        frame: &Frame,
        trace: Option<&TraceHeaders>,
    ) -> Result<(), Error> {
        match self {
            Wire::Stdio(w) => w.send(text).await,
            Wire::Http(w) => w.send(text, request_id, frame, trace).await,
            Wire::Builtin(w) => {
                w.send(frame).await;
                Ok(())
            }
        }
    }
    /// The transport's name in spans.
    fn kind(&self) -> &'static str {
        match self {
            Wire::Stdio(_) => "stdio",
            Wire::Http(_) => "http",
            Wire::Builtin(_) => "builtin",
        }
    }
    async fn shutdown(&self) {
        match self {
            Wire::Stdio(w) => w.shutdown().await,
            Wire::Http(w) => w.shutdown().await,
            // Nothing runs outside the calls themselves; closing the dispatcher is enough.
            Wire::Builtin(_) => {}
        }
    }
}

/// A connected, handshaken upstream.
pub struct Peer {
    pub name: String,
    wire: Wire,
    dispatcher: Arc<Dispatcher>,
    next_id: AtomicU64,
    hello: OnceLock<ServerHello>,
    /// Whom this connection speaks for: a 2026-07-28 upstream needs it in every request's `_meta`.
    client: ClientHello,
    timeout: Duration,
    /// Set when the gateway itself ends the connection, so its end is not taken for a loss.
    ending: Arc<AtomicBool>,
}

/// Cleans up a request that stopped being awaited (client gone, cancelled): forget the pending
/// entry and tell the upstream to stop working on it.
struct PendingGuard<'a> {
    peer: &'a Peer,
    id: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let removed = self.peer.dispatcher.pending.lock().expect("pending lock").remove(&self.id).is_some();
        if removed && !self.peer.dispatcher.is_closed() {
            self.peer.cancel_upstream(self.id, "client went away");
        }
    }
}

impl Peer {
    /// Starts the transport and performs the handshake for `config`'s protocol choice.
    /// `local` is what a built-in upstream serves from (the session's principal, the store).
    pub async fn connect(
        config: &UpstreamConfig,
        client: &ClientHello,
        http: &reqwest::Client,
        local: &BuiltinContext,
        timeout: Duration,
    ) -> Result<Arc<Peer>, Error> {
        let dispatcher = Dispatcher::new(&config.name);
        let wire = match (&config.builtin, &config.command, &config.url) {
            (Some(kind), _, _) => Wire::Builtin(builtin::BuiltinWire::new(kind, local, dispatcher.clone())),
            (None, Some(_), _) => Wire::Stdio(stdio::StdioWire::spawn(config, dispatcher.clone())?),
            (None, _, Some(url)) => {
                Wire::Http(http::HttpWire::new(&config.name, url, &config.headers, http.clone(), dispatcher.clone())?)
            }
            _ => return Err(Error::Internal(format!("upstream {} has no transport", config.name))),
        };
        let peer = Arc::new(Peer {
            name: config.name.clone(),
            wire,
            dispatcher,
            next_id: AtomicU64::new(1),
            hello: OnceLock::new(),
            client: client.clone(),
            timeout,
            ending: Arc::new(AtomicBool::new(false)),
        });
        let hello = match peer.handshake(config.protocol, client).await {
            Ok(h) => h,
            Err(e) => {
                peer.shutdown().await;
                return Err(e);
            }
        };
        tracing::info!(upstream = %peer.name, version = %hello.version, server = %hello.server_info, "upstream connected");
        let _ = peer.hello.set(hello);
        Ok(peer)
    }

    async fn handshake(&self, choice: ProtocolChoice, client: &ClientHello) -> Result<ServerHello, Error> {
        if choice != ProtocolChoice::Stateful {
            let params = serde_json::json!({ "_meta": client.stateless_meta() }).to_string();
            match self.request("server/discover", Some(&params)).await {
                Ok(reply) if reply.result().is_some() => {
                    if let Some(hello) = lifecycle::parse_discover(reply.result().unwrap_or("{}")) {
                        if let Wire::Http(w) = &self.wire {
                            w.set_stateless();
                        }
                        return Ok(hello);
                    }
                }
                Ok(_) => {}
                Err(e @ Error::UpstreamTimeout { .. }) if choice == ProtocolChoice::Stateless => return Err(e),
                Err(e @ Error::UpstreamUnavailable { .. }) => return Err(e),
                Err(_) => {}
            }
            if choice == ProtocolChoice::Stateless {
                return Err(self.protocol_error("does not offer protocol 2026-07-28 (server/discover)"));
            }
            tracing::debug!(upstream = %self.name, "no 2026-07-28 discovery; falling back to initialize");
        }
        let reply = self.request("initialize", Some(&client.initialize_params())).await?;
        let Some(result) = reply.result() else {
            return Err(self.protocol_error(&format!("initialize failed: {}", reply.error().unwrap_or("no result"))));
        };
        let hello = lifecycle::parse_initialize(result).map_err(|e| self.protocol_error(&e))?;
        if let Wire::Http(w) = &self.wire {
            w.set_protocol_version(&hello.version);
        }
        self.notify(&jsonrpc::notification("notifications/initialized", None)).await?;
        if let Wire::Http(w) = &self.wire {
            w.open_listen_stream();
        }
        Ok(hello)
    }

    fn protocol_error(&self, detail: &str) -> Error {
        Error::UpstreamProtocol { upstream: self.name.clone(), detail: detail.to_string() }
    }

    /// The upstream's own session id (HTTP upstreams that issue one), for the session record.
    pub fn upstream_session_id(&self) -> Option<String> {
        match &self.wire {
            Wire::Http(w) => w.session_id(),
            _ => None,
        }
    }

    pub fn hello(&self) -> &ServerHello {
        self.hello.get().expect("hello is set before a peer is handed out")
    }

    pub fn is_closed(&self) -> bool {
        self.dispatcher.is_closed()
    }

    /// Resolves when the connection ends: with the reason if it was lost (process exited, HTTP
    /// session gone), `None` if the gateway ended it. Holds no reference to the peer.
    pub fn lost(&self) -> impl std::future::Future<Output = Option<String>> + Send + 'static {
        let dispatcher = self.dispatcher.clone();
        let ending = self.ending.clone();
        async move {
            dispatcher.closed.cancelled().await;
            if ending.load(Ordering::Acquire) {
                return None;
            }
            Some(dispatcher.close_reason.get().cloned().unwrap_or_else(|| "connection closed".into()))
        }
    }

    /// Where this connection's requests and notifications for the client go from now on.
    pub fn set_event_sink(&self, sink: EventSink) {
        self.dispatcher.set_sink(sink);
    }

    /// Sends a notification or a reply without waiting (from synchronous event handling).
    pub fn send_now(&self, text: String) {
        match &self.wire {
            Wire::Stdio(w) => w.send_now(text),
            Wire::Http(w) => {
                if let Ok(frame) = Frame::parse(text.clone()) {
                    w.send_detached(text, &frame);
                }
            }
            Wire::Builtin(w) => w.send_now(text),
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A request the gateway itself makes (handshake, list fetches).
    pub async fn request(&self, method: &str, params: Option<&str>) -> Result<Frame, Error> {
        let id = self.next_id();
        let frame = Frame::parse(jsonrpc::request(&id.to_string(), method, params))
            .map_err(|e| Error::Internal(format!("built an invalid request: {e:?}")))?;
        self.call_with_id(id, frame, None, self.timeout).await
    }

    /// Forwards a client request: same bytes, our id. The reply carries our id too; the caller
    /// puts the client's id back.
    pub async fn forward(
        &self,
        frame: &Frame,
        related: Option<RelatedSink>,
        timeout: Duration,
    ) -> Result<Frame, Error> {
        let id = self.next_id();
        self.call_with_id(id, frame.with_id(&id.to_string()), related, timeout).await
    }

    async fn call_with_id(
        &self,
        id: u64,
        frame: Frame,
        related: Option<RelatedSink>,
        timeout: Duration,
    ) -> Result<Frame, Error> {
        if self.is_closed() {
            return Err(self.dispatcher.unavailable());
        }
        let frame = match self.hello.get() {
            Some(h) if h.stateless => frame.with_params(&lifecycle::with_stateless_meta(frame.params(), &self.client)),
            _ => frame,
        };
        let span = telemetry::upstream_span(&self.name, self.wire.kind(), frame.method(), id);
        let trace = if span.is_disabled() { None } else { TraceHeaders::of_span(&span) };
        let frame = match &trace {
            Some(t) => self.carry_trace(frame, t),
            None => frame,
        };
        let (tx, rx) = oneshot::channel();
        self.dispatcher.pending.lock().expect("pending lock").insert(id, PendingCall { reply: tx, related });
        let mut guard = PendingGuard { peer: self, id, armed: true };
        let text = frame.as_str().to_string();
        // The deadline covers the send too: an HTTP upstream answers within its POST.
        let exchange = tokio::time::timeout(timeout, async {
            self.wire.send(text, Some(id), &frame, trace.as_ref()).await?;
            rx.await.map_err(|_| self.dispatcher.unavailable())?
        });
        let outcome = tracing::Instrument::instrument(exchange, span.clone()).await;
        guard.armed = false;
        let result = match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.dispatcher.pending.lock().expect("pending lock").remove(&id);
                Err(e)
            }
            Err(_) => {
                self.dispatcher.pending.lock().expect("pending lock").remove(&id);
                self.cancel_upstream(id, "timed out at the gateway");
                Err(Error::UpstreamTimeout { upstream: self.name.clone(), after: timeout })
            }
        };
        match &result {
            Ok(reply) => {
                if let Some(code) = telemetry::error_code(reply) {
                    telemetry::record_error(&span, code);
                }
            }
            Err(e) => telemetry::record_error(&span, e.code()),
        }
        result
    }

    /// Puts the hop's trace context where the upstream reads it: `params._meta.traceparent` for
    /// stdio (no headers there); for HTTP the headers carry it, and a `_meta.traceparent` the
    /// client sent is replaced so the upstream never sees two different parents.
    fn carry_trace(&self, frame: Frame, trace: &TraceHeaders) -> Frame {
        let splice = match &self.wire {
            Wire::Stdio(_) => true,
            Wire::Http(_) => telemetry::has_meta_traceparent(frame.params()),
            Wire::Builtin(_) => false,
        };
        if !splice {
            return frame;
        }
        match telemetry::with_meta_traceparent(frame.params(), trace) {
            Some(params) => frame.with_params(&params),
            // Params that are not an object: forwarded as they are, untraced.
            None => frame,
        }
    }

    /// Tells the upstream to stop working on request `id` (MCP `notifications/cancelled`).
    pub fn cancel_upstream(&self, id: u64, reason: &str) {
        tracing::debug!(upstream = %self.name, id, reason, "cancelled upstream request");
        let text = jsonrpc::notification(
            "notifications/cancelled",
            Some(&serde_json::json!({ "requestId": id, "reason": reason }).to_string()),
        );
        let Ok(frame) = Frame::parse(text) else { return };
        // Fire and forget: cancellation is advisory and must not block the caller.
        match &self.wire {
            Wire::Stdio(w) => w.send_now(frame.into_string()),
            Wire::Http(w) => w.send_detached(frame.as_str().to_string(), &frame),
            // The call stops when its caller drops it; there is nothing further to tell.
            Wire::Builtin(_) => {}
        }
    }

    /// Sends a notification or a response (to an upstream's request) as is.
    pub async fn notify(&self, text: &str) -> Result<(), Error> {
        let frame =
            Frame::parse(text.to_string()).map_err(|e| Error::Internal(format!("invalid outgoing frame: {e:?}")))?;
        self.wire.send(text.to_string(), None, &frame, None).await
    }

    /// Stops the upstream: ends its HTTP session or terminates its process group.
    pub async fn shutdown(&self) {
        self.ending.store(true, Ordering::Release);
        self.wire.shutdown().await;
        self.dispatcher.close("gateway closed the connection".into());
    }
}
