//! `tollgate pins list|approve`: the operator's side of tool-definition pinning.

use crate::policy::pins;
use std::fmt::Write;
use std::path::Path;

pub fn list(path: &Path) -> Result<String, String> {
    let file = pins::read(path)?;
    let mut out = String::new();
    for (tool, digest) in &file.pinned {
        let state = match file.pending.get(tool) {
            Some(new) => format!("CHANGED → {}… (blocked; approve to allow)", &new[..new.len().min(16)]),
            None => "ok".into(),
        };
        let _ = writeln!(out, "{tool:<40} {}…  {state}", &digest[..digest.len().min(16)]);
    }
    if out.is_empty() {
        out.push_str("no pinned tools yet (tools are pinned when first listed)\n");
    }
    Ok(out)
}

pub fn approve(path: &Path, upstream: &str, tool: &str) -> Result<String, String> {
    let digest = pins::approve(path, upstream, tool)?;
    Ok(format!("approved {upstream}/{tool}: pinned {digest}\n"))
}
