//! The per-region store of conversations and usage: one SQLite file in WAL mode with
//! `synchronous=FULL`, so a write that returned has been committed to disk and survives a crash.
//!
//! Every write is one transaction: it happens whole or not at all. A full disk (`SQLITE_FULL`)
//! is reported as [`StoreError::Full`]; the transaction is rolled back, and once space is free
//! again the next write succeeds on the same connection.

pub mod conversations;
pub mod usage;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub use conversations::{Conversation, StoredMessage};
pub use usage::{UsageRecord, UsageTotal};

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the store's size limit) is full; nothing was written.
    #[error("the conversation and usage store is full; nothing was written")]
    Full,
    /// No such conversation for this tenant.
    #[error("no such conversation")]
    NotFound,
    /// Anything else SQLite reported.
    #[error("store {path}: {message}")]
    Other {
        /// The store's file.
        path: String,
        /// What SQLite said.
        message: String,
    },
}

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
];

/// One SQLite store (a region's, or the local one).
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_limited(path, None)
    }

    /// As [`Store::open`], with SQLite's `max_page_count` set: past it writes fail exactly as on
    /// a full disk (tests use this to make the disk "full" without root).
    pub fn open_limited(path: &Path, max_pages: Option<u64>) -> Result<Store, StoreError> {
        // Another process opening the same file at the same moment (switching it to WAL,
        // applying the schema) can make SQLite answer "busy" without waiting for the busy
        // timeout (it does so where waiting could deadlock); the open is then retried.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open_once(path, max_pages) {
                Err(StoreError::Other { message, .. })
                    if message.contains(BUSY_MESSAGE) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    fn open_once(path: &Path, max_pages: Option<u64>) -> Result<Store, StoreError> {
        let err = |e: rusqlite::Error| other(path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Other { path: path.display().to_string(), message: e.to_string() })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other {
                path: path.display().to_string(),
                message: format!("journal mode {mode}"),
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(err)?;
        let store = Store { path: path.to_path_buf(), conn: Mutex::new(conn) };
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
                path: self.path.display().to_string(),
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

    /// The schema version (migrations applied).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))
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

/// SQLite's text for `SQLITE_BUSY` (`sqlite3_errstr`).
const BUSY_MESSAGE: &str = "database is locked";

fn other(path: &Path, e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::DiskFull {
            return StoreError::Full;
        }
    }
    StoreError::Other { path: path.display().to_string(), message: e.to_string() }
}

/// The UTC calendar day (`YYYY-MM-DD`) of a Unix time.
pub fn day_of(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    // Civil-from-days (proleptic Gregorian), shifted so eras start on March 1st.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` (a real calendar day), for usage ranges.
pub fn parse_day(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d): (u32, u32, u32) = (s[0..4].parse().ok()?, s[5..7].parse().ok()?, s[8..10].parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (y >= 1970 && (1..=days).contains(&d)).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400), "2000-02-29");
        assert_eq!(day_of(1_798_761_599), "2026-12-31");
        assert_eq!(parse_day("2024-02-29").as_deref(), Some("2024-02-29"));
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("2023-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
    }

    #[test]
    fn opens_in_wal_with_full_sync_and_migrates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let s = Store::open(&path).expect("open");
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
        let s = Store::open(&path).expect("reopen");
        assert_eq!(s.schema_version().expect("version"), MIGRATIONS.len() as i64);
        assert_eq!(s.integrity_check().expect("check"), "ok");
    }
}
