//! `POST /tokenize` and `POST /detokenize` in llama-server's shapes.
//!
//! - `/tokenize` `{"content": TEXT, "add_special": false, "parse_special": true,
//!   "with_pieces": false}` → `{"tokens": [ID, …]}`, or with pieces `{"tokens": [{"id": ID,
//!   "piece": TEXT}, …]}` (a piece that is not valid UTF-8 on its own is its byte values);
//! - `/detokenize` `{"tokens": [ID, …]}` → `{"content": TEXT}` (special tokens rendered).
//!
//! A `model` field (Seed's addition: a server may hold several models) picks the model, as
//! on the generation routes; without it, the server's first model answers.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::tally;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::{AppState, Backend};
use crate::validate::{completion::token_ids, fields, Context};

/// `POST /tokenize`.
pub async fn tokenize(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::extract::Caller>>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    tally(&state, run_tokenize(&state, caller.as_ref().map(|c| &c.0), &body).await)
}

/// `POST /detokenize`.
pub async fn detokenize(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::extract::Caller>>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    tally(&state, run_detokenize(&state, caller.as_ref().map(|c| &c.0), &body).await)
}

/// The backend `model` names (default: the server's first model), checked against the
/// caller's editions.
fn backend<'a>(
    state: &'a AppState,
    caller: Option<&crate::extract::Caller>,
    f: &fields::Fields<'_>,
) -> Result<&'a Backend, ApiError> {
    let name = f.string("model")?.unwrap_or(&state.config().model_id).to_string();
    let backend = state.backend_for(&name)?;
    state.config().check_edition(caller, &name)?;
    Ok(backend)
}

async fn run_tokenize(
    state: &AppState,
    caller: Option<&crate::extract::Caller>,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    let f = fields::object("", body)?;
    let content = f.required_string("content")?.to_string();
    let add_special = f.boolean("add_special")?.unwrap_or(false);
    let parse_special = f.boolean("parse_special")?.unwrap_or(true);
    let with_pieces = f.boolean("with_pieces")?.unwrap_or(false);
    let model = Arc::clone(&backend(state, caller, &f)?.model);
    let tokens = tokio::task::spawn_blocking(move || {
        let ids = model.tokenizer.encode(&content, add_special, parse_special);
        if !with_pieces {
            return json!(ids);
        }
        let pieces: Vec<Value> = ids
            .iter()
            .map(|&id| {
                let bytes = model.tokenizer.token_to_piece(id, true);
                let piece = match std::str::from_utf8(&bytes) {
                    Ok(s) => json!(s),
                    Err(_) => json!(bytes.to_vec()),
                };
                json!({"id": id, "piece": piece})
            })
            .collect();
        Value::Array(pieces)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("tokenizing failed: {e}")))?;
    Ok(Json(json!({ "tokens": tokens })))
}

async fn run_detokenize(
    state: &AppState,
    caller: Option<&crate::extract::Caller>,
    body: &Value,
) -> Result<Json<Value>, ApiError> {
    let f = fields::object("", body)?;
    let items = match f.get("tokens") {
        Some(Value::Array(items)) => items,
        Some(other) => return Err(fields::wrong_type("tokens", "an array of token ids", other)),
        None => return Err(ApiError::invalid("tokens", "`tokens` is required")),
    };
    let model = Arc::clone(&backend(state, caller, &f)?.model);
    let ctx = Context { n_vocab: model.tokenizer.n_vocab(), limits: &state.config().limits };
    let ids = token_ids("tokens", items, ctx)?;
    let content =
        tokio::task::spawn_blocking(move || String::from_utf8_lossy(&model.tokenizer.decode(&ids, true)).into_owned())
            .await
            .map_err(|e| ApiError::Internal(format!("detokenizing failed: {e}")))?;
    Ok(Json(json!({ "content": content })))
}
