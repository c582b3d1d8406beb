//! The downstream HTTP listener: accepts connections within `max_connections` and serves each
//! with HTTP/1 limits that hold before a request reaches the router.
//!
//! Per connection: request headers at most `max_header_bytes` (hyper answers 431); once a
//! request's first byte arrives its headers must be complete within `header_read_timeout`
//! (slowloris); a keep-alive connection with no request started for `idle_timeout` is closed,
//! and so is one whose client stopped reading what the gateway writes. Time spent waiting on an
//! upstream never counts: that is bounded by the request timeout instead.
//!
//! Why not `axum::serve`: it sets none of these (no header timeout at all), and it accepts
//! connections without bound.

use crate::error::Error;
use crate::telemetry::Throttle;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Connections past `max_connections` that still get a 503 before they are closed; past this
/// many at once they are closed without a word (a flood must not cost a task each).
const OVERFLOW_ANSWERS: usize = 32;
/// How long an overflow connection may take to send its request before it is just closed.
const OVERFLOW_READ: Duration = Duration::from_secs(2);

static REFUSED: Throttle = Throttle::new();
static TIMED_OUT: Throttle = Throttle::new();

/// The listener's limits (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Settings {
    pub fn from_config(c: &crate::config::ServerConfig) -> Settings {
        Settings {
            max_connections: c.max_connections,
            max_header_bytes: c.max_header_bytes,
            header_read_timeout: c.header_read_timeout(),
            idle_timeout: c.idle_timeout(),
        }
    }
}

/// Wraps each accepted TCP stream before HTTP is spoken on it (TLS).
pub type Handshake =
    Arc<dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = io::Result<Box<dyn Stream>>> + Send>> + Send + Sync>;

/// A connection's byte stream, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Serves `router` until `stop` fires, then asks every connection to finish its current
/// request and waits for them (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: Settings,
    handshake: Option<Handshake>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_ANSWERS));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors, typically: pause instead of spinning on the error.
                if let Some(n) = REFUSED.hit() {
                    tracing::warn!(error = %e, count = n, "accept failed; pausing the listener briefly");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY small SSE writes meet delayed ACKs: ~40 ms per request.
        let _ = tcp.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                connections.spawn(serve_connection(
                    tcp,
                    router.clone(),
                    settings,
                    handshake.clone(),
                    slot,
                    stop.clone(),
                ));
            }
            Err(_) => {
                if let Some(n) = REFUSED.hit() {
                    tracing::warn!(
                        limit = settings.max_connections,
                        count = n,
                        "connection refused: server.max_connections reached"
                    );
                }
                if handshake.is_none()
                    && let Ok(permit) = overflow.clone().try_acquire_owned()
                {
                    tokio::spawn(refuse(tcp, permit));
                }
                // Otherwise dropping `tcp` closes it.
            }
        }
    }
    connections.close();
    connections.wait().await;
}

/// Answers one request with 503 and closes: a clear signal for a client that came at a busy
/// moment, at the cost of one short-lived task (bounded by [`OVERFLOW_ANSWERS`]).
async fn refuse(tcp: TcpStream, _permit: OwnedSemaphorePermit) {
    let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
        let e = Error::Overloaded(
            "the gateway has too many connections open (server.max_connections); retry shortly".into(),
        );
        Ok::<_, Infallible>(overloaded_response(&e))
    });
    let mut builder = http1::Builder::new();
    builder.keep_alive(false).timer(TokioTimer::new()).header_read_timeout(OVERFLOW_READ);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    let _ = tokio::time::timeout(OVERFLOW_READ * 2, conn).await;
}

/// The 503 every capacity limit answers with: a JSON-RPC error without an id (the request was
/// not read), and when to retry.
pub fn overloaded_response(error: &Error) -> Response {
    let mut resp = Response::new(Body::from(error.to_jsonrpc(None)));
    *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    h.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    resp
}

