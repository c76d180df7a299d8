//! The state every handler shares: the configuration, the models and their
//! engines once they are loaded ([`Backends`]), and the shutdown flag.
//!
//! The server listens before the models are loaded: until every one of them is
//! marked ready ([`AppState::set_ready`], [`AppState::set_ready_at`]), `/health`
//! answers 503, and a generation route answers 503 "loading" for a model that
//! is not loaded yet.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::Engine;
use model::LoadedModel;

use crate::config::ServerConfig;
use crate::error::ApiError;

/// The loaded model and the engine that runs it.
pub struct Backend {
    /// The engine (its own thread, KV pool and scheduler).
    pub engine: Engine,
    /// Weights, tokenizer and chat template.
    pub model: Arc<LoadedModel>,
    /// `system_fingerprint` of every response.
    pub fingerprint: String,
}

impl Backend {
    /// Pairs a started engine with its model.
    pub fn new(model: Arc<LoadedModel>, engine: Engine, model_id: &str) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (env!("CARGO_PKG_VERSION"), model_id, model.tokenizer.n_vocab(), model.model.weight_bytes()).hash(&mut h);
        let s = &engine.config().scheduler;
        (s.block_size, s.n_blocks, s.max_seq_len).hash(&mut h);
        Backend { engine, model, fingerprint: format!("fp_{:010x}", h.finish() & 0xff_ffff_ffff) }
    }

    /// Positions a single sequence may reach: the context, or the whole pool
    /// if that is smaller.
    pub fn max_sequence(&self) -> usize {
        let s = &self.engine.config().scheduler;
        s.max_seq_len.min(s.n_blocks.saturating_mul(s.block_size))
    }
}

/// Requests the server itself refused (the engine counts the rest).
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// 429s: the waiting queue was full.
    pub rejected_busy: AtomicU64,
    /// 503s while loading or shutting down.
    pub rejected_unavailable: AtomicU64,
    /// 429s: a tenant's quota was used up.
    pub rejected_quota: AtomicU64,
    /// 4xx for bad input.
    pub rejected_invalid: AtomicU64,
}

/// One served model: its id, the names requests reach it by, and its backend once loaded.
struct Slot {
    id: String,
    names: Vec<String>,
    backend: OnceLock<Backend>,
    load_error: OnceLock<String>,
}

/// The router from a request's `model` to the backend that runs it: one slot per served
/// model (with flags alone, one), each answering to its id and its aliases (its editions).
pub struct Backends {
    slots: Vec<Slot>,
}

impl Backends {
    /// One empty slot per model of `cfg` ([`ServerConfig::served_models`]).
    pub fn new(cfg: &ServerConfig) -> Self {
        let slots = cfg
            .served_models()
            .into_iter()
            .map(|m| Slot { id: m.id, names: m.aliases, backend: OnceLock::new(), load_error: OnceLock::new() })
            .collect();
        Backends { slots }
    }

    /// The index of the model that `name` (an id or an alias) reaches.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.id == name)
            .or_else(|| self.slots.iter().position(|s| s.names.iter().any(|n| n == name)))
    }

    /// Number of served models.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no model is served (never, for a server built from a [`ServerConfig`]).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Each model's id and the names it answers to, in order.
    pub fn names(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.slots.iter().map(|s| (s.id.as_str(), s.names.as_slice()))
    }

    /// The backend that `name` reaches, if it is loaded.
    pub fn loaded_for(&self, name: &str) -> Option<&Backend> {
        self.find(name).and_then(|i| self.slots[i].backend.get())
    }

    /// The loaded backends with their model ids.
    pub fn loaded(&self) -> impl Iterator<Item = (&str, &Backend)> {
        self.slots.iter().filter_map(|s| s.backend.get().map(|b| (s.id.as_str(), b)))
    }

    /// Ok when every model is loaded; else the first missing one's 503.
    fn all_loaded(&self) -> Result<(), ApiError> {
        self.slots.iter().try_for_each(|s| s.get().map(|_| ()))
    }
}

