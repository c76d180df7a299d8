//! Shared helpers of the integration tests: real models (fetched into the cache on
//! first use) and the golden files in `testdata/golden/`.
#![allow(dead_code)] // each test binary uses a different subset

pub mod golden;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use kernels::ThreadPool;
use model::LoadedModel;
use serde_json::Value;

/// The repository's `testdata/` folder.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A golden file, parsed.
pub fn golden_json(name: &str) -> Value {
    let path = testdata().join("golden").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The catalogue model `name`, loaded once per test binary, with a thread pool
/// shared by all tests of the binary (the pool runs one region at a time).
pub fn shared_model(name: &str) -> (&'static LoadedModel, &'static ThreadPool) {
    static MODELS: OnceLock<Mutex<HashMap<String, &'static LoadedModel>>> = OnceLock::new();
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    let pool = POOL.get_or_init(ThreadPool::with_available_parallelism);
    let mut models = MODELS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let model = *models.entry(name.to_string()).or_insert_with(|| {
        let path = seed::catalogue::ensure_model(name).unwrap_or_else(|e| panic!("fetching {name}: {e:#}"));
        let loaded = LoadedModel::open(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
        Box::leak(Box::new(loaded))
    });
    (model, pool)
}
