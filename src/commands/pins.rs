//! `tollgate pins list|approve`: the operator's side of tool-definition pinning, through a
//! running gateway's admin API (pins live in its state store).

use super::admin_client::AdminTarget;
use serde_json::Value;
use std::fmt::Write;

pub async fn list(target: &AdminTarget, json: bool) -> Result<String, String> {
    let value = target.call(reqwest::Method::GET, "/v1/pins", None, None).await?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()));
    }
    let mut out = String::new();
    for pin in value["pins"].as_array().cloned().unwrap_or_default() {
        let short = |v: &Value| v.as_str().map(|d| d[..d.len().min(16)].to_string()).unwrap_or_default();
        let state = match pin["pending"].as_str() {
            Some(_) => format!("CHANGED → {}… (blocked; approve to allow)", short(&pin["pending"])),
            None => "ok".into(),
        };
        let name = format!("{}/{}", pin["upstream"].as_str().unwrap_or(""), pin["tool"].as_str().unwrap_or(""));
        let _ = writeln!(out, "{name:<40} {}…  {state}", short(&pin["pinned"]));
    }
    if out.is_empty() {
        out.push_str("no pinned tools yet (tools are pinned when first listed)\n");
    }
    Ok(out)
}

pub async fn approve(target: &AdminTarget, upstream: &str, tool: &str) -> Result<String, String> {
    let value = target.call(reqwest::Method::POST, &format!("/v1/pins/{upstream}/{tool}/approve"), None, None).await?;
    Ok(format!("approved {upstream}/{tool}: pinned {}\n", value["pinned"].as_str().unwrap_or("?")))
}
