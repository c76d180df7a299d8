//! API keys in a region's store: each key's public id, tenant and the SHA-256 of its secret
//! (never the secret), looked up by that hash.

use super::StoreError;
use crate::keys::KeyInfo;

/// A region's API keys.
pub trait Keys {
    /// Adds `key`; `false` (and nothing written) when its id or hash is taken already.
    fn add_key(&self, key: &KeyInfo) -> Result<bool, StoreError>;

    /// Every key, revoked ones included, oldest first.
    fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError>;

    /// Revokes key `id` at `now` (a second revocation keeps the first time); `None` when no
    /// key has this id.
    fn revoke_key(&self, id: &str, now: u64) -> Result<Option<KeyInfo>, StoreError>;

    /// The key whose secret hashes to `sha256` (hex), revoked or not.
    fn key_by_hash(&self, sha256: &str) -> Result<Option<KeyInfo>, StoreError>;
}
