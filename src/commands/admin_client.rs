//! `tollgate sessions …` and `tollgate approvals …`: thin clients of a running gateway's admin
//! API (the gateway owns the store; an embedded store cannot be opened twice).

use crate::config::Config;
use serde_json::Value;
use std::time::Duration;

/// Where the admin API is and how to authenticate to it.
pub struct AdminTarget {
    pub base: String,
    pub token: String,
}

impl AdminTarget {
    /// From flags, else the config's `[admin]` section. The token: `TOLLGATE_ADMIN_TOKEN`, else
    /// the config's `admin.token` reference.
    pub fn resolve(admin: Option<String>, config: Option<&Config>) -> Result<AdminTarget, String> {
        let section = config.and_then(|c| c.admin.as_ref());
        let base = match (admin, section) {
            (Some(url), _) => url,
            (None, Some(a)) => format!("http://{}", a.listen),
            (None, None) => "http://127.0.0.1:8081".into(),
        };
        let token = match (std::env::var("TOLLGATE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()), section, config) {
            (Some(t), _, _) => t,
            (None, Some(a), Some(c)) => crate::secrets::resolve(&a.token, &c.base_dir)?,
            _ => return Err("no admin token: set TOLLGATE_ADMIN_TOKEN or pass --config with an [admin] section".into()),
        };
        Ok(AdminTarget { base: base.trim_end_matches('/').to_string(), token })
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        operator: Option<&str>,
    ) -> Result<Value, String> {
        let client = crate::transport::client_tls::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(op) = operator {
            req = req.header("x-tollgate-operator", op);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("cannot reach the admin API at {}: {e}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(value)
        } else {
            let msg = value.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or(value.to_string());
            Err(format!("{status}: {msg}"))
        }
    }
}

fn ago(ms: u64) -> String {
    let secs = crate::session::store::now_ms().saturating_sub(ms) / 1000;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

fn field<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("-")
}

fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

pub enum SessionsAction {
    List,
    Show(String),
    Steer(String, &'static str),
}

pub async fn sessions(target: &AdminTarget, action: SessionsAction, json: bool) -> Result<String, String> {
    let value = match &action {
        SessionsAction::List => target.call(reqwest::Method::GET, "/v1/sessions", None, None).await?,
        SessionsAction::Show(id) => {
            target.call(reqwest::Method::GET, &format!("/v1/sessions/{id}"), None, None).await?
        }
        SessionsAction::Steer(id, verb) => {
            target.call(reqwest::Method::POST, &format!("/v1/sessions/{id}/{verb}"), None, None).await?
        }
    };
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()));
    }
    let mut out = String::new();
    match action {
        SessionsAction::List => {
            let sessions = value.get("sessions").and_then(Value::as_array).cloned().unwrap_or_default();
            if sessions.is_empty() {
                out.push_str("no sessions\n");
            }
            for s in sessions {
                out.push_str(&format!(
                    "{}  {:<7}  {:<16}  {:<20}  calls={} denied={}  last seen {}\n",
                    field(&s, "/id"),
                    field(&s, "/state"),
                    field(&s, "/principal"),
                    field(&s, "/client/client_info/name"),
                    num(&s, "/usage/calls"),
                    num(&s, "/usage/denied"),
                    ago(num(&s, "/last_seen_ms")),
                ));
            }
        }
        SessionsAction::Show(_) => {
            let s = &value["session"];
            out.push_str(&format!("session    {}\n", field(s, "/id")));
            out.push_str(&format!("state      {}\n", field(s, "/state")));
            out.push_str(&format!("principal  {}\n", field(s, "/principal")));
            out.push_str(&format!(
                "client     {} {} (protocol {})\n",
                field(s, "/client/client_info/name"),
                field(s, "/client/client_info/version"),
                field(s, "/client/version")
            ));
            let currency = value.get("currency").and_then(Value::as_str).unwrap_or("");
            out.push_str(&format!(
                "usage      calls={} denied={} bytes in/out={}/{} est. tokens in/out={}/{} cost={} {currency}\n",
                num(s, "/usage/calls"),
                num(s, "/usage/denied"),
                num(s, "/usage/bytes_in"),
                num(s, "/usage/bytes_out"),
                num(s, "/usage/tokens_in"),
                num(s, "/usage/tokens_out"),
                crate::cost::format_micros(num(s, "/usage/cost_micros")),
            ));
            out.push_str(&format!(
                "created    {}\nlast seen  {}\n",
                ago(num(s, "/created_ms")),
                ago(num(s, "/last_seen_ms"))
            ));
            if let Some(pending) = value["pending_approvals"].as_array().filter(|a| !a.is_empty()) {
                out.push_str("pending approvals:\n");
                for a in pending {
                    out.push_str(&format!("  {}  {} ({})\n", field(a, "/id"), field(a, "/tool"), field(a, "/rule")));
                }
            }
            out.push_str("recent calls (newest first; est. tokens in/out, cost):\n");
            for c in value["history"].as_array().cloned().unwrap_or_default() {
                out.push_str(&format!(
                    "  {:>8}  {:<30}  {:<12}  {:>6} ms  {:>6}/{:<6}  {}  {}\n",
                    ago(num(&c, "/at_ms")),
                    field(&c, "/tool"),
                    field(&c, "/outcome"),
                    num(&c, "/latency_ms"),
                    num(&c, "/tokens_in"),
                    num(&c, "/tokens_out"),
                    crate::cost::format_micros(num(&c, "/cost_micros")),
                    field(&c, "/rule"),
                ));
            }
        }
        SessionsAction::Steer(id, _) => out.push_str(&format!("session {id}: {}\n", field(&value, "/state"))),
    }
    Ok(out)
}

pub enum ApprovalsAction {
    List,
    Decide { id: String, approve: bool, reason: Option<String>, operator: Option<String> },
}

pub async fn approvals(target: &AdminTarget, action: ApprovalsAction, json: bool) -> Result<String, String> {
    let value = match &action {
        ApprovalsAction::List => target.call(reqwest::Method::GET, "/v1/approvals", None, None).await?,
        ApprovalsAction::Decide { id, approve, reason, operator } => {
            let verb = if *approve { "approve" } else { "deny" };
            let body = reason.as_ref().map(|r| serde_json::json!({ "reason": r }));
            target.call(reqwest::Method::POST, &format!("/v1/approvals/{id}/{verb}"), body, operator.as_deref()).await?
        }
    };
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()));
    }
    let mut out = String::new();
    match action {
        ApprovalsAction::List => {
            let list = value.get("approvals").and_then(Value::as_array).cloned().unwrap_or_default();
            if list.is_empty() {
                out.push_str("no pending approvals\n");
            }
            for a in list {
                out.push_str(&format!(
                    "{}  {:<30}  session {}  principal {}  {}\n    args {}\n",
                    field(&a, "/id"),
                    field(&a, "/tool"),
                    field(&a, "/session"),
                    field(&a, "/principal"),
                    ago(num(&a, "/created_ms")),
                    a.get("arguments").map(Value::to_string).unwrap_or_default(),
                ));
            }
        }
        ApprovalsAction::Decide { id, approve, .. } => {
            out.push_str(&format!("approval {id}: {}\n", if approve { "approved" } else { "denied" }))
        }
    }
    Ok(out)
}
