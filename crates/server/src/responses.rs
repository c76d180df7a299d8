//! OpenAI's Responses API (`POST /v1/responses`) as an adapter onto the chat path, stateless.
//!
//! A request is translated into a chat completion request ([`to_chat`]): `instructions` become
//! the system message, `input` (a string, or items: messages with `input_text` parts,
//! `function_call` and `function_call_output` items) the conversation, `text.format` the
//! `response_format`, flat function tools the chat's tools, `max_output_tokens` the
//! `max_tokens`. Nothing is stored, so `previous_response_id` is a 400 that says so. The answer
//! comes back as a `response` object whose `output` holds a `message` item (`output_text`) and
//! `function_call` items ([`response`]), or as the `response.*` event stream ([`Events`]).

use engine::FinishReason;
use model::chat::tools::{self, Parsed};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::routes::response_id;
use crate::sse::{Frame, Shape};
use crate::validate::fields::{self, wrong_type};

/// Translates a Responses request into a chat completion request; what it cannot carry is a
/// 400 naming the field.
pub fn to_chat(body: &Value) -> Result<Value, ApiError> {
    let f = fields::object("", body)?;
    if f.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid(
            "previous_response_id",
            "this server keeps no responses: send the whole conversation in `input` (or use a conversation)",
        ));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(f.required_string("model")?));
    // Reasoning stays in the text: this API shape has no field for it here.
    out.insert("reasoning_format".into(), json!("none"));
    if let Some(max) = f.integer("max_output_tokens", 1, i64::MAX)? {
        out.insert("max_tokens".into(), json!(max));
    }
    for name in ["temperature", "top_p", "stream", "parallel_tool_calls", "user", "seed"] {
        if let Some(v) = f.get(name).filter(|v| !v.is_null()) {
            out.insert(name.into(), v.clone());
        }
    }
    let mut messages = Vec::new();
    if let Some(i) = f.string("instructions")? {
        messages.push(json!({"role": "system", "content": i}));
    }
    match f.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                input_item(i, item, &mut messages)?;
            }
        }
        Some(Value::Array(_)) => return Err(ApiError::invalid("input", "`input` must not be empty")),
        Some(v) => return Err(wrong_type("input", "a string or an array of input items", v)),
        None => return Err(ApiError::invalid("input", "`input` is required")),
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(t) = f.get("text").filter(|v| !v.is_null()) {
        if let Some(format) = fields::object("text", t)?.get("format").filter(|v| !v.is_null()) {
            out.insert("response_format".into(), text_format(format)?);
        }
    }
    if let Some(t) = f.get("tools").filter(|v| !v.is_null()) {
        out.insert("tools".into(), tools_of(t)?);
    }
    if let Some(c) = f.get("tool_choice").filter(|v| !v.is_null()) {
        let choice = match c {
            Value::String(_) => c.clone(),
            Value::Object(_) => {
                let o = fields::object("tool_choice", c)?;
                if o.required_string("type")? != "function" {
                    return Err(ApiError::invalid("tool_choice.type", "only function tools can be chosen"));
                }
                json!({"type": "function", "function": {"name": o.required_string("name")?}})
            }
            other => return Err(wrong_type("tool_choice", "a string or an object", other)),
        };
        out.insert("tool_choice".into(), choice);
    }
    if let Some(c) = f.get("conversation") {
        out.insert("conversation".into(), c.clone());
    }
    Ok(Value::Object(out))
}

