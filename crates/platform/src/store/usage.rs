//! Usage records: one per request, with the engine's own token counts and the cost at the
//! edition's prices; totals by day and edition.

use rusqlite::params;
use serde::Serialize;

use super::{day_of, Store, StoreError};

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

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn stamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Records one request's usage; returns once committed.
    pub fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        let c = self.conn();
        c.execute(
            "INSERT INTO usage (tenant, key_id, edition, created, day, prompt_tokens, cached_tokens,
             completion_tokens, finish_reason, cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                r.tenant,
                r.key_id,
                r.edition,
                stamp(r.created),
                day_of(r.created),
                stamp(r.prompt_tokens),
                stamp(r.cached_tokens),
                stamp(r.completion_tokens),
                r.finish_reason,
                r.cost
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Totals by tenant, day and edition for days in `from..=to` (`YYYY-MM-DD`); one tenant's
    /// when `tenant` is given, every tenant's otherwise.
    pub fn usage_totals(&self, tenant: Option<&str>, from: &str, to: &str) -> Result<Vec<UsageTotal>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT tenant, day, edition, COUNT(*), SUM(prompt_tokens), SUM(cached_tokens),
                        SUM(completion_tokens), SUM(finish_reason = 'cancelled'), SUM(cost)
                 FROM usage WHERE (?1 IS NULL OR tenant = ?1) AND day >= ?2 AND day <= ?3
                 GROUP BY tenant, day, edition ORDER BY tenant, day, edition",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![tenant, from, to], |r| {
                Ok(UsageTotal {
                    tenant: r.get(0)?,
                    day: r.get(1)?,
                    edition: r.get(2)?,
                    requests: count(r.get(3)?),
                    prompt_tokens: count(r.get(4)?),
                    cached_tokens: count(r.get(5)?),
                    completion_tokens: count(r.get(6)?),
                    cancelled: count(r.get(7)?),
                    cost: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Prices;

    fn rec(tenant: &str, edition: &str, created: u64, p: u64, c: u64, o: u64, finish: &str) -> UsageRecord {
        let prices = Prices { input: 2.0, cached: 0.5, output: 8.0 };
        UsageRecord {
            tenant: tenant.into(),
            key_id: None,
            edition: edition.into(),
            created,
            prompt_tokens: p,
            cached_tokens: c,
            completion_tokens: o,
            finish_reason: finish.into(),
            cost: cost(&prices, p, c, o),
        }
    }

    #[test]
    fn cost_uses_the_three_prices() {
        let prices = Prices { input: 2.0, cached: 0.5, output: 8.0 };
        let c = cost(&prices, 1_000_000, 400_000, 500_000);
        assert!((c - (1.2 + 0.2 + 4.0)).abs() < 1e-9, "{c}");
        assert_eq!(cost(&Prices::default(), 10, 0, 10), 0.0);
    }

    #[test]
    fn totals_by_day_and_edition_for_one_tenant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let day1 = 1_767_225_600; // 2026-01-01
        let day2 = day1 + 86_400;
        s.record_usage(&rec("a", "cici", day1 + 5, 100, 40, 10, "stop")).expect("rec");
        s.record_usage(&rec("a", "cici", day1 + 9, 50, 0, 3, "cancelled")).expect("rec");
        s.record_usage(&rec("a", "doubao", day2, 7, 0, 1, "length")).expect("rec");
        s.record_usage(&rec("b", "cici", day1, 999, 0, 999, "stop")).expect("rec");
        let t = s.usage_totals(Some("a"), "2026-01-01", "2026-01-01").expect("totals");
        assert_eq!(t.len(), 1);
        let r = &t[0];
        assert_eq!((r.day.as_str(), r.edition.as_str(), r.requests), ("2026-01-01", "cici", 2));
        assert_eq!((r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.cancelled), (150, 40, 13, 1));
        assert!((r.cost - (110.0 * 2.0 + 40.0 * 0.5 + 13.0 * 8.0) / 1e6).abs() < 1e-12);
        let all = s.usage_totals(None, "2026-01-01", "2026-01-02").expect("totals");
        assert_eq!(all.len(), 3);
        assert_eq!(s.usage_totals(Some("a"), "2026-01-03", "2026-12-31").expect("totals"), vec![]);
    }
}
