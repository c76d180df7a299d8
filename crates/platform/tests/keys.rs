//! API keys: secrets shown once and stored only as SHA-256 in the region's store; unknown,
//! malformed and revoked secrets authenticate nothing; a revocation reaches every replica within
//! the cache's TTL; a store that fails is an error, never "no such key".

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::keys::{self, PREFIX};
use platform::store::sqlite::SqliteStore;
use platform::testing::PgServer;
use platform::{KeyStore, Location, Store};

#[test]
fn create_authenticate_revoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.sqlite");
    let store = Arc::new(Store::new(SqliteStore::open(&path).expect("open")));
    let (a, secret_a) = keys::create(&store, "acme").expect("create");
    let (b, secret_b) = keys::create(&store, "globex").expect("create");
    assert!(secret_a.starts_with(PREFIX) && secret_a.len() == PREFIX.len() + 64);
    assert_ne!(a.id, b.id);
    assert_ne!(secret_a, secret_b);

    // The file holds the hash, never the secret (WAL included).
    let mut on_disk = std::fs::read(&path).expect("read");
    on_disk.extend(std::fs::read(path.with_extension("sqlite-wal")).unwrap_or_default());
    let has = |needle: &str| on_disk.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(&secret_a) && !has(&secret_a[PREFIX.len()..]));
    assert!(has(&a.sha256));

    // A server's view, uncached: every answer is read from the store.
    let server = KeyStore::with_ttl(vec![Arc::clone(&store)], Duration::ZERO);
    let who = |s: &str| server.authenticate(s).expect("lookup").map(|k| k.tenant);
    assert_eq!(who(&secret_a), Some("acme".into()));
    assert_eq!(who(&secret_b), Some("globex".into()));
    assert_eq!(who(""), None);
    assert_eq!(who("sk-seed-nonsense"), None);
    assert_eq!(who(&secret_a[..secret_a.len() - 1]), None);
    assert_eq!(who(&a.sha256), None, "the hash is not a key");

    let revoked = keys::revoke(&[Arc::clone(&store)], &a.id).expect("revoke").expect("found");
    assert!(revoked.revoked.is_some());
    assert_eq!(who(&secret_a), None, "revoked key still accepted");
    assert_eq!(who(&secret_b), Some("globex".into()));
    // Revoking twice keeps the first time; an unknown id is no key.
    let again = keys::revoke(&[Arc::clone(&store)], &a.id).expect("revoke").expect("found");
    assert_eq!(again.revoked, revoked.revoked);
    assert_eq!(keys::revoke(&[Arc::clone(&store)], "key_nope").expect("revoke"), None);
    assert_eq!(store.list_keys().expect("list").len(), 2);
}

#[test]
fn a_cached_answer_lasts_its_ttl_and_no_longer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open_file(&dir.path().join("k.sqlite")).expect("open"));
    let (a, secret) = keys::create(&store, "acme").expect("create");
    let ttl = Duration::from_millis(400);
    let server = KeyStore::with_ttl(vec![Arc::clone(&store)], ttl);
    assert!(server.cached(&secret).is_none(), "nothing read yet");
    assert!(server.authenticate(&secret).expect("lookup").is_some());
    let read = Instant::now();
    keys::revoke(&[Arc::clone(&store)], &a.id).expect("revoke");
    // Within the TTL the remembered answer stands (unless the TTL has already passed).
    let cached = server.cached(&secret);
    if read.elapsed() < ttl {
        assert!(cached.is_some_and(|k| k.is_some()), "the answer was not remembered");
    }
    std::thread::sleep(ttl);
    assert!(server.cached(&secret).is_none(), "an expired answer was used");
    assert!(server.authenticate(&secret).expect("lookup").is_none(), "the revocation was not seen");
}

/// Two replicas of a region on one PostgreSQL database: a key created through one works on
/// the other, and its revocation is refused by the other within 5 s (the cache's TTL).
#[test]
fn replicas_share_keys_and_see_a_revocation_within_five_seconds() {
    let server = PgServer::start().expect("a PostgreSQL server");
    let url = server.create_database("keys").expect("database");
    let open = || Arc::new(Store::open(&Location::parse(&url, None).expect("url")).expect("open"));
    let (one, two) = (open(), open());
    let (replica_one, replica_two) = (KeyStore::new(vec![Arc::clone(&one)]), KeyStore::new(vec![Arc::clone(&two)]));
    let (key, secret) = keys::create(&one, "acme").expect("create");
    assert_eq!(replica_two.authenticate(&secret).expect("lookup").map(|k| k.id), Some(key.id.clone()));
    assert!(replica_one.authenticate(&secret).expect("lookup").is_some());

    let revoked_at = Instant::now();
    keys::revoke(&[Arc::clone(&one)], &key.id).expect("revoke").expect("found");
    while replica_two.authenticate(&secret).expect("lookup").is_some() {
        assert!(revoked_at.elapsed() < Duration::from_secs(5), "replica two still accepts a revoked key");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("revocation seen by the other replica after {:?}", revoked_at.elapsed());

    // A database that is gone is an error, not "no such key".
    let (_, fresh) = keys::create(&one, "acme").expect("create");
    drop(server);
    assert!(replica_two.authenticate(&fresh).is_err());
}
