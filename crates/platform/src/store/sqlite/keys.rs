//! SQLite: API keys.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::keys::KeyInfo;
use crate::store::keys::Keys;
use crate::store::{stamp, unsigned, StoreError};

fn row_to_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyInfo> {
    Ok(KeyInfo {
        id: r.get(0)?,
        tenant: r.get(1)?,
        sha256: r.get(2)?,
        created: unsigned(r.get(3)?),
        revoked: r.get::<_, Option<i64>>(4)?.map(unsigned),
    })
}

impl Keys for SqliteStore {
    fn add_key(&self, key: &KeyInfo) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "INSERT INTO api_keys (id, tenant, sha256, created, revoked) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![key.id, key.tenant, key.sha256, stamp(key.created), key.revoked.map(stamp)],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare("SELECT id, tenant, sha256, created, revoked FROM api_keys ORDER BY created, id")
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([], row_to_key).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn revoke_key(&self, id: &str, now: u64) -> Result<Option<KeyInfo>, StoreError> {
        self.conn()
            .query_row(
                "UPDATE api_keys SET revoked = COALESCE(revoked, ?2) WHERE id = ?1
                 RETURNING id, tenant, sha256, created, revoked",
                params![id, stamp(now)],
                row_to_key,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn key_by_hash(&self, sha256: &str) -> Result<Option<KeyInfo>, StoreError> {
        self.conn()
            .query_row(
                "SELECT id, tenant, sha256, created, revoked FROM api_keys WHERE sha256 = ?1",
                [sha256],
                row_to_key,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
