//! `POST /v1/completions` bodies: the prompt in its four shapes (a string, a
//! list of strings, a list of token ids, a list of lists of token ids) and the
//! integer `logprobs`.

use serde_json::Value;

use super::fields::{self, wrong_type};
use super::{gen_params, model_name, top_logprobs, Context, GenParams};
use crate::error::ApiError;

/// One prompt of a completion request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// Text, tokenized by the server.
    Text(String),
    /// Token ids, used as they are.
    Tokens(Vec<u32>),
}

/// A validated completion request.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// The model asked for.
    pub model: String,
    /// One or more prompts (each gets `n` choices).
    pub prompts: Vec<Prompt>,
    /// Everything else.
    pub params: GenParams,
}

/// OpenAI's default `max_tokens` for completions.
pub const DEFAULT_MAX_TOKENS: usize = 16;

/// Validates a completion request body.
pub fn parse(body: &Value, ctx: Context) -> Result<CompletionRequest, ApiError> {
    let f = fields::object("", body)?;
    let model = model_name(&f)?.to_string();
    let prompts = prompts("prompt", f.get("prompt"), ctx)?;
    let logprobs = top_logprobs(&f, "logprobs", ctx.limits)?;
    // Tools belong to chat; an empty list or a choice that calls none asks nothing of them.
    let asks = |name: &str| match f.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => s != "none" && s != "auto",
        Some(_) => true,
    };
    for name in ["tools", "tool_choice", "functions"] {
        if asks(name) {
            return Err(ApiError::invalid(name, format!("`{name}` belongs to chat; use /v1/chat/completions")));
        }
    }
    let mut params = gen_params(&f, ctx, logprobs)?;
    params.max_tokens = Some(params.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
    let choices = prompts.len().saturating_mul(params.n);
    if choices > ctx.limits.max_choices {
        return Err(ApiError::invalid(
            "n",
            format!(
                "{} prompts × n = {} asks for {choices} choices; at most {}",
                prompts.len(),
                params.n,
                ctx.limits.max_choices
            ),
        ));
    }
    Ok(CompletionRequest { model, prompts, params })
}

/// The prompts of field `param` (`prompt`; the embeddings route's `input` takes the same four
/// shapes).
pub(crate) fn prompts(param: &str, v: Option<&Value>, ctx: Context) -> Result<Vec<Prompt>, ApiError> {
    let empty = || ApiError::invalid(param, format!("`{param}` must not be empty"));
    match v {
        None => Err(ApiError::invalid(param, format!("`{param}` is required"))),
        Some(Value::String(s)) if s.is_empty() => Err(empty()),
        Some(Value::String(s)) => Ok(vec![Prompt::Text(s.clone())]),
        Some(Value::Array(items)) => match items.first() {
            None => Err(empty()),
            Some(Value::Number(_)) => Ok(vec![Prompt::Tokens(token_ids(param, items, ctx)?)]),
            Some(Value::String(_)) => items
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::String(s) if s.is_empty() => Err(empty()),
                    Value::String(s) => Ok(Prompt::Text(s.clone())),
                    other => Err(wrong_type(&format!("{param}[{i}]"), "a string", other)),
                })
                .collect(),
            Some(Value::Array(_)) => items
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let name = format!("{param}[{i}]");
                    match p {
                        Value::Array(ids) if ids.is_empty() => Err(empty()),
                        Value::Array(ids) => Ok(Prompt::Tokens(token_ids(&name, ids, ctx)?)),
                        other => Err(wrong_type(&name, "an array of token ids", other)),
                    }
                })
                .collect(),
            Some(other) => {
                Err(wrong_type(&format!("{param}[0]"), "a string, a token id or an array of token ids", other))
            }
        },
        Some(other) => Err(wrong_type(param, "a string or an array", other)),
    }
}

/// Token ids of `items` (the field `param`), each below the vocabulary size.
pub(crate) fn token_ids(param: &str, items: &[Value], ctx: Context) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64().filter(|&id| id < ctx.n_vocab as u64).map(|id| id as u32).ok_or_else(|| {
                ApiError::invalid(
                    format!("{param}[{i}]"),
                    format!("{v} is not a token id of this model (0 to {})", ctx.n_vocab.saturating_sub(1)),
                )
            })
        })
        .collect()
}
