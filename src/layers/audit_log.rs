//! AuditLog: every call leaves a trail. Outermost, so it sees every outcome (denials included)
//! and only redacted output. Two records per forwarded call: "admitted", written by the
//! innermost service just before the upstream hop (durable first if the tool may write: no
//! record, no action), and "completed" here; a call stopped by a rule gets one "denied" record.
//! If the log cannot take a record, the call fails closed. A call abandoned mid-way (client
//! gone) still gets its completion record, as "cancelled".

use crate::audit::sink::AuditLog;
use crate::audit::{self, AuditRecord};
use crate::cost::{CallCost, CostModel, Measure};
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::stack::ToolCall;
use crate::policy::trail::Trail;
use futures::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

const ARGS_PREVIEW_BYTES: usize = 4096;

#[derive(Clone)]
pub struct AuditLogLayer {
    log: Option<Arc<AuditLog>>,
}

impl AuditLogLayer {
    pub fn new(log: Option<Arc<AuditLog>>) -> AuditLogLayer {
        AuditLogLayer { log }
    }
}

impl<S> Layer<S> for AuditLogLayer {
    type Service = AuditLogService<S>;
    fn layer(&self, inner: S) -> AuditLogService<S> {
        AuditLogService { inner, log: self.log.clone() }
    }
}

#[derive(Clone)]
pub struct AuditLogService<S> {
    inner: S,
    log: Option<Arc<AuditLog>>,
}

/// Lets the innermost service write the admission record for this call.
pub struct Admission {
    log: Arc<AuditLog>,
    base: AuditRecord,
    admitted: AtomicBool,
}

impl Admission {
    /// Writes "admitted" (durably when the tool may write). `Err` means: do not forward.
    pub async fn admit(&self, call: &ToolCall) -> Result<(), Error> {
        let (writes, _) = call.policy.writes(&call.roles, &call.upstream, &call.tool);
        let mut record = self.base.clone();
        record.phase = "admitted".into();
        fill_decision(&mut record, &call.trail, call.policy.dry_run(&call.roles, &call.upstream));
        self.log.append(record, writes).await.map_err(audit_unavailable)?;
        self.admitted.store(true, Ordering::Release);
        Ok(())
    }
}

fn audit_unavailable(reason: String) -> Error {
    tracing::error!(reason = %reason, "audit log unavailable; failing the call closed");
    Error::AuditUnavailable(reason)
}

/// The decisions so far: the deciding one, every step, the approval.
fn fill_decision(record: &mut AuditRecord, trail: &Trail, dry_run: bool) {
    record.approval = trail.approval();
    record.pinned_digest = trail.pinned_digest();
    record.dry_run = dry_run;
    match trail.deciding() {
        Some(d) => {
            record.decision = d.decision.to_string();
            record.rule = Some(d.rule);
        }
        None => record.decision = "allow".into(),
    }
    record.trail = trail.steps();
}

/// The call's figures; cost and currency only when a price matched.
fn fill_cost(record: &mut AuditRecord, cost: &CallCost, currency: &str) {
    record.bytes_in = Some(cost.bytes_in);
    record.bytes_out = Some(cost.bytes_out);
    record.tokens_in = Some(cost.tokens_in);
    record.tokens_out = Some(cost.tokens_out);
    if let Some(price) = cost.price_key() {
        record.cost_micros = Some(cost.cost_micros);
        record.currency = Some(currency.to_string());
        record.price = Some(price);
    }
}

/// The parts of the record known before the call runs.
fn base_record(call: &ToolCall) -> AuditRecord {
    let meta = crate::mcp::meta::<serde_json::Value>(call.frame.params());
    let traceparent = meta.as_ref().and_then(|m| m.get("traceparent")).and_then(|t| t.as_str()).map(str::to_string);
    let mut args = call.arguments.clone();
    call.policy.redactor().redact_json(&mut args);
    AuditRecord {
        session: call.session.audit_handle().to_string(),
        principal: call.session.principal().to_string(),
        roles: call.roles.to_vec(),
        client: call.session.client_hello().map(|c| c.client_info),
        upstream: call.upstream.clone(),
        tool: call.public_name.clone(),
        upstream_tool: call.tool.name.clone(),
        jsonrpc_id: call.frame.id().unwrap_or("null").to_string(),
        meta,
        traceparent,
        args_digest: crate::policy::tool::digest(&call.arguments),
        args_redacted: Some(audit::cap(&args, ARGS_PREVIEW_BYTES)),
        tool_digest: Some(call.tool.digest.clone()).filter(|d| !d.is_empty()),
        policy_version: Some(call.policy.version.clone()),
        call_id: Some(crate::session::store::new_id()[..16].to_string()),
        writes: Some(call.policy.writes(&call.roles, &call.upstream, &call.tool).0),
        read_only_hint: call.tool.read_only_hint,
        ..Default::default()
    }
}

/// Writes the completion record even if the call's future is dropped (client gone).
struct Completion {
    log: Arc<AuditLog>,
    record: Option<AuditRecord>,
    admission: Arc<Admission>,
    started: Instant,
    /// What a cancelled call's record needs from the call (which has moved on by then).
    trail: Arc<Trail>,
    costs: Arc<CostModel>,
    upstream_tool: String,
    input: Measure,
}

