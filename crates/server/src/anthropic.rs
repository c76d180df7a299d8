//! Anthropic's Messages API (`POST /v1/messages`) as an adapter onto the chat path.
//!
//! A request is translated into a chat completion request ([`to_chat`]) — `system` becomes the
//! first message, content blocks become text, `tool_use` blocks become assistant `tool_calls`,
//! `tool_result` blocks become `tool` turns, `tools` with `input_schema` become function tools,
//! `stop_sequences` become `stop` — and then runs exactly as a chat does: editions, tenants,
//! quotas, usage and grammars all apply. The answer is written back in Anthropic's shapes: a
//! `message` with `text` and `tool_use` blocks ([`message`]), or the event stream
//! `message_start`, `content_block_start`, `content_block_delta` …, `message_delta`,
//! `message_stop` ([`Events`]). Errors carry Anthropic's envelope (`{"type": "error", "error":
//! {"type", "message"}}`, [`error_body`]).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::Response;
use engine::FinishReason;
use model::chat::tools::{self, Parsed};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::sse::{Frame, Shape};
use crate::validate::fields::{self, wrong_type, Fields};

/// Translates a Messages request into a chat completion request, refusing what it cannot carry
/// (images, documents, server tools, extended thinking) with a 400 naming the field.
pub fn to_chat(body: &Value) -> Result<Value, ApiError> {
    let f = fields::object("", body)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(f.required_string("model")?));
    // Reasoning stays in the text: this API shape has no field for it here.
    out.insert("reasoning_format".into(), json!("none"));
    // Anthropic requires `max_tokens`.
    let max = f
        .integer("max_tokens", 1, i64::MAX)?
        .ok_or_else(|| ApiError::invalid("max_tokens", "`max_tokens` is required"))?;
    out.insert("max_tokens".into(), json!(max));
    for name in ["top_p", "top_k"] {
        if let Some(v) = f.get(name).filter(|v| !v.is_null()) {
            out.insert(name.into(), v.clone());
        }
    }
    // Anthropic's range is [0, 1].
    if let Some(t) = f.number("temperature", 0.0, 1.0, false)? {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(s) = f.get("stop_sequences").filter(|v| !v.is_null()) {
        out.insert("stop".into(), s.clone());
    }
    if let Some(stream) = f.boolean("stream")? {
        out.insert("stream".into(), json!(stream));
    }
    if let Some(m) = f.get("metadata").filter(|v| !v.is_null()) {
        if let Some(user) = fields::object("metadata", m)?.string("user_id")? {
            out.insert("user".into(), json!(user));
        }
    }
    if let Some(t) = f.get("thinking").filter(|v| !v.is_null()) {
        if fields::object("thinking", t)?.string("type")? != Some("disabled") {
            return Err(ApiError::invalid("thinking", "extended thinking is not supported by this server"));
        }
    }
    let mut messages = Vec::new();
    if let Some(system) = f.get("system").filter(|v| !v.is_null()) {
        messages.push(json!({"role": "system", "content": text_of("system", system)?}));
    }
    let items = match f.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid("messages", "`messages` must contain at least one message"))
        }
        Some(v) => return Err(wrong_type("messages", "an array of messages", v)),
        None => return Err(ApiError::invalid("messages", "`messages` is required")),
    };
    for (i, m) in items.iter().enumerate() {
        turn(i, m, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(t) = f.get("tools").filter(|v| !v.is_null()) {
        out.insert("tools".into(), tools_of(t)?);
    }
    if let Some(c) = f.get("tool_choice").filter(|v| !v.is_null()) {
        tool_choice(c, &mut out)?;
    }
    if let Some(format) = output_format(&f)? {
        out.insert("response_format".into(), format);
    }
    if let Some(c) = f.get("conversation") {
        out.insert("conversation".into(), c.clone());
    }
    Ok(Value::Object(out))
}

/// Structured output: `output_config.format` (or the older `output_format`), `{"type":
/// "json_schema", "schema": {…}}`, as a chat `response_format`.
fn output_format(f: &Fields) -> Result<Option<Value>, ApiError> {
    let (param, v) = match (f.get("output_config").filter(|v| !v.is_null()), f.get("output_format")) {
        (Some(c), _) => match fields::object("output_config", c)?.get("format").filter(|v| !v.is_null()) {
            Some(v) => ("output_config.format", v),
            None => return Ok(None),
        },
        (None, Some(v)) if !v.is_null() => ("output_format", v),
        _ => return Ok(None),
    };
    let o = fields::object(param, v)?;
    if o.required_string("type")? != "json_schema" {
        return Err(ApiError::invalid(format!("{param}.type"), "the output format's `type` must be `json_schema`"));
    }
    let schema = o.get("schema").ok_or_else(|| ApiError::invalid(format!("{param}.schema"), "`schema` is required"))?;
    Ok(Some(json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})))
}

