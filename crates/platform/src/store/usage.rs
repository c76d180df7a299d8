//! Usage records: one row per request, with the engine's own token counts and the cost at the
//! edition's prices; totals by day and edition.
//!
//! A request's row is written when it is admitted ([`Usage::admit`], `running`, charged its
//! prompt and `max_tokens × n` against the tenant's quotas, held under a lease) and completed
//! when it ends ([`Usage::close_usage`], with what it used). The lease is what makes a row
//! survive its process: a live server renews its rows' leases ([`Usage::renew`]); a row whose
//! lease ran out — its server was killed — is closed as `interrupted` ([`Usage::reap`], and by
//! every admission of its tenant), keeping its prompt and its charge. So a request is never lost
//! and never counted twice, and its concurrency slot cannot leak.

use serde::Serialize;

use super::StoreError;
use crate::config::Quotas;
use crate::quota::Exceeded;

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
    /// Requests that ended cancelled (the client went away).
    pub cancelled: u64,
    /// Requests whose server stopped before they ended (closed when their lease ran out).
    pub interrupted: u64,
    /// Cost.
    pub cost: f64,
}

/// Cost of a request at prices per million tokens: uncached prompt tokens at `input`, cached
/// ones at `cached`, completion tokens at `output`.
pub fn cost(prices: &crate::config::Prices, prompt: u64, cached: u64, completion: u64) -> f64 {
    let uncached = prompt.saturating_sub(cached) as f64;
    (uncached * prices.input + cached as f64 * prices.cached + completion as f64 * prices.output) / 1e6
}

/// A request to admit: whose, what it is charged, under which quotas.
#[derive(Debug, Clone)]
pub struct Admit<'a> {
    /// The tenant (`local` without a configuration).
    pub tenant: &'a str,
    /// The key's public id, when a key was used.
    pub key_id: Option<&'a str>,
    /// The edition (the request's `model`).
    pub edition: &'a str,
    /// Prompt tokens (all prompts of the request, each once).
    pub prompt_tokens: u64,
    /// Tokens charged while it runs: prompt tokens plus `max_tokens × n`.
    pub charge: u64,
    /// The prompt's cost: what the row says if the request is interrupted.
    pub cost: f64,
    /// The tenant's limits (`None`: none).
    pub quotas: Option<&'a Quotas>,
    /// Unix seconds.
    pub now: u64,
    /// The lease's end, Unix seconds: renewed by the live server, past it the row is reaped.
    pub lease_until: u64,
}

/// The id of an admitted request's (open) usage row.
pub type RowId = i64;

/// Usage rows, their admission under the quotas, and totals.
pub trait Usage {
    /// Records one ended request's usage at once (a closed row); returns once committed.
    fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError>;

    /// Admits a request, atomically with every other admission of the tenant in any process:
    /// closes the tenant's rows whose lease has run out, counts its running rows, the last
    /// [`crate::quota::WINDOW`] seconds of rows and the month's charge, applies
    /// [`crate::quota::check`], and if it allows, writes the request's `running` row and charges
    /// the month. A refusal writes no row.
    fn admit(&self, a: &Admit<'_>) -> Result<Result<RowId, Exceeded>, StoreError>;

    /// Extends the leases of open rows `ids` to `until` (rows closed meanwhile are left alone).
    fn renew(&self, ids: &[RowId], until: u64) -> Result<(), StoreError>;

    /// Completes row `id` with what the request used (`r`'s counts, finish reason and cost;
    /// its tenant, key, edition and time stay the admission's), and gives the month back what
    /// was charged and not used. A row reaped meanwhile is completed all the same.
    fn close_usage(&self, id: RowId, r: &UsageRecord) -> Result<(), StoreError>;

    /// Removes row `id` of a request that never ran (refused after admission), giving back its
    /// charge.
    fn abandon(&self, id: RowId) -> Result<(), StoreError>;

    /// Closes every running row whose lease ended before `now` as `interrupted`; returns how
    /// many.
    fn reap(&self, now: u64) -> Result<u64, StoreError>;

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
