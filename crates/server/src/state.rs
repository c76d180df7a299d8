//! The state every handler shares: the configuration, the model and engine
//! once they are loaded, and the shutdown flag.
//!
//! The server listens before the model is loaded: until [`AppState::set_ready`]
//! is called, `/health` answers 503 and generation routes answer 503 "loading".

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

struct Inner {
    cfg: ServerConfig,
    backend: OnceLock<Backend>,
    load_error: OnceLock<String>,
    closing: AtomicBool,
    next_id: AtomicU64,
    started: u64,
    counters: ServerCounters,
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// A server that is not ready yet.
    pub fn new(cfg: ServerConfig) -> Self {
        AppState(Arc::new(Inner {
            cfg,
            backend: OnceLock::new(),
            load_error: OnceLock::new(),
            closing: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            started: unix_now(),
            counters: ServerCounters::default(),
        }))
    }

    /// A ready server over `model` and `engine`.
    pub fn ready(cfg: ServerConfig, model: Arc<LoadedModel>, engine: Engine) -> Self {
        let state = AppState::new(cfg);
        state.set_ready(model, engine);
        state
    }

    /// Marks the model loaded; the first call wins.
    pub fn set_ready(&self, model: Arc<LoadedModel>, engine: Engine) {
        let _ = self.0.backend.set(Backend::new(model, engine, &self.0.cfg.model_id));
    }

    /// Marks loading as failed: generation routes answer 503 with `message`.
    pub fn set_failed(&self, message: String) {
        let _ = self.0.load_error.set(message);
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.cfg
    }

    /// Refusal counters.
    pub fn counters(&self) -> &ServerCounters {
        &self.0.counters
    }

    /// The backend, or 503 while loading, after a failed load, or once
    /// shutdown has begun.
    pub fn backend(&self) -> Result<&Backend, ApiError> {
        if self.is_closing() {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        }
        match self.0.backend.get() {
            Some(b) => Ok(b),
            None => Err(ApiError::Unavailable(match self.0.load_error.get() {
                Some(e) => format!("the model failed to load: {e}"),
                None => "the model is still loading".into(),
            })),
        }
    }

    /// The backend, whatever the shutdown state (for metrics and draining).
    pub fn backend_any(&self) -> Option<&Backend> {
        self.0.backend.get()
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
