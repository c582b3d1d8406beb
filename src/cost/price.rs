//! Prices in integer micro-units (millionths of the currency), so that every sum — per call,
//! in the store's counters (Redis HINCRBY, redb), over a window of the audit log — is exact.
//!
//! A call's cost is
//! `per_call + round((tokens_in × per_1k_tokens_in + tokens_out × per_1k_tokens_out) / 1000)`,
//! all in micro-units, rounded once per call to the nearest micro-unit (halves up).

use crate::policy::glob;

/// One `[[cost.price]]` entry, converted to micro-units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// Glob over the upstream's configured name.
    pub upstream: String,
    /// Glob over the upstream's own tool name (not the namespaced one), as policies use.
    pub tool: String,
    pub per_call: u64,
    pub per_1k_tokens_in: u64,
    pub per_1k_tokens_out: u64,
}

impl Price {
    pub fn matches(&self, upstream: &str, tool: &str) -> bool {
        glob::matches(&self.upstream, upstream) && glob::matches(&self.tool, tool)
    }

    /// What one call with these token counts costs, in micro-units (saturating, never wrapping).
    pub fn charge(&self, tokens_in: u64, tokens_out: u64) -> u64 {
        let tokens = u128::from(tokens_in) * u128::from(self.per_1k_tokens_in)
            + u128::from(tokens_out) * u128::from(self.per_1k_tokens_out);
        let per_tokens = (tokens + 500) / 1000;
        u64::try_from(u128::from(self.per_call) + per_tokens).unwrap_or(u64::MAX)
    }
}

/// The most a single price may be: a million currency units (10^12 micro-units). Far above any
/// real price, and low enough that a day of calls cannot overflow a signed 64-bit counter.
const MAX_PRICE: f64 = 1_000_000.0;

/// A configured decimal price in micro-units. Refuses negative, non-finite and huge prices, and
/// prices finer than one micro-unit (they would be rounded away silently).
pub fn to_micros(key: &str, value: f64) -> Result<u64, String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{key} = {value}: a price must be a finite number, zero or more"));
    }
    if value > MAX_PRICE {
        return Err(format!("{key} = {value}: more than {MAX_PRICE} per unit; is this a typo?"));
    }
    let scaled = value * 1_000_000.0;
    let micros = scaled.round();
    // Decimal prices like 0.002 are not exact in binary; anything within a thousandth of a
    // micro-unit of a whole micro-unit is that micro-unit.
    if (scaled - micros).abs() > 1e-3 {
        return Err(format!(
            "{key} = {value}: finer than one micro-unit (0.000001); prices are kept in whole micro-units"
        ));
    }
    Ok(micros as u64)
}

/// Micro-units as a decimal amount with six places: `2100` → `0.002100`.
pub fn format_micros(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(per_call: u64, per_1k_in: u64, per_1k_out: u64) -> Price {
        Price {
            upstream: "*".into(),
            tool: "*".into(),
            per_call,
            per_1k_tokens_in: per_1k_in,
            per_1k_tokens_out: per_1k_out,
        }
    }

    #[test]
    fn decimal_prices_become_exact_micro_units() {
        assert_eq!(to_micros("k", 0.002), Ok(2000));
        assert_eq!(to_micros("k", 0.1), Ok(100_000));
        assert_eq!(to_micros("k", 0.000001), Ok(1));
        assert_eq!(to_micros("k", 0.0), Ok(0));
        assert_eq!(to_micros("k", 15.0), Ok(15_000_000));
        assert_eq!(to_micros("k", 1_000_000.0), Ok(1_000_000_000_000));
        for bad in [-0.5, f64::NAN, f64::INFINITY, 0.0000001, 0.0000015, 2_000_000.0] {
            let e = to_micros("cost.price[0].per_call", bad).unwrap_err();
            assert!(e.starts_with("cost.price[0].per_call"), "{e}");
        }
    }

    #[test]
    fn a_call_costs_per_call_plus_tokens_rounded_once() {
        // 0.002 per call, 0.5 per 1k tokens in, 1.5 per 1k tokens out.
        let p = price(2000, 500_000, 1_500_000);
        assert_eq!(p.charge(0, 0), 2000);
        // 5 tokens in: 2500 µ; 7 tokens out: 10500 µ.
        assert_eq!(p.charge(5, 7), 2000 + 2500 + 10_500);
        // Rounding happens once, on the sum, halves up: 1 token at 0.0015/1k is 1.5 µ → 2 µ;
        // 1 token at 0.0005/1k is 0.5 µ → 1 µ; 1 in + 1 out at 0.0001/1k + 0.0003/1k is 0.4 µ → 0.
        assert_eq!(price(0, 1500, 0).charge(1, 0), 2);
        assert_eq!(price(0, 500, 0).charge(1, 0), 1);
        assert_eq!(price(0, 499, 0).charge(1, 0), 0);
        assert_eq!(price(0, 100, 300).charge(1, 1), 0);
        assert_eq!(price(0, 250, 250).charge(1, 1), 1);
        // Huge counts saturate instead of wrapping.
        assert_eq!(price(u64::MAX, 1_000_000, 0).charge(u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn globs_pick_upstream_and_tool() {
        let p = Price { upstream: "search*".into(), tool: "web_?".into(), ..price(1, 0, 0) };
        assert!(p.matches("search", "web_a"));
        assert!(p.matches("search-eu", "web_b"));
        assert!(!p.matches("search", "web_ab"));
        assert!(!p.matches("fs", "web_a"));
    }

    #[test]
    fn amounts_print_with_six_places() {
        assert_eq!(format_micros(0), "0.000000");
        assert_eq!(format_micros(2100), "0.002100");
        assert_eq!(format_micros(12_345_678), "12.345678");
    }
}
