//! The shared backend: a PostgreSQL database that every replica of a region uses at once.
//!
//! Connections come from a pool (`deadpool-postgres` over `tokio-postgres`) driven by the
//! store's own one-thread Tokio runtime. A call hands its query to that runtime and waits on a
//! plain channel, so the synchronous [`Backend`] interface works from any thread — a server's
//! blocking pool, a command-line tool — and never asks the caller's runtime to block. Every call
//! is bounded in time: the pool waits at most [`WAIT`] for a connection and the whole call at
//! most [`CALL`], after which the caller gets an error and the statement is cancelled server-side
//! by `statement_timeout`.
//!
//! Migrations run in one transaction under a transaction-scoped advisory lock, so replicas
//! starting together apply each one once; the table `seed_schema` records those applied.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use super::{unsigned, Backend, StoreError};

mod conversations;
mod keys;
mod usage;

/// The environment variable the password is read from unless a region names another (libpq's).
pub const DEFAULT_PASSWORD_ENV: &str = "PGPASSWORD";

/// Longest wait for a pooled connection (or a new one).
pub const WAIT: Duration = Duration::from_secs(10);

/// Longest a whole call may take; the server cancels a statement running past it.
pub const CALL: Duration = Duration::from_secs(30);

/// Connections per store (per region, per process).
const POOL_SIZE: usize = 16;

/// The advisory lock key migrations run under (`seed` in ASCII).
const MIGRATION_LOCK: i64 = 0x7365_6564;

/// The schema, one migration per entry; `seed_schema` lists those applied.
const MIGRATIONS: &[&str] = &[
    // 1: conversations, their messages, usage records (as SQLite's first; `n` orders
    // conversations updated in the same second, as SQLite's rowid does).
    "CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        n BIGSERIAL NOT NULL,
        tenant TEXT NOT NULL,
        title TEXT,
        model TEXT,
        created BIGINT NOT NULL,
        updated BIGINT NOT NULL
    );
    CREATE INDEX conversations_by_tenant ON conversations (tenant, updated);
    CREATE TABLE messages (
        conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        created BIGINT NOT NULL,
        PRIMARY KEY (conversation, seq)
    );
    CREATE TABLE usage (
        id BIGSERIAL PRIMARY KEY,
        tenant TEXT NOT NULL,
        key_id TEXT,
        edition TEXT NOT NULL,
        created BIGINT NOT NULL,
        day TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        finish_reason TEXT NOT NULL,
        cost DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX usage_by_tenant_day ON usage (tenant, day);",
    // 2: API keys (the secret's SHA-256, never the secret).
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        created BIGINT NOT NULL,
        revoked BIGINT
    );",
    // 3: a request's row is written at admission (`running`, under a lease that `expires`) and
    // completed at its end; `charged` is what it counts against the tenant's quotas; each
    // tenant's month charge is one row, the lock that orders its admissions.
    "ALTER TABLE usage ADD COLUMN charged BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE usage ADD COLUMN expires BIGINT;
    UPDATE usage SET charged = prompt_tokens + completion_tokens;
    CREATE INDEX usage_by_tenant_created ON usage (tenant, created);
    CREATE INDEX usage_running ON usage (tenant, expires) WHERE expires IS NOT NULL;
    CREATE TABLE quota_month (
        tenant TEXT NOT NULL,
        month BIGINT NOT NULL,
        tokens BIGINT NOT NULL,
        PRIMARY KEY (tenant, month)
    );",
];

/// Whether a region's `store` value is a PostgreSQL URL.
pub fn is_url(value: &str) -> bool {
    value.starts_with("postgres://") || value.starts_with("postgresql://")
}

/// Checks a store URL: it parses, and holds no password (that comes from the environment,
/// never from a file).
pub fn check_url(url: &str) -> Result<(), String> {
    let config = tokio_postgres::Config::from_str(url).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
    if config.get_password().is_some() {
        return Err(format!(
            "the store URL must not hold a password; set it in the environment ({DEFAULT_PASSWORD_ENV}, \
             or the variable the region's `store_password_env` names)"
        ));
    }
    Ok(())
}

