//! Cost attribution: what one tool call weighs (bytes, estimated tokens) and what it costs
//! (configured prices), for the session's usage, its recent calls, the audit record and the
//! metrics.
//!
//! What is measured is the payload a model writes and reads, not the wire: "in" is the call's
//! `arguments` as the client sent them, "out" is the reply's `result` (or `error`) after
//! redaction. The JSON-RPC envelope, the tool name and `_meta` are left out, so the figures do
//! not depend on the transport or the protocol generation (a 2026-07-28 client repeats its
//! capabilities in every request's `_meta`). A call the gateway refuses with a gateway error
//! counts nothing out.
//!
//! Only a call that reached its upstream is charged: the first `[[cost.price]]` whose globs match
//! the upstream's name and its own tool name prices it (see [`price`]); a call refused by policy
//! costs nothing but its bytes and tokens still count.
//!
//! The call's `policy::trail::Trail::cost` holds its `CallCost` once the call is done; the
//! session hands it to `telemetry::metrics` (counters per upstream, tool and direction).

pub mod estimate;
pub mod price;

use crate::config::CostConfig;
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::trail::Trail;
use estimate::TokenEstimator;
use price::Price;
pub use price::format_micros;
use serde::Serialize;
use serde_json::value::RawValue;

/// Size of one payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Measure {
    pub bytes: u64,
    pub tokens: u64,
}

/// Everything counted for one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallCost {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Micro-units of the configured currency (0 when no price matched or the call was not forwarded).
    pub cost_micros: u64,
    /// `cost.price[N]`: the price that matched, if any (also for a call not charged).
    pub price: Option<usize>,
}

impl CallCost {
    /// The price's config key, `cost.price[N]`.
    pub fn price_key(&self) -> Option<String> {
        self.price.map(|i| format!("cost.price[{i}]"))
    }
}

/// The estimator, the prices and the currency, compiled from `[cost]`.
#[derive(Debug)]
pub struct CostModel {
    estimator: Box<dyn TokenEstimator>,
    prices: Vec<Price>,
    currency: String,
}

impl Default for CostModel {
    /// Four bytes per token, no prices, USD: what an absent `[cost]` means.
    fn default() -> Self {
        CostModel { estimator: Box::new(estimate::BytesPerToken(4)), prices: Vec::new(), currency: "USD".into() }
    }
}

