//! Usage records: one per request, with the engine's own token counts and the cost at the
//! edition's prices; totals by day and edition.

use serde::Serialize;

use super::StoreError;

/// One request's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// The tenant (`local` without a configuration).
    pub tenant: String,
    /// The key's public id, when a key was used.
    pub key_id: Option<String>,
    /// The edition (the request's `model`).
    pub edition: String,
    /// Unix seconds.
    pub created: u64,
    /// Prompt tokens (cached ones included).
    pub prompt_tokens: u64,
    /// Of the prompt tokens, those served from the prefix cache.
    pub cached_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// `stop`, `length`, `cancelled` or `error`.
    pub finish_reason: String,
    /// Cost at the edition's prices.
    pub cost: f64,
}

/// Totals of one tenant, day and edition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageTotal {
    /// The tenant.
    pub tenant: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The edition.
    pub edition: String,
    /// Requests.
    pub requests: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Cached prompt tokens.
    pub cached_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Requests that ended cancelled.
    pub cancelled: u64,
    /// Cost.
    pub cost: f64,
}

/// Cost of a request at prices per million tokens: uncached prompt tokens at `input`, cached
/// ones at `cached`, completion tokens at `output`.
pub fn cost(prices: &crate::config::Prices, prompt: u64, cached: u64, completion: u64) -> f64 {
    let uncached = prompt.saturating_sub(cached) as f64;
    (uncached * prices.input + cached as f64 * prices.cached + completion as f64 * prices.output) / 1e6
}

/// Usage records and their totals.
pub trait Usage {
    /// Records one request's usage; returns once committed.
    fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError>;

    /// Totals by tenant, day and edition for days in `from..=to` (`YYYY-MM-DD`), ordered by
    /// tenant, day and edition; one tenant's when `tenant` is given, every tenant's otherwise.
    fn usage_totals(&self, tenant: Option<&str>, from: &str, to: &str) -> Result<Vec<UsageTotal>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Prices;

    #[test]
    fn cost_uses_the_three_prices() {
        let prices = Prices { input: 2.0, cached: 0.5, output: 8.0 };
        let c = cost(&prices, 1_000_000, 400_000, 500_000);
        assert!((c - (1.2 + 0.2 + 4.0)).abs() < 1e-9, "{c}");
        assert_eq!(cost(&Prices::default(), 10, 0, 10), 0.0);
    }
}
