//! stdio downstream: the client launched us and speaks newline-delimited JSON-RPC on our
//! stdin/stdout. stdout carries only JSON-RPC; logs go to stderr.
//!
//! stdin and stdout are served by one plain thread each: tokio's stdio hands every read and
//! write to its blocking pool, which costs a thread hop per message. The writer sends whatever
//! is queued in one write.

use crate::error::Error;
use crate::jsonrpc::{Frame, Kind};
use crate::session::{RequestCtx, Session};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One line from stdin (its bytes as read: decoding, UTF-8 included, is the decoder's job), or
/// the news that it was too long.
enum Incoming {
    Line(Vec<u8>),
    TooLong,
}

/// Reads lines on a thread; stops at EOF or when the receiver is gone.
fn spawn_reader(max: usize) -> mpsc::Receiver<Incoming> {
    let (tx, rx) = mpsc::channel(256);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            let mut too_long = false;
            // Read up to the newline, keeping at most `max` bytes (no unbounded buffering).
            loop {
                let buf = match input.fill_buf() {
                    Ok(b) => b,
                    Err(_) => return,
                };
                if buf.is_empty() {
                    if !line.is_empty() && !too_long {
                        let _ = tx.blocking_send(Incoming::Line(std::mem::take(&mut line)));
                    }
                    return;
                }
                let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..i], Some(i + 1)),
                    None => (buf, None),
                };
                if line.len() + chunk.len() > max {
                    too_long = true;
                    line.clear();
                } else if !too_long {
                    line.extend_from_slice(chunk);
                }
                let used = done.unwrap_or(buf.len());
                input.consume(used);
                if done.is_some() {
                    break;
                }
            }
            let item = if too_long { Incoming::TooLong } else { Incoming::Line(std::mem::take(&mut line)) };
            if tx.blocking_send(item).is_err() {
                return;
            }
        }
    });
    rx
}

/// Writes messages on a thread, batching whatever is queued; ends when every sender is gone.
fn spawn_writer(mut rx: mpsc::Receiver<String>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut batch = String::new();
        while let Some(first) = rx.blocking_recv() {
            batch.clear();
            batch.push_str(&first);
            batch.push('\n');
            while let Ok(more) = rx.try_recv() {
                batch.push_str(&more);
                batch.push('\n');
            }
            let mut out = stdout.lock();
            if out.write_all(batch.as_bytes()).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    })
}

/// Serves one client until stdin closes or `shutdown` fires, then drains and closes the session.
/// A line that is not a message goes on the record like a malformed HTTP body (`audit::security`).
fn malformed(session: &Session, error: &Error) {
    let event = crate::audit::security::Event::MalformedFrame;
    crate::audit::security::record(session.shared().audit.as_ref(), event, session.principal(), error.code());
}

pub async fn serve(session: Arc<Session>, max_message: usize, shutdown: CancellationToken, grace: Duration) {
    // Roomy: upstream messages are queued without waiting (see session::outbound).
    let (tx, rx) = mpsc::channel::<String>(8192);
    session.outbound.attach(tx.clone());
    let writer = spawn_writer(rx);
    let mut lines = spawn_reader(max_message);
    // One person is on the other end of stdio: every request carries the configured roles.
    let roles = session.shared().roles.clone();

    let tasks = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(session.shared().max_in_flight_per_session));
    loop {
        let incoming = tokio::select! {
            line = lines.recv() => line,
            _ = shutdown.cancelled() => break,
        };
        let bytes = match incoming {
            None => break,
            Some(Incoming::Line(bytes)) if bytes.trim_ascii().is_empty() => continue,
            Some(Incoming::Line(bytes)) => bytes,
            Some(Incoming::TooLong) => {
                let e = Error::InvalidRequest(format!(
                    "message larger than {max_message} bytes; split the data or raise server.max_body_bytes"
                ));
                malformed(&session, &e);
                let _ = tx.send(e.to_jsonrpc(None)).await;
                continue;
            }
        };
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                let error = Error::from(e.clone());
                malformed(&session, &error);
                let _ = tx.send(error.to_jsonrpc(e.id())).await;
                continue;
            }
        };
        if frame.kind() != Kind::Request {
            // Handled in order, before the next line is read: a cancellation takes effect before
            // the client's next request, and a client's reply reaches its upstream promptly.
            session
                .handle(frame, RequestCtx { key: String::new(), related: None, roles: roles.clone(), trace: None })
                .await;
            continue;
        }
        // A request holds its slot until there is room to queue its reply for stdout, not just
        // until it is answered: a client that writes requests and never reads its replies runs out of slots
        // (and, once the refusals fill the stdout queue, this loop stops reading stdin) instead
        // of piling up finished replies in memory.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let limit = session.shared().max_in_flight_per_session;
            let e = Error::Overloaded(format!(
                "this session already has {limit} requests in flight (server.max_in_flight_per_session); wait for replies before sending more"
            ));
            let _ = tx.send(e.to_jsonrpc(frame.id())).await;
            continue;
        };
        // Registered here, in arrival order: a cancellation read after this line finds it.
        let ctx = RequestCtx {
            key: frame.id().unwrap_or_default().to_string(),
            related: None,
            roles: roles.clone(),
            trace: None,
        };
        let ticket = match session.register(&frame, &ctx) {
            Ok(t) => t,
            Err(reply) => {
                let _ = tx.send(reply).await;
                continue;
            }
        };
        let session = session.clone();
        let tx = tx.clone();
        // Each request runs on its own so a slow tool never blocks the client's other traffic
        // (including its answers to the upstream's sampling or elicitation requests).
        tasks.spawn(async move {
            if let Some(reply) = session.run_registered(frame, ctx, ticket).await
                && let Ok(queued) = tx.reserve().await
            {
                // The slot is held until the queue has room for the reply, and given back before
                // the reply can reach the client: a client that sends its next request as soon
                // as it reads this reply finds the slot free.
                drop(slot);
                queued.send(reply);
            }
        });
    }
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!("shutdown grace period over; failing the calls still in flight");
    }
    session.close().await;
    session.outbound.detach();
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
}