impl CostModel {
    /// Compiles (and so validates) a `[cost]` section; errors name the key.
    pub fn from_config(config: &CostConfig) -> Result<CostModel, String> {
        let prices = config
            .prices
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let key = |field: &str| format!("cost.price[{i}].{field}");
                Ok(Price {
                    upstream: p.upstream.clone(),
                    tool: p.tool.clone(),
                    per_call: price::to_micros(&key("per_call"), p.per_call)?,
                    per_1k_tokens_in: price::to_micros(&key("per_1k_tokens_in"), p.per_1k_tokens_in)?,
                    per_1k_tokens_out: price::to_micros(&key("per_1k_tokens_out"), p.per_1k_tokens_out)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(CostModel {
            estimator: estimate::build(config.estimator, config.bytes_per_token.unwrap_or(4)),
            prices,
            currency: config.currency.clone(),
        })
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn estimator(&self) -> &dyn TokenEstimator {
        self.estimator.as_ref()
    }

    /// Bytes and estimated tokens of one payload.
    pub fn measure(&self, text: &str) -> Measure {
        Measure { bytes: text.len() as u64, tokens: self.estimator.estimate(text) }
    }

    /// The figures of one call on `upstream`'s `tool` (its own name). `forwarded`: the call
    /// reached the upstream, so its price applies.
    pub fn call_cost(&self, upstream: &str, tool: &str, input: Measure, output: Measure, forwarded: bool) -> CallCost {
        let found = self.prices.iter().position(|p| p.matches(upstream, tool));
        let cost_micros = match found {
            Some(i) if forwarded => self.prices[i].charge(input.tokens, output.tokens),
            _ => 0,
        };
        CallCost {
            bytes_in: input.bytes,
            bytes_out: output.bytes,
            tokens_in: input.tokens,
            tokens_out: output.tokens,
            cost_micros,
            price: found,
        }
    }

    /// The call's figures, computed once per call and kept in its trail: the audit layer and
    /// the session both ask, and both get the same answer.
    pub fn settle(
        &self,
        trail: &Trail,
        upstream: &str,
        tool: &str,
        input: Measure,
        outcome: &Result<Frame, Error>,
    ) -> CallCost {
        trail.cost_or_init(|| {
            self.call_cost(upstream, tool, input, self.measure(reply_text(outcome)), trail.forwarded())
        })
    }
}

/// The raw text of a request's `params.arguments` ("" when absent or unreadable).
pub fn arguments_text(frame: &Frame) -> &str {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        arguments: Option<&'a RawValue>,
    }
    frame.params_as::<Params>().ok().and_then(|p| p.arguments).map(RawValue::get).unwrap_or("")
}

/// The raw text of a reply's `result` or `error` ("" for a gateway error: nothing of the
/// upstream's reaches the model).
pub fn reply_text(outcome: &Result<Frame, Error>) -> &str {
    match outcome {
        Ok(frame) => frame.result().or_else(|| frame.error()).unwrap_or(""),
        Err(_) => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn model(toml: &str) -> CostModel {
        let config = Config::parse(toml, "t.toml").unwrap();
        CostModel::from_config(&config.cost).unwrap()
    }

    #[test]
    fn the_first_matching_price_applies_to_forwarded_calls_only() {
        let m = model(
            "[cost]\ncurrency = \"EUR\"\n\
             [[cost.price]]\nupstream = \"search\"\ntool = \"web_*\"\nper_call = 0.002\nper_1k_tokens_out = 0.5\n\
             [[cost.price]]\nupstream = \"search\"\nper_call = 0.001\n",
        );
        assert_eq!(m.currency(), "EUR");
        let input = m.measure(r#"{"q":"rust"}"#);
        assert_eq!(input, Measure { bytes: 12, tokens: 3 });
        let output = m.measure(&"x".repeat(4000));
        assert_eq!(output.tokens, 1000);
        let web = m.call_cost("search", "web_search", input, output, true);
        assert_eq!(web.cost_micros, 2000 + 500_000);
        assert_eq!(web.price_key().as_deref(), Some("cost.price[0]"));
        let other = m.call_cost("search", "images", input, output, true);
        assert_eq!((other.cost_micros, other.price), (1000, Some(1)));
        let denied = m.call_cost("search", "web_search", input, output, false);
        assert_eq!((denied.cost_micros, denied.price, denied.tokens_out), (0, Some(0), 1000));
        let unpriced = m.call_cost("fs", "read", input, output, true);
        assert_eq!((unpriced.cost_micros, unpriced.price), (0, None));
    }

    #[test]
    fn the_estimator_is_chosen_in_config() {
        assert_eq!(CostModel::default().measure("abcdefgh").tokens, 2);
        assert_eq!(model("[cost]\nbytes_per_token = 2\n").measure("abcdefgh").tokens, 4);
        let m = model("[cost]\nestimator = \"char_classes\"\n");
        assert_eq!(m.estimator().name(), "char_classes");
        assert_eq!(m.measure("日本語").tokens, 3);
    }

    #[test]
    fn bad_cost_sections_name_the_key() {
        for (text, key) in [
            ("[cost]\n[[cost.price]]\nper_call = -1\n", "cost.price[0].per_call"),
            ("[cost]\n[[cost.price]]\nper_1k_tokens_in = 0.0000001\n", "cost.price[0].per_1k_tokens_in"),
            ("[cost]\nbytes_per_token = 0\n", "cost.bytes_per_token"),
            ("[cost]\nestimator = \"char_classes\"\nbytes_per_token = 3\n", "cost.bytes_per_token"),
            ("[cost]\nestimator = \"tiktoken\"\n", "estimator"),
            ("[cost]\ncurrency = \"\"\n", "cost.currency"),
            ("[cost]\n[[cost.price]]\nupstream = \"\"\n", "cost.price[0].upstream"),
            ("[cost]\n[[cost.price]]\nper_cal = 1\n", "per_cal"),
        ] {
            let e = Config::parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
