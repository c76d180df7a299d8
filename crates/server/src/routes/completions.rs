//! `POST /v1/completions`: validate, tokenize each prompt (or take its token
//! ids), submit `n` choices per prompt, then stream or answer whole.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{response_id, tally};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::generate::{self, collect_tracked};
use crate::meter::{MeterGuard, Outcome, Tally};
use crate::schema::{finish_reason, Completion, CompletionChoice, CompletionLogprobs, Head};
use crate::sse::{self, Api};
use crate::state::{unix_now, AppState};
use crate::validate::{self, Context};

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
    // An edition's sampling defaults apply here too; its persona is for chats only.
    let routed = super::route(state, &mut body)?;
    let ctx = Context { n_vocab: routed.n_vocab, limits: &state.config().limits };
    let req = validate::completion::parse(&body, ctx)?;
    state.config().check_edition(caller, &req.model)?;
    let backend = routed.backend?;
    let ids = generate::tokenize(backend, req.prompts).await?;

    let params = req.params;
    let mut meter = crate::meter::meter_for(state, caller, &req.model, None)?;
    let n_prompt: usize = ids.iter().map(Vec::len).sum();
    let planned = ids
        .into_iter()
        .map(|ids| generate::plan(backend, ids, params.max_tokens, "prompt"))
        .collect::<Result<Vec<_>, _>>()?;
    let constraint = generate::compile_grammar(backend, &params, None).await?;
    let mut ticket = generate::admit(state, caller, meter.as_ref(), &planned, params.n).await?;
    // Refused by the engine (a full queue): the ticket's row goes with it.
    let sub = generate::submit(state, backend, planned, &params, "prompt", ticket.share, constraint.as_ref())?;
    if let Some(m) = meter.as_mut() {
        m.row = ticket.row.take();
    }
    let mut guard = MeterGuard::new(meter, n_prompt, sub.n_choices).counted(Tally::new(state, caller, &req.model));
    let head = Head {
        id: response_id("cmpl-"),
        created: unix_now(),
        model: req.model,
        fingerprint: backend.fingerprint.clone(),
    };
    if params.stream {
        return Ok(sse::response_metered(sub, Api::Completion, head, params.include_usage, guard));
    }
    let (results, sub) = collect_tracked(sub, &mut guard.progress).await?;
    let outcome = Outcome::of(&results, &sub, false);
    let usage = outcome.usage;
    tokio::task::spawn_blocking(move || guard.finish(&outcome))
        .await
        .map_err(|e| ApiError::Internal(format!("storing failed: {e}")))??;
    let choices = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            let logprobs = params.logprobs.map(|_| {
                let mut c = CompletionLogprobs::default();
                for (lp, offset) in &r.logprobs {
                    c.push(lp, *offset);
                }
                c
            });
            CompletionChoice {
                text: r.text,
                index,
                logprobs,
                finish_reason: Some(r.finish.map_or("stop", finish_reason)),
            }
        })
        .collect();
    let body = Completion {
        id: head.id,
        object: "text_completion",
        created: head.created,
        model: head.model,
        system_fingerprint: head.fingerprint,
        choices,
        usage: Some(Some(usage)),
    };
    Ok(Json(body).into_response())
}
