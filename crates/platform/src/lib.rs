//! Seed's platform layer: the `seed.toml` configuration of regions, editions and tenants,
//! validated as a whole before a server starts. Keys, quotas, usage and conversations will live
//! here too, so the HTTP server stays a thin layer over them.

pub mod config;
pub mod keys;

pub use config::{Config, ConfigError, Edition, Quotas, Region, Tenant};
pub use keys::{KeyError, KeyInfo, KeyStore};
