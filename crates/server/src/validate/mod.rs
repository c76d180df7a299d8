//! Validation: a request body becomes a typed value before anything else
//! touches it (parse, don't trust).
//!
//! The body is parsed as JSON by us (so a syntax error is our 400, not the
//! framework's), then read field by field ([`fields`]); every failure is an
//! [`ApiError`] that names the field and the value. What comes out —
//! [`ChatRequest`], [`CompletionRequest`] with their [`GenParams`] — has every
//! value in range; only the prompt's length against the context is left, which
//! needs the tokenizer and is checked before submission.

pub mod chat;
pub mod completion;
pub mod embeddings;
pub mod fields;
pub mod tools;

use model::sampler::SamplingParams;
use serde_json::Value;

use crate::config::Limits;
use crate::error::ApiError;
use fields::{out_of_range, wrong_type, Fields};

pub use chat::ChatRequest;
pub use completion::{CompletionRequest, Prompt};
pub use embeddings::EmbeddingRequest;

/// What validation needs to know about the model.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Vocabulary size: token ids and `logit_bias` keys must be below it.
    pub n_vocab: usize,
    /// The request caps.
    pub limits: &'a Limits,
}

/// Settings shared by chat and completions, all validated.
#[derive(Clone, Debug, PartialEq)]
pub struct GenParams {
    /// Sampling (temperature, top-k/p, min-p, penalties, bias, seed).
    pub sampling: SamplingParams,
    /// Most tokens to generate; `None` means up to the context (chat) .
    pub max_tokens: Option<usize>,
    /// Stop strings (each non-empty).
    pub stop: Vec<String>,
    /// Choices per prompt.
    pub n: usize,
    /// Top log-probabilities per token, when log-probs are asked for.
    pub logprobs: Option<usize>,
    /// Stream as server-sent events.
    pub stream: bool,
    /// Streaming: a final chunk with the usage.
    pub include_usage: bool,
    /// Keep going past end-of-generation tokens (an extension, as vLLM's).
    pub ignore_eos: bool,
    /// What the output must follow: `response_format`'s JSON object or schema, or the
    /// `grammar` extension's Lark grammar.
    pub grammar: Option<model::grammar::Spec>,
}

/// Parses a request body as a JSON value.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// The `model` of a request body, read before the rest is validated (it picks the backend
/// whose vocabulary the rest is checked against): required, a string.
pub fn requested_model(body: &Value) -> Result<&str, ApiError> {
    model_name(&fields::object("", body)?)
}

/// The requested model name (required, a string).
pub fn model_name<'a>(f: &Fields<'a>) -> Result<&'a str, ApiError> {
    f.required_string("model")
}

/// The fields both endpoints share. `logprobs` is read by the caller (its type
/// differs between chat and completions) and passed in.
pub fn gen_params(f: &Fields, ctx: Context, logprobs: Option<usize>) -> Result<GenParams, ApiError> {
    let defaults = SamplingParams::default();
    // Both are checked even when both are given (schemathesis: `max_tokens: {}`
    // beside `max_completion_tokens` used to pass unread); the newer name wins.
    let max_completion_tokens = f.integer("max_completion_tokens", 1, i64::MAX)?;
    let max_tokens = max_completion_tokens.or(f.integer("max_tokens", 1, i64::MAX)?);
    let top_k = match f.integer("top_k", -1, i64::from(u32::MAX))? {
        None => defaults.top_k,
        Some(k) if k <= 0 => 0,
        Some(k) => k as usize,
    };
    let sampling = SamplingParams {
        temperature: f.number("temperature", 0.0, 2.0, false)?.unwrap_or(defaults.temperature),
        top_p: f.number("top_p", 0.0, 1.0, true)?.unwrap_or(defaults.top_p),
        top_k,
        min_p: f.number("min_p", 0.0, 1.0, false)?.unwrap_or(defaults.min_p),
        frequency_penalty: f.number("frequency_penalty", -2.0, 2.0, false)?.unwrap_or(defaults.frequency_penalty),
        presence_penalty: f.number("presence_penalty", -2.0, 2.0, false)?.unwrap_or(defaults.presence_penalty),
        repetition_penalty: f.number("repetition_penalty", 0.0, 2.0, true)?.unwrap_or(defaults.repetition_penalty),
        logit_bias: logit_bias(f, ctx)?,
        seed: f.seed("seed")?,
        ..defaults
    };
    // The ranges above are the API's; the sampler's own check must agree.
    sampling.validate().map_err(|e| ApiError::invalid(e.name, e.to_string()))?;

    let n = f.integer("n", 1, ctx.limits.max_choices as i64)?.unwrap_or(1) as usize;
    let stream = f.boolean("stream")?.unwrap_or(false);
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid("stream_options", "`stream_options` is only allowed when `stream` is true"))
        }
        Some(v) => fields::object("stream_options", v)?.boolean("include_usage")?.unwrap_or(false),
    };
    if let Some(user) = f.string("user")? {
        if user.len() > 256 {
            return Err(ApiError::invalid("user", format!("`user` is {} bytes long; at most 256", user.len())));
        }
    }
    unsupported(f)?;
    Ok(GenParams {
        sampling,
        max_tokens: max_tokens.map(|m| m as usize),
        stop: stop(f, ctx.limits)?,
        n,
        logprobs,
        stream,
        include_usage,
        ignore_eos: f.boolean("ignore_eos")?.unwrap_or(false),
        grammar: grammar(f)?,
    })
}

/// The most bytes a schema or grammar may have (its compiled size is bounded too).
pub const MAX_GRAMMAR_BYTES: usize = 256 * 1024;

