//! Helpers of the serving tests: an in-process server (driven with `oneshot`, no socket), SSE
//! frame parsing, and `seed serve` as a child process on a free loopback port ([`process`]).
//!
//! The server runs the catalogue's `tiny-llama` (written by Seed, no download) unless a test
//! judges the text itself: those take the real default model ([`real_state`], [`REAL_MODEL_ID`]).
#![allow(dead_code)] // each test binary uses a different subset

pub mod haproxy;
pub mod process;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use engine::scheduler::SchedulerConfig;
use engine::{Engine, EngineConfig};
use model::LoadedModel;
use serde_json::Value;
use server::{AppState, ServerConfig};
use tower::ServiceExt;

/// The served model's id: the tiny model Seed writes itself.
pub const MODEL_ID: &str = seed::catalogue::TINY_MODEL;
/// The real model, for tests whose assertions are about what a model says.
pub const REAL_MODEL_ID: &str = seed::catalogue::DEFAULT_MODEL;
/// Context of the in-process engines.
pub const N_CTX: usize = 1024;
/// Body limit of the in-process servers.
pub const MAX_BODY: usize = 64 << 10;

/// The tiny model, loaded once per test binary.
pub fn model() -> Arc<LoadedModel> {
    static M: OnceLock<Arc<LoadedModel>> = OnceLock::new();
    Arc::clone(M.get_or_init(|| load(MODEL_ID)))
}

/// The real default model (fetched on first use), loaded once per test binary.
pub fn real_model() -> Arc<LoadedModel> {
    static M: OnceLock<Arc<LoadedModel>> = OnceLock::new();
    Arc::clone(M.get_or_init(|| load(REAL_MODEL_ID)))
}

fn load(name: &str) -> Arc<LoadedModel> {
    let path = seed::catalogue::ensure_model(name).unwrap_or_else(|e| panic!("fetching {name}: {e:#}"));
    Arc::new(seed::catalogue::open_model(&path).unwrap_or_else(|e| panic!("loading {name}: {e:#}")))
}

/// An engine of `n_blocks` × 32 positions with a waiting queue of `max_waiting`.
pub fn engine(n_blocks: usize, max_waiting: usize) -> Engine {
    engine_for(model(), n_blocks, max_waiting)
}

/// [`engine`] on `model`.
pub fn engine_for(model: Arc<LoadedModel>, n_blocks: usize, max_waiting: usize) -> Engine {
    let cfg = EngineConfig {
        scheduler: SchedulerConfig {
            block_size: 32,
            n_blocks,
            max_seq_len: N_CTX,
            prefill_chunk: 256,
            max_batch_tokens: 512,
            max_running: 64,
        },
        max_waiting,
        threads: 2,
        cpus: Vec::new(),
    };
    Engine::start(model, cfg).expect("starting the engine")
}

/// The server configuration of the tests: alias `any`, a 64 KiB body limit.
pub fn config() -> ServerConfig {
    config_for(MODEL_ID)
}

/// [`config`] serving `model_id`.
pub fn config_for(model_id: &str) -> ServerConfig {
    let mut cfg = ServerConfig::new(model_id);
    cfg.aliases = vec!["any".into()];
    cfg.limits.max_body_bytes = MAX_BODY;
    cfg
}

/// The shared ready server of a test binary, on the tiny model.
pub fn state() -> AppState {
    static S: OnceLock<AppState> = OnceLock::new();
    S.get_or_init(|| AppState::ready(config(), model(), engine(256, 64))).clone()
}

/// The shared ready server on the real default model, for tests that judge its answers.
pub fn real_state() -> AppState {
    static S: OnceLock<AppState> = OnceLock::new();
    S.get_or_init(|| AppState::ready(config_for(REAL_MODEL_ID), real_model(), engine_for(real_model(), 256, 64)))
        .clone()
}

/// A response, read whole.
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub text: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

/// Sends one request through the router (no socket).
pub async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    body: impl Into<Body>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp =
        server::router(state.clone()).oneshot(req.body(body.into()).expect("request")).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    Reply { status: parts.status, headers: parts.headers, text: String::from_utf8(bytes.to_vec()).expect("UTF-8 body") }
}

/// POSTs a JSON body.
pub async fn post(state: &AppState, path: &str, body: &Value) -> Reply {
    call(state, "POST", path, body.to_string(), &[]).await
}

/// The `data:` payloads of an SSE body, checking the framing: every event is
/// exactly one `data: ` line followed by a blank line.
pub fn sse_frames(text: &str) -> Vec<String> {
    assert!(text.ends_with("\n\n"), "an SSE body ends with a blank line: {text:?}");
    text.trim_end_matches('\n')
        .split("\n\n")
        .filter(|e| !e.starts_with(':')) // keep-alive comments
        .map(|e| {
            assert!(!e.contains('\n'), "one line per event: {e:?}");
            e.strip_prefix("data: ").unwrap_or_else(|| panic!("event without `data: `: {e:?}")).to_string()
        })
        .collect()
}

/// Concatenated text of a chat or completion stream's JSON chunks.
pub fn streamed_text(frames: &[String]) -> String {
    frames
        .iter()
        .filter(|f| f.as_str() != "[DONE]")
        .map(|f| serde_json::from_str::<Value>(f).expect("chunk JSON"))
        .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|ch| ch["delta"]["content"].as_str().or(ch["text"].as_str()).map(String::from))
        .collect()
}

/// Asserts OpenAI's error envelope with all four fields.
pub fn assert_envelope(v: &Value) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "message: {v}");
    assert!(e["type"].as_str().is_some(), "type: {v}");
    let keys: Vec<&String> = e.as_object().expect("error object").keys().collect();
    for k in ["message", "type", "param", "code"] {
        assert!(keys.iter().any(|x| x.as_str() == k), "`{k}` missing in {v}");
    }
}
