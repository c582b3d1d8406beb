//! Waiting for a person: a call that policy marks as needing approval is stored as a pending
//! approval and waits until someone decides it — an operator through the admin API or CLI (on
//! any replica), or the person at the client when it supports elicitation — or until the
//! deadline, which decides it as denied. The store makes the first decision the only one.

use super::Session;
use super::request_state::ApprovalState;
use super::store::{ApprovalDecision, ApprovalRecord, DecideOutcome, new_id, now_ms};
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::transport::upstream::RelatedSink;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// How often a waiting call re-reads a decision that another replica may record.
const POLL: Duration = Duration::from_millis(200);

/// Wakes the calls waiting on approvals decided through this process.
#[derive(Default)]
pub struct Decisions {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Decisions {
    fn register(&self, id: &str) -> Arc<Notify> {
        self.waiters.lock().expect("waiters lock").entry(id.to_string()).or_default().clone()
    }
    fn unregister(&self, id: &str) {
        self.waiters.lock().expect("waiters lock").remove(id);
    }
    /// Called after a decision was stored.
    pub fn wake(&self, id: &str) {
        if let Some(n) = self.waiters.lock().expect("waiters lock").get(id) {
            n.notify_waiters();
        }
    }
}

/// The key of the gateway's own question in an `input_required` result's `inputRequests`.
pub const APPROVAL_INPUT: &str = "tollgate_approval";

fn client_name(info: &Value) -> String {
    info.get("name").and_then(|n| n.as_str()).unwrap_or("client").to_string()
}

/// The elicitation that asks the person at the client (both protocol generations).
fn approval_prompt(record: &ApprovalRecord, reason: &str) -> Value {
    json!({
        "mode": "form",
        "message": format!(
            "Tollgate: allow {} on {} with arguments {}? ({reason})",
            record.tool, record.upstream, record.arguments
        ),
        "requestedSchema": {
            "type": "object",
            "properties": { "approve": { "type": "boolean", "title": "Allow this tool call?" } },
            "required": ["approve"]
        }
    })
}

/// An elicitation answer: approved only on `accept` with `approve: true`.
fn approved_in(answer: &Value) -> bool {
    answer.get("action").and_then(Value::as_str) == Some("accept")
        && answer.pointer("/content/approve").and_then(Value::as_bool) == Some(true)
}

/// What the waiting call needs to know about itself.
pub struct ApprovalAsk<'a> {
    pub upstream: &'a str,
    pub tool: &'a str,
    /// Already redacted: this is shown to people and stored.
    pub arguments: Value,
    pub rule: &'a str,
    pub reason: &'a str,
    pub related: Option<RelatedSink>,
}

struct Unregister<'a>(&'a Session, String);
impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.shared.decisions.unregister(&self.1);
        self.0.shared.metrics.approvals_changed(-1);
    }
}

