//! Request extractors whose rejections are [`ApiError`]s, so no framework
//! error body ever reaches a client: the JSON body (413 past the limit, 400
//! for anything unreadable or not JSON) and the API-key guard.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;
use crate::validate::parse_json;

/// A request body parsed as JSON (any JSON; validation reads it).
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config().limits.max_body_bytes;
        let wait = state.config().connections.body_read_timeout;
        let read = tokio::time::timeout(wait, Bytes::from_request(req, state)).await.map_err(|_| {
            ApiError::bad_request(format!("the request body did not arrive within {} s", wait.as_secs_f32()))
        })?;
        let bytes = read.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge { limit }
            } else {
                ApiError::bad_request(format!("the request body could not be read: {}", e.body_text()))
            }
        })?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// The authenticated caller of a request (present when tenant keys are configured).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The tenant the key belongs to.
    pub tenant: String,
    /// The key's public id.
    pub key_id: String,
}

/// The one answer for a missing, malformed, unknown or revoked tenant key.
const BAD_KEY: &str = "a valid API key is required: send `Authorization: Bearer <key>`";

/// Middleware: with an API key or a tenant key store configured, every route but `/health`
/// needs `Authorization: Bearer <key>`.
pub async fn require_api_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(keys) = &state.config().keys {
        if req.uri().path() != "/health" {
            let given = presented_key(req.headers());
            let Some(given) = given else { return ApiError::Unauthorized(BAD_KEY).into_response() };
            // A fresh answer is in memory; otherwise the stores are read on the blocking pool.
            let found = match keys.cached(given) {
                Some(answer) => Ok(answer),
                None => {
                    let (keys, given) = (std::sync::Arc::clone(keys), given.to_string());
                    match tokio::task::spawn_blocking(move || keys.authenticate(&given)).await {
                        Ok(result) => result,
                        Err(_) => return ApiError::Internal("the key lookup failed".into()).into_response(),
                    }
                }
            };
            match found {
                Ok(Some(key)) => {
                    req.extensions_mut().insert(Caller { tenant: key.tenant, key_id: key.id });
                }
                Ok(None) => return ApiError::Unauthorized(BAD_KEY).into_response(),
                Err(e) => return ApiError::from_store(e, "").into_response(),
            }
        }
        return next.run(req).await;
    }
    if let Some(key) = &state.config().api_key {
        if req.uri().path() != "/health" {
            match presented_key(req.headers()) {
                None => {
                    return ApiError::Unauthorized("missing API key: send `Authorization: Bearer <key>`")
                        .into_response()
                }
                Some(g) if !same(g.as_bytes(), key.as_bytes()) => {
                    return ApiError::Unauthorized("the API key is not valid").into_response()
                }
                Some(_) => {}
            }
        }
    }
    next.run(req).await
}

/// The key a request presents: `Authorization: Bearer <key>`, or `x-api-key: <key>` (as
/// Anthropic's clients send it).
fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok())).map(str::trim)
}

/// Compares two secrets in time independent of where they first differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn key_comparison() {
        assert!(same(b"sk-abc", b"sk-abc"));
        assert!(!same(b"sk-abc", b"sk-abd"));
        assert!(!same(b"sk-ab", b"sk-abc"));
    }
}
