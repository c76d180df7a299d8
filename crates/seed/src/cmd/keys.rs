//! `seed keys create | list | revoke`: API keys of the tenants in a platform config.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use platform::{Config, KeyStore};

/// Arguments of `seed keys`.
#[derive(Args, Debug)]
pub struct KeysArgs {
    /// The platform configuration (its `keys` entry names the key store).
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
    let store = KeyStore::open(&config.keys);
    match args.action {
        Action::Create { tenant } => {
            anyhow::ensure!(
                config.tenant(&tenant).is_some(),
                "no tenant `{tenant}` in {} (tenants: {})",
                args.config.display(),
                config.tenants.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")
            );
            let (info, secret) = store.create(&tenant)?;
            eprintln!("created {} for tenant {tenant}; the secret is shown only now:", info.id);
            println!("{secret}");
        }
        Action::List => {
            println!("{:<14} {:<20} {:<12} state", "id", "tenant", "created");
            for k in store.list()? {
                let state = match k.revoked {
                    Some(t) => format!("revoked at {t}"),
                    None => "active".to_owned(),
                };
                println!("{:<14} {:<20} {:<12} {state}", k.id, k.tenant, k.created);
            }
        }
        Action::Revoke { id } => {
            let k = store.revoke(&id)?;
            println!("revoked {} (tenant {})", k.id, k.tenant);
        }
    }
    Ok(())
}
