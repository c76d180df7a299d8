//! A region's store of conversations, usage and API keys, behind one interface with two backends:
//!
//! - [`sqlite`]: one file in WAL mode with `synchronous=FULL`, embedded — the default, which
//!   needs no database server (a path as the region's `store`);
//! - [`postgres`]: a PostgreSQL database shared by every replica of a region (a `postgres://`
//!   URL as the region's `store`, the password from the environment).
//!
//! The interface is synchronous: callers on an async runtime run it on the blocking pool, as
//! they would any file I/O. Each backend keeps its own numbered migrations and applies the
//! missing ones when opened (PostgreSQL under an advisory lock, so replicas starting together
//! apply each once); a schema newer than the build is refused.
//!
//! Every write is one transaction: it happens whole or not at all, and has been committed when
//! the call returns. A full disk is [`StoreError::Full`]; anything else the database reports is
//! [`StoreError::Other`], whose text names the store and is for the operator's log — never for a
//! client.

pub mod conversations;
pub mod keys;
pub mod postgres;
pub mod sqlite;
pub mod usage;

use std::path::PathBuf;

pub use conversations::{Conversation, Conversations, StoredMessage};
pub use keys::Keys;
pub use usage::{Usage, UsageRecord, UsageTotal};

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the store's size limit) is full; nothing was written.
    #[error("the conversation and usage store is full; nothing was written")]
    Full,
    /// No such conversation for this tenant.
    #[error("no such conversation")]
    NotFound,
    /// Anything else the database reported.
    #[error("store {store}: {message}")]
    Other {
        /// Which store: a file's path, or a database's name and host (never a password).
        store: String,
        /// What the database said.
        message: String,
    },
}

/// Where a region's store lives: the region's `store` value in `seed.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres {
        /// `postgres://user@host[:port]/database[?options]`, without a password.
        url: String,
        /// The environment variable holding the password (`PGPASSWORD` unless the region
        /// names another); unset means no password (peer or trust authentication).
        password_env: String,
    },
}

impl Location {
    /// The location a region's `store` value names: a `postgres://` or `postgresql://` URL
    /// (checked: it parses, and holds no password), or else a file path.
    pub fn parse(value: &str, password_env: Option<&str>) -> Result<Location, String> {
        if postgres::is_url(value) {
            postgres::check_url(value)?;
            let password_env = password_env.unwrap_or(postgres::DEFAULT_PASSWORD_ENV).to_string();
            Ok(Location::Postgres { url: value.to_string(), password_env })
        } else if password_env.is_some() {
            Err("`store_password_env` applies only to a postgres:// store".into())
        } else {
            Ok(Location::Sqlite(PathBuf::from(value)))
        }
    }

    /// How the location is named in messages (a URL never holds a password).
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres { url, .. } => url.clone(),
        }
    }
}

/// Everything a region's store does; the two backends implement it, and one contract test
/// suite (`tests/store_contract.rs`) holds both to it.
pub trait Backend: Conversations + Usage + Keys + Send + Sync + std::fmt::Debug {
    /// The schema version (migrations applied).
    fn schema_version(&self) -> Result<i64, StoreError>;
    /// The migrations this build knows.
    fn latest_version(&self) -> i64;
    /// The store's name in messages: a path, or a URL without its password.
    fn describe(&self) -> String;
}

/// An open store: either backend, behind [`Backend`]; its methods come from the
/// [`Conversations`], [`Usage`] and [`Keys`] traits.
#[derive(Debug)]
pub struct Store(Box<dyn Backend>);

impl Store {
    /// Opens (creating a SQLite file if needed) the store at `location` and brings its schema up
    /// to date.
    pub fn open(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Ok(Store(Box::new(sqlite::SqliteStore::open(path)?))),
            Location::Postgres { url, password_env } => {
                let password = std::env::var(password_env).ok();
                Ok(Store(Box::new(postgres::PgStore::open(url, password.as_deref())?)))
            }
        }
    }

    /// The SQLite store at `path`.
    pub fn open_file(path: &std::path::Path) -> Result<Store, StoreError> {
        Ok(Store(Box::new(sqlite::SqliteStore::open(path)?)))
    }

    /// Wraps an opened backend.
    pub fn new(backend: impl Backend + 'static) -> Store {
        Store(Box::new(backend))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}

/// The UTC calendar day (`YYYY-MM-DD`) of a Unix time.
pub fn day_of(unix: u64) -> String {
    let (y, m, d) = crate::quota::civil_from_days(unix / 86_400);
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

/// Unix seconds as the databases' signed 64-bit integers (saturating).
fn stamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A database's signed count or time as unsigned (negative reads as 0).
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
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
    fn locations() {
        assert_eq!(Location::parse("data/cn.sqlite", None), Ok(Location::Sqlite("data/cn.sqlite".into())));
        assert_eq!(
            Location::parse("postgres://seed@db.cn.internal/seed", None),
            Ok(Location::Postgres {
                url: "postgres://seed@db.cn.internal/seed".into(),
                password_env: "PGPASSWORD".into()
            })
        );
        let e = Location::parse("postgresql://seed:hunter2@db/seed", None).expect_err("password in the file");
        assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
        assert!(Location::parse("postgres://seed@db/seed?sslmode=bogus", None).is_err());
        assert!(Location::parse("x.sqlite", Some("CN_PW")).expect_err("env for a file").contains("store_password_env"));
    }
}