impl Session {
    /// Stores a pending approval and waits for its decision (denied by "timeout" when nobody
    /// answers in time). Fails closed if the store cannot keep it.
    pub async fn await_approval(&self, ask: ApprovalAsk<'_>) -> Result<(String, ApprovalDecision), Error> {
        let timeout = self.shared.approvals.timeout();
        let record = self.pending_approval(&ask);
        let store = self.shared.store.clone();
        store.put_approval(&record).await?;
        let id = record.id.clone();
        tracing::info!(session = %self.handle, approval = %id, tool = ask.tool, rule = ask.rule, "call waiting for approval");
        let notify = self.shared.decisions.register(&id);
        self.shared.metrics.approvals_changed(1);
        let _unregister = Unregister(self, id.clone());
        let deadline = tokio::time::Instant::now() + timeout;

        let mut from_client = match self.shared.approvals.ask_client {
            true => self.ask_client(&record, ask.reason, ask.related),
            false => None,
        };
        loop {
            let changed = notify.notified();
            if let Some(decision) = store.get_approval(&id).await?.and_then(|r| r.decision) {
                return Ok((id, decision));
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(POLL) => {}
                answer = async { from_client.as_mut().expect("guarded").await }, if from_client.is_some() => {
                    from_client = None;
                    if let Ok(Some((approved, by))) = answer {
                        let decision = ApprovalDecision { approved, by, at_ms: now_ms(), reason: None };
                        self.decide(&id, &decision).await?;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let decision = ApprovalDecision {
                        approved: false,
                        by: "timeout".into(),
                        at_ms: now_ms(),
                        reason: Some(format!("no decision within {} s", timeout.as_secs())),
                    };
                    let decided = match self.decide(&id, &decision).await? {
                        DecideOutcome::Decided(r) | DecideOutcome::AlreadyDecided(r) => r.decision.unwrap_or(decision),
                        DecideOutcome::NotFound => decision,
                    };
                    return Ok((id, decided));
                }
            }
        }
    }

    fn pending_approval(&self, ask: &ApprovalAsk<'_>) -> ApprovalRecord {
        let now = now_ms();
        ApprovalRecord {
            id: new_id(),
            session: self.id.clone(),
            principal: self.principal.clone(),
            upstream: ask.upstream.to_string(),
            tool: ask.tool.to_string(),
            arguments: ask.arguments.clone(),
            rule: ask.rule.to_string(),
            created_ms: now,
            expires_ms: now + self.shared.approvals.timeout().as_millis() as u64,
            decision: None,
        }
    }

    /// True when approvals ride on the call itself: a 2026-07-28 client that can answer an
    /// elicitation gets an `input_required` result and retries with the answer.
    pub fn approves_through_input_required(&self) -> bool {
        self.shared.approvals.ask_client
            && self
                .client_hello()
                .is_some_and(|c| c.stateless && c.capabilities.get("elicitation").is_some_and(|e| !e.is_null()))
    }

    /// First round: stores the pending approval (operators see it too) and answers with the
    /// `input_required` result the client must fulfil and retry with.
    pub async fn ask_through_input_required(&self, ask: ApprovalAsk<'_>, args_digest: &str) -> Result<String, Error> {
        let record = self.pending_approval(&ask);
        self.shared.store.put_approval(&record).await?;
        tracing::info!(session = %self.handle, approval = %record.id, tool = ask.tool, "approval asked through input_required");
        let state = ApprovalState {
            approval: record.id.clone(),
            session: self.handle.clone(),
            tool: ask.tool.to_string(),
            args_digest: args_digest.to_string(),
            expires_ms: record.expires_ms,
            nonce: new_id(),
        };
        let result = json!({
            "resultType": "input_required",
            "inputRequests": {
                APPROVAL_INPUT: { "method": "elicitation/create", "params": approval_prompt(&record, ask.reason) }
            },
            "requestState": self.shared.state_key.seal(&state),
        });
        Ok(result.to_string())
    }

    /// The retry: checks the `requestState` (ours, unexpired, for this very call, never used
    /// before) and records the person's answer from `inputResponses`.
    pub async fn answer_through_input_required(
        &self,
        request_state: &str,
        input_responses: Option<&Value>,
        tool: &str,
        args_digest: &str,
    ) -> Result<(String, ApprovalDecision), Error> {
        let again = "call the tool again without requestState to be asked again";
        let state = self
            .shared
            .state_key
            .open(request_state, now_ms())
            .map_err(|why| Error::InvalidParams(format!("requestState is not valid ({why}); {again}")))?;
        if state.session != self.handle || state.tool != tool || state.args_digest != args_digest {
            return Err(Error::InvalidParams(format!(
                "requestState belongs to another call (session, tool or arguments differ); {again}"
            )));
        }
        let ttl = Duration::from_millis(state.expires_ms.saturating_sub(now_ms())) + Duration::from_secs(60);
        if !self.shared.store.use_nonce(&state.nonce, ttl).await? {
            return Err(Error::InvalidParams(format!("requestState was already used; {again}")));
        }
        let answer = input_responses.and_then(|r| r.get(APPROVAL_INPUT)).ok_or_else(|| {
            Error::InvalidParams(format!(
                "inputResponses.{APPROVAL_INPUT} is missing: answer the elicitation and retry"
            ))
        })?;
        let who = self.client_hello().map(|c| client_name(&c.client_info)).unwrap_or_else(|| "client".into());
        let decision = ApprovalDecision {
            approved: approved_in(answer),
            by: format!("client:{who}"),
            at_ms: now_ms(),
            reason: None,
        };
        match self.decide(&state.approval, &decision).await? {
            DecideOutcome::Decided(_) => Ok((state.approval, decision)),
            // An operator (or the deadline) decided first: that decision stands.
            DecideOutcome::AlreadyDecided(r) => {
                let d = r.decision.unwrap_or(ApprovalDecision {
                    approved: false,
                    by: "timeout".into(),
                    at_ms: now_ms(),
                    reason: Some("the approval expired".into()),
                });
                Ok((state.approval, d))
            }
            DecideOutcome::NotFound => Err(Error::InvalidParams(format!("the approval no longer exists; {again}"))),
        }
    }

    async fn decide(&self, id: &str, decision: &ApprovalDecision) -> Result<DecideOutcome, Error> {
        let outcome = self.shared.store.decide_approval(id, decision).await?;
        self.shared.decisions.wake(id);
        Ok(outcome)
    }

    /// Asks the person at the client through elicitation, when the client said it can answer
    /// one (2025-11-25 clients). Resolves to (approved, who) or None if they gave no answer.
    #[allow(clippy::type_complexity)]
    fn ask_client(
        &self,
        record: &ApprovalRecord,
        reason: &str,
        related: Option<RelatedSink>,
    ) -> Option<std::pin::Pin<Box<dyn Future<Output = Result<Option<(bool, String)>, oneshot::error::RecvError>> + Send>>>
    {
        let client = self.client_hello()?;
        if client.stateless || client.capabilities.get("elicitation").is_none_or(|e| e.is_null()) {
            return None;
        }
        let who = client_name(&client.client_info);
        let params = approval_prompt(record, reason);
        let rx = self.request_client("elicitation/create", &params.to_string(), related);
        Some(Box::pin(async move {
            let reply = rx.await?;
            let Some(result) = reply.result() else { return Ok(None) };
            let answer: Value = serde_json::from_str(result).unwrap_or_default();
            Ok(Some((approved_in(&answer), format!("client:{who}"))))
        }))
    }

    /// Sends the client a request of the gateway's own; the receiver gets the client's reply.
    pub fn request_client(&self, method: &str, params: &str, related: Option<RelatedSink>) -> oneshot::Receiver<Frame> {
        let n = self.next_server_request.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("\"tg-gw-{n}\"");
        let (tx, rx) = oneshot::channel();
        self.gateway_requests.lock().expect("gateway_requests lock").insert(id.clone(), tx);
        let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{},"params":{params}}}"#, json!(method));
        self.deliver(text, related);
        rx
    }
}