/// One `input` item as chat messages.
fn input_item(i: usize, v: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let item = fields::object(&format!("input[{i}]"), v)?;
    match item.string("type")?.unwrap_or("message") {
        "message" => {
            let role = item.required_string("role")?;
            let content = match item.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut texts = Vec::with_capacity(parts.len());
                    for (j, p) in parts.iter().enumerate() {
                        let p = fields::object(&format!("{}[{j}]", item.param("content")), p)?;
                        match p.required_string("type")? {
                            "input_text" | "output_text" | "text" => texts.push(p.required_string("text")?),
                            other => {
                                return Err(ApiError::invalid(
                                    p.param("type"),
                                    format!("content parts of type `{other}` are not supported by this server"),
                                ))
                            }
                        }
                    }
                    texts.join("\n")
                }
                Some(other) => return Err(wrong_type(&item.param("content"), "a string or an array of parts", other)),
                None => return Err(ApiError::invalid(item.param("content"), "`content` is required")),
            };
            out.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({"id": item.required_string("call_id")?, "type": "function",
                "function": {"name": item.required_string("name")?, "arguments": item.required_string("arguments")?}});
            // Consecutive calls belong to one assistant turn.
            match out.last_mut() {
                Some(last) if last["role"] == "assistant" && last["tool_calls"].is_array() => {
                    if let Some(calls) = last["tool_calls"].as_array_mut() {
                        calls.push(call);
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return Err(ApiError::invalid(item.param("output"), "`output` is required")),
            };
            out.push(json!({"role": "tool", "tool_call_id": item.required_string("call_id")?, "content": output}));
        }
        // Earlier reasoning is not shown to the model again.
        "reasoning" => {}
        other => {
            return Err(ApiError::invalid(
                item.param("type"),
                format!("input items of type `{other}` are not supported by this server"),
            ))
        }
    }
    Ok(())
}

/// `text.format` as a chat `response_format`.
fn text_format(v: &Value) -> Result<Value, ApiError> {
    let f = fields::object("text.format", v)?;
    Ok(match f.required_string("type")? {
        "text" => json!({"type": "text"}),
        "json_object" => json!({"type": "json_object"}),
        "json_schema" => {
            let mut js = Map::new();
            js.insert("name".into(), json!(f.string("name")?.unwrap_or("response")));
            js.insert(
                "schema".into(),
                f.get("schema")
                    .cloned()
                    .ok_or_else(|| ApiError::invalid("text.format.schema", "`schema` is required"))?,
            );
            if let Some(strict) = f.boolean("strict")? {
                js.insert("strict".into(), json!(strict));
            }
            json!({"type": "json_schema", "json_schema": js})
        }
        other => {
            return Err(ApiError::invalid(
                "text.format.type",
                format!("`text.format.type` `{other}` is not one of text, json_object, json_schema"),
            ))
        }
    })
}