/// A `system` prompt or `tool_result` content: a string or a list of text blocks.
fn text_of(param: &str, v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                let b = fields::object(&format!("{param}[{j}]"), b)?;
                match b.required_string("type")? {
                    "text" => texts.push(b.required_string("text")?),
                    other => return Err(unsupported_block(&b.param("type"), other)),
                }
            }
            Ok(texts.join("\n"))
        }
        other => Err(wrong_type(param, "a string or an array of text blocks", other)),
    }
}

fn unsupported_block(param: &str, kind: &str) -> ApiError {
    ApiError::invalid(param, format!("content blocks of type `{kind}` are not supported by this server"))
}

/// One Anthropic turn, as one or more chat messages: a user turn's `tool_result` blocks become
/// `tool` messages (before the turn's text), an assistant turn's `tool_use` blocks its
/// `tool_calls`.
fn turn(i: usize, v: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let name = format!("messages[{i}]");
    let m = fields::object(&name, v)?;
    let role = m.required_string("role")?;
    if role != "user" && role != "assistant" {
        return Err(ApiError::invalid(m.param("role"), format!("`role` is `{role}`; it must be user or assistant")));
    }
    let content = m.get("content").ok_or_else(|| ApiError::invalid(m.param("content"), "`content` is required"))?;
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        other => return Err(wrong_type(&m.param("content"), "a string or an array of content blocks", other)),
    };
    let mut text = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let param = format!("{}[{j}]", m.param("content"));
        let b = fields::object(&param, b)?;
        match (role, b.required_string("type")?) {
            (_, "text") => text.push(b.required_string("text")?.to_string()),
            ("assistant", "tool_use") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                if !input.is_object() {
                    return Err(wrong_type(&b.param("input"), "an object", &input));
                }
                calls.push(json!({"id": b.required_string("id")?, "type": "function",
                    "function": {"name": b.required_string("name")?, "arguments": input.to_string()}}));
            }
            ("user", "tool_result") => {
                let id = b.required_string("tool_use_id")?;
                let mut result = match b.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(c) => text_of(&b.param("content"), c)?,
                };
                if b.boolean("is_error")? == Some(true) {
                    result = format!("Error: {result}");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": result}));
            }
            // Earlier reasoning is not shown to the model again.
            ("assistant", "thinking" | "redacted_thinking") => {}
            (_, other) => return Err(unsupported_block(&b.param("type"), other)),
        }
    }
    if role == "assistant" {
        let mut msg = json!({"role": "assistant", "content": text.join("")});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
            if text.is_empty() {
                msg["content"] = Value::Null;
            }
        }
        out.push(msg);
    } else if !text.is_empty() || !blocks.iter().any(|b| b["type"] == "tool_result") {
        out.push(json!({"role": "user", "content": text.join("\n")}));
    }
    Ok(())
}

