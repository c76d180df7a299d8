//! `/v1/conversations`: a tenant's stored conversations. Each answer comes only after the
//! store committed; another tenant's id answers exactly as an unknown one (404).

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::{unix_now, AppState};
use crate::validate::parse_json;

/// Longest title, in characters.
const MAX_TITLE: usize = 1000;
/// Longest search text, in characters.
const MAX_QUERY: usize = 200;
/// Longest model name, in bytes.
const MAX_MODEL: usize = 256;

type MaybeCaller = Option<axum::Extension<Caller>>;

fn conversation_json(c: &platform::store::Conversation) -> Value {
    json!({
        "id": c.id,
        "object": "conversation",
        "created": c.created,
        "updated": c.updated,
        "title": c.title,
        "model": c.model,
    })
}

/// Runs a store call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, platform::StoreError> + Send + 'static,
    id: &str,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("the store task failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, id))
}

fn optional_string(body: &Value, name: &str, max_chars: usize) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max_chars => Ok(Some(s.clone())),
        Some(Value::String(_)) => {
            Err(ApiError::invalid(name, format!("`{name}` is longer than {max_chars} characters")))
        }
        Some(_) => Err(ApiError::invalid(name, format!("`{name}` must be a string or null"))),
    }
}

/// A request's body as a JSON object of the shape `shape` names in its error; only an empty
/// body means `{}` (whitespace alone is not JSON: schemathesis sent `\t`).
fn read_body(
    state: &AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    shape: &str,
) -> Result<Value, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit: state.config().limits.max_body_bytes }
        } else {
            ApiError::bad_request(format!("the request body could not be read: {}", e.body_text()))
        }
    })?;
    let body = if body.is_empty() { json!({}) } else { parse_json(&body)? };
    if !body.is_object() {
        return Err(ApiError::bad_request(format!("the body must be a JSON object: {shape}")));
    }
    Ok(body)
}

/// `POST /v1/conversations` with `{"title"?, "model"?}` (an empty body is `{}`).
pub async fn create(
    State(state): State<AppState>,
    caller: MaybeCaller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body, "{\"title\"?: string, \"model\"?: string}")?;
    let title = optional_string(&body, "title", MAX_TITLE)?;
    let model = optional_string(&body, "model", MAX_MODEL)?;
    let (store, tenant) = state.config().store_for(caller.as_ref().map(|c| &c.0))?;
    let conv = blocking(move || store.create_conversation(&tenant, title.as_deref(), model.as_deref(), unix_now()), "")
        .await?;
    Ok(Json(conversation_json(&conv)).into_response())
}

/// The query of `GET /v1/conversations`.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    /// Only the conversations whose title or messages contain this text.
    q: Option<String>,
}

/// `GET /v1/conversations[?q=TEXT]`: the caller's, most recently updated first; with `q`, only
/// those whose title or any message contains `q` (ASCII letters in either case).
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(ListQuery { q }) =
        query.map_err(|e| ApiError::invalid("q", format!("the query string is not valid: {}", e.body_text())))?;
    if q.as_ref().is_some_and(|q| q.chars().count() > MAX_QUERY) {
        return Err(ApiError::invalid("q", format!("`q` is longer than {MAX_QUERY} characters")));
    }
    let (store, tenant) = state.config().store_for(caller.as_ref().map(|c| &c.0))?;
    let all = blocking(
        move || match q {
            Some(q) => store.search_conversations(&tenant, &q),
            None => store.list_conversations(&tenant),
        },
        "",
    )
    .await?;
    let data: Vec<Value> = all.iter().map(conversation_json).collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

/// `GET /v1/conversations/{id}`: the conversation and its messages in order.
pub async fn get(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (store, tenant) = state.config().store_for(caller.as_ref().map(|c| &c.0))?;
    let key = id.clone();
    let (conv, messages) = blocking(move || store.get_conversation(&tenant, &key), &id).await?;
    let mut v = conversation_json(&conv);
    v["messages"] = json!(messages);
    Ok(Json(v).into_response())
}

/// `POST` (as OpenAI's conversations API updates) or `PATCH /v1/conversations/{id}` with
/// `{"title": string}`: renames it; answers the conversation.
pub async fn update(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body, "{\"title\": string}")?;
    let title = match body.get("title") {
        Some(Value::String(t)) if t.trim().is_empty() => {
            return Err(ApiError::invalid("title", "`title` must not be empty"));
        }
        Some(Value::String(_)) => optional_string(&body, "title", MAX_TITLE)?.unwrap_or_default(),
        _ => return Err(ApiError::invalid("title", "the body must be {\"title\": string}")),
    };
    let (store, tenant) = state.config().store_for(caller.as_ref().map(|c| &c.0))?;
    let key = id.clone();
    let conv = blocking(move || store.rename_conversation(&tenant, &key, title.trim()), &id).await?;
    Ok(Json(conversation_json(&conv)).into_response())
}

/// `DELETE /v1/conversations/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (store, tenant) = state.config().store_for(caller.as_ref().map(|c| &c.0))?;
    let key = id.clone();
    blocking(move || store.delete_conversation(&tenant, &key), &id).await?;
    Ok(Json(json!({"id": id, "object": "conversation.deleted", "deleted": true})).into_response())
}
