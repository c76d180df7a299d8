//! SQLite: usage rows.

use rusqlite::params;

use super::SqliteStore;
use crate::store::usage::{Usage, UsageRecord, UsageTotal};
use crate::store::{day_of, stamp, unsigned, StoreError};

impl Usage for SqliteStore {
    fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
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

    fn usage_totals(&self, tenant: Option<&str>, from: &str, to: &str) -> Result<Vec<UsageTotal>, StoreError> {
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
                    requests: unsigned(r.get(3)?),
                    prompt_tokens: unsigned(r.get(4)?),
                    cached_tokens: unsigned(r.get(5)?),
                    completion_tokens: unsigned(r.get(6)?),
                    cancelled: unsigned(r.get(7)?),
                    cost: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