/// `tools`: `{name, description, input_schema}` each, as function tools.
fn tools_of(v: &Value) -> Result<Value, ApiError> {
    let Value::Array(items) = v else { return Err(wrong_type("tools", "an array of tools", v)) };
    let mut out = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let t = fields::object(&format!("tools[{i}]"), t)?;
        if let Some(kind) = t.string("type")? {
            if kind != "custom" {
                return Err(ApiError::invalid(
                    t.param("type"),
                    format!("tools of type `{kind}` are not supported by this server; only client tools"),
                ));
            }
        }
        let mut function = Map::new();
        function.insert("name".into(), json!(t.required_string("name")?));
        if let Some(d) = t.string("description")? {
            function.insert("description".into(), json!(d));
        }
        let schema = t
            .get("input_schema")
            .ok_or_else(|| ApiError::invalid(t.param("input_schema"), "`input_schema` is required"))?;
        function.insert("parameters".into(), schema.clone());
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

/// `tool_choice`: `auto`, `any` (some tool), `tool` (a named one) or `none`; with
/// `disable_parallel_tool_use`.
fn tool_choice(v: &Value, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let c: Fields = fields::object("tool_choice", v)?;
    let choice = match c.required_string("type")? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => json!({"type": "function", "function": {"name": c.required_string("name")?}}),
        other => {
            return Err(ApiError::invalid(
                "tool_choice.type",
                format!("`tool_choice.type` `{other}` is not one of auto, any, tool, none"),
            ))
        }
    };
    out.insert("tool_choice".into(), choice);
    if c.boolean("disable_parallel_tool_use")? == Some(true) {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
}

/// Why an answer stopped, in Anthropic's words.
pub fn stop_reason(reason: FinishReason, called: bool, stop: Option<&str>) -> &'static str {
    match reason {
        FinishReason::Length => "max_tokens",
        _ if called => "tool_use",
        _ if stop.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

/// Arguments text as the `input` object of a `tool_use` block.
fn input_of(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// `usage` in Anthropic's terms: prompt tokens served from the prefix cache are
/// `cache_read_input_tokens`, the rest `input_tokens`.
pub fn usage(prompt: usize, cached: usize, output: usize) -> Value {
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

/// A whole answer as a `message`; `stop` is the stop sequence that ended it, if one did.
pub fn message(id: &str, model: &str, parsed: Parsed, reason: FinishReason, stop: Option<&str>, usage: Value) -> Value {
    let called = !parsed.calls.is_empty();
    let mut content = Vec::new();
    if !parsed.content.is_empty() {
        content.push(json!({"type": "text", "text": parsed.content}));
    }
    for c in parsed.calls {
        content.push(json!({"type": "tool_use", "id": crate::routes::response_id("toolu_"), "name": c.name,
            "input": input_of(&c.arguments)}));
    }
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(reason, called, stop),
        "stop_sequence": if called { None } else { stop },
        "usage": usage,
    })
}

/// Anthropic's error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Anthropic's error envelope for a message and status.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// The route Anthropic's clients call.
pub const PATH: &str = "/v1/messages";

/// Middleware: an error answered on [`PATH`] — by the route, the key check, the body limit, the
/// JSON reader — is rewritten into Anthropic's envelope, keeping its status and headers
/// (`Retry-After` …). Other routes pass untouched.
pub async fn errors(req: Request, next: Next) -> Response {
    let ours = req.uri().path() == PATH;
    let resp = next.run(req).await;
    let json = resp.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !ours || resp.status().is_success() || !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let status = parts.status;
    // Our own error bodies are small; a larger one is not ours to rewrite.
    let message = match axum::body::to_bytes(body, 64 << 10).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string)),
        Err(_) => None,
    }
    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    parts.headers.remove(CONTENT_LENGTH);
    let body = error_body(status.as_u16(), &message).to_string();
    Response::from_parts(parts, Body::from(body))
}

/// The event stream of one answer (Anthropic streams one choice).
pub struct Events {
    id: String,
    model: String,
    input: (usize, usize),
    reader: tools::Stream,
    /// The open content block: its index and whether it is text.
    open: Option<(usize, bool)>,
    blocks: usize,
    called: bool,
}

impl Events {
    /// The events of answer `id` to `model`, whose prompt had `prompt` tokens (`cached` from the
    /// prefix cache), read with `plan`.
    pub fn new(id: String, model: String, prompt: usize, cached: usize, plan: &tools::Plan) -> Events {
        Events { id, model, input: (prompt, cached), reader: plan.stream(), open: None, blocks: 0, called: false }
    }

    fn frame(kind: &'static str, data: Value) -> Frame {
        Frame { event: Some(kind), data: data.to_string() }
    }

    fn close_block(&mut self, out: &mut Vec<Frame>) {
        if let Some((index, _)) = self.open.take() {
            out.push(Self::frame("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }

    fn events(&mut self, events: Vec<tools::Event>, out: &mut Vec<Frame>) {
        for e in events {
            match e {
                // Never sent: the request asks for reasoning in the text (`reasoning_format`).
                tools::Event::Reasoning(_) => {}
                tools::Event::Content(text) => {
                    if !matches!(self.open, Some((_, true))) {
                        self.close_block(out);
                        let index = self.blocks;
                        self.blocks += 1;
                        self.open = Some((index, true));
                        out.push(Self::frame(
                            "content_block_start",
                            json!({"type": "content_block_start", "index": index,
                                "content_block": {"type": "text", "text": ""}}),
                        ));
                    }
                    let index = self.open.map_or(0, |o| o.0);
                    out.push(Self::frame(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "text_delta", "text": text}}),
                    ));
                }
                tools::Event::Call { name, .. } => {
                    self.close_block(out);
                    self.called = true;
                    let index = self.blocks;
                    self.blocks += 1;
                    self.open = Some((index, false));
                    out.push(Self::frame(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": index, "content_block": {
                            "type": "tool_use", "id": crate::routes::response_id("toolu_"), "name": name,
                            "input": {}}}),
                    ));
                }
                tools::Event::Arguments { text, .. } => {
                    let index = self.open.map_or(0, |o| o.0);
                    out.push(Self::frame(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": text}}),
                    ));
                }
            }
        }
    }
}

impl Shape for Events {
    fn open(&mut self) -> Vec<Frame> {
        let (prompt, cached) = self.input;
        vec![
            Self::frame(
                "message_start",
                json!({"type": "message_start", "message": {"id": self.id, "type": "message", "role": "assistant",
                    "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": usage(prompt, cached, 0)}}),
            ),
            Self::frame("ping", json!({"type": "ping"})),
        ]
    }