/// Flat function tools (`{type: function, name, description, parameters}`) as chat tools.
fn tools_of(v: &Value) -> Result<Value, ApiError> {
    let Value::Array(items) = v else { return Err(wrong_type("tools", "an array of tools", v)) };
    let mut out = Vec::with_capacity(items.len());
    for (i, t) in items.iter().enumerate() {
        let t = fields::object(&format!("tools[{i}]"), t)?;
        let kind = t.required_string("type")?;
        if kind != "function" {
            return Err(ApiError::invalid(
                t.param("type"),
                format!("tools of type `{kind}` are not supported by this server; only function tools"),
            ));
        }
        let mut function = Map::new();
        function.insert("name".into(), json!(t.required_string("name")?));
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
                function.insert(key.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

/// `usage` in the Responses API's terms.
pub fn usage(prompt: usize, cached: usize, output: usize) -> Value {
    json!({
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    })
}

/// The output items of an answer: a `message` with its text (when there is text), then one
/// `function_call` per call.
fn output_items(parsed: Parsed, status: &str) -> Vec<Value> {
    let mut items = Vec::new();
    if !parsed.content.is_empty() || parsed.calls.is_empty() {
        items.push(message_item(&response_id("msg_"), &parsed.content, status));
    }
    for c in parsed.calls {
        items.push(json!({"type": "function_call", "id": response_id("fc_"), "call_id": response_id("call_"),
            "name": c.name, "arguments": c.arguments, "status": "completed"}));
    }
    items
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

/// The request's settings as a `response` echoes them.
#[derive(Clone, Debug)]
pub struct Echo {
    /// The response's id (`resp_…`).
    pub id: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// The model name asked for.
    pub model: String,
    /// The request body (for `instructions`, `tools`, `text` …).
    pub request: Value,
}

impl Echo {
    /// A `response` object with `status`, `output` and `usage`.
    pub fn response(&self, status: &str, reason: Option<FinishReason>, output: Vec<Value>, usage: Value) -> Value {
        let r = &self.request;
        let incomplete = matches!(reason, Some(FinishReason::Length));
        let status = if incomplete && status == "completed" { "incomplete" } else { status };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": if incomplete { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": r.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": r.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": r.get("parallel_tool_calls").cloned().unwrap_or(json!(true)),
            "previous_response_id": null,
            "store": false,
            "temperature": r.get("temperature").cloned().unwrap_or(json!(1.0)),
            "text": r.get("text").cloned().unwrap_or_else(|| json!({"format": {"type": "text"}})),
            "tool_choice": r.get("tool_choice").cloned().unwrap_or(json!("auto")),
            "tools": r.get("tools").cloned().unwrap_or(json!([])),
            "top_p": r.get("top_p").cloned().unwrap_or(json!(1.0)),
            "truncation": "disabled",
            "usage": usage,
            "metadata": r.get("metadata").cloned().unwrap_or(json!({})),
        })
    }
}

/// A whole answer as a `response`.
pub fn response(echo: &Echo, parsed: Parsed, reason: FinishReason, usage: Value) -> Value {
    echo.response("completed", Some(reason), output_items(parsed, "completed"), usage)
}

/// The `response.*` event stream of one answer.
pub struct Events {
    echo: Echo,
    reader: tools::Stream,
    seq: u64,
    /// Items so far (their final form is built as they finish).
    items: Vec<Value>,
    /// The open item: its output index, and whether it is the message (else a call).
    open: Option<(usize, bool)>,
    /// The message's text so far; the open call's arguments so far.
    text: String,
    arguments: String,
    input: (usize, usize),
}

impl Events {
    /// The events of `echo`'s answer, whose prompt had `prompt` tokens (`cached` reused), read
    /// with `plan`.
    pub fn new(echo: Echo, prompt: usize, cached: usize, plan: &tools::Plan) -> Events {
        Events {
            echo,
            reader: plan.stream(),
            seq: 0,
            items: Vec::new(),
            open: None,
            text: String::new(),
            arguments: String::new(),
            input: (prompt, cached),
        }
    }

    fn frame(&mut self, kind: &'static str, mut data: Value) -> Frame {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        Frame { event: Some(kind), data: data.to_string() }
    }

    fn close_item(&mut self, out: &mut Vec<Frame>) {
        let Some((index, is_message)) = self.open.take() else { return };
        let item_id = self.items[index]["id"].clone();
        if is_message {
            let text = std::mem::take(&mut self.text);
            let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
            let f = self.frame(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
            );
            out.push(f);
            let f = self.frame(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}),
            );
            out.push(f);
            self.items[index]["content"] = json!([part]);
        } else {
            let arguments = std::mem::take(&mut self.arguments);
            let f = self.frame(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": index, "arguments": arguments}),
            );
            out.push(f);
            self.items[index]["arguments"] = json!(arguments);
        }
        self.items[index]["status"] = json!("completed");
        let item = self.items[index].clone();
        let f = self.frame("response.output_item.done", json!({"output_index": index, "item": item}));
        out.push(f);
    }

    fn events(&mut self, events: Vec<tools::Event>, out: &mut Vec<Frame>) {
        for e in events {
            match e {
                // Never sent: the request asks for reasoning in the text (`reasoning_format`).
                tools::Event::Reasoning(_) => {}
                tools::Event::Content(text) => {
                    if !matches!(self.open, Some((_, true))) {
                        self.close_item(out);
                        let index = self.items.len();
                        let item = message_item(&response_id("msg_"), "", "in_progress");
                        let item_id = item["id"].clone();
                        self.items.push(item.clone());
                        self.open = Some((index, true));
                        let f = self.frame("response.output_item.added", json!({"output_index": index, "item": item}));
                        out.push(f);
                        let part = json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
                        let f = self.frame(
                            "response.content_part.added",
                            json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}),
                        );
                        out.push(f);
                    }
                    let index = self.open.map_or(0, |o| o.0);
                    let item_id = self.items[index]["id"].clone();
                    self.text.push_str(&text);
                    let f = self.frame(
                        "response.output_text.delta",
                        json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": text,
                            "logprobs": []}),
                    );
                    out.push(f);
                }
                tools::Event::Call { name, .. } => {
                    self.close_item(out);
                    let index = self.items.len();
                    let item = json!({"type": "function_call", "id": response_id("fc_"), "call_id": response_id("call_"),
                        "name": name, "arguments": "", "status": "in_progress"});
                    self.items.push(item.clone());
                    self.open = Some((index, false));
                    let f = self.frame("response.output_item.added", json!({"output_index": index, "item": item}));
                    out.push(f);
                }
                tools::Event::Arguments { text, .. } => {
                    let index = self.open.map_or(0, |o| o.0);
                    let item_id = self.items[index]["id"].clone();
                    self.arguments.push_str(&text);
                    let f = self.frame(
                        "response.function_call_arguments.delta",
                        json!({"item_id": item_id, "output_index": index, "delta": text}),
                    );
                    out.push(f);
                }
            }
        }
    }
}