async fn serve_connection(
    tcp: TcpStream,
    router: Router,
    settings: Settings,
    handshake: Option<Handshake>,
    _slot: OwnedSemaphorePermit,
    stop: CancellationToken,
) {
    let stream: Box<dyn Stream> = match handshake {
        // A handshake that dawdles is a slowloris too.
        Some(h) => match tokio::time::timeout(settings.header_read_timeout, h(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => return tracing::debug!("TLS handshake timed out"),
        },
        None => Box::new(tcp),
    };
    let activity = Arc::new(Mutex::new(Phase::Idle { since: Instant::now() }));
    let io = TokioIo::new(Watched::new(stream, activity.clone(), settings));
    let service = ConnService { router, activity };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's own timer runs from when it starts waiting for a request: a backstop for
        // `Watched`, which tells idle time and header time apart.
        .header_read_timeout(settings.idle_timeout + settings.header_read_timeout)
        .max_header_size(settings.max_header_bytes)
        // Room for the largest head plus read-ahead; hyper's default (~400 KiB) per connection
        // would be the larger cost with many connections.
        .max_buf_size(settings.max_header_bytes.max(8192) + 16 * 1024);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return log_end(r),
        _ = stop.cancelled() => {}
    }
    // Shutting down: finish the request under way, take no new one.
    conn.as_mut().graceful_shutdown();
    log_end(conn.await);
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        let timed_out = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
        if (timed_out || e.is_timeout())
            && let Some(n) = TIMED_OUT.hit()
        {
            tracing::info!(count = n, "closed a connection that waited too long for its client");
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Where a connection is in its request cycle, as far as the limits care.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request to start (after connecting or after the last response).
    Idle { since: Instant },
    /// The first bytes of a request head arrived at `since`.
    Head { since: Instant },
    /// Requests whose head was read and whose response body is not finished. The client owes
    /// nothing here but reading, so only a stalled write counts against it.
    Busy(usize),
}

/// The router as hyper's service, marking each request busy until its response body is done.
#[derive(Clone)]
struct ConnService {
    router: Router,
    activity: Arc<Mutex<Phase>>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let busy = Busy::begin(self.activity.clone());
        let router = self.router.clone();
        Box::pin(async move {
            let resp = router.oneshot(req).await?;
            // The guard rides in the body: the request is over when hyper drops the body
            // (sent in full, or the client went away).
            Ok(resp.map(|body| Body::new(Tracked { inner: body, _busy: busy })))
        })
    }
}

struct Busy(Arc<Mutex<Phase>>);

impl Busy {
    fn begin(activity: Arc<Mutex<Phase>>) -> Busy {
        {
            let mut phase = activity.lock().expect("phase lock");
            *phase = match *phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            };
        }
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut phase = self.0.lock().expect("phase lock");
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle { since: Instant::now() },
        };
    }
}

/// A response body that keeps its connection marked busy while it is being sent.
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's stream with the client-side timeouts: reads fail once the client took too
/// long to start or finish a request head; writes fail once the client stopped reading.
struct Watched {
    inner: Box<dyn Stream>,
    activity: Arc<Mutex<Phase>>,
    settings: Settings,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    write_blocked_since: Option<Instant>,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl Watched {
    fn new(inner: Box<dyn Stream>, activity: Arc<Mutex<Phase>>, settings: Settings) -> Watched {
        let far = Instant::now() + Duration::from_secs(86400);
        Watched {
            inner,
            activity,
            settings,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_blocked_since: None,
        }
    }

    /// When the client's time to send runs out, and for what (None while a request is busy).
    fn read_deadline(&self) -> Option<(Instant, &'static str)> {
        match *self.activity.lock().expect("phase lock") {
            Phase::Idle { since } => Some((since + self.settings.idle_timeout, "idle connection")),
            Phase::Head { since } => Some((since + self.settings.header_read_timeout, "request headers too slow")),
            Phase::Busy(_) => None,
        }
    }

    /// Passes a write's outcome through, failing it once the client has not read for
    /// `idle_timeout` (its receive window stayed full).
    fn watch_write<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                let since = *self.write_blocked_since.get_or_insert_with(Instant::now);
                self.write_timer.as_mut().reset(since + self.settings.idle_timeout);
                if self.write_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("client stopped reading")));
                }
                Poll::Pending
            }
            ready => {
                self.write_blocked_since = None;
                ready
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            let mut phase = self.activity.lock().expect("phase lock");
            if let Phase::Idle { .. } = *phase {
                *phase = Phase::Head { since: Instant::now() };
            }
        }
        let Some((deadline, what)) = self.read_deadline() else { return polled };
        if Instant::now() >= deadline {
            return Poll::Ready(Err(timed_out(what)));
        }
        if polled.is_pending() {
            self.read_timer.as_mut().reset(deadline);
            ready!(self.read_timer.as_mut().poll(cx));
            return Poll::Ready(Err(timed_out(what)));
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.watch_write(cx, polled)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch_write(cx, polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, polled)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
