//! PostgreSQL: usage rows and admission. An admission locks its tenant's month row
//! (`SELECT … FOR UPDATE`) first, so admissions of one tenant from every replica are applied one
//! after another while other tenants' proceed in parallel; under `READ COMMITTED` each later
//! statement sees every admission committed before the lock was granted. Rows are locked in one
//! order everywhere — the month row, then usage rows — and reaping skips rows another
//! transaction holds, so these transactions cannot deadlock.

use super::{Failure, PgStore};
use crate::quota::{check, month_start, Counts, Exceeded, Slot, WINDOW};
use crate::store::usage::{Admit, RowId, Usage, UsageRecord, UsageTotal};
use crate::store::{day_of, stamp, unsigned, StoreError};

/// Locks the tenant's row for the month holding `created` (making it if needed, its charge
/// then the month's rows so far); returns its charge.
async fn lock_month(tx: &deadpool_postgres::Transaction<'_>, tenant: &str, created: i64) -> Result<i64, Failure> {
    let month = stamp(month_start(unsigned(created)));
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO quota_month (tenant, month, tokens)
         SELECT $1, $2, COALESCE(SUM(charged), 0)::BIGINT FROM usage WHERE tenant = $1 AND created >= $2
         ON CONFLICT DO NOTHING",
        )
        .await?,
        &[&tenant, &month],
    )
    .await?;
    let row = tx
        .query_one(
            &tx.prepare_cached("SELECT tokens FROM quota_month WHERE tenant = $1 AND month = $2 FOR UPDATE").await?,
            &[&tenant, &month],
        )
        .await?;
    Ok(row.get(0))
}

/// Adds `delta` to the (locked) month row of `created`, never below zero.
async fn charge_month(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    created: i64,
    delta: i64,
) -> Result<(), Failure> {
    let month = stamp(month_start(unsigned(created)));
    tx.execute(
        &tx.prepare_cached("UPDATE quota_month SET tokens = GREATEST(tokens + $3, 0) WHERE tenant = $1 AND month = $2")
            .await?,
        &[&tenant, &month, &delta],
    )
    .await?;
    Ok(())
}

impl Usage for PgStore {
    fn record_usage(&self, r: &UsageRecord) -> Result<(), StoreError> {
        let r = r.clone();
        self.run(|pool| async move {
            let c = pool.get().await?;
            c.execute(
                "INSERT INTO usage (tenant, key_id, edition, created, day, prompt_tokens, cached_tokens,
                 completion_tokens, finish_reason, cost, charged)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $6::BIGINT + $8::BIGINT)",
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

    fn admit(&self, a: &Admit<'_>) -> Result<Result<RowId, Exceeded>, StoreError> {
        let (tenant, key_id, edition) = (a.tenant.to_string(), a.key_id.map(str::to_string), a.edition.to_string());
        let (quotas, now, charge, prompt, cost, lease) =
            (a.quotas.copied(), a.now, a.charge, a.prompt_tokens, a.cost, a.lease_until);
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            let tx = c.transaction().await?;
            let month_tokens = lock_month(&tx, &tenant, stamp(now)).await?;
            tx.execute(&tx.prepare_cached("UPDATE usage SET finish_reason = 'interrupted', expires = NULL WHERE id IN (
                     SELECT id FROM usage WHERE tenant = $1 AND expires IS NOT NULL AND expires < $2
                     FOR UPDATE SKIP LOCKED)").await?,
                &[&tenant, &stamp(now)],
            )
            .await?;
            if let Some(q) = quotas {
                let in_flight: i64 = tx
                    .query_one(&tx.prepare_cached("SELECT COUNT(*) FROM usage WHERE tenant = $1 AND expires IS NOT NULL").await?, &[&tenant])
                    .await?
                    .get(0);
                let rows = tx
                    .query(&tx.prepare_cached("SELECT created, COUNT(*), SUM(charged)::BIGINT FROM usage WHERE tenant = $1 AND created > $2
                         GROUP BY created ORDER BY created").await?,
                        &[&tenant, &(stamp(now) - WINDOW as i64)],
                    )
                    .await?;
                let window = rows
                    .iter()
                    .map(|r| Slot {
                        second: unsigned(r.get(0)),
                        requests: unsigned(r.get(1)),
                        tokens: unsigned(r.get(2)),
                    })
                    .collect();
                let counts = Counts { window, in_flight: unsigned(in_flight), month: unsigned(month_tokens) };
                if let Err(e) = check(&q, &tenant, &counts, now, charge) {
                    tx.commit().await?; // what was reaped stays reaped
                    return Ok(Err(e));
                }
            }
            let id: i64 = tx
                .query_one(&tx.prepare_cached("INSERT INTO usage (tenant, key_id, edition, created, day, prompt_tokens, cached_tokens,
                     completion_tokens, finish_reason, cost, charged, expires)
                     VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 'running', $7, $8, $9) RETURNING id").await?,
                    &[
                        &tenant,
                        &key_id,
                        &edition,
                        &stamp(now),
                        &day_of(now),
                        &stamp(prompt),
                        &cost,
                        &stamp(charge),
                        &stamp(lease),
                    ],
                )
                .await?
                .get(0);
            charge_month(&tx, &tenant, stamp(now), stamp(charge)).await?;
            tx.commit().await?;
            Ok(Ok(id))
        })
    }

