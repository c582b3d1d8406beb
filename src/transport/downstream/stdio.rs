//! stdio downstream: the client launched us and speaks newline-delimited JSON-RPC on our
//! stdin/stdout. stdout carries only JSON-RPC; logs go to stderr.

use crate::error::Error;
use crate::jsonrpc::{Frame, FrameError, Kind};
use crate::session::{RequestCtx, Session};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves one client until stdin closes or `shutdown` fires, then drains and closes the session.
pub async fn serve(session: Arc<Session>, max_message: usize, shutdown: CancellationToken, grace: Duration) {
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    session.outbound.attach(tx.clone());
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(mut line) = rx.recv().await {
            line.push('\n');
            if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });

    let tasks = TaskTracker::new();
    let mut lines = FramedRead::new(tokio::io::stdin(), LinesCodec::new_with_max_length(max_message));
    loop {
        let line = tokio::select! {
            line = lines.next() => line,
            _ = shutdown.cancelled() => break,
        };
        let text = match line {
            None => break,
            Some(Ok(text)) if text.trim().is_empty() => continue,
            Some(Ok(text)) => text,
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                let e = Error::InvalidRequest(format!(
                    "message larger than {max_message} bytes; split the data or raise server.max_body_bytes"
                ));
                let _ = tx.send(e.to_jsonrpc(None)).await;
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "stdin failed");
                break;
            }
        };
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err(e) => {
                let id = match &e {
                    FrameError::Invalid { id, .. } => id.clone(),
                    FrameError::Parse(_) => None,
                };
                let _ = tx.send(Error::from(e).to_jsonrpc(id.as_deref())).await;
                continue;
            }
        };
        if frame.kind() != Kind::Request {
            // Handled in order, before the next line is read: a cancellation takes effect before
            // the client's next request, and a client's reply reaches its upstream promptly.
            session.handle(frame, RequestCtx { key: String::new(), related: None }).await;
            continue;
        }
        let session = session.clone();
        let tx = tx.clone();
        // Each request runs on its own so a slow tool never blocks the client's other traffic
        // (including its answers to the upstream's sampling or elicitation requests).
        tasks.spawn(async move {
            let key = frame.id().unwrap_or_default().to_string();
            if let Some(reply) = session.handle(frame, RequestCtx { key, related: None }).await {
                let _ = tx.send(reply).await;
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
    let _ = writer.await;
}
