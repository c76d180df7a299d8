//! Shared helpers of the integration tests: real models (fetched into the cache on
//! first use) and the golden files in `testdata/golden/`.
#![allow(dead_code)] // each test binary uses a different subset

pub mod golden;
pub mod synthetic;

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

/// The kernel levels the golden tests also run at (fidelity, determinism and batch
/// invariance must hold at every level), those of them this CPU has: the scalar
/// reference, the 256-bit level and the AVX-512 level without VNNI on x86-64, NEON
/// without and with `sdot` on ARM64. The process's own level (the CPU's best, unless
/// `SEED_KERNELS` says otherwise) is the one the tests ran at already.
pub const OTHER_LEVELS: [kernels::Isa; 5] =
    [kernels::Isa::Scalar, kernels::Isa::Avx2, kernels::Isa::Avx512, kernels::Isa::Neon, kernels::Isa::NeonDotprod];

/// Runs this test binary's tests whose names contain `filter` again in a child process
/// for each of `levels` that this CPU runs, other than the active one, with
/// `SEED_KERNELS` set to it; panics with the child's output if any of its tests fails.
/// Inside such a child (or whenever `SEED_KERNELS` is set) it does nothing.
pub fn rerun_at_levels(filter: &str, levels: &[kernels::Isa]) {
    if std::env::var_os("SEED_KERNELS").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    for &isa in levels.iter().filter(|i| i.is_available() && **i != kernels::active_isa()) {
        let out = std::process::Command::new(&exe)
            .args([filter, "--test-threads", "2"])
            .env("SEED_KERNELS", isa.name())
            .output()
            .expect("rerunning the test binary");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "at SEED_KERNELS={isa}:\n{text}");
        // The child must have run something (a filter that matched nothing passes vacuously).
        assert!(!text.contains("running 0 tests"), "at SEED_KERNELS={isa}: no test matched {filter:?}\n{text}");
        eprintln!("SEED_KERNELS={isa}: {}", text.lines().filter(|l| l.starts_with("test result")).collect::<String>());
    }
}
