//! The key store: secrets shown once and stored only as SHA-256; unknown, malformed and revoked
//! secrets authenticate nothing; a revocation reaches a store opened earlier.

use platform::keys::PREFIX;
use platform::KeyStore;

#[test]
fn create_authenticate_revoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.json");
    let store = KeyStore::open(&path);
    let (a, secret_a) = store.create("acme").expect("create");
    let (b, secret_b) = store.create("globex").expect("create");
    assert!(secret_a.starts_with(PREFIX) && secret_a.len() == PREFIX.len() + 64);
    assert_ne!(a.id, b.id);
    assert_ne!(secret_a, secret_b);

    let on_disk = std::fs::read_to_string(&path).expect("read");
    assert!(!on_disk.contains(&secret_a) && !on_disk.contains(&secret_a[PREFIX.len()..]));
    assert!(on_disk.contains(&a.sha256));

    // A server's store, opened before the revocation.
    let server = KeyStore::open(&path);
    assert_eq!(server.authenticate(&secret_a).map(|k| k.tenant), Some("acme".into()));
    assert_eq!(server.authenticate(&secret_b).map(|k| k.tenant), Some("globex".into()));
    assert!(server.authenticate("").is_none());
    assert!(server.authenticate("sk-seed-nonsense").is_none());
    assert!(server.authenticate(&secret_a[..secret_a.len() - 1]).is_none());
    assert!(server.authenticate(&a.sha256).is_none(), "the hash is not a key");

    let revoked = store.revoke(&a.id).expect("revoke");
    assert!(revoked.revoked.is_some());
    // mtime granularity: make sure the file looks changed even on coarse clocks.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options().write(true).open(&path).expect("open").set_modified(later).expect("touch");
    assert!(server.authenticate(&secret_a).is_none(), "revoked key still accepted");
    assert!(server.authenticate(&secret_b).is_some());

    assert!(store.revoke("key_nope").is_err());
    let list = store.list().expect("list");
    assert_eq!(list.len(), 2);
}

#[test]
fn corrupt_store_fails_closed_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keys.json");
    std::fs::write(&path, "not json").expect("write");
    let store = KeyStore::open(&path);
    let err = store.list().expect_err("corrupt");
    assert!(err.to_string().contains("not valid"), "{err}");
    assert!(store.authenticate("sk-seed-x").is_none());
    assert!(store.create("t").is_err(), "never overwrite a store it cannot read");
}
