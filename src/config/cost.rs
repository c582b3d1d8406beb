//! `[cost]`: how calls are measured (the token estimator) and priced (`[[cost.price]]`), for
//! cost attribution in session usage, the audit log and `tollgate usage`. See `crate::cost`.

use crate::cost::estimate::EstimatorKind;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// A label for amounts (`USD`, `EUR`, `credits`); prices are in this unit.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// How tokens are estimated: `bytes_per_token` (default) or `char_classes`.
    #[serde(default)]
    pub estimator: EstimatorKind,
    /// For `estimator = "bytes_per_token"`: bytes per token (default 4).
    pub bytes_per_token: Option<u32>,
    /// Prices per upstream and tool; the first entry that matches a call prices it.
    #[serde(default, rename = "price")]
    pub prices: Vec<PriceConfig>,
}

/// One `[[cost.price]]`: decimal amounts in the currency, kept as whole micro-units.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Glob over the upstream's name (default `*`).
    #[serde(default = "any")]
    pub upstream: String,
    /// Glob over the upstream's own tool name, not the namespaced one (default `*`).
    #[serde(default = "any")]
    pub tool: String,
    #[serde(default)]
    pub per_call: f64,
    #[serde(default)]
    pub per_1k_tokens_in: f64,
    #[serde(default)]
    pub per_1k_tokens_out: f64,
}

fn default_currency() -> String {
    "USD".into()
}

fn any() -> String {
    "*".into()
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            currency: default_currency(),
            estimator: EstimatorKind::default(),
            bytes_per_token: None,
            prices: Vec::new(),
        }
    }
}

impl CostConfig {
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.currency;
        if c.is_empty() || c.len() > 16 || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch)) {
            return Err(format!("cost.currency = {c:?}: use 1 to 16 of A-Z a-z 0-9 _ - (e.g. \"USD\")"));
        }
        match (self.estimator, self.bytes_per_token) {
            (EstimatorKind::BytesPerToken, Some(n)) if !(1..=64).contains(&n) => {
                return Err(format!("cost.bytes_per_token = {n}: use 1 to 64"));
            }
            (EstimatorKind::CharClasses, Some(_)) => {
                return Err("cost.bytes_per_token: only applies to estimator = \"bytes_per_token\"".into());
            }
            _ => {}
        }
        for (i, p) in self.prices.iter().enumerate() {
            if p.upstream.is_empty() {
                return Err(format!("cost.price[{i}].upstream: empty; use \"*\" for every upstream"));
            }
            if p.tool.is_empty() {
                return Err(format!("cost.price[{i}].tool: empty; use \"*\" for every tool"));
            }
        }
        crate::cost::CostModel::from_config(self).map(|_| ())
    }
}