/// A region's PostgreSQL store.
pub struct PgStore {
    url: String,
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks stop, which panics inside another
        // runtime's worker; nothing of ours is left to wait for, so let it go in the background.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// What a call can fail with before it is put in the store's terms.
enum Failure {
    Db(tokio_postgres::Error),
    Pool(PoolError),
    NotFound,
    Other(String),
    Timeout,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        Failure::Pool(e)
    }
}

impl PgStore {
    /// Connects to the database at `url` (with `password`, if any) and brings its schema up to
    /// date.
    pub fn open(url: &str, password: Option<&str>) -> Result<PgStore, StoreError> {
        let fail = |message: String| StoreError::Other { store: url.to_string(), message };
        check_url(url).map_err(fail)?;
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| fail(e.to_string()))?;
        if let Some(p) = password {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(WAIT);
        }
        if config.get_application_name().is_none() {
            config.application_name("seed");
        }
        // The server cancels a statement the client has stopped waiting for.
        let timeout = format!("-c statement_timeout={}", CALL.as_millis());
        let options = config.get_options().map_or(timeout.clone(), |o| format!("{o} {timeout}"));
        config.options(options);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("seed-store-pg")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the store's runtime: {e}")))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let store = PgStore { url: url.to_string(), pool, runtime: Some(runtime) };
        store.migrate()?;
        Ok(store)
    }

    /// Runs `f` with the pool on the store's runtime and waits for it, at most [`CALL`].
    fn run<T, F>(&self, f: impl FnOnce(Pool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Failure>> + Send + 'static,
    {
        let Some(rt) = &self.runtime else { return Err(self.fail("the store is closed".into())) };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.pool.clone());
        rt.spawn(async move {
            let result = tokio::time::timeout(CALL, fut).await.unwrap_or(Err(Failure::Timeout));
            let _ = tx.send(result);
        });
        // The sender is gone without an answer only if the task panicked.
        let result = rx.recv().unwrap_or_else(|_| Err(Failure::Other("the call failed".into())));
        result.map_err(|f| self.failure(f))
    }

    fn fail(&self, message: String) -> StoreError {
        StoreError::Other { store: self.url.clone(), message }
    }

    fn failure(&self, f: Failure) -> StoreError {
        match f {
            Failure::Db(e) if e.code() == Some(&SqlState::DISK_FULL) => StoreError::Full,
            Failure::Db(e) => self.fail(match e.as_db_error() {
                Some(db) => format!("{}: {}", db.code().code(), db.message()),
                None => e.to_string(),
            }),
            Failure::Pool(PoolError::Backend(e)) => self.failure(Failure::Db(e)),
            Failure::Pool(e) => self.fail(format!("no connection: {e}")),
            Failure::NotFound => StoreError::NotFound,
            Failure::Other(m) => self.fail(m),
            Failure::Timeout => self.fail(format!("no answer within {} s", CALL.as_secs())),
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let mut c = pool.get().await?;
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS seed_schema (version BIGINT PRIMARY KEY)").await?;
            let applied: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM seed_schema", &[]).await?.get(0);
            let known = MIGRATIONS.len() as i64;
            if applied > known {
                return Err(Failure::Other(format!(
                    "schema version {applied} is newer than this build knows ({known})"
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(unsigned(applied) as usize) {
                tx.batch_execute(sql).await?;
                tx.execute("INSERT INTO seed_schema (version) VALUES ($1)", &[&(i as i64 + 1)]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

impl Backend for PgStore {
    fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|pool| async move {
            let c = pool.get().await?;
            Ok(c.query_one("SELECT COALESCE(MAX(version), 0) FROM seed_schema", &[]).await?.get(0))
        })
    }

    fn latest_version(&self) -> i64 {
        MIGRATIONS.len() as i64
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}
