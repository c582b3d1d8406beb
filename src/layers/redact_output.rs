//! RedactOutput: everything the upstream returns for a call — result text, structured content,
//! embedded resources, error messages and data — passes the policy's redaction rules, and output
//! over the size cap is withheld. Fail closed: output that cannot be inspected is not passed on.

use crate::error::Error;
use crate::jsonrpc::{self, Frame};
use crate::policy::redaction::{Redactor, Report};
use crate::policy::stack::ToolCall;
use futures::future::{BoxFuture, FutureExt};
use serde_json::Value;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone, Copy, Default)]
pub struct RedactOutputLayer;

impl<S> Layer<S> for RedactOutputLayer {
    type Service = RedactOutput<S>;
    fn layer(&self, inner: S) -> RedactOutput<S> {
        RedactOutput { inner }
    }
}

#[derive(Clone)]
pub struct RedactOutput<S> {
    inner: S,
}

/// The frame with its result or error redacted; the original when nothing matched.
/// `Err` when the payload cannot be read (the caller withholds it).
pub fn redact_frame(redactor: &Redactor, frame: Frame) -> Result<(Frame, Report), String> {
    let (part, is_error) = match (frame.result(), frame.error(), frame.params()) {
        (Some(r), _, _) => (r, false),
        (_, Some(e), _) => (e, true),
        (_, _, Some(p)) => (p, false),
        _ => return Ok((frame, Report::default())),
    };
    let mut value: Value = serde_json::from_str(part).map_err(|e| format!("unreadable upstream payload: {e}"))?;
    let report = redactor.redact_json(&mut value);
    if report.total == 0 {
        return Ok((frame, report));
    }
    let text = value.to_string();
    let rebuilt = if frame.params().is_some() && frame.result().is_none() && frame.error().is_none() {
        frame.with_params(&text)
    } else {
        let id = frame.id().unwrap_or("null");
        let body = if is_error {
            format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{text}}}"#)
        } else {
            jsonrpc::result(id, &text)
        };
        Frame::parse(body).map_err(|e| format!("redacted payload is not a frame: {e:?}"))?
    };
    Ok((rebuilt, report))
}

impl<S> Service<ToolCall> for RedactOutput<S>
where
    S: Service<ToolCall, Response = Frame, Error = Error> + Send,
    S::Future: Send + 'static,
{
    type Response = Frame;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Frame, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        let policy = call.policy.clone();
        let trail = call.trail.clone();
        let (upstream, tool) = (call.upstream.clone(), call.tool.clone());
        // The tool's or the defaults' cap wins; `[redaction] max_output_bytes` is the fallback.
        let limit = policy
            .max_output_bytes(&call.roles, &call.upstream, &call.tool.name)
            .or(policy.redactor().max_output_bytes());
        let inner = self.inner.call(call);
        async move {
            let reply = inner.await?;
            if let Some(max) = limit
                && reply.as_str().len() > max {
                    return Err(Error::OutputWithheld {
                        rule: "max_output_bytes".into(),
                        reason: format!("{} bytes exceed the limit of {max}", reply.as_str().len()),
                    });
                }
            // On the upstream's own output, before redaction changes any string.
            super::output_schema::check(&upstream, &tool, &reply, policy.redactor())?;
            match redact_frame(policy.redactor(), reply) {
                Ok((frame, report)) => {
                    trail.add_redactions(report.total);
                    if report.total > 0 {
                        tracing::info!(redactions = report.total, rules = ?report.by_rule.keys().collect::<Vec<_>>(), "redacted tool output");
                    }
                    Ok(frame)
                }
                Err(reason) => Err(Error::OutputWithheld { rule: "redaction".into(), reason }),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::*;

    #[test]
    fn results_errors_and_clean_frames() {
        let r = Redactor::new(&Default::default()).unwrap();
        let secret = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
        let f = Frame::parse(format!(
            r#"{{"jsonrpc":"2.0","id":3,"result":{{"content":[{{"type":"text","text":"{secret}"}}]}}}}"#
        ))
        .unwrap();
        let (out, report) = redact_frame(&r, f).unwrap();
        assert_eq!(report.total, 1);
        assert!(!out.as_str().contains(secret) && out.id() == Some("3"));
        let e = Frame::parse(format!(
            r#"{{"jsonrpc":"2.0","id":4,"error":{{"code":-1,"message":"bad {secret}","data":{{"t":"{secret}"}}}}}}"#
        ))
        .unwrap();
        let (out, report) = redact_frame(&r, e).unwrap();
        assert_eq!(report.total, 2);
        assert!(out.is_error() && !out.as_str().contains(secret));
        let clean = Frame::parse(r#"{"jsonrpc":"2.0","id":5,"result":{"n":1.50}}"#).unwrap();
        assert_eq!(redact_frame(&r, clean.clone()).unwrap().0.as_str(), clean.as_str(), "untouched bytes stay");
    }

    #[tokio::test]
    async fn oversized_output_is_withheld() {
        let policy = policy_from("[defaults]\nmax_output_bytes = 10\n[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n");
        let (reply, _) = run(RedactOutputLayer, call(&policy, "t", Some(true), json!({}))).await;
        assert_eq!(reply.unwrap_err().code(), -31009);
    }
}
