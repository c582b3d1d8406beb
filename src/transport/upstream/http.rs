//! Streamable HTTP upstreams: each message is a POST; replies come back as JSON or as an SSE
//! stream that may carry the upstream's own requests and notifications first.
//!
//! 2025-11-25 upstreams get the `Mcp-Session-Id` they issued and `MCP-Protocol-Version` on every
//! request, plus a GET stream for messages not tied to a request. 2026-07-28 upstreams get the
//! `Mcp-Method`/`Mcp-Name` headers mirrored from the body.
//!
//! A request's reply is taken only from the response to the POST that carried it: a reply with
//! another id (on a POST's response or the GET stream) is dropped, and a POST whose response
//! ends without its reply fails that request at once (-31005) rather than at its deadline.
//!
//! The only headers an upstream sees are the ones built here: its configured `headers`
//! (credentials resolved from their references when the connection starts) and the protocol's
//! own. Nothing from the client's HTTP request (its `Authorization`, cookies) is ever copied: a
//! client token is for the gateway, never passed through.

use super::Dispatcher;
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind};
use crate::mcp;
use crate::secrets::{Scrubber, Secret, SecretValue};
use crate::telemetry::trace::TraceHeaders;
use crate::transport::sse::SseParser;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MAX_MESSAGE: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct State {
    session_id: Option<String>,
    protocol_version: Option<String>,
    stateless: bool,
}

pub struct HttpWire {
    upstream: String,
    url: String,
    /// Resolved configured headers, values marked sensitive (never printed by `Debug`).
    headers: HeaderMap,
    client: reqwest::Client,
    dispatcher: Arc<Dispatcher>,
    state: Arc<Mutex<State>>,
}

impl HttpWire {
    /// The upstream's own `Mcp-Session-Id`, once it gave one.
    pub fn session_id(&self) -> Option<String> {
        self.state.lock().expect("state lock").session_id.clone()
    }

