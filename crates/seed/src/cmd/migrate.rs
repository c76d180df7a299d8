//! `seed migrate`: brings every region's store (or one region's) up to this build's schema, on
//! purpose — a deployment runs it as a job before new replicas start. Opening a store applies
//! the missing migrations (PostgreSQL's under an advisory lock, so a replica starting at the same
//! moment waits rather than applying them twice); this command reports each store's version.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use platform::{Config, Store};

/// Arguments of `seed migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The platform configuration whose regions' stores to migrate.
    #[arg(long, default_value = "seed.toml")]
    config: PathBuf,
    /// Only this region.
    #[arg(long)]
    region: Option<String>,
}

/// Runs `seed migrate`.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config).with_context(|| format!("invalid config {}", args.config.display()))?;
    let regions: Vec<_> = match &args.region {
        Some(name) => vec![config.region(name).with_context(|| {
            let names: Vec<&str> = config.regions.iter().map(|r| r.name.as_str()).collect();
            format!("no region `{name}` in {} (regions: {})", args.config.display(), names.join(", "))
        })?],
        None => config.regions.iter().collect(),
    };
    anyhow::ensure!(!regions.is_empty(), "{} names no region", args.config.display());
    for region in regions {
        let store = Store::open(&region.store).with_context(|| {
            format!("migrating the store of region `{}` ({})", region.name, region.store.describe())
        })?;
        let version = store.schema_version()?;
        println!("region {}: {} at schema version {version} (this build's latest)", region.name, store.describe());
    }
    Ok(())
}
