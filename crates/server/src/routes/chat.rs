//! `POST /v1/chat/completions`: validate, render the chat template (with the request's tools in
//! the model's own format, [`model::chat::tools`]), tokenize, submit `n` choices — under the
//! tools' grammar when they take part — then stream them or answer with the whole completion,
//! tool calls read out of the text.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{response_id, tally};
use crate::edition;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::generate::{self, collect_tracked};
use crate::meter::{MeterGuard, Outcome, Tally};
use crate::schema::{
    finish_reason, ChatChoice, ChatCompletion, ChatLogprobs, ChatMessage, ChatTokenLogprob, FunctionCall, Head,
    ToolCallBody,
};
use crate::sse::{self, Api};
use crate::state::{unix_now, AppState};
use crate::validate::{self, Context};
use model::chat::tools::{Call, Format, Plan};

/// A call read from an answer, with a fresh id.
pub fn call_body(c: Call) -> ToolCallBody {
    ToolCallBody {
        id: super::response_id("call_"),
        kind: "function",
        function: FunctionCall { name: Some(c.name), arguments: c.arguments },
    }
}

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
    mut body: serde_json::Value,
) -> Result<Response, ApiError> {
    let routed = super::route(state, &mut body)?;
    let ctx = Context { n_vocab: routed.n_vocab, limits: &state.config().limits };
    let req = validate::chat::parse(&body, ctx)?;
    state.config().check_edition(caller, &req.model)?;
    let backend = routed.backend?;
    let edition = state.config().edition(&req.model);
    let conversation = match body.get("conversation") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(id)) => Some(id.clone()),
        Some(_) => {
            return Err(ApiError::invalid("conversation", "`conversation` must be a conversation id (a string)"))
        }
    };
    // The edition's own chat format, if it names one, else the model's.
    let own_template = edition.and_then(|e| e.chat_template.clone());
    if own_template.is_none() && backend.model.chat_template.is_none() {
        return Err(ApiError::bad_request("this model has no chat template; use /v1/completions"));
    }
    // Rendering and tokenizing a long conversation is CPU work: off the runtime.
    // With a conversation, the stored history goes before the request's new turn(s).
    let mut messages = req.messages;
    let conversation = match conversation {
        Some(id) => {
            let turn: Vec<(String, String)> = messages.iter().map(|m| (m.role.clone(), m.content.clone())).collect();
            let (store, tenant) = state.config().store_for(caller)?;
            let key = id.clone();
            let (_, history) = tokio::task::spawn_blocking(move || store.get_conversation(&tenant, &key))
                .await
                .map_err(|e| ApiError::Internal(format!("reading the conversation failed: {e}")))?
                .map_err(|e| ApiError::from_store(e, &id))?;
            let mut all: Vec<model::chat::Message> =
                history.into_iter().map(|m| model::chat::Message::new(m.role, m.content)).collect();
            all.append(&mut messages);
            messages = all;
            Some((id, turn))
        }
        None => None,
    };
    // The edition's persona leads unless the conversation has a system message of its own.
    if let Some(persona) = edition.and_then(|e| e.system.as_deref()) {
        edition::apply_persona(&mut messages, persona);
    }
    let mut meter = crate::meter::meter_for(state, caller, &req.model, conversation)?;
    let model = Arc::clone(&backend.model);
    let tools = req.tools;
    let rendered = tokio::task::spawn_blocking(move || -> Result<(Vec<u32>, Plan), ApiError> {
        let compiled = match &own_template {
            Some(source) => Some(
                model
                    .compile_template(source)
                    .map_err(|e| ApiError::Internal(format!("the edition's chat_template does not compile: {e}")))?,
            ),
            None => None,
        };
        let template = compiled
            .as_ref()
            .or(model.chat_template.as_ref())
            .ok_or_else(|| ApiError::bad_request("no chat template"))?;
        let plan = Plan {
            format: Format::detect(template.source()),
            choice: tools.choice(),
            tools: tools.tools,
            parallel: tools.parallel,
        };
        let mut messages = messages;
        let tools_var = plan.prepare(&mut messages);
        let text = template
            .render_with_tools(&messages, tools_var.as_ref(), true)
            .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
        Ok((model.tokenize_chat_prompt(&text), plan))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("tokenizing failed: {e}")))??;
    let (ids, plan) = rendered;

    let mut params = req.params;
    let grammar_param = if plan.active() {
        params.grammar = plan.grammar();
        Some("tools")
    } else {
        None
    };
    let n_prompt = ids.len();
    let prompt = generate::plan(backend, ids, params.max_tokens, "messages")?;
    let constraint = generate::compile_grammar(backend, &params, grammar_param).await?;
    let mut ticket = generate::admit(state, caller, meter.as_ref(), std::slice::from_ref(&prompt), params.n).await?;
    // Refused by the engine (a full queue): the ticket's row goes with it.
    let sub = generate::submit(state, backend, vec![prompt], &params, "messages", ticket.share, constraint.as_ref())?;
    if let Some(m) = meter.as_mut() {
        m.row = ticket.row.take();
    }
    let mut guard = MeterGuard::new(meter, n_prompt, sub.n_choices).counted(Tally::new(state, caller, &req.model));
    let head = Head {
        id: response_id("chatcmpl-"),
        created: unix_now(),
        model: req.model,
        fingerprint: backend.fingerprint.clone(),
    };
    if params.stream {
        if plan.active() {
            return Ok(sse::chat_with_tools(sub, head, params.include_usage, guard, plan));
        }
        return Ok(sse::response_metered(sub, Api::Chat, head, params.include_usage, guard));
    }
    let (results, sub) = collect_tracked(sub, &mut guard.progress).await?;
    let outcome = Outcome::of(&results, &sub, true);
    let usage = outcome.usage;
    // The answer is acknowledged only once stored.
    tokio::task::spawn_blocking(move || guard.finish(&outcome))
        .await
        .map_err(|e| ApiError::Internal(format!("storing failed: {e}")))??;
    let choices = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            let parsed = plan.parse(&r.text);
            let called = !parsed.calls.is_empty();
            let tool_calls: Vec<ToolCallBody> = parsed.calls.into_iter().map(call_body).collect();
            let content = (!called || !parsed.content.is_empty()).then_some(parsed.content);
            let finish = match r.finish.map_or("stop", finish_reason) {
                "stop" if called => "tool_calls",
                other => other,
            };
            ChatChoice {
                index,
                message: ChatMessage { role: "assistant", content, refusal: None, tool_calls },
                logprobs: params.logprobs.map(|_| ChatLogprobs {
                    content: r.logprobs.iter().map(|(lp, _)| ChatTokenLogprob::from_engine(lp)).collect(),
                    refusal: None,
                }),
                finish_reason: finish,
            }
        })
        .collect();
    let body = ChatCompletion {
        id: head.id,
        object: "chat.completion",
        created: head.created,
        model: head.model,
        system_fingerprint: head.fingerprint,
        choices,
        usage,
    };
    Ok(Json(body).into_response())
}
