//! The router: OpenAI's generation routes (and Anthropic's Messages and OpenAI's Responses
//! adapters) and embeddings, llama-server's `/tokenize` and `/detokenize`, the model list, health and metrics, behind the API-key guard, with 404/405 in the
//! error envelope (Anthropic's on its route).

pub mod chat;
pub mod completions;
pub mod conversations;
pub mod embeddings;
pub mod info;
pub mod messages;
pub mod openapi;
pub mod responses;
pub mod tokenize;
pub mod usage;

use axum::extract::Request;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use rand::distributions::{Alphanumeric, DistString};

use crate::error::ApiError;
use crate::metrics::count;
use crate::state::{AppState, Backend};

/// Every route of the server, ready to serve or to test with `oneshot`.
pub fn router(state: AppState) -> Router {
    let limit = state.config().limits.max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(chat::handler))
        .route("/v1/completions", post(completions::handler))
        .route(crate::anthropic::PATH, post(messages::handler))
        .route("/v1/responses", post(responses::handler))
        .route("/v1/embeddings", post(embeddings::handler))
        .route("/v1/conversations", post(conversations::create).get(conversations::list))
        .route(
            "/v1/conversations/{id}",
            get(conversations::get)
                .post(conversations::update)
                .patch(conversations::update)
                .delete(conversations::delete),
        )
        .route("/v1/usage", get(usage::handler))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .route("/v1/models", get(info::models))
        .route("/v1/models/{id}", get(info::model))
        .route("/health", get(info::health))
        .route("/metrics", get(info::metrics))
        .route("/openapi.json", get(openapi::handler))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), crate::extract::require_api_key))
        .layer(middleware::from_fn(crate::anthropic::errors))
        .with_state(state)
        // The chat page is public (it asks for the key when the API answers 401).
        .merge(Router::new().route("/", get(page)))
}

/// The web chat page (one self-contained file, embedded at build time).
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../../../../web/index.html"))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound { method: req.method().to_string(), path: req.uri().path().to_string() }
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(req.method().to_string())
}

/// A generation request's backend, chosen by its body's `model`.
pub struct Routed<'a> {
    /// The backend, or the 404 for a name no model answers to (answered after validation, so a
    /// bad body is a 400 whatever it names).
    pub backend: Result<&'a Backend, ApiError>,
    /// The vocabulary size token ids are checked against (unbounded when no model matched).
    pub n_vocab: usize,
}

/// Routes a generation request by its `model`: 503 at once while that model loads or the server
/// shuts down, as before any model-specific check; an edition's sampling defaults are written
/// into `body` for the fields the client left unset, before validation reads it.
pub fn route<'a>(state: &'a AppState, body: &mut serde_json::Value) -> Result<Routed<'a>, ApiError> {
    let name = crate::validate::requested_model(body)?.to_string();
    let backend = match state.backend_for(&name) {
        Err(e @ ApiError::Unavailable(_)) => return Err(e),
        other => other,
    };
    if let Some(e) = state.config().edition(&name) {
        crate::edition::apply_sampling(body, &e.sampling);
    }
    let n_vocab = backend.as_ref().map_or(usize::MAX, |b| b.model.tokenizer.n_vocab());
    Ok(Routed { backend, n_vocab })
}

/// A response id: `prefix` and 24 random letters and digits.
pub fn response_id(prefix: &str) -> String {
    format!("{prefix}{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24))
}

/// Counts a refusal by kind, and passes the result on.
pub fn tally<T>(state: &AppState, result: Result<T, ApiError>) -> Result<T, ApiError> {
    if let Err(e) = &result {
        let c = state.counters();
        match e {
            ApiError::Busy { .. } => {} // counted where the engine refused
            ApiError::Quota(_) => count(&c.rejected_quota),
            ApiError::Unavailable(_) | ApiError::StorageFull | ApiError::StorageFailed => {
                count(&c.rejected_unavailable)
            }
            ApiError::Internal(_) => {}
            _ => count(&c.rejected_invalid),
        }
    }
    result
}