impl Completion {
    fn finish(&mut self, outcome: &Result<Frame, Error>) -> Option<AuditRecord> {
        let mut record = self.record.take()?;
        record.phase = if self.admission.admitted.load(Ordering::Acquire) { "completed" } else { "denied" }.into();
        record.latency_us = Some(self.started.elapsed().as_micros() as u64);
        record.outcome = Some(audit::outcome_of(outcome).into());
        match outcome {
            Ok(frame) => {
                record.result_bytes = Some(frame.as_str().len());
                if record.phase == "denied" && record.outcome.as_deref() == Some("tool_error") {
                    record.outcome = Some("denied".into()); // e.g. invalid arguments answered as a tool error
                }
            }
            Err(e) => record.error_code = Some(e.code()),
        }
        Some(record)
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.phase = if self.admission.admitted.load(Ordering::Acquire) { "completed" } else { "denied" }.into();
            record.outcome = Some("cancelled".into());
            record.latency_us = Some(self.started.elapsed().as_micros() as u64);
            let dry_run = record.dry_run;
            fill_decision(&mut record, &self.trail, dry_run);
            let cost = self.trail.cost_or_init(|| {
                self.costs.call_cost(
                    &record.upstream,
                    &self.upstream_tool,
                    self.input,
                    Measure::default(),
                    self.trail.forwarded(),
                )
            });
            fill_cost(&mut record, &cost, self.costs.currency());
            self.log.append_detached(record, "a cancelled call");
        }
    }
}

impl<S> Service<ToolCall> for AuditLogService<S>
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

    fn call(&mut self, mut call: ToolCall) -> Self::Future {
        let Some(log) = self.log.clone() else { return self.inner.call(call).boxed() };
        let mut base = base_record(&call);
        base.dry_run = call.policy.dry_run(&call.roles, &call.upstream);
        let admission = Arc::new(Admission { log: log.clone(), base: base.clone(), admitted: AtomicBool::new(false) });
        call.admission = Some(admission.clone());
        let policy = call.policy.clone();
        let trail = call.trail.clone();
        let upstream = call.upstream.clone();
        let roles = call.roles.clone();
        let mut completion = Completion {
            log: log.clone(),
            record: Some(base),
            admission,
            started: Instant::now(),
            trail: trail.clone(),
            costs: call.session.shared().cost.clone(),
            upstream_tool: call.tool.name.clone(),
            input: call.input,
        };
        let inner = self.inner.call(call);
        async move {
            let outcome = inner.await;
            let cost =
                completion.costs.settle(&trail, &upstream, &completion.upstream_tool, completion.input, &outcome);
            let Some(mut record) = completion.finish(&outcome) else { return outcome };
            fill_decision(&mut record, &trail, policy.dry_run(&roles, &upstream));
            fill_cost(&mut record, &cost, completion.costs.currency());
            record.redactions = Some(trail.redactions());
            log.append(record, false).await.map_err(audit_unavailable)?;
            outcome
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::enforce_read_only::EnforceReadOnlyLayer;
    use crate::layers::testing::*;
    use crate::policy::stack::ForwardToUpstreamForTests;
    use tower::{ServiceBuilder, ServiceExt};

    async fn audited(
        policy: &crate::policy::Policy,
        tool: &str,
        ro: Option<bool>,
        log: &Arc<AuditLog>,
    ) -> Result<Frame, Error> {
        let service = ServiceBuilder::new()
            .layer(AuditLogLayer::new(Some(log.clone())))
            .layer(EnforceReadOnlyLayer)
            .service(ForwardToUpstreamForTests);
        service.oneshot(call(policy, tool, ro, json!({"k": "v"}))).await
    }

    #[tokio::test]
    async fn forwarded_calls_get_two_records_and_denials_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 1 << 20).unwrap();
        let policy = crate::policy::Policy::annotations_only(false);
        assert!(audited(&policy, "read", Some(true), &log).await.is_ok());
        assert_eq!(audited(&policy, "write", Some(false), &log).await.unwrap_err().code(), -31002);
        let records = crate::audit::read::records(&path).unwrap();
        let phases: Vec<&str> = records.iter().map(|r| r.phase.as_str()).collect();
        assert_eq!(phases, ["admitted", "completed", "denied"]);
        assert_eq!(records[1].outcome.as_deref(), Some("ok"));
        assert_eq!(records[2].rule.as_deref(), Some("default:read-only"));
        assert_eq!(records[2].error_code, Some(-31002));
        assert!(crate::audit::read::verify(&path).is_ok());

        // One call id links a call's records; the trail, the classification and the figures are kept.
        assert_eq!(records[0].call_id, records[1].call_id);
        assert_ne!(records[1].call_id, records[2].call_id);
        let layers: Vec<(&str, &str, &str)> =
            records[2].trail.iter().map(|t| (t.layer.as_str(), t.decision.as_str(), t.rule.as_str())).collect();
        assert_eq!(layers, [("read_only", "deny", "default:read-only")]);
        assert_eq!((records[1].writes, records[1].read_only_hint), (Some(false), Some(true)));
        assert_eq!((records[2].writes, records[2].read_only_hint), (Some(true), Some(false)));
        // `{"content":[{"type":"text","text":"ok"}]}` is 41 bytes: 11 tokens at 4 bytes each.
        assert_eq!((records[1].tokens_in, records[1].tokens_out), (Some(0), Some(11)));
        assert_eq!(records[2].tokens_out, Some(0), "a gateway error carries nothing of the upstream's");
        assert_eq!(records[1].cost_micros, None, "no price configured");
    }
}