    /// Resolves the configured headers now (a rotated secret file is read again on every
    /// connection); a missing one fails the connection, naming the reference.
    pub fn new(
        upstream: &str,
        url: &str,
        headers: &BTreeMap<String, SecretValue>,
        client: reqwest::Client,
        dispatcher: Arc<Dispatcher>,
    ) -> Result<HttpWire, Error> {
        let (headers, secrets) = resolve_headers(headers)
            .map_err(|reason| Error::UpstreamUnavailable { upstream: upstream.to_string(), reason })?;
        // An upstream that echoes its credentials (an error quoting the request) hands them to no one.
        dispatcher.set_scrubber(Arc::new(Scrubber::new(&secrets)));
        Ok(HttpWire {
            upstream: upstream.to_string(),
            url: url.to_string(),
            headers,
            client,
            dispatcher,
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    pub fn set_stateless(&self) {
        let mut s = self.state.lock().expect("state lock");
        s.stateless = true;
        s.protocol_version = Some(mcp::STATELESS_VERSION.into());
    }

    pub fn set_protocol_version(&self, version: &str) {
        self.state.lock().expect("state lock").protocol_version = Some(version.to_string());
    }

    fn builder(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut b = self.client.request(method, &self.url).headers(self.headers.clone());
        let s = self.state.lock().expect("state lock");
        if let Some(id) = &s.session_id {
            b = b.header("mcp-session-id", id);
        }
        if let Some(v) = &s.protocol_version {
            b = b.header("mcp-protocol-version", v);
        }
        b
    }

    fn post(
        &self,
        text: String,
        request_id: Option<u64>,
        frame: &Frame,
        trace: Option<&TraceHeaders>,
    ) -> (reqwest::RequestBuilder, PostContext) {
        let mut b = self
            .builder(reqwest::Method::POST)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(t) = trace {
            // W3C trace context: the upstream's server span becomes a child of our hop.
            b = b.header("traceparent", &t.traceparent);
            if let Some(state) = &t.tracestate {
                b = b.header("tracestate", state);
            }
        }
        let declared = mcp::declared_version(frame.params());
        if declared.as_deref() == Some(mcp::STATELESS_VERSION) || self.state.lock().expect("state lock").stateless {
            if frame.kind() != Kind::Response {
                b = b.header("mcp-method", frame.method());
            }
            if let Some(name) = mcp::target_name(frame.method(), frame.params())
                && name.is_ascii()
                && !name.contains(['\r', '\n'])
            {
                b = b.header("mcp-name", name);
            }
            b = b.header("mcp-protocol-version", mcp::STATELESS_VERSION);
        }
        let ctx = PostContext {
            dispatcher: self.dispatcher.clone(),
            state: self.state.clone(),
            request_id,
            is_initialize: frame.method() == "initialize",
        };
        (b.body(text), ctx)
    }

    /// Posts one message and reads its HTTP reply; the JSON-RPC reply (if any) and anything the
    /// upstream streamed before it reach the dispatcher. Runs inside the caller's task: no spawn
    /// per call, and dropping the caller drops the request (closing the stream cancels it).
    pub async fn send(
        &self,
        text: String,
        request_id: Option<u64>,
        frame: &Frame,
        trace: Option<&TraceHeaders>,
    ) -> Result<(), Error> {
        let (req, ctx) = self.post(text, request_id, frame, trace);
        let outcome = match req.send().await {
            Ok(resp) => ctx.read_response(resp).await,
            Err(e) => Err(format!("request failed: {}", crate::transport::client_tls::describe(&e))),
        };
        outcome.map_err(|reason| Error::UpstreamUnavailable { upstream: self.upstream.clone(), reason })
    }

    /// Posts without waiting (a cancellation sent from a destructor).
    pub fn send_detached(&self, text: String, frame: &Frame) {
        let (req, ctx) = self.post(text, None, frame, None);
        tokio::spawn(async move {
            if let Ok(resp) = req.send().await {
                let _ = ctx.read_response(resp).await;
            }
        });
    }

    /// Opens the GET stream for server-initiated messages (2025-11-25). Optional for servers.
    pub fn open_listen_stream(&self) {
        let req = self.builder(reqwest::Method::GET).header("accept", "text/event-stream");
        let dispatcher = self.dispatcher.clone();
        let upstream = self.upstream.clone();
        tokio::spawn(async move {
            let resp = tokio::select! {
                r = req.send() => r,
                _ = dispatcher.closed.cancelled() => return,
            };
            match resp {
                Ok(resp) if resp.status().is_success() => {
                    tokio::select! {
                        _ = read_sse(resp, &dispatcher, None) => {}
                        _ = dispatcher.closed.cancelled() => {}
                    }
                }
                Ok(resp) => {
                    tracing::debug!(upstream = %upstream, status = %resp.status(), "upstream offers no GET stream")
                }
                Err(e) => tracing::debug!(upstream = %upstream, error = %e, "GET stream failed"),
            }
        });
    }

    /// Ends the upstream session (DELETE), best effort.
    pub async fn shutdown(&self) {
        let has_session = self.state.lock().expect("state lock").session_id.is_some();
        if has_session {
            let req = self.builder(reqwest::Method::DELETE);
            let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
        }
    }
}

/// The configured headers, resolved, and the values that came from references.
fn resolve_headers(configured: &BTreeMap<String, SecretValue>) -> Result<(HeaderMap, Vec<Secret>), String> {
    let mut headers = HeaderMap::new();
    let mut secrets = Vec::new();
    for (name, value) in configured {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("headers.{name}: invalid name"))?;
        let secret = value.resolve().map_err(|e| format!("headers.{name} ({value}): {e}"))?;
        // The error names the reference only: the value may be the secret itself.
        let mut v = HeaderValue::from_str(secret.expose())
            .map_err(|_| format!("headers.{name} ({value}): the value is not a valid HTTP header value"))?;
        v.set_sensitive(true);
        headers.insert(header, v);
        if value.is_reference() {
            secrets.push(secret);
        }
    }
    Ok((headers, secrets))
}

struct PostContext {
    dispatcher: Arc<Dispatcher>,
    state: Arc<Mutex<State>>,
    request_id: Option<u64>,
    is_initialize: bool,
}

impl PostContext {
    async fn read_response(&self, resp: reqwest::Response) -> Result<(), String> {
        let status = resp.status();
        if self.is_initialize
            && let Some(id) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok())
        {
            self.state.lock().expect("state lock").session_id = Some(id.to_string());
        }
        if status == reqwest::StatusCode::NOT_FOUND && self.state.lock().expect("state lock").session_id.is_some() {
            // The upstream forgot our session: this connection is over; the next use reconnects.
            self.dispatcher.close("the upstream ended its session (HTTP 404)".into());
            return Err("the upstream ended its session (HTTP 404)".into());
        }
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            let replied = read_sse(resp, &self.dispatcher, self.request_id).await;
            return if self.request_id.is_some() && !replied {
                Err("the upstream's event stream ended without a reply".into())
            } else {
                Ok(())
            };
        }
        let body = read_limited(resp).await?;
        if body.trim().is_empty() {
            return if status.is_success() && self.request_id.is_none() {
                Ok(())
            } else {
                Err(format!("HTTP {status} with an empty body"))
            };
        }
        let frame = match Frame::parse(body) {
            Ok(frame) => frame,
            Err(_) if !status.is_success() => return Err(format!("HTTP {status}")),
            Err(e) => return Err(format!("invalid JSON-RPC from upstream: {e:?}")),
        };
        let replied = deliver(&self.dispatcher, frame, self.request_id);
        if self.request_id.is_some() && !replied {
            return Err("the upstream's response to this request held no reply with its id".into());
        }
        Ok(())
    }
}

