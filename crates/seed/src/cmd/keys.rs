//! `seed keys create | list | revoke`: API keys of the tenants in a platform config.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use platform::{keys, Config, Store};

/// Arguments of `seed keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    /// The platform configuration (each tenant's keys live in its region's store).
    #[arg(long, default_value = "seed.toml")]
    config: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Create a key for a tenant; the secret is printed once and never stored.
    Create {
        /// Tenant id from the config.
        #[arg(long)]
        tenant: String,
    },
    /// List keys (ids, tenants, state; never secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// Key id, as `seed keys list` prints it.
        id: String,
    },
}

/// Runs `seed keys`.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config).with_context(|| format!("invalid config {}", args.config.display()))?;
    let open = |region: &platform::Region| {
        Store::open(&region.store)
            .map(Arc::new)
            .with_context(|| format!("opening the store of region `{}` ({})", region.name, region.store.describe()))
    };
    match args.action {
        Action::Create { tenant } => {
            let t = config.tenant(&tenant).with_context(|| {
                format!(
                    "no tenant `{tenant}` in {} (tenants: {})",
                    args.config.display(),
                    config.tenants.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")
                )
            })?;
            let region = config.region(&t.region).context("the tenant's region")?;
            let (info, secret) = keys::create(&*open(region)?, &tenant)?;
            eprintln!(
                "created {} for tenant {tenant} in region {}; the secret is shown only now:",
                info.id, region.name
            );
            println!("{secret}");
        }
        Action::List => {
            println!("{:<14} {:<20} {:<10} {:<12} state", "id", "tenant", "region", "created");
            for region in &config.regions {
                for k in open(region)?.list_keys()? {
                    let state = match k.revoked {
                        Some(t) => format!("revoked at {t}"),
                        None => "active".to_owned(),
                    };
                    println!("{:<14} {:<20} {:<10} {:<12} {state}", k.id, k.tenant, region.name, k.created);
                }
            }
        }
        Action::Revoke { id } => {
            let stores = config.regions.iter().map(open).collect::<anyhow::Result<Vec<_>>>()?;
            let k = keys::revoke(&stores, &id)?.with_context(|| format!("no key with id `{id}`"))?;
            println!(
                "revoked {} (tenant {}); every server refuses it within {} s",
                k.id,
                k.tenant,
                keys::CACHE_TTL.as_secs()
            );
        }
    }
    Ok(())
}