    fn renew(&self, ids: &[RowId], until: u64) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.run(move |pool| async move {
            let c = pool.get().await?;
            c.execute(
                "UPDATE usage SET expires = $2 WHERE id = ANY($1) AND expires IS NOT NULL",
                &[&ids, &stamp(until)],
            )
            .await?;
            Ok(())
        })
    }

    fn close_usage(&self, id: RowId, r: &UsageRecord) -> Result<(), StoreError> {
        let r = r.clone();
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            let tx = c.transaction().await?;
            // Tenant and time never change: read them, lock the month row, then the usage row.
            let row = tx
                .query_opt(&tx.prepare_cached("SELECT tenant, created FROM usage WHERE id = $1").await?, &[&id])
                .await?
                .ok_or(Failure::NotFound)?;
            let (tenant, created): (String, i64) = (row.get(0), row.get(1));
            lock_month(&tx, &tenant, created).await?;
            let charged: i64 = tx
                .query_opt(&tx.prepare_cached("SELECT charged FROM usage WHERE id = $1 FOR UPDATE").await?, &[&id])
                .await?
                .ok_or(Failure::NotFound)?
                .get(0);
            let used = stamp(r.prompt_tokens.saturating_add(r.completion_tokens));
            tx.execute(&tx.prepare_cached("UPDATE usage SET prompt_tokens = $2, cached_tokens = $3, completion_tokens = $4, finish_reason = $5,
                 cost = $6, charged = $7, expires = NULL WHERE id = $1").await?,
                &[
                    &id,
                    &stamp(r.prompt_tokens),
                    &stamp(r.cached_tokens),
                    &stamp(r.completion_tokens),
                    &r.finish_reason,
                    &r.cost,
                    &used,
                ],
            )
            .await?;
            charge_month(&tx, &tenant, created, used - charged).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn abandon(&self, id: RowId) -> Result<(), StoreError> {
        self.run(move |pool| async move {
            let mut c = pool.get().await?;
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_opt(&tx.prepare_cached("SELECT tenant, created FROM usage WHERE id = $1").await?, &[&id])
                .await?
            else {
                return Ok(());
            };
            let (tenant, created): (String, i64) = (row.get(0), row.get(1));
            lock_month(&tx, &tenant, created).await?;
            if let Some(row) = tx
                .query_opt(&tx.prepare_cached("DELETE FROM usage WHERE id = $1 RETURNING charged").await?, &[&id])
                .await?
            {
                charge_month(&tx, &tenant, created, -row.get::<_, i64>(0)).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn reap(&self, now: u64) -> Result<u64, StoreError> {
        self.run(move |pool| async move {
            let c = pool.get().await?;
            let n = c
                .execute(
                    "UPDATE usage SET finish_reason = 'interrupted', expires = NULL WHERE id IN (
                         SELECT id FROM usage WHERE expires IS NOT NULL AND expires < $1 FOR UPDATE SKIP LOCKED)",
                    &[&stamp(now)],
                )
                .await?;
            Ok(n)
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
                            COUNT(*) FILTER (WHERE finish_reason = 'interrupted'), SUM(cost)
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
                    interrupted: unsigned(r.get(8)),
                    cost: r.get(9),
                })
                .collect())
        })
    }
}
