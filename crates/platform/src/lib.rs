//! Seed's platform layer: the `seed.toml` configuration of regions, editions and tenants,
//! validated as a whole before a server starts; tenant keys; and the per-region store of
//! conversations and usage, so the HTTP server stays a thin layer over them.

pub mod config;
pub mod keys;
pub mod quota;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{Config, ConfigError, Edition, Quotas, Region, Tenant};
pub use keys::{KeyInfo, KeyStore};
pub use store::{Backend, Conversations, Keys, Location, Store, StoreError, Usage};
