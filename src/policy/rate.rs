//! Rate limits as policy: `"120/min"`-style rates with a burst, per principal, per session
//! and per tool (pure: which limits apply to a call, under which keys and rule ids; the
//! counting is the state store's, so replicas share it).

use super::{Policy, Roles};
use crate::session::store::RateQuota;
use serde::Deserialize;
use std::time::Duration;

/// A sustained rate and how many calls may come at once.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// `N/sec`, `N/min` or `N/hour`.
    pub rate: Rate,
    /// Calls allowed at once before the rate applies (default: one period's worth, at most 100).
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl TryFrom<String> for Rate {
    type Error = String;
    fn try_from(s: String) -> Result<Rate, String> {
        let bad = || format!("rate {s:?}: write N/sec, N/min or N/hour with N at least 1 (e.g. \"120/min\")");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Rate { count, per })
    }
}

impl RateLimit {
    pub fn quota(&self) -> RateQuota {
        RateQuota {
            per_period: self.rate.count,
            period: self.rate.per,
            burst: self.burst.unwrap_or(self.rate.count.min(100)).max(1),
        }
    }

    pub fn describe(&self) -> String {
        let unit = match self.rate.per.as_secs() {
            1 => "sec",
            60 => "min",
            _ => "hour",
        };
        format!("{}/{unit}, burst {}", self.rate.count, self.quota().burst)
    }
}

/// `[rate_limits]` in a policy file.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// All calls of one principal, across its sessions (and replicas).
    pub principal: Option<RateLimit>,
    /// All calls of one session.
    pub session: Option<RateLimit>,
}

/// One limit that applies to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedLimit {
    /// "principal", "session" or "tool".
    pub scope: &'static str,
    /// Store key (without the store's own prefix).
    pub key: String,
    pub limit: RateLimit,
    pub rule: String,
}

impl Policy {
    /// The limits a call by `principal` in `session` (its handle, not its id) to `tool` counts
    /// against, broadest first.
    pub fn rate_limits(
        &self,
        principal: &str,
        roles: &Roles,
        session: &str,
        upstream: &str,
        tool: &str,
    ) -> Vec<AppliedLimit> {
        let mut out = Vec::new();
        let (limits, file) = &self.rate_limits;
        if let Some(limit) = limits.principal {
            out.push(AppliedLimit {
                scope: "principal",
                key: format!("p:{principal}"),
                limit,
                rule: format!("{file}:rate_limits.principal"),
            });
        }
        if let Some(limit) = limits.session {
            out.push(AppliedLimit {
                scope: "session",
                key: format!("s:{session}"),
                limit,
                rule: format!("{file}:rate_limits.session"),
            });
        }
        if let Some((r, t)) = self.tool_rules(roles, upstream, tool)
            && let Some(limit) = t.rate_limit
        {
            out.push(AppliedLimit {
                scope: "tool",
                key: format!("t:{principal}:{upstream}:{tool}"),
                limit,
                rule: format!("{}:{}:tool:{}:rate_limit", r.file, r.label(), t.name),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!(Rate::try_from("120/min".to_string()).unwrap().per, Duration::from_secs(60));
        assert!(Rate::try_from("0/min".to_string()).is_err());
        assert!(Rate::try_from("lots".to_string()).unwrap_err().contains("N/min"));
    }

    #[test]
    fn limits_apply_per_principal_session_and_tool() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "[rate_limits]\nprincipal = { rate = \"600/min\" }\nsession = { rate = \"10/sec\", burst = 5 }\n\
             [[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"search\"\nrate_limit = { rate = \"2/min\", burst = 1 }\n",
        )
        .unwrap();
        let p = Policy::load_dir(dir.path()).unwrap();
        let limits = p.rate_limits("alice", &Roles::none(), "h1", "fs", "search");
        let scopes: Vec<&str> = limits.iter().map(|l| l.scope).collect();
        assert_eq!(scopes, ["principal", "session", "tool"]);
        assert_eq!(limits[1].limit.quota().burst, 5);
        assert_eq!(limits[2].rule, "p.toml:fs:tool:search:rate_limit");
        assert_eq!(p.rate_limits("alice", &Roles::none(), "h1", "fs", "read").len(), 2);
    }
}
