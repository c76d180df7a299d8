//! Opening a store: several openers of one fresh file at the same moment (two
//! `seed serve` processes on one data folder) each get a working store, and the
//! schema is applied once.

use std::sync::{Arc, Barrier};

use platform::store::sqlite::SqliteStore;
use platform::Backend;

#[test]
fn concurrent_first_opens_of_one_file_all_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..20 {
        let path = dir.path().join(format!("store-{round}.sqlite"));
        let barrier = Arc::new(Barrier::new(4));
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path).map(|s| s.schema_version())
                })
            })
            .collect();
        let versions: Vec<i64> = openers
            .into_iter()
            .map(|t| t.join().expect("no panic").unwrap_or_else(|e| panic!("round {round}: {e}")).expect("version"))
            .collect();
        assert!(versions.iter().all(|&v| v == versions[0] && v > 0), "round {round}: {versions:?}");
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(store.integrity_check().expect("check"), "ok");
    }
}
