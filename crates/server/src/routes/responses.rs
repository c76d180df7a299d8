//! `POST /v1/responses`: OpenAI's Responses API (stateless), translated onto the chat path
//! ([`crate::responses`]) and answered as a `response` object or its event stream.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::FinishReason;

use super::chat::{self, Answered};
use super::tally;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::responses::{self, Echo};
use crate::state::AppState;

/// The handler.
pub async fn handler(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::extract::Caller>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    tally(&state, run(&state, caller.as_ref().map(|c| &c.0), body).await)
}

async fn run(
    state: &AppState,
    caller: Option<&crate::extract::Caller>,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let chat_body = responses::to_chat(&body)?;
    let started = chat::start(state, caller, chat_body, "resp_").await?;
    let h = &started.head;
    let echo = Echo { id: h.id.clone(), created_at: h.created, model: h.model.clone(), request: body };
    if started.params.stream {
        let chat::Started { sub, guard, plan, n_prompt, .. } = started;
        let events = responses::Events::new(echo, n_prompt, 0, &plan);
        return Ok(crate::sse::shaped(sub, Box::new(events), guard));
    }
    let plan = started.plan.clone();
    let Answered { results, usage } = started.answer().await?;
    let first = results.into_iter().next().unwrap_or_default();
    let usage =
        responses::usage(usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens, first.usage.completion_tokens);
    let reason = first.finish.unwrap_or(FinishReason::Stop);
    Ok(Json(responses::response(&echo, plan.parse(&first.text), reason, usage)).into_response())
}
