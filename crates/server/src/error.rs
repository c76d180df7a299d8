//! The one error type of the HTTP API, and its one mapping to a status code
//! and OpenAI's error envelope `{"error":{"message","type","param","code"}}`.
//!
//! Every failure a handler can meet becomes an [`ApiError`]; bad input is
//! always a 4xx. Only a failure inside the engine itself is a 5xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::scheduler::AdmitError;
use engine::SubmitError;
use serde_json::json;

/// Everything that can go wrong with a request, by what the client should do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a value is out of range (400).
    #[error("{message}")]
    Invalid {
        /// What is wrong, with the offending value.
        message: String,
        /// The request field at fault, if one is.
        param: Option<String>,
        /// A machine-readable code, if one applies.
        code: Option<&'static str>,
    },
    /// The body is larger than the server accepts (413).
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Missing or wrong API key (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller's tenant may not use this edition (403).
    #[error("{0}")]
    Forbidden(String),
    /// The model named in the request is not served here (404).
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    /// No such route (404).
    #[error("no route for {method} {path}")]
    NotFound {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The route exists but not for this method (405).
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    /// The waiting queue is full (429, with `Retry-After`).
    #[error("the server is busy ({waiting} requests waiting); retry after {retry_after} s")]
    Busy {
        /// Requests waiting.
        waiting: usize,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A tenant's quota is used up (429, with `Retry-After`; the code names the limit).
    #[error("{}", .0.message)]
    Quota(crate::quota::Exceeded),
    /// The model is still loading, failed to load, or the server is shutting
    /// down (503).
    #[error("{0}")]
    Unavailable(String),
    /// The engine failed (500).
    #[error("{0}")]
    Internal(String),
    /// The conversation and usage store is full (503); nothing was written.
    #[error("the conversation and usage store is full; nothing was written; retry once space is freed")]
    StorageFull,
    /// The store failed otherwise (503): the client is told only that; what the database said,
    /// and which store, goes to the server's log.
    #[error("the conversation and usage store is not available; retry shortly")]
    StorageFailed,
    /// No such conversation for the caller — unknown and another tenant's alike (404).
    #[error("no conversation `{0}`")]
    NoConversation(String),
}

impl ApiError {
    /// A 400 naming the field at fault.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid { message: message.into(), param: Some(param.into()), code: None }
    }

    /// A 400 about the whole request (no single field).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Invalid { message: message.into(), param: None, code: None }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::ModelNotFound(_) | ApiError::NotFound { .. } | ApiError::NoConversation(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Busy { .. } | ApiError::Quota(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::StorageFull | ApiError::StorageFailed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. }
            | ApiError::TooLarge { .. }
            | ApiError::ModelNotFound(_)
            | ApiError::NotFound { .. }
            | ApiError::MethodNotAllowed(_)
            | ApiError::NoConversation(_) => "invalid_request_error",
            ApiError::Unauthorized(_) => "authentication_error",
            ApiError::Forbidden(_) => "permission_error",
            ApiError::Busy { .. } | ApiError::Quota(_) => "rate_limit_error",
            ApiError::Unavailable(_) | ApiError::Internal(_) | ApiError::StorageFull | ApiError::StorageFailed => {
                "server_error"
            }
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { param, .. } => param.as_deref(),
            ApiError::ModelNotFound(_) => Some("model"),
            _ => None,
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            ApiError::Invalid { code, .. } => *code,
            ApiError::TooLarge { .. } => Some("request_too_large"),
            ApiError::Unauthorized(_) => Some("invalid_api_key"),
            ApiError::Forbidden(_) => Some("model_not_allowed"),
            ApiError::ModelNotFound(_) => Some("model_not_found"),
            ApiError::NotFound { .. } => Some("unknown_url"),
            ApiError::MethodNotAllowed(_) => Some("method_not_allowed"),
            ApiError::Busy { .. } => Some("rate_limit_exceeded"),
            ApiError::Quota(e) => Some(e.limit.name()),
            ApiError::Unavailable(_) => Some("service_unavailable"),
            ApiError::Internal(_) => Some("internal_error"),
            ApiError::StorageFull => Some("storage_full"),
            ApiError::StorageFailed => Some("storage_unavailable"),
            ApiError::NoConversation(_) => Some("conversation_not_found"),
        }
    }

    /// The envelope `{"error":{"message","type","param","code"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }

    /// The error from an engine refusal.
    pub fn from_submit(e: SubmitError, prompt_param: &str) -> Self {
        match e {
            SubmitError::QueueFull { waiting } => ApiError::Busy { waiting, retry_after: 1 },
            SubmitError::Invalid(a) => ApiError::from_admit(a, prompt_param),
            SubmitError::ShuttingDown => ApiError::Unavailable("the server is shutting down".into()),
        }
    }

    /// The 400 for a request that can never run; names the prompt and
    /// `max_tokens` counts.
    pub fn from_admit(e: AdmitError, prompt_param: &str) -> Self {
        let param = match e {
            AdmitError::TooLong { prompt, limit, .. } if prompt < limit => "max_tokens",
            _ => prompt_param,
        };
        let code = match e {
            AdmitError::TooLong { .. } | AdmitError::TooBig { .. } => Some("context_length_exceeded"),
            AdmitError::Empty => None,
        };
        ApiError::Invalid { message: e.to_string(), param: Some(param.into()), code }
    }
}

impl ApiError {
    /// The error from a store failure; `id` names the conversation for a 404.
    pub fn from_store(e: platform::StoreError, id: &str) -> Self {
        match e {
            platform::StoreError::Full => ApiError::StorageFull,
            platform::StoreError::NotFound => ApiError::NoConversation(id.to_string()),
            platform::StoreError::Other { .. } => {
                eprintln!("error: {e}");
                ApiError::StorageFailed
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        if let ApiError::Busy { retry_after, .. } = self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if let ApiError::Quota(e) = &self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(e.retry_after));
        }
        if let ApiError::Unauthorized(_) = self {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_four_fields() {
        let e = ApiError::invalid("temperature", "temperature = 3 is out of range [0, 2]");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let b = e.body();
        assert_eq!(b["error"]["param"], "temperature");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["code"].is_null());
        assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains('3')));
    }

    #[test]
    fn queue_full_is_429_with_retry_after() {
        let resp = ApiError::from_submit(SubmitError::QueueFull { waiting: 7 }, "prompt").into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn too_long_names_both_counts_and_blames_max_tokens_when_the_prompt_fits() {
        let e = ApiError::from_admit(
            AdmitError::TooLong { prompt: 100, max_tokens: 5000, total: 5100, limit: 4096 },
            "messages",
        );
        let b = e.body();
        assert_eq!(b["error"]["param"], "max_tokens");
        assert_eq!(b["error"]["code"], "context_length_exceeded");
        let m = b["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains("100") && m.contains("5000") && m.contains("4096"), "{m}");
        let e = ApiError::from_admit(
            AdmitError::TooLong { prompt: 5000, max_tokens: 1, total: 5001, limit: 4096 },
            "messages",
        );
        assert_eq!(e.body()["error"]["param"], "messages");
    }
}
