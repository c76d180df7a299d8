//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a write that
//! returned has been committed to disk and survives a crash. A full disk (`SQLITE_FULL`) rolls
//! the transaction back and is [`StoreError::Full`]; once space is free again the next write
//! succeeds on the same connection.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::{Backend, StoreError};

mod conversations;
mod keys;
mod usage;

/// The schema, one migration per entry; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: conversations, their messages, usage records.
    "CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        title TEXT,
        model TEXT,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL
    );
    CREATE INDEX conversations_by_tenant ON conversations (tenant, updated);
    CREATE TABLE messages (
        conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (conversation, seq)
    );
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        key_id TEXT,
        edition TEXT NOT NULL,
        created INTEGER NOT NULL,
        day TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        finish_reason TEXT NOT NULL,
        cost REAL NOT NULL
    );
    CREATE INDEX usage_by_tenant_day ON usage (tenant, day);",
    // 2: API keys (the secret's SHA-256, never the secret).
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        revoked INTEGER
    );",
    // 3: a request's row is written at admission (`running`, under a lease that `expires`) and
    // completed at its end; `charged` is what it counts against the tenant's quotas; each
    // tenant's month charge is one row, the lock that orders its admissions.
    "ALTER TABLE usage ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage ADD COLUMN expires INTEGER;
    UPDATE usage SET charged = prompt_tokens + completion_tokens;
    CREATE INDEX usage_by_tenant_created ON usage (tenant, created);
    CREATE INDEX usage_running ON usage (tenant, expires) WHERE expires IS NOT NULL;
    CREATE TABLE quota_month (
        tenant TEXT NOT NULL,
        month INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        PRIMARY KEY (tenant, month)
    );",
];

/// One SQLite store (a region's, or the local one).
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

/// SQLite's text for `SQLITE_BUSY` (`sqlite3_errstr`).
const BUSY_MESSAGE: &str = "database is locked";

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_limited(path, None)
    }

    /// As [`SqliteStore::open`], with SQLite's `max_page_count` set: past it writes fail exactly
    /// as on a full disk (tests use this to make the disk "full" without root).
    pub fn open_limited(path: &Path, max_pages: Option<u64>) -> Result<SqliteStore, StoreError> {
        // Another process opening the same file at the same moment (switching it to WAL,
        // applying the schema) can make SQLite answer "busy" without waiting for the busy
        // timeout (it does so where waiting could deadlock); the open is then retried.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SqliteStore::open_once(path, max_pages) {
                Err(StoreError::Other { message, .. })
                    if message.contains(BUSY_MESSAGE) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    fn open_once(path: &Path, max_pages: Option<u64>) -> Result<SqliteStore, StoreError> {
        let err = |e: rusqlite::Error| other(path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Other { store: path.display().to_string(), message: e.to_string() })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other {
                store: path.display().to_string(),
                message: format!("journal mode {mode}"),
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(err)?;
        let store = SqliteStore { path: path.to_path_buf(), conn: Mutex::new(conn) };
        store.migrate()?;
        if let Some(pages) = max_pages {
            let c = store.conn();
            let _: i64 = c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0)).map_err(err)?;
        }
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (it rolls back
        // on drop), so the connection stays usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.conn();
        let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        let applied = usize::try_from(version).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Other {
                store: self.path.display().to_string(),
                message: format!("schema version {version} is newer than this build knows ({})", MIGRATIONS.len()),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            // IMMEDIATE takes the write lock first, and the version is read again under
            // it: another process opening the same fresh file at the same moment applies
            // each migration once, and this one skips it.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))?;
            if usize::try_from(now).unwrap_or(usize::MAX) > i {
                continue; // applied meanwhile; the transaction rolls back on drop
            }
            tx.execute_batch(sql).map_err(|e| self.err(e))?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// `PRAGMA integrity_check`: `"ok"` for a sound file.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("PRAGMA integrity_check").map_err(|e| self.err(e))?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let lines: Result<Vec<String>, _> = rows.collect();
        Ok(lines.map_err(|e| self.err(e))?.join("\n"))
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        other(&self.path, e)
    }
}

fn other(path: &Path, e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::DiskFull {
            return StoreError::Full;
        }
    }
    StoreError::Other { store: path.display().to_string(), message: e.to_string() }
}

impl Backend for SqliteStore {
    fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    fn latest_version(&self) -> i64 {
        MIGRATIONS.len() as i64
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Conversations;

    fn pair(role: &str, content: &str) -> (String, String) {
        (role.to_string(), content.to_string())
    }

    #[test]
    fn opens_in_wal_with_full_sync_and_migrates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let s = SqliteStore::open(&path).expect("open");
        assert_eq!(s.schema_version().expect("version"), MIGRATIONS.len() as i64);
        {
            let c = s.conn();
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
            assert_eq!(mode, "wal");
            let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("sync");
            assert_eq!(sync, 2, "synchronous=FULL");
        }
        drop(s);
        // Reopening applies nothing twice.
        let s = SqliteStore::open(&path).expect("reopen");
        assert_eq!(s.schema_version().expect("version"), MIGRATIONS.len() as i64);
        assert_eq!(s.integrity_check().expect("check"), "ok");
    }

    #[test]
    fn full_store_writes_nothing_and_recovers_when_space_is_freed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open_limited(&dir.path().join("s.sqlite"), Some(24)).expect("open");
        let big = "x".repeat(3000);
        let mut made = Vec::new();
        let err = loop {
            let c = match s.create_conversation("t", None, None, 1) {
                Ok(c) => c,
                Err(e) => break e,
            };
            match s.append_messages("t", &c.id, &[pair("user", &big), pair("assistant", &big)], 2) {
                Ok(()) => made.push(c.id),
                Err(e) => {
                    // The failed batch left no partial rows.
                    assert!(s.get_conversation("t", &c.id).expect("get").1.is_empty());
                    break e;
                }
            }
            assert!(made.len() < 1000, "the page limit never hit");
        };
        assert!(matches!(err, StoreError::Full), "{err:?}");
        assert!(!made.is_empty());
        for id in &made {
            assert_eq!(s.get_conversation("t", id).expect("kept").1.len(), 2);
            s.delete_conversation("t", id).expect("delete frees pages");
        }
        let c = s.create_conversation("t", None, None, 3).expect("recovered");
        s.append_messages("t", &c.id, &[pair("user", &big), pair("assistant", &big)], 3).expect("recovered");
        assert_eq!(s.get_conversation("t", &c.id).expect("get").1.len(), 2);
        assert_eq!(s.integrity_check().expect("check"), "ok");
    }
}