impl Shape for Events {
    fn open(&mut self) -> Vec<Frame> {
        let created = self.echo.response("in_progress", None, Vec::new(), Value::Null);
        let a = self.frame("response.created", json!({ "response": created }));
        let b = self.frame("response.in_progress", json!({ "response": created }));
        vec![a, b]
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
        _stop: Option<&str>,
        usage_of: &engine::Usage,
    ) -> Vec<Frame> {
        let mut out = Vec::new();
        if index != 0 {
            return out;
        }
        let events = self.reader.end(text);
        self.events(events, &mut out);
        if self.items.is_empty() {
            // An empty answer is still a message.
            self.events(vec![tools::Event::Content(String::new())], &mut out);
        }
        self.close_item(&mut out);
        let (prompt, cached) = self.input;
        let usage = usage(prompt, cached, usage_of.completion_tokens);
        let items = std::mem::take(&mut self.items);
        let completed = self.echo.response("completed", Some(reason), items, usage);
        let kind = if completed["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
        let f = self.frame(kind, json!({ "response": completed }));
        out.push(f);
        out
    }

    fn close(&mut self, _usage: &crate::schema::UsageBody) -> Vec<Frame> {
        Vec::new()
    }

    fn fail(&mut self, e: &ApiError) -> Vec<Frame> {
        let body = e.body();
        let f = self.frame(
            "error",
            json!({"code": body["error"]["code"], "message": body["error"]["message"], "param": body["error"]["param"]}),
        );
        vec![f]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_translate_into_a_chat() {
        let body = json!({
            "model": "m", "instructions": "Be brief.", "max_output_tokens": 40, "stream": true,
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        });
        let chat = to_chat(&body).expect("translates");
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            ])
        );
        assert_eq!(chat["max_tokens"], 40);
        assert_eq!(chat["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(chat["tool_choice"]["function"]["name"], "get_weather");
        assert_eq!(chat["response_format"]["json_schema"]["schema"], json!({"type": "object"}));
        assert_eq!(to_chat(&json!({"model": "m", "input": "Hi"})).expect("ok")["messages"][0]["content"], "Hi");
    }

    #[test]
    fn what_cannot_be_carried_is_a_400_naming_it() {
        for (body, param) in [
            (json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}), "previous_response_id"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
                "input[0].content[0].type",
            ),
            (json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}), "tools[0].type"),
            (json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}), "text.format.type"),
            (json!({"model": "m", "input": "x", "max_output_tokens": 0}), "max_output_tokens"),
        ] {
            let e = to_chat(&body).expect_err("refused");
            assert_eq!(e.body()["error"]["param"], param, "{body}: {e}");
        }
    }

    #[test]
    fn answers_become_output_items() {
        let echo = Echo { id: "resp_1".into(), created_at: 1, model: "m".into(), request: json!({"input": "x"}) };
        let parsed =
            Parsed { content: String::new(), calls: vec![tools::Call { name: "f".into(), arguments: "{}".into() }] };
        let r = response(&echo, parsed, FinishReason::Stop, usage(5, 0, 3));
        assert_eq!(r["status"], "completed");
        assert_eq!(r["output"][0]["type"], "function_call");
        assert_eq!(r["output"][0]["name"], "f");
        let r = response(&echo, Parsed { content: "Hi".into(), calls: vec![] }, FinishReason::Length, usage(5, 0, 3));
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(r["output"][0]["content"][0]["text"], "Hi");
        assert_eq!(r["usage"]["total_tokens"], 8);
    }
}