/// What a message read from a POST's response (or, with `via: None`, from the GET stream) is.
#[derive(Debug, PartialEq, Eq)]
enum Carried {
    /// The reply to `via`, the request that POST carried.
    Reply,
    /// A request or notification from the upstream.
    Event,
    /// A reply to anything else. Taking it would let one response resolve a different request
    /// in flight (or one the gateway already gave up on), so it is dropped.
    Stray,
}

fn classify(frame: &Frame, via: Option<u64>) -> Carried {
    if frame.kind() != Kind::Response {
        return Carried::Event;
    }
    match via {
        Some(id) if frame.id() == Some(id.to_string().as_str()) => Carried::Reply,
        _ => Carried::Stray,
    }
}

/// Hands one message to the dispatcher unless it is a stray reply; returns whether it was the
/// reply to `via`.
fn deliver(dispatcher: &Dispatcher, frame: Frame, via: Option<u64>) -> bool {
    match classify(&frame, via) {
        Carried::Stray => {
            tracing::warn!(
                upstream = %dispatcher.upstream,
                id = ?frame.id(),
                expected = ?via,
                "dropping a reply that does not answer the request whose response carried it"
            );
            false
        }
        carried => {
            dispatcher.dispatch(frame, via);
            carried == Carried::Reply
        }
    }
}

async fn read_limited(resp: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading the reply failed: {e}"))?;
        if body.len() + chunk.len() > MAX_MESSAGE {
            return Err(format!("reply larger than {MAX_MESSAGE} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "reply is not UTF-8".to_string())
}

/// Reads SSE events until the stream ends or carries the reply to `via` (the request that
/// opened it); returns whether that reply came.
async fn read_sse(resp: reqwest::Response, dispatcher: &Dispatcher, via: Option<u64>) -> bool {
    let mut parser = SseParser::new(MAX_MESSAGE);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        for data in parser.feed(&chunk) {
            if data.trim().is_empty() {
                continue; // priming events carry no message
            }
            match Frame::parse(data) {
                Ok(frame) => {
                    if deliver(dispatcher, frame, via) {
                        return true;
                    }
                }
                Err(e) => tracing::warn!(upstream = %dispatcher.upstream, error = ?e, "dropping invalid SSE message"),
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Frame {
        Frame::parse(text.to_string()).unwrap()
    }

    #[test]
    fn only_the_reply_to_the_carrying_request_is_taken() {
        let reply = frame(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#);
        assert_eq!(classify(&reply, Some(7)), Carried::Reply);
        assert_eq!(classify(&reply, Some(8)), Carried::Stray, "another request's reply");
        assert_eq!(classify(&reply, None), Carried::Stray, "a reply on the GET stream");
        let as_string = frame(r#"{"jsonrpc":"2.0","id":"7","result":{}}"#);
        assert_eq!(classify(&as_string, Some(7)), Carried::Stray, "our ids are integers");
        let error_without_id = frame(r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"x"}}"#);
        assert_eq!(classify(&error_without_id, Some(7)), Carried::Stray);
        let progress = frame(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#);
        assert_eq!(classify(&progress, Some(7)), Carried::Event);
        let sampling = frame(r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}}"#);
        assert_eq!(classify(&sampling, Some(7)), Carried::Event, "an upstream request, whatever its id");
    }
}