    fn text(&mut self, index: usize, text: &str, _lp: Option<&engine::Logprobs>) -> Vec<Frame> {
        let mut out = Vec::new();
        if index == 0 {
            let events = self.reader.push(text);
            self.events(events, &mut out);
        }
        out
    }

    fn done(
        &mut self,
        index: usize,
        text: &str,
        reason: FinishReason,
        stop: Option<&str>,
        usage: &engine::Usage,
    ) -> Vec<Frame> {
        let mut out = Vec::new();
        if index != 0 {
            return out;
        }
        let events = self.reader.end(text);
        self.events(events, &mut out);
        self.close_block(&mut out);
        let stop = if self.called { None } else { stop };
        out.push(Self::frame(
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(reason, self.called, stop), "stop_sequence": stop},
                "usage": {"output_tokens": usage.completion_tokens}}),
        ));
        out
    }

    fn close(&mut self, _usage: &crate::schema::UsageBody) -> Vec<Frame> {
        vec![Self::frame("message_stop", json!({"type": "message_stop"}))]
    }

    fn fail(&mut self, e: &ApiError) -> Vec<Frame> {
        vec![Self::frame("error", error_body(e.status().as_u16(), &e.to_string()))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_with_tools_translates_into_a_chat() {
        let body = json!({
            "model": "m", "max_tokens": 50, "system": [{"type": "text", "text": "Be brief."}],
            "stop_sequences": ["END"], "temperature": 0.5, "stream": true,
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                    {"type": "text", "text": "Thanks"}]},
            ]
        });
        let chat = to_chat(&body).expect("translates");
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"},
                {"role": "user", "content": "Thanks"},
            ])
        );
        assert_eq!(chat["stop"], json!(["END"]));
        assert_eq!(chat["max_tokens"], 50);
        assert_eq!(chat["tool_choice"], "required");
        assert_eq!(chat["parallel_tool_calls"], false);
        assert_eq!(chat["tools"][0]["function"]["parameters"], json!({"type": "object"}));
        let structured = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}});
        let chat = to_chat(&structured).expect("translates");
        assert_eq!(chat["response_format"]["json_schema"]["schema"], json!({"type": "object"}));
    }

    #[test]
    fn what_cannot_be_carried_is_a_400_naming_it() {
        let base = |extra: Value| {
            let mut b = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
            if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            b
        };
        for (extra, param) in [
            (json!({"max_tokens": null}), "max_tokens"),
            (json!({"messages": []}), "messages"),
            (json!({"messages": [{"role": "system", "content": "x"}]}), "messages[0].role"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}),
                "messages[0].content[0].type",
            ),
            (json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}), "tools[0].type"),
            (json!({"tools": [{"name": "f"}]}), "tools[0].input_schema"),
            (json!({"tool_choice": {"type": "sometimes"}}), "tool_choice.type"),
            (json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}), "thinking"),
            (json!({"temperature": 1.5}), "temperature"),
            (json!({"output_config": {"format": {"type": "yaml"}}}), "output_config.format.type"),
        ] {
            let e = to_chat(&base(extra.clone())).expect_err("refused");
            assert_eq!(e.body()["error"]["param"], param, "{extra}: {e}");
        }
    }

    #[test]
    fn answers_become_messages_with_text_and_tool_use_blocks() {
        let parsed = Parsed {
            content: "Let me check.".into(),
            calls: vec![tools::Call { name: "get_weather".into(), arguments: r#"{"city": "Paris"}"#.into() }],
        };
        let m = message("msg_1", "m", parsed, FinishReason::Stop, None, usage(10, 4, 7));
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["content"][0], json!({"type": "text", "text": "Let me check."}));
        assert_eq!(m["content"][1]["input"], json!({"city": "Paris"}));
        assert!(m["content"][1]["id"].as_str().is_some_and(|id| id.starts_with("toolu_")));
        assert_eq!(m["usage"]["input_tokens"], 6);
        assert_eq!(m["usage"]["cache_read_input_tokens"], 4);
        let plain = message("msg_2", "m", Parsed::default(), FinishReason::Length, None, usage(1, 0, 1));
        assert_eq!(plain["stop_reason"], "max_tokens");
        let stopped = message("msg_3", "m", Parsed::default(), FinishReason::Stop, Some("END"), usage(1, 0, 1));
        assert_eq!(
            (stopped["stop_reason"].as_str(), stopped["stop_sequence"].as_str()),
            (Some("stop_sequence"), Some("END"))
        );
        assert_eq!(plain["content"], json!([]));
        assert_eq!(error_body(429, "slow down")["error"]["type"], "rate_limit_error");
    }
}
