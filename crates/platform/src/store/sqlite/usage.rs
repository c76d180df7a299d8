//! SQLite: usage rows and admission. Every admission is one `IMMEDIATE` transaction, so it
//! holds the file's write lock from its first read: admissions from every process on the file
//! are applied one after another.

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::SqliteStore;
use crate::quota::{check, month_start, Counts, Exceeded, Slot, WINDOW};
use crate::store::usage::{Admit, RowId, Usage, UsageRecord, UsageTotal};
use crate::store::{day_of, stamp, unsigned, StoreError};

/// Adds `delta` (which may be negative) to the tenant's charge for the month holding `created`,
/// never below zero.
fn charge_month(tx: &Transaction<'_>, tenant: &str, created: i64, delta: i64) -> rusqlite::Result<usize> {
    let month = stamp(month_start(unsigned(created)));
    tx.execute(
        "UPDATE quota_month SET tokens = MAX(tokens + ?3, 0) WHERE tenant = ?1 AND month = ?2",
        params![tenant, month, delta],
    )
}

impl Usage for SqliteStore {
    fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO usage (tenant, key_id, edition, created, day, prompt_tokens, cached_tokens,
                 completion_tokens, finish_reason, cost, charged)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?6 + ?8)",
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

    fn admit(&self, a: &Admit<'_>) -> Result<Result<RowId, Exceeded>, StoreError> {
        let err = |e| self.err(e);
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let now = stamp(a.now);
        tx.execute(
            "UPDATE usage SET finish_reason = 'interrupted', expires = NULL
             WHERE tenant = ?1 AND expires IS NOT NULL AND expires < ?2",
            params![a.tenant, now],
        )
        .map_err(err)?;
        let month = stamp(month_start(a.now));
        tx.execute(
            "INSERT INTO quota_month (tenant, month, tokens)
             SELECT ?1, ?2, COALESCE(SUM(charged), 0) FROM usage WHERE tenant = ?1 AND created >= ?2
             ON CONFLICT DO NOTHING",
            params![a.tenant, month],
        )
        .map_err(err)?;
        if let Some(q) = a.quotas {
            let month_tokens: i64 = tx
                .query_row(
                    "SELECT tokens FROM quota_month WHERE tenant = ?1 AND month = ?2",
                    params![a.tenant, month],
                    |r| r.get(0),
                )
                .map_err(err)?;
            let in_flight: i64 = tx
                .query_row("SELECT COUNT(*) FROM usage WHERE tenant = ?1 AND expires IS NOT NULL", [a.tenant], |r| {
                    r.get(0)
                })
                .map_err(err)?;
            let window = {
                let mut st = tx
                    .prepare(
                        "SELECT created, COUNT(*), SUM(charged) FROM usage WHERE tenant = ?1 AND created > ?2
                         GROUP BY created ORDER BY created",
                    )
                    .map_err(err)?;
                let rows = st
                    .query_map(params![a.tenant, now - WINDOW as i64], |r| {
                        Ok(Slot {
                            second: unsigned(r.get(0)?),
                            requests: unsigned(r.get(1)?),
                            tokens: unsigned(r.get(2)?),
                        })
                    })
                    .map_err(err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(err)?
            };
            let counts = Counts { window, in_flight: unsigned(in_flight), month: unsigned(month_tokens) };
            if let Err(e) = check(q, a.tenant, &counts, a.now, a.charge) {
                tx.commit().map_err(err)?; // what was reaped stays reaped
                return Ok(Err(e));
            }
        }
        tx.execute(
            "INSERT INTO usage (tenant, key_id, edition, created, day, prompt_tokens, cached_tokens,
             completion_tokens, finish_reason, cost, charged, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, 'running', ?7, ?8, ?9)",
            params![
                a.tenant,
                a.key_id,
                a.edition,
                now,
                day_of(a.now),
                stamp(a.prompt_tokens),
                a.cost,
                stamp(a.charge),
                stamp(a.lease_until)
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        charge_month(&tx, a.tenant, now, stamp(a.charge)).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Ok(id))
    }

    fn renew(&self, ids: &[RowId], until: u64) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        for id in ids {
            tx.execute(
                "UPDATE usage SET expires = ?2 WHERE id = ?1 AND expires IS NOT NULL",
                params![id, stamp(until)],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn close_usage(&self, id: RowId, r: &UsageRecord) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let (tenant, created, charged): (String, i64, i64) = tx
            .query_row("SELECT tenant, created, charged FROM usage WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(err)?
            .ok_or(StoreError::NotFound)?;
        let used = stamp(r.prompt_tokens.saturating_add(r.completion_tokens));
        tx.execute(
            "UPDATE usage SET prompt_tokens = ?2, cached_tokens = ?3, completion_tokens = ?4, finish_reason = ?5,
             cost = ?6, charged = ?7, expires = NULL WHERE id = ?1",
            params![
                id,
                stamp(r.prompt_tokens),
                stamp(r.cached_tokens),
                stamp(r.completion_tokens),
                r.finish_reason,
                r.cost,
                used
            ],
        )
        .map_err(err)?;
        charge_month(&tx, &tenant, created, used - charged).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn abandon(&self, id: RowId) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let row: Option<(String, i64, i64)> = tx
            .query_row("DELETE FROM usage WHERE id = ?1 RETURNING tenant, created, charged", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(err)?;
        if let Some((tenant, created, charged)) = row {
            charge_month(&tx, &tenant, created, -charged).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn reap(&self, now: u64) -> Result<u64, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE usage SET finish_reason = 'interrupted', expires = NULL
                 WHERE expires IS NOT NULL AND expires < ?1",
                [stamp(now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    fn usage_totals(&self, tenant: Option<&str>, from: &str, to: &str) -> Result<Vec<UsageTotal>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT tenant, day, edition, COUNT(*), SUM(prompt_tokens), SUM(cached_tokens),
                        SUM(completion_tokens), SUM(finish_reason = 'cancelled'), SUM(finish_reason = 'interrupted'),
                        SUM(cost)
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
                    interrupted: unsigned(r.get(8)?),
                    cost: r.get(9)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
