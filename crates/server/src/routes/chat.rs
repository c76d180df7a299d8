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
use model::chat::reasoning::Thinking;
use model::chat::tools::{Call, Choice, Format, Plan};

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

/// A chat request validated, rendered, admitted and submitted: what each API shape (OpenAI's
/// here, Anthropic's and the Responses API's in their adapters) streams or answers with.
pub struct Started {
    /// The choices in flight.
    pub sub: generate::Submission,
    /// Records the request when it ends.
    pub guard: MeterGuard,
    /// Id, time, model name and fingerprint.
    pub head: Head,
    /// The validated settings.
    pub params: crate::validate::GenParams,
    /// The request's tools in the model's format (inactive without tools).
    pub plan: Plan,
    /// Prompt tokens.
    pub n_prompt: usize,
}

/// A whole (not streamed) answer, recorded: each choice's result and the request's usage.
pub struct Answered {
    /// Each choice's text, log-probs, finish and usage.
    pub results: Vec<generate::ChoiceResult>,
    /// The request's counts (prompt once).
    pub usage: crate::schema::UsageBody,
}

impl Started {
    /// Waits for every choice and records the request; the answer is acknowledged only once
    /// stored.
    pub async fn answer(self) -> Result<Answered, ApiError> {
        let mut guard = self.guard;
        let (results, sub) = collect_tracked(self.sub, &mut guard.progress).await?;
        let outcome = Outcome::of(&results, &sub, true);
        let usage = outcome.usage;
        tokio::task::spawn_blocking(move || guard.finish(&outcome))
            .await
            .map_err(|e| ApiError::Internal(format!("storing failed: {e}")))??;
        Ok(Answered { results, usage })
    }
}

async fn run(
    state: &AppState,
    caller: Option<&crate::extract::Caller>,
    body: serde_json::Value,
) -> Result<Response, ApiError> {
    let started = start(state, caller, body, "chatcmpl-").await?;
    if started.params.stream {
        let Started { sub, guard, head, params, plan, .. } = started;
        if plan.reads() {
            return Ok(sse::chat_with_tools(sub, head, params.include_usage, guard, plan));
        }
        return Ok(sse::response_metered(sub, Api::Chat, head, params.include_usage, guard));
    }
    let (head, logprobs, plan) = (started.head.clone(), started.params.logprobs, started.plan.clone());
    let Answered { results, usage } = started.answer().await?;
    let choices = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            let (reasoning, parsed) = plan.parse_answer(&r.text);
            let called = !parsed.calls.is_empty();
            let tool_calls: Vec<ToolCallBody> = parsed.calls.into_iter().map(call_body).collect();
            let content = (!called || !parsed.content.is_empty()).then_some(parsed.content);
            let finish = match r.finish.map_or("stop", finish_reason) {
                "stop" if called => "tool_calls",
                other => other,
            };
            ChatChoice {
                index,
                message: ChatMessage {
                    role: "assistant",
                    content,
                    reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                    refusal: None,
                    tool_calls,
                },
                logprobs: logprobs.map(|_| ChatLogprobs {
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

/// Validates, renders and tokenizes a chat request body, admits it under the caller's quotas
/// and submits its choices; the response's id begins with `id_prefix`.
pub async fn start(
    state: &AppState,
    caller: Option<&crate::extract::Caller>,
    mut body: serde_json::Value,
    id_prefix: &str,
) -> Result<Started, ApiError> {
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
    let kwargs = req.template_kwargs;
    let separate_reasoning = req.separate_reasoning;
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
        let mut plan = Plan {
            format: Format::detect(template.source()),
            choice: tools.choice(),
            tools: tools.tools,
            parallel: tools.parallel,
            thinking: None,
        };
        let mut messages = messages;
        let tools_var = plan.prepare(&mut messages);
        let text = template
            .render_with(&messages, tools_var.as_ref(), true, &kwargs)
            .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
        if separate_reasoning {
            plan.thinking = Thinking::for_prompt(template.source(), &text).map(|mut t| {
                // A call forced from the first token leaves no room for reasoning.
                t.inside &= !plan.active() || plan.choice == Choice::Auto;
                t
            });
        }
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
    let guard = MeterGuard::new(meter, n_prompt, sub.n_choices).counted(Tally::new(state, caller, &req.model));
    let head = Head {
        id: response_id(id_prefix),
        created: unix_now(),
        model: req.model,
        fingerprint: backend.fingerprint.clone(),
    };
    Ok(Started { sub, guard, head, params, plan, n_prompt })
}
