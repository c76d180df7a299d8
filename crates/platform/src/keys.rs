//! API keys: `seed keys create | list | revoke`.
//!
//! A key is `sk-seed-` followed by 64 hex digits of randomness; it is shown once, at creation.
//! Only its SHA-256 is stored (a JSON file written atomically: temp file, fsync, rename). A lookup
//! hashes the presented secret and compares it with every stored hash in constant time, without
//! stopping at a match, so timing says nothing about which key (if any) came close.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The prefix of every secret.
pub const PREFIX: &str = "sk-seed-";

/// A key-store problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store could not be read or written.
    #[error("key store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store's contents are not a key list.
    #[error("key store {path} is not valid: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// No key has this id.
    #[error("no key with id `{0}`")]
    UnknownId(String),
}

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

#[derive(Default, Serialize, Deserialize)]
struct File {
    keys: Vec<KeyInfo>,
}

/// The key store: a JSON file, re-read when it changes on disk (so a revocation by
/// `seed keys revoke` reaches a running server).
pub struct KeyStore {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<KeyInfo>)>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two byte strings in time independent of their contents.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl KeyStore {
    /// A store at `path` (the file need not exist yet).
    pub fn open(path: impl Into<PathBuf>) -> KeyStore {
        KeyStore { path: path.into(), cache: Mutex::new((None, Vec::new())) }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Vec<KeyInfo>, KeyError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice::<File>(&bytes)
                .map(|f| f.keys)
                .map_err(|e| KeyError::Corrupt { path: self.path.clone(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(KeyError::Io { path: self.path.clone(), source }),
        }
    }

    fn write(&self, keys: Vec<KeyInfo>) -> Result<(), KeyError> {
        let io = |source| KeyError::Io { path: self.path.clone(), source };
        let json = serde_json::to_vec_pretty(&File { keys })
            .map_err(|e| KeyError::Corrupt { path: self.path.clone(), message: e.to_string() })?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&json).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable; not every platform can open a directory.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Creates a key for `tenant`; returns its record and the secret (shown once, never stored).
    pub fn create(&self, tenant: &str) -> Result<(KeyInfo, String), KeyError> {
        let mut keys = self.read()?;
        let mut rng = rand::thread_rng();
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let secret = format!("{PREFIX}{}", hex(&secret));
        let id = loop {
            let id = format!("key_{:08x}", rng.next_u32());
            if !keys.iter().any(|k| k.id == id) {
                break id;
            }
        };
        let info = KeyInfo {
            id,
            tenant: tenant.to_owned(),
            sha256: hex(&Sha256::digest(secret.as_bytes())),
            created: now(),
            revoked: None,
        };
        keys.push(info.clone());
        self.write(keys)?;
        Ok((info, secret))
    }

    /// Every key, revoked ones included.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        self.read()
    }

    /// Revokes key `id` (revoking twice is not an error).
    pub fn revoke(&self, id: &str) -> Result<KeyInfo, KeyError> {
        let mut keys = self.read()?;
        let key = keys.iter_mut().find(|k| k.id == id).ok_or_else(|| KeyError::UnknownId(id.to_owned()))?;
        key.revoked.get_or_insert_with(now);
        let info = key.clone();
        self.write(keys)?;
        Ok(info)
    }

    /// The live key `secret` authenticates, if any. Malformed, unknown and revoked secrets all
    /// answer `None`; a store that cannot be read answers `None` too (fail closed) after
    /// keeping the last good copy for the next look.
    pub fn authenticate(&self, secret: &str) -> Option<KeyInfo> {
        let digest = hex(&Sha256::digest(secret.as_bytes()));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified.is_none() || modified != cache.0 {
            match self.read() {
                Ok(keys) => *cache = (modified, keys),
                Err(_) => return None,
            }
        }
        let mut found = None;
        for key in &cache.1 {
            if constant_time_eq(key.sha256.as_bytes(), digest.as_bytes()) && key.revoked.is_none() {
                found = Some(key.clone());
            }
        }
        found
    }
}
