//! `GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: the calling tenant's own totals by day and
//! edition (days in UTC, both ends included; default: the last 30 days).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use platform::store::{day_of, parse_day};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::{unix_now, AppState};

/// The handler.
pub async fn handler(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let now = unix_now();
    let (mut from, mut to) = (day_of(now.saturating_sub(29 * 86_400)), day_of(now));
    for pair in query.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let day = || {
            parse_day(value).ok_or_else(|| {
                ApiError::invalid(name, format!("`{name}` must be a day as YYYY-MM-DD (UTC); got `{value}`"))
            })
        };
        match name {
            "from" => from = day()?,
            "to" => to = day()?,
            _ => return Err(ApiError::invalid(name, format!("unknown parameter `{name}`; use `from` and `to`"))),
        }
    }
    if from > to {
        return Err(ApiError::invalid("from", format!("`from` ({from}) is after `to` ({to})")));
    }
    let (store, tenant) = state.config().store_for(caller.as_ref().map(|c| &c.0))?;
    let (f, t, who) = (from.clone(), to.clone(), tenant.clone());
    let rows = tokio::task::spawn_blocking(move || store.usage_totals(Some(&who), &f, &t))
        .await
        .map_err(|e| ApiError::Internal(format!("the store task failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, ""))?;
    let mut total = json!({"requests": 0u64, "prompt_tokens": 0u64, "cached_tokens": 0u64,
        "completion_tokens": 0u64, "cancelled": 0u64, "interrupted": 0u64, "cost": 0.0});
    let mut sum = [0u64; 6];
    let mut cost = 0.0;
    let data: Vec<_> = rows
        .iter()
        .map(|r| {
            let counts =
                [r.requests, r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.cancelled, r.interrupted];
            for (s, v) in sum.iter_mut().zip(counts) {
                *s += v;
            }
            cost += r.cost;
            json!({
                "day": r.day, "edition": r.edition, "requests": r.requests,
                "prompt_tokens": r.prompt_tokens, "cached_tokens": r.cached_tokens,
                "completion_tokens": r.completion_tokens, "cancelled": r.cancelled,
                "interrupted": r.interrupted, "cost": r.cost,
            })
        })
        .collect();
    let keys = ["requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cancelled", "interrupted"];
    for (k, v) in keys.iter().zip(sum) {
        total[*k] = json!(v);
    }
    total["cost"] = json!(cost);
    Ok(Json(json!({"object": "usage", "tenant": tenant, "from": from, "to": to, "data": data, "total": total}))
        .into_response())
}
