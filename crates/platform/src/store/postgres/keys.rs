//! PostgreSQL: API keys.

use super::PgStore;
use crate::keys::KeyInfo;
use crate::store::keys::Keys;
use crate::store::{stamp, unsigned, StoreError};

fn to_key(r: &tokio_postgres::Row) -> KeyInfo {
    KeyInfo {
        id: r.get(0),
        tenant: r.get(1),
        sha256: r.get(2),
        created: unsigned(r.get(3)),
        revoked: r.get::<_, Option<i64>>(4).map(unsigned),
    }
}

impl Keys for PgStore {
    fn add_key(&self, key: &KeyInfo) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(|pool| async move {
            let c = pool.get().await?;
            let n = c
                .execute(
                    "INSERT INTO api_keys (id, tenant, sha256, created, revoked) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT DO NOTHING",
                    &[&key.id, &key.tenant, &key.sha256, &stamp(key.created), &key.revoked.map(stamp)],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        self.run(|pool| async move {
            let c = pool.get().await?;
            let rows = c
                .query(
                    "SELECT id, tenant, sha256, created, revoked FROM api_keys ORDER BY created, id COLLATE \"C\"",
                    &[],
                )
                .await?;
            Ok(rows.iter().map(to_key).collect())
        })
    }

    fn revoke_key(&self, id: &str, now: u64) -> Result<Option<KeyInfo>, StoreError> {
        let id = id.to_string();
        self.run(|pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt(
                    "UPDATE api_keys SET revoked = COALESCE(revoked, $2) WHERE id = $1
                     RETURNING id, tenant, sha256, created, revoked",
                    &[&id, &stamp(now)],
                )
                .await?;
            Ok(row.as_ref().map(to_key))
        })
    }

    fn key_by_hash(&self, sha256: &str) -> Result<Option<KeyInfo>, StoreError> {
        let sha256 = sha256.to_string();
        self.run(|pool| async move {
            let c = pool.get().await?;
            let row = c
                .query_opt("SELECT id, tenant, sha256, created, revoked FROM api_keys WHERE sha256 = $1", &[&sha256])
                .await?;
            Ok(row.as_ref().map(to_key))
        })
    }
}
