//! PostgreSQL: usage rows.

use super::PgStore;
use crate::store::usage::{Usage, UsageRecord, UsageTotal};
use crate::store::{day_of, stamp, unsigned, StoreError};

impl Usage for PgStore {
    fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        let r = r.clone();
        self.run(|pool| async move {
            let c = pool.get().await?;
            c.execute(
                "INSERT INTO usage (tenant, key_id, edition, created, day, prompt_tokens, cached_tokens,
                 completion_tokens, finish_reason, cost) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &r.tenant,
                    &r.key_id,
                    &r.edition,
                    &stamp(r.created),
                    &day_of(r.created),
                    &stamp(r.prompt_tokens),
                    &stamp(r.cached_tokens),
                    &stamp(r.completion_tokens),
                    &r.finish_reason,
                    &r.cost,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn usage_totals(&self, tenant: Option<&str>, from: &str, to: &str) -> Result<Vec<UsageTotal>, StoreError> {
        let (tenant, from, to) = (tenant.map(str::to_string), from.to_string(), to.to_string());
        self.run(|pool| async move {
            let c = pool.get().await?;
            let rows = c
                .query(
                    "SELECT tenant, day, edition, COUNT(*), SUM(prompt_tokens)::BIGINT, SUM(cached_tokens)::BIGINT,
                            SUM(completion_tokens)::BIGINT, COUNT(*) FILTER (WHERE finish_reason = 'cancelled'),
                            SUM(cost)
                     FROM usage WHERE ($1::TEXT IS NULL OR tenant = $1) AND day >= $2 AND day <= $3
                     GROUP BY tenant, day, edition
                     ORDER BY tenant COLLATE \"C\", day COLLATE \"C\", edition COLLATE \"C\"",
                    &[&tenant, &from, &to],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| UsageTotal {
                    tenant: r.get(0),
                    day: r.get(1),
                    edition: r.get(2),
                    requests: unsigned(r.get(3)),
                    prompt_tokens: unsigned(r.get(4)),
                    cached_tokens: unsigned(r.get(5)),
                    completion_tokens: unsigned(r.get(6)),
                    cancelled: unsigned(r.get(7)),
                    cost: r.get(8),
                })
                .collect())
        })
    }
}
