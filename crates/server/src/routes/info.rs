//! `GET /v1/models`, `GET /v1/models/{id}`, `GET /health`, `GET /metrics`.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::metrics;
use crate::schema::{ModelCard, ModelList};
use crate::state::AppState;

fn card(state: &AppState) -> ModelCard {
    named(state, &state.config().model_id)
}

fn named(state: &AppState, id: &str) -> ModelCard {
    ModelCard { id: id.to_string(), object: "model", created: state.started(), owned_by: "seed" }
}

/// The served model first, then each of its aliases (`--alias`), so clients
/// such as the chat page's edition picker can offer every name it answers to.
pub async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let config = state.config();
    let data = std::iter::once(card(&state)).chain(config.aliases.iter().map(|a| named(&state, a))).collect();
    Json(ModelList { object: "list", data })
}

/// One model by name (any of its aliases), or 404.
pub async fn model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ModelCard>, ApiError> {
    if state.config().serves(&id) {
        Ok(Json(card(&state)))
    } else {
        Err(ApiError::ModelNotFound(id))
    }
}

/// 200 `{"status":"ok"}` when requests are admitted; 503 while loading, after a
/// failed load, and once shutdown has begun.
pub async fn health(State(state): State<AppState>) -> Response {
    match state.backend() {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let backend = state.backend_any();
    let ready = backend.is_some() && !state.is_closing();
    let page = metrics::render(backend.map(|b| b.engine.stats()), state.counters(), ready);
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], page).into_response()
}
