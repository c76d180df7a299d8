//! `POST /v1/messages`: Anthropic's Messages API, translated onto the chat path
//! ([`crate::anthropic`]) and answered in Anthropic's shapes.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::FinishReason;

use super::chat::{self, Answered};
use super::tally;
use crate::anthropic;
use crate::error::ApiError;
use crate::extract::JsonBody;
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
    let chat_body = anthropic::to_chat(&body)?;
    let started = chat::start(state, caller, chat_body, "msg_").await?;
    if started.params.stream {
        let chat::Started { sub, guard, head, plan, n_prompt, .. } = started;
        let events = anthropic::Events::new(head.id, head.model, n_prompt, 0, &plan);
        return Ok(crate::sse::shaped(sub, Box::new(events), guard));
    }
    let (head, plan) = (started.head.clone(), started.plan.clone());
    let Answered { results, usage } = started.answer().await?;
    let first = results.into_iter().next().unwrap_or_default();
    let usage =
        anthropic::usage(usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens, first.usage.completion_tokens);
    let reason = first.finish.unwrap_or(FinishReason::Stop);
    let parsed = plan.parse(&first.text);
    let message = anthropic::message(&head.id, &head.model, parsed, reason, first.stop_sequence.as_deref(), usage);
    Ok(Json(message).into_response())
}