/// `response_format` (OpenAI's: `text`, `json_object`, `json_schema` with its `schema`) or the
/// `grammar` extension (a Lark grammar in llguidance's dialect); not both.
fn grammar(f: &Fields) -> Result<Option<model::grammar::Spec>, ApiError> {
    use model::grammar::Spec;
    let lark = f.string("grammar")?;
    let format = match f.get("response_format") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let r = fields::object("response_format", v)?;
            match r.required_string("type").map_err(|_| {
                ApiError::invalid("response_format", "`response_format.type` must be text, json_object or json_schema")
            })? {
                "text" => None,
                "json_object" => Some(Spec::JsonObject),
                "json_schema" => {
                    let js =
                        match r.get("json_schema") {
                            Some(v) => fields::object("response_format.json_schema", v)?,
                            None => return Err(ApiError::invalid(
                                "response_format",
                                "`response_format` of type json_schema needs `json_schema` (with `name` and `schema`)",
                            )),
                        };
                    if let Some(name) = js.string("name")? {
                        let ok = !name.is_empty()
                            && name.len() <= 64
                            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                        if !ok {
                            return Err(ApiError::invalid(
                                "response_format.json_schema.name",
                                "`name` must be 1 to 64 letters, digits, `_` or `-`",
                            ));
                        }
                    }
                    js.boolean("strict")?;
                    let schema = js.get("schema").cloned().unwrap_or_else(|| serde_json::json!({}));
                    if !schema.is_object() && !schema.is_boolean() {
                        return Err(wrong_type("response_format.json_schema.schema", "an object", &schema));
                    }
                    Some(Spec::JsonSchema(schema))
                }
                other => {
                    return Err(ApiError::invalid(
                        "response_format",
                        format!("`response_format.type` `{other}` is not one of text, json_object, json_schema"),
                    ))
                }
            }
        }
    };
    let spec = match (format, lark) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("grammar", "`grammar` and a JSON `response_format` exclude each other"))
        }
        (Some(s), None) => Some(s),
        (None, Some(g)) => Some(Spec::Lark(g.to_string())),
        (None, None) => None,
    };
    let size = match &spec {
        Some(Spec::JsonSchema(s)) => s.to_string().len(),
        Some(Spec::Lark(g)) => g.len(),
        _ => 0,
    };
    if size > MAX_GRAMMAR_BYTES {
        let param = if matches!(spec, Some(Spec::Lark(_))) { "grammar" } else { "response_format" };
        return Err(ApiError::invalid(
            param,
            format!("the schema or grammar is {size} bytes; at most {MAX_GRAMMAR_BYTES}"),
        ));
    }
    Ok(spec)
}

/// `stop`: a string or a list of strings, each non-empty and bounded.
fn stop(f: &Fields, limits: &Limits) -> Result<Vec<String>, ApiError> {
    let list: Vec<&str> = match f.get("stop") {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_str().ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", v)))
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(wrong_type("stop", "a string or an array of strings", v)),
    };
    if list.len() > limits.max_stop {
        return Err(ApiError::invalid(
            "stop",
            format!("{} stop strings given; at most {}", list.len(), limits.max_stop),
        ));
    }
    for s in &list {
        if s.is_empty() {
            return Err(ApiError::invalid("stop", "stop strings must not be empty"));
        }
        if s.len() > limits.max_stop_bytes {
            return Err(ApiError::invalid(
                "stop",
                format!("a stop string is {} bytes long; at most {}", s.len(), limits.max_stop_bytes),
            ));
        }
    }
    Ok(list.into_iter().map(String::from).collect())
}

/// `logit_bias`: an object from token-id strings to biases in [-100, 100].
fn logit_bias(f: &Fields, ctx: Context) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(v) = f.get("logit_bias") else { return Ok(Vec::new()) };
    let Value::Object(map) = v else { return Err(wrong_type("logit_bias", "an object", v)) };
    if map.len() > ctx.limits.max_logit_bias {
        return Err(ApiError::invalid(
            "logit_bias",
            format!("{} logit_bias entries; at most {}", map.len(), ctx.limits.max_logit_bias),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, bias) in map {
        let id = key.parse::<u32>().ok().filter(|&id| (id as usize) < ctx.n_vocab).ok_or_else(|| {
            ApiError::invalid(
                "logit_bias",
                format!(
                    "logit_bias key `{key}` is not a token id of this model (0 to {})",
                    ctx.n_vocab.saturating_sub(1)
                ),
            )
        })?;
        let b = bias.as_f64().ok_or_else(|| wrong_type(&format!("logit_bias.{key}"), "a number", bias))?;
        if !(-100.0..=100.0).contains(&b) {
            return Err(out_of_range(&format!("logit_bias.{key}"), bias, "[-100, 100]"));
        }
        out.push((id, b as f32));
    }
    out.sort_by_key(|e| e.0);
    Ok(out)
}

/// OpenAI fields this server does not implement: refused rather than ignored,
/// since ignoring them would give a different answer than asked for.
fn unsupported(f: &Fields) -> Result<(), ApiError> {
    let refuse = |name: &str| Err(ApiError::invalid(name, format!("`{name}` is not supported by this server")));
    if f.boolean("echo")? == Some(true) {
        return refuse("echo");
    }
    if f.string("suffix")?.is_some_and(|s| !s.is_empty()) {
        return refuse("suffix");
    }
    if f.get("best_of").is_some_and(|b| b.as_i64() != Some(1)) {
        return refuse("best_of");
    }
    Ok(())
}

/// Number of top log-probabilities: `0..=limit`.
pub fn top_logprobs(f: &Fields, name: &str, limits: &Limits) -> Result<Option<usize>, ApiError> {
    Ok(f.integer(name, 0, limits.max_top_logprobs as i64)?.map(|k| k as usize))
}
