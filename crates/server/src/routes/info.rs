//! `GET /v1/models`, `GET /v1/models/{id}`, `GET /health`, `GET /metrics`.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::metrics;
use crate::schema::{ChatSampling, EditionCard, ModelCard, ModelList};
use crate::state::AppState;

fn named(state: &AppState, id: &str) -> ModelCard {
    ModelCard {
        id: id.to_string(),
        object: "model",
        created: state.started(),
        owned_by: "seed",
        chat_sampling: chat_sampling(state, id),
        edition: state.config().edition(id).map(|e| EditionCard {
            display_name: e.face.display_name.clone().unwrap_or_else(|| e.name.clone()),
            language: e.language.clone(),
            greeting: e.face.greeting.clone(),
            suggestions: e.face.suggestions.clone(),
            accent: e.face.accent.clone(),
            system: e.system.clone(),
        }),
    }
}

/// The chat sampling for `name` ([`ChatSampling`]), once its model is loaded.
fn chat_sampling(state: &AppState, name: &str) -> Option<ChatSampling> {
    let backend = state.backends().loaded_for(name)?;
    let p = backend.model.recommended_sampling.over(model::recommended::chat_defaults());
    let mut chat = ChatSampling {
        temperature: p.temperature,
        top_k: p.top_k,
        top_p: p.top_p,
        min_p: p.min_p,
        repetition_penalty: p.repetition_penalty,
    };
    if let Some(edition) = state.config().edition(name) {
        let own = &edition.sampling;
        chat.temperature = own.temperature.unwrap_or(chat.temperature);
        chat.top_p = own.top_p.unwrap_or(chat.top_p);
        chat.top_k = own.top_k.map_or(chat.top_k, |k| k as usize);
    }
    if chat.temperature == 0.0 {
        // Greedy is exactly greedy (as `seed run --temperature 0`): no penalty either.
        chat.repetition_penalty = 1.0;
    }
    Some(chat)
}

/// Each served model, then the names it answers to (`--alias`, its editions), so clients
/// such as the chat page's edition picker can offer every name the server answers to —
/// with tenant keys, only the names the caller's tenant may use (those that would not
/// answer 403).
pub async fn models(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::extract::Caller>>,
) -> Json<ModelList> {
    let caller = caller.as_ref().map(|c| &c.0);
    let data = state
        .backends()
        .names()
        .flat_map(|(id, aliases)| std::iter::once(id).chain(aliases.iter().map(String::as_str)))
        .filter(|name| state.config().check_edition(caller, name).is_ok())
        .map(|name| named(&state, name))
        .collect();
    Json(ModelList { object: "list", data })
}

/// One model by name (an id or any of its aliases), or 404.
pub async fn model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ModelCard>, ApiError> {
    match state.backends().find(&id) {
        Some(_) => Ok(Json(named(&state, &id))),
        None => Err(ApiError::ModelNotFound(id)),
    }
}

/// 200 `{"status":"ok"}` when every model is loaded and requests are admitted; 503 while
/// any is loading, after a failed load, and once shutdown has begun.
pub async fn health(State(state): State<AppState>) -> Response {
    match state.ready_all() {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let engines: Vec<(&str, &engine::stats::EngineStats)> =
        state.backends().loaded().map(|(id, b)| (id, b.engine.stats())).collect();
    let page = metrics::render(&engines, state.counters(), state.ready_all().is_ok(), state.labelled());
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], page).into_response()
}
