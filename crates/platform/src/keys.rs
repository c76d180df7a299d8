//! API keys: `seed keys create | list | revoke`, and who a request's key belongs to.
//!
//! A key is `sk-seed-` followed by 64 hex digits of randomness; it is shown once, at creation.
//! Only its SHA-256 is stored, in the tenant's region's store ([`crate::store::Keys`]), so every
//! replica of the region sees the same keys. A lookup hashes the presented secret and finds the
//! row by that hash (an index probe): what the timing of a probe could tell is about hashes,
//! which an attacker can neither choose for a secret nor invert.
//!
//! A server remembers each answer for [`CACHE_TTL`], so a busy key costs one query per TTL per
//! replica and a revocation is honoured by every replica at most that long after it committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// The prefix of every secret.
pub const PREFIX: &str = "sk-seed-";

/// How long a replica trusts a lookup: the longest a revocation (or a new key) takes to reach
/// it.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Cached lookups kept at most (beyond it, expired ones go, then all).
const CACHE_ENTRIES: usize = 10_000;

/// A stored key (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Public id, e.g. `key_1a2b3c4d`.
    pub id: String,
    /// The tenant it authenticates.
    pub tenant: String,
    /// SHA-256 of the secret, hex.
    pub sha256: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Revocation time, if revoked.
    pub revoked: Option<u64>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 (hex) a secret is stored and looked up as.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` has the shape of a key (prefix and 64 lower-case hex digits); anything else
/// is refused without a lookup.
pub fn well_formed(secret: &str) -> bool {
    secret
        .strip_prefix(PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Creates a key for `tenant` in `store` (its region's); returns its record and the secret
/// (shown once, never stored).
pub fn create(store: &Store, tenant: &str) -> Result<(KeyInfo, String), StoreError> {
    let mut rng = rand::thread_rng();
    loop {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let secret = format!("{PREFIX}{}", hex(&secret));
        let info = KeyInfo {
            id: format!("key_{:08x}", rng.next_u32()),
            tenant: tenant.to_owned(),
            sha256: digest(&secret),
            created: now(),
            revoked: None,
        };
        // A taken id (one in 2^32 per key) draws again.
        if store.add_key(&info)? {
            return Ok((info, secret));
        }
    }
}

/// Revokes key `id` in whichever of `stores` holds it; `None` when none does.
pub fn revoke(stores: &[Arc<Store>], id: &str) -> Result<Option<KeyInfo>, StoreError> {
    let at = now();
    for store in stores {
        if let Some(k) = store.revoke_key(id, at)? {
            return Ok(Some(k));
        }
    }
    Ok(None)
}

/// Who a presented key belongs to, over the stores of the regions a server serves.
pub struct KeyStore {
    stores: Vec<Arc<Store>>,
    ttl: Duration,
    /// Secret's hash → the live key it authenticates (or none), and when that was read.
    cache: Mutex<HashMap<String, (Option<KeyInfo>, Instant)>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("stores", &self.stores).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Keys found in any of `stores` (a server's regions), each lookup trusted for
    /// [`CACHE_TTL`].
    pub fn new(stores: Vec<Arc<Store>>) -> KeyStore {
        KeyStore::with_ttl(stores, CACHE_TTL)
    }

    /// As [`KeyStore::new`], trusting a lookup for `ttl` (zero: never cached).
    pub fn with_ttl(stores: Vec<Arc<Store>>, ttl: Duration) -> KeyStore {
        KeyStore { stores, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// The answer [`KeyStore::authenticate`] would give from memory alone, if it has one: a
    /// malformed secret, or one looked up less than the TTL ago. Never touches a store.
    pub fn cached(&self, secret: &str) -> Option<Option<KeyInfo>> {
        if !well_formed(secret) {
            return Some(None);
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (key, at) = cache.get(&digest(secret))?;
        (at.elapsed() < self.ttl).then(|| key.clone())
    }

    /// The live key `secret` authenticates, if any: malformed, unknown and revoked secrets all
    /// answer `None`. Reads the stores unless a fresh answer is cached; a store that fails is
    /// an error (never taken for "no such key").
    pub fn authenticate(&self, secret: &str) -> Result<Option<KeyInfo>, StoreError> {
        if let Some(answer) = self.cached(secret) {
            return Ok(answer);
        }
        let hash = digest(secret);
        let mut found = None;
        for store in &self.stores {
            if let Some(k) = store.key_by_hash(&hash)? {
                found = Some(k).filter(|k| k.revoked.is_none());
                break;
            }
        }
        if !self.ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_ENTRIES {
                let ttl = self.ttl;
                cache.retain(|_, (_, at)| at.elapsed() < ttl);
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(hash, (found.clone(), Instant::now()));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_of_a_secret() {
        let good = format!("{PREFIX}{}", "0123456789abcdef".repeat(4));
        assert!(well_formed(&good));
        assert!(!well_formed(&good[..good.len() - 1]));
        assert!(!well_formed(&good.to_uppercase()));
        assert!(!well_formed(&format!("{good}0")));
        assert!(!well_formed(&digest(&good)), "a hash is not a key");
        assert!(!well_formed(""));
    }
}