impl Slot {
    fn get(&self) -> Result<&Backend, ApiError> {
        match self.backend.get() {
            Some(b) => Ok(b),
            None => Err(ApiError::Unavailable(match self.load_error.get() {
                Some(e) => format!("the model `{}` failed to load: {e}", self.id),
                None => format!("the model `{}` is still loading", self.id),
            })),
        }
    }
}

struct Inner {
    cfg: ServerConfig,
    backends: Backends,
    closing: AtomicBool,
    next_id: AtomicU64,
    started: u64,
    counters: ServerCounters,
    labelled: crate::metrics::Labelled,
    leases: crate::quota::Leases,
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// A server that is not ready yet.
    pub fn new(cfg: ServerConfig) -> Self {
        AppState(Arc::new(Inner {
            backends: Backends::new(&cfg),
            closing: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            started: unix_now(),
            counters: ServerCounters::default(),
            labelled: crate::metrics::Labelled::new(cfg.platform.as_deref()),
            leases: crate::quota::Leases::new(cfg.lease),
            cfg,
        }))
    }

    /// A ready server over `model` and `engine`.
    pub fn ready(cfg: ServerConfig, model: Arc<LoadedModel>, engine: Engine) -> Self {
        let state = AppState::new(cfg);
        state.set_ready(model, engine);
        state
    }

    /// Marks the first (with flags alone, the only) model loaded; the first call wins.
    pub fn set_ready(&self, model: Arc<LoadedModel>, engine: Engine) {
        self.set_ready_at(0, model, engine);
    }

    /// Marks model `index` (in [`ServerConfig::served_models`] order) loaded; the first call
    /// wins, an index past the models is ignored.
    pub fn set_ready_at(&self, index: usize, model: Arc<LoadedModel>, engine: Engine) {
        if let Some(slot) = self.0.backends.slots.get(index) {
            let _ = slot.backend.set(Backend::new(model, engine, &slot.id));
        }
    }

    /// Marks loading as failed for every model not loaded yet: requests for them answer 503
    /// with `message`.
    pub fn set_failed(&self, message: String) {
        for slot in &self.0.backends.slots {
            let _ = slot.load_error.set(message.clone());
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.cfg
    }

    /// The usage rows of the requests this process runs, and their leases.
    pub fn leases(&self) -> &crate::quota::Leases {
        &self.0.leases
    }

    /// The served models and their backends.
    pub fn backends(&self) -> &Backends {
        &self.0.backends
    }

    /// Refusal counters.
    pub fn counters(&self) -> &ServerCounters {
        &self.0.counters
    }

    /// Requests and tokens by tenant and edition (with a platform config).
    pub fn labelled(&self) -> &crate::metrics::Labelled {
        &self.0.labelled
    }

    /// The backend that runs `name` (a model id or alias, an edition): 404 for a name no model
    /// answers to; 503 while it loads, after a failed load, or once shutdown has begun.
    pub fn backend_for(&self, name: &str) -> Result<&Backend, ApiError> {
        if self.is_closing() {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        }
        let index = self.0.backends.find(name).ok_or_else(|| ApiError::ModelNotFound(name.to_string()))?;
        self.0.backends.slots[index].get()
    }

    /// Ok when every model is loaded and shutdown has not begun (`/health`); else the 503.
    pub fn ready_all(&self) -> Result<(), ApiError> {
        if self.is_closing() {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        }
        self.0.backends.all_loaded()
    }

    /// Stops admitting requests: from now on they get 503, `/health` too.
    pub fn begin_shutdown(&self) {
        self.0.closing.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_closing(&self) -> bool {
        self.0.closing.load(Ordering::SeqCst)
    }

    /// A fresh engine request id.
    pub fn next_request_id(&self) -> u64 {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// When the server started, in Unix seconds (the model's `created`).
    pub fn started(&self) -> u64 {
        self.0.started
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
