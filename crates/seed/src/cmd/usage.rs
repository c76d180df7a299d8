//! `seed usage`: the operator's view of usage — totals by tenant, day and edition, read from
//! each region's store (with `--config`) or the local store (`<data dir>/seed.sqlite`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use platform::store::sqlite::SqliteStore;
use platform::store::{day_of, parse_day};
use platform::{Config, Location, Store};
use server::config::Stores;

/// Arguments of `seed usage`.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// The platform configuration whose regions' stores to read (else the local store).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data folder holding `seed.sqlite` (default: `$SEED_HOME`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// First day, YYYY-MM-DD (UTC; default 30 days ago).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC; default today).
    #[arg(long)]
    to: Option<String>,
}

/// The local store's file under a data folder.
pub fn local_store_path(data_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match data_dir {
        Some(d) => d.to_path_buf(),
        None => seed::catalogue::seed_home()?,
    };
    Ok(dir.join("seed.sqlite"))
}

/// Opens the stores a server with `config` uses: every region's, and the local one when no
/// tenant is configured. `max_pages` caps each file (tests: a "full disk").
pub fn open_stores(config: Option<&Config>, data_dir: Option<&Path>, max_pages: Option<u64>) -> anyhow::Result<Stores> {
    let mut stores = Stores::default();
    if let Some(c) = config {
        for r in &c.regions {
            let s = open_limited(&r.store, max_pages)
                .with_context(|| format!("opening the store of region `{}`", r.name))?;
            stores.regions.insert(r.name.clone(), Arc::new(s));
        }
    }
    if config.is_none_or(|c| c.tenants.is_empty()) {
        let path = local_store_path(data_dir)?;
        let s = open_limited(&Location::Sqlite(path.clone()), max_pages)
            .with_context(|| format!("opening {}", path.display()))?;
        stores.local = Some(Arc::new(s));
    }
    Ok(stores)
}

/// Opens a store; a SQLite file with at most `max_pages` pages when that is given.
fn open_limited(location: &Location, max_pages: Option<u64>) -> Result<Store, platform::StoreError> {
    match location {
        Location::Sqlite(path) => Ok(Store::new(SqliteStore::open_limited(path, max_pages)?)),
        other => Store::open(other),
    }
}

/// Runs `seed usage`.
pub fn run(args: UsageArgs) -> anyhow::Result<()> {
    let now = server::state::unix_now();
    let day = |v: &Option<String>, default: String, flag: &str| -> anyhow::Result<String> {
        match v {
            Some(s) => parse_day(s).with_context(|| format!("--{flag} must be a day as YYYY-MM-DD; got `{s}`")),
            None => Ok(default),
        }
    };
    let from = day(&args.from, day_of(now.saturating_sub(29 * 86_400)), "from")?;
    let to = day(&args.to, day_of(now), "to")?;
    anyhow::ensure!(from <= to, "--from ({from}) is after --to ({to})");
    let config = match &args.config {
        Some(p) => Some(Config::load(p).with_context(|| format!("invalid config {}", p.display()))?),
        None => None,
    };
    let stores = open_stores(config.as_ref(), args.data_dir.as_deref(), None)?;
    let mut named: Vec<(String, Arc<Store>)> = stores.regions.into_iter().collect();
    if let Some(s) = stores.local {
        named.push(("local".into(), s));
    }
    println!(
        "{:<8} {:<16} {:<10} {:<12} {:>8} {:>12} {:>10} {:>12} {:>9} {:>11} {:>12}",
        "region",
        "tenant",
        "day",
        "edition",
        "requests",
        "prompt",
        "cached",
        "completion",
        "cancelled",
        "interrupted",
        "cost"
    );
    for (region, store) in named {
        for r in store.usage_totals(args.tenant.as_deref(), &from, &to)? {
            println!(
                "{:<8} {:<16} {:<10} {:<12} {:>8} {:>12} {:>10} {:>12} {:>9} {:>11} {:>12.6}",
                region,
                r.tenant,
                r.day,
                r.edition,
                r.requests,
                r.prompt_tokens,
                r.cached_tokens,
                r.completion_tokens,
                r.cancelled,
                r.interrupted,
                r.cost
            );
        }
    }
    Ok(())
}
