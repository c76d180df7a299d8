//! Tool calling: how a model is told about tools, how its calls are constrained, and how they
//! are read back out of its text.
//!
//! A model calls tools in the format it was tuned on, which its chat template shows:
//!
//! - [`Format::Hermes`] (Qwen 2.5, Qwen 3, Hermes): `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`,
//!   one block per call, after any text;
//! - [`Format::Llama3`] (Llama 3.1–3.3): the answer is `{"name": …, "parameters": …}` (calls
//!   separated by `;`), optionally after `<|python_tag|>`;
//! - [`Format::SeedOss`] (ByteDance Seed-OSS): `<seed:tool_call>` around `<function=…>` with one
//!   `<parameter=…>` tag per argument, values as raw text typed by the tool's schema;
//!   [`Format::QwenCoder`] (Qwen3-Coder) the same inside `<tool_call>`, values on their own lines;
//! - [`Format::Generic`], for templates with no tool syntax (SmolLM2, Gemma 3): the tools and
//!   the answer's shape are described in the system message, and the whole answer is one JSON
//!   object, `{"tool_calls": [{"name": …, "arguments": …}]}` or `{"response": "…"}`.
//!
//! [`Plan::grammar`] enforces the format: `required` and a named function from the first token,
//! `auto` lazily — free text until the format's trigger (`<tool_call>`, a leading `{`), then
//! only well-formed calls of the given tools with arguments valid against their schemas. The
//! generic format is one JSON schema throughout. [`Plan::parse`] reads a whole answer;
//! [`Stream`] reads one as it is generated, sending each call's name once and its arguments in
//! pieces.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::pyjson;
use super::reasoning::{Piece, ThinkStream, Thinking};
use super::xml_calls::{self, XmlStream};
use super::Message;
use crate::grammar::Spec;

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// JSON schema of its arguments (an object schema).
    pub parameters: Value,
    /// The definition as the client sent it (`{"type": "function", "function": {…}}`): what the
    /// template's `tools` variable holds.
    pub definition: Value,
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Never: the tools are left out of the prompt and the answer is text.
    None,
    /// The model decides.
    Auto,
    /// At least one call.
    Required,
    /// A call of this function.
    Function(String),
}

/// A model's tool-call syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>` (Qwen, Hermes).
    Hermes,
    /// `{"name": …, "parameters": …}` as the whole answer (Llama 3.x).
    Llama3,
    /// A JSON answer described in the system message (templates without tools).
    Generic,
    /// `<seed:tool_call>\n<function=…>\n<parameter=…>…</parameter>\n</function>\n</seed:tool_call>`
    /// (ByteDance Seed-OSS; see [`super::xml_calls`]).
    SeedOss,
    /// The same tags inside `<tool_call>`, each value on lines of its own (Qwen3-Coder).
    QwenCoder,
}

impl Format {
    /// The format a chat template's source shows.
    pub fn detect(template: &str) -> Format {
        if template.contains(xml_calls::SEED.open) {
            Format::SeedOss
        } else if template.contains("<tool_call>") && template.contains("<function=") {
            Format::QwenCoder
        } else if template.contains("<tool_call>") {
            Format::Hermes
        } else if template.contains("<|start_header_id|>") && template.contains("tools") {
            Format::Llama3
        } else {
            Format::Generic
        }
    }

    /// Its name, for logs and notes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Hermes => "hermes",
            Format::Llama3 => "llama3",
            Format::Generic => "generic",
            Format::SeedOss => "seed_oss",
            Format::QwenCoder => "qwen3_coder",
        }
    }
}

/// A request's tools, choice and the model's format.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// How this model calls tools.
    pub format: Format,
    /// The tools offered.
    pub tools: Vec<Tool>,
    /// What the model must do with them.
    pub choice: Choice,
    /// More than one call per answer.
    pub parallel: bool,
    /// The model's thinking tags, when its reasoning is to be read apart from the answer
    /// (see [`super::reasoning`]); `None` keeps it in the text.
    pub thinking: Option<Thinking>,
}

/// One call read from an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The function called.
    pub name: String,
    /// Its arguments as JSON text, as the model wrote them.
    pub arguments: String,
}

/// An answer split into its text and its calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The text (before the calls, or the generic format's `response`).
    pub content: String,
    /// The calls, in order.
    pub calls: Vec<Call>,
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

impl Plan {
    /// Whether tools take part in this request (some are given and the choice is not `none`).
    pub fn active(&self) -> bool {
        !self.tools.is_empty() && self.choice != Choice::None
    }

    /// Readies a conversation for the template: returns the value of its `tools` variable. The
    /// native formats pass messages and tools through as given; the generic one describes the
    /// tools in the system message and writes earlier calls and results as the JSON it asks for.
    pub fn prepare(&self, messages: &mut Vec<Message>) -> Option<Value> {
        if self.format != Format::Generic {
            return self.active().then(|| Value::Array(self.tools.iter().map(|t| t.definition.clone()).collect()));
        }
        for m in messages.iter_mut() {
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"name": c.name, "arguments": arguments_value(&c.arguments)}))
                    .collect();
                m.content = pyjson::to_string(&json!({ "tool_calls": calls }), &pyjson::Options::default());
                m.tool_calls.clear();
            } else if m.role == "tool" {
                let response = json!({"tool_response": {
                    "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                }});
                m.role = "user".into();
                m.content = pyjson::to_string(&response, &pyjson::Options::default());
                m.tool_call_id = None;
                m.name = None;
            }
        }
        if self.active() {
            let text = self.generic_instructions();
            match messages.first_mut() {
                Some(first) if first.role == "system" => {
                    first.content = format!("{}\n\n{text}", first.content.trim_end());
                }
                _ => messages.insert(0, Message::new("system", text)),
            }
        }
        None
    }

    fn generic_instructions(&self) -> String {
        let mut text = String::from("You can use these tools:\n");
        for t in &self.tools {
            let mut d = serde_json::Map::new();
            d.insert("name".into(), Value::String(t.name.clone()));
            if let Some(desc) = &t.description {
                d.insert("description".into(), Value::String(desc.clone()));
            }
            d.insert("parameters".into(), t.parameters.clone());
            text.push_str(&pyjson::to_string(&Value::Object(d), &pyjson::Options::default()));
            text.push('\n');
        }
        text.push_str("\nAnswer with one JSON object and nothing else. ");
        let call = r#"{"tool_calls": [{"name": "<tool name>", "arguments": {<its arguments>}}]}"#;
        match &self.choice {
            Choice::Auto | Choice::None => text
                .push_str(&format!("To call tools: {call}. To answer directly: {{\"response\": \"<your answer>\"}}.")),
            Choice::Required => text.push_str(&format!("Call at least one tool: {call}.")),
            Choice::Function(name) => text.push_str(&format!("Call the tool `{name}`: {call}.")),
        }
        text
    }

    /// The tools that may be called under the choice.
    fn callable(&self) -> Vec<&Tool> {
        match &self.choice {
            Choice::Function(name) => self.tools.iter().filter(|t| &t.name == name).collect(),
            _ => self.tools.iter().collect(),
        }
    }

    /// A call's JSON schema: `{"name": <const>, <key>: <parameters>}`, in that order.
    fn call_schema(tool: &Tool, key: &str) -> Value {
        let mut props = serde_json::Map::new();
        props.insert("name".into(), json!({ "const": tool.name }));
        props.insert(key.into(), tool.parameters.clone());
        json!({"type": "object", "properties": props, "required": ["name", key], "additionalProperties": false})
    }

    fn calls_schema(&self, key: &str) -> Value {
        let calls: Vec<Value> = self.callable().into_iter().map(|t| Self::call_schema(t, key)).collect();
        if calls.len() == 1 {
            calls.into_iter().next().unwrap_or_default()
        } else {
            json!({ "anyOf": calls })
        }
    }

    /// The grammar the answer must follow, or `None` when tools take no part. With thinking
    /// tags and `auto`, the reasoning comes first and is free: a trigger written inside it does
    /// not start a call.
    pub fn grammar(&self) -> Option<Spec> {
        let spec = self.tools_grammar()?;
        match (&self.thinking, &self.choice, &spec) {
            (Some(t), Choice::Auto, Spec::Lark(lark)) => {
                Some(Spec::Lark(think_first(lark, t).unwrap_or_else(|| lark.clone())))
            }
            _ => Some(spec),
        }
    }

    fn tools_grammar(&self) -> Option<Spec> {
        if !self.active() {
            return None;
        }
        let forced = self.choice != Choice::Auto;
        Some(match self.format {
            Format::Generic => {
                let mut array = json!({"type": "array", "items": self.calls_schema("arguments"), "minItems": 1});
                if !self.parallel {
                    array["maxItems"] = json!(1);
                }
                let calls = json!({"type": "object", "properties": {"tool_calls": array},
                    "required": ["tool_calls"], "additionalProperties": false});
                if forced {
                    Spec::JsonSchema(calls)
                } else {
                    let response = json!({"type": "object", "properties": {"response": {"type": "string"}},
                        "required": ["response"], "additionalProperties": false});
                    Spec::JsonSchema(json!({ "anyOf": [calls, response] }))
                }
            }
            Format::Hermes => {
                let body = inline_json(&self.calls_schema("arguments"));
                let more = if self.parallel { " (\"\\n\" call)*" } else { "" };
                let head = if forced {
                    "start: call".to_string()
                } else {
                    // Free text until `<tool_call>`; from there on, only calls.
                    "start: TEXT | head \"\\n\" body \"\\n</tool_call>\"".to_string()
                };
                Spec::Lark(format!(
                    "%llguidance {{}}\n{head}{more}\n\
                     call: \"<tool_call>\\n\" body \"\\n</tool_call>\"\n\
                     head[lazy]: TEXT \"<tool_call>\"\n\
                     body: {body}\n\
                     TEXT: /(?s:.*)/\n"
                ))
            }
            Format::SeedOss | Format::QwenCoder => {
                Spec::Lark(xml_calls::grammar(&self.callable(), forced, self.parallel, &self.tags()))
            }
            Format::Llama3 => {
                let body = inline_json(&self.calls_schema("parameters"));
                let more = if self.parallel { " (\"; \" call)*" } else { "" };
                let head = if forced {
                    "start: call".to_string()
                } else {
                    // Text that does not open with `{`, or calls.
                    "start: TEXT | call".to_string()
                };
                Spec::Lark(format!("%llguidance {{}}\n{head}{more}\ncall: {body}\nTEXT: /[^{{](?s:.)*/\n"))
            }
        })
    }

    /// Reads a whole answer. An answer whose calls do not parse is all text (as vLLM's
    /// parsers do): a client sees what the model wrote rather than a half-read call.
    pub fn parse(&self, text: &str) -> Parsed {
        if !self.active() {
            return Parsed { content: text.to_string(), calls: Vec::new() };
        }
        let whole = || Parsed { content: text.to_string(), calls: Vec::new() };
        match self.format {
            Format::SeedOss | Format::QwenCoder => match xml_calls::parse(text, &self.tools, &self.tags()) {
                Some((content, calls)) => Parsed { content, calls },
                None => whole(),
            },
            Format::Hermes => {
                let Some(start) = text.find(HERMES_OPEN) else { return whole() };
                let mut calls = Vec::new();
                let mut rest = &text[start..];
                while let Some(after) = rest.trim_start().strip_prefix(HERMES_OPEN) {
                    let (body, next) = after.split_once(HERMES_CLOSE).unwrap_or((after, ""));
                    match read_call(body.trim()) {
                        Some(c) => calls.push(c),
                        None => return whole(),
                    }
                    rest = next;
                }
                if !rest.trim().is_empty() {
                    return whole();
                }
                Parsed { content: text[..start].trim_end().to_string(), calls }
            }
            Format::Llama3 => {
                let body = text.trim_start();
                let body = body.strip_prefix(PYTHON_TAG).unwrap_or(body).trim();
                if !body.starts_with('{') {
                    return whole();
                }
                let mut calls = Vec::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let Some(end) = object_end(rest) else { return whole() };
                    match read_call(&rest[..end]) {
                        Some(c) => calls.push(c),
                        None => return whole(),
                    }
                    rest = rest[end..].trim_start();
                    rest = rest.strip_prefix(';').unwrap_or(rest).trim_start();
                }
                Parsed { content: String::new(), calls }
            }
            Format::Generic => {
                #[derive(Deserialize)]
                struct Answer<'a> {
                    #[serde(borrow, default)]
                    tool_calls: Option<Vec<&'a RawValue>>,
                    #[serde(default)]
                    response: Option<String>,
                }
                let Ok(answer) = serde_json::from_str::<Answer>(text.trim()) else { return whole() };
                match (answer.tool_calls, answer.response) {
                    (Some(raw), _) => {
                        let calls: Option<Vec<Call>> = raw.iter().map(|r| read_call(r.get())).collect();
                        match calls {
                            Some(calls) => Parsed { content: String::new(), calls },
                            None => whole(),
                        }
                    }
                    (None, Some(response)) => Parsed { content: response, calls: Vec::new() },
                    (None, None) => whole(),
                }
            }
        }
    }

    /// Reads a whole answer: its reasoning (empty unless [`Plan::thinking`] is set), then the
    /// rest as [`Plan::parse`] reads it.
    pub fn parse_answer(&self, text: &str) -> (String, Parsed) {
        match &self.thinking {
            Some(t) => {
                let (reasoning, content) = t.split(text);
                (reasoning, self.parse(&content))
            }
            None => (String::new(), self.parse(text)),
        }
    }

    /// The tag format's tags (Seed-OSS's unless the format is Qwen3-Coder's).
    fn tags(&self) -> xml_calls::Tags {
        if self.format == Format::QwenCoder {
            xml_calls::QWEN_CODER
        } else {
            xml_calls::SEED
        }
    }

    /// Whether answers need reading (tools take part, or reasoning is read apart).
    pub fn reads(&self) -> bool {
        self.active() || self.thinking.is_some()
    }

    /// A reader for an answer as it is generated.
    pub fn stream(&self) -> Stream {
        let mut stream = Stream::new(if self.active() { Some(self.format) } else { None });
        stream.think = self.thinking.map(ThinkStream::new);
        if self.active() && matches!(self.format, Format::SeedOss | Format::QwenCoder) {
            stream.xml = Some(XmlStream::new(self.tools.clone(), self.tags()));
        }
        stream
    }
}

/// An `auto` tool grammar (`start: TEXT | head …`, `head[lazy]: TEXT "<trigger>"`) with the
/// reasoning first. The lexer does not backtrack, so the reasoning must be a lexeme no other
/// can begin: when the prompt opened it, the answer starts with `thought` (everything up to the
/// closing tag); else either with the opening tag and `thought`, or with text that does not
/// begin with the opening tag (`TEXT_NT`: `TEXT` and not `<open>…`). `None` when `lark` does not
/// have that shape.
fn think_first(lark: &str, t: &Thinking) -> Option<String> {
    let lit = |s: &str| Value::String(s.to_string()).to_string();
    let mut lines: Vec<String> = Vec::new();
    let mut answer = None;
    let mut head = None;
    for line in lark.lines() {
        if let Some(rest) = line.strip_prefix("start:") {
            answer = Some(rest.to_string());
            lines.push(format!("answer:{rest}"));
        } else {
            if let Some(rest) = line.strip_prefix("head[lazy]: TEXT ") {
                head = Some(rest.to_string());
            }
            lines.push(line.to_string());
        }
    }
    let (answer, head) = (answer?, head?);
    let regex_open: String = t
        .open()
        .chars()
        .map(|c| if "\\.+*?()|[]{}^$#&-~/".contains(c) { format!("\\{c}") } else { c.to_string() })
        .collect();
    let mut out = vec![lines.first()?.clone()];
    if t.inside {
        out.push("start: thought answer".into());
        out.push(format!("thought[lazy]: TEXT {}", lit(t.close())));
    } else {
        let plain: Vec<String> = answer
            .split(' ')
            .map(|w| match w {
                "TEXT" => "TEXT_NT".to_string(),
                "head" => "head_nt".to_string(),
                w => w.to_string(),
            })
            .collect();
        out.push("start: thought answer | answer_nt".into());
        out.push(format!("thought[lazy]: {} TEXT {}", lit(t.open()), lit(t.close())));
        out.push(format!("answer_nt:{}", plain.join(" ")));
        out.push(format!("head_nt[lazy]: TEXT_NT {head}"));
        out.push(format!("TEXT_NT: /(?s:.*)/ & ~/{regex_open}(?s:.*)/"));
    }
    out.extend(lines.into_iter().skip(1));
    Some(out.join("\n") + "\n")
}

/// `%json {…}` of a schema compiled without free whitespace (as [`crate::grammar`] does for
/// `response_format`), written on one line.
fn inline_json(schema: &Value) -> String {
    let mut s = schema.clone();
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "x-guidance".into(),
            json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    format!("%json {s}")
}

/// Arguments text as a JSON value (an object when it is one, else the text as a string).
fn arguments_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// One call object: `name` and `arguments` (or Llama's `parameters`), the arguments kept as
/// written.
fn read_call(text: &str) -> Option<Call> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        name: String,
        #[serde(borrow, default, alias = "parameters")]
        arguments: Option<&'a RawValue>,
    }
    let raw: Raw = serde_json::from_str(text).ok()?;
    let arguments = match raw.arguments {
        None => "{}".to_string(),
        // A model (or client) that wrote the arguments as a JSON string of JSON.
        Some(r) if r.get().starts_with('"') => serde_json::from_str::<String>(r.get()).ok()?,
        Some(r) => r.get().to_string(),
    };
    Some(Call { name: raw.name, arguments })
}

/// The byte just past the JSON object (or array) that `text` opens with, when it is complete.
fn object_end(text: &str) -> Option<usize> {
    let mut scan = Scanner::default();
    for (i, b) in text.bytes().enumerate() {
        if scan.step(b) == Some(0) {
            return Some(i + 1);
        }
    }
    None
}

/// Tracks nesting through JSON text, strings and escapes included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Scanner {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Scanner {
    /// Takes one byte; returns the depth after a closing bracket (so `Some(0)` ends the value).
    fn step(&mut self, b: u8) -> Option<usize> {
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return None;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                return Some(self.depth);
            }
            _ => {}
        }
        None
    }
}

/// What a [`Stream`] found in new text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Text for the answer's `content`.
    Content(String),
    /// A call begins (its name, sent once).
    Call {
        /// Which call of the answer, from 0.
        index: usize,
        /// The function.
        name: String,
    },
    /// Reasoning text (with [`Plan::thinking`]), apart from the answer.
    Reasoning(String),
    /// More of a call's arguments text.
    Arguments {
        /// Which call.
        index: usize,
        /// The new piece.
        text: String,
    },
}

/// Reads an answer piece by piece: text passes as [`Event::Content`] (less any tail that may
/// begin a call), a call's name comes once its header is complete, and its arguments as they
/// arrive. For an answer the grammar shaped, the events put together say what [`Plan::parse`]
/// says of the whole; an answer cut off before its first call's name ends as text.
#[derive(Debug)]
pub struct Stream {
    format: Option<Format>,
    /// Text not yet read.
    pending: String,
    /// Everything read since the text stopped passing through (shown if no call comes of it).
    hidden: String,
    state: State,
    calls: usize,
    /// The generic format's `response` was read (so what was hidden is not text).
    responded: bool,
    /// The reader of the tag format, which does all the reading when set.
    xml: Option<XmlStream>,
    /// With thinking tags: the reader that takes the reasoning out first.
    think: Option<ThinkStream>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Free text (or, for Llama 3 and the generic format, the start of the answer).
    Text,
    /// Before or between calls: looking for the next call object.
    Between,
    /// Inside a call object, before its arguments.
    Header,
    /// Inside a call's arguments.
    Arguments(Scanner),
    /// Past a call's arguments: its closing brace (`brace` once read), Hermes's closing tag.
    AfterCall { brace: bool },
    /// Generic format: inside `"response": "…`.
    Response,
    /// Nothing more is read (the rest is dropped, as trailing text after calls).
    Done,
}

impl Stream {
    fn new(format: Option<Format>) -> Stream {
        Stream {
            format,
            pending: String::new(),
            hidden: String::new(),
            state: State::Text,
            calls: 0,
            responded: false,
            xml: None,
            think: None,
        }
    }

    /// Reads `text`, the answer's next piece.
    pub fn push(&mut self, text: &str) -> Vec<Event> {
        let Some(think) = &mut self.think else { return self.push_answer(text) };
        let pieces = think.push(text);
        self.after_thinking(pieces)
    }

    /// Reasoning as events; answer text through the answer's reader.
    fn after_thinking(&mut self, pieces: Vec<Piece>) -> Vec<Event> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Reasoning(t) => out.push(Event::Reasoning(t)),
                Piece::Content(t) => out.extend(self.push_answer(&t)),
            }
        }
        out
    }

    /// Reads a piece of the answer proper (past any reasoning).
    fn push_answer(&mut self, text: &str) -> Vec<Event> {
        if let Some(xml) = &mut self.xml {
            return xml.push(text);
        }
        self.pending.push_str(text);
        let mut out = Vec::new();
        match self.format {
            None => out.push(Event::Content(std::mem::take(&mut self.pending))),
            Some(format) => while self.advance(format, &mut out) {},
        }
        out.retain(|e| !matches!(e, Event::Content(t) | Event::Arguments { text: t, .. } if t.is_empty()));
        out
    }

    /// The answer ended with `text` (the engine's last piece): what it holds, then whatever
    /// was held back.
    pub fn end(&mut self, text: &str) -> Vec<Event> {
        let mut events = self.push(text);
        events.extend(self.finish());
        events
    }

    /// The answer ended: whatever is held back.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = match self.think.take() {
            Some(mut think) => {
                let pieces = think.finish();
                self.after_thinking(pieces)
            }
            None => Vec::new(),
        };
        out.extend(self.finish_answer());
        out
    }

    fn finish_answer(&mut self) -> Vec<Event> {
        if let Some(xml) = &mut self.xml {
            return xml.finish();
        }
        let rest = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        match self.state {
            State::Text | State::Response => out.push(Event::Content(rest)),
            State::Arguments(_) => out.push(Event::Arguments { index: self.calls.saturating_sub(1), text: rest }),
            _ if self.calls == 0 && !self.responded => {
                out.push(Event::Content(std::mem::take(&mut self.hidden) + &rest))
            }
            _ => {}
        }
        self.state = State::Done;
        out.retain(|e| !matches!(e, Event::Content(t) | Event::Arguments { text: t, .. } if t.is_empty()));
        out
    }

    /// Moves the first `n` bytes of `pending` out of sight.
    fn hide(&mut self, n: usize) {
        self.hidden.extend(self.pending.drain(..n));
    }

    /// One step over `pending`; false when it needs more text.
    fn advance(&mut self, format: Format, out: &mut Vec<Event>) -> bool {
        match self.state {
            State::Done => {
                self.pending.clear();
                false
            }
            State::Text => self.text(format, out),
            State::Between => {
                let t = self.pending.trim_start();
                let t = match format {
                    // Read by its own `XmlStream`; never here.
                    Format::SeedOss | Format::QwenCoder => None,
                    Format::Hermes => {
                        if t.len() < HERMES_OPEN.len() && HERMES_OPEN.starts_with(t) {
                            return false;
                        }
                        t.strip_prefix(HERMES_OPEN)
                    }
                    Format::Llama3 | Format::Generic => {
                        let sep = if format == Format::Llama3 { ';' } else { ',' };
                        let t = t.strip_prefix(sep).map_or(t, str::trim_start);
                        if t.is_empty() {
                            return false;
                        }
                        t.starts_with('{').then_some(t)
                    }
                };
                match t {
                    Some(t) => {
                        self.hide(self.pending.len() - t.len());
                        self.state = State::Header;
                    }
                    None => self.state = State::Done,
                }
                true
            }
            State::Header => {
                let t = self.pending.trim_start();
                let Some((name, rest)) = call_header(t) else {
                    if !t.is_empty() && !t.starts_with('{') {
                        self.state = State::Done;
                        return true;
                    }
                    return false;
                };
                self.hide(self.pending.len() - rest.len());
                out.push(Event::Call { index: self.calls, name });
                self.calls += 1;
                self.state = State::Arguments(Scanner::default());
                true
            }
            State::Arguments(mut scan) => {
                let index = self.calls - 1;
                let end = self.pending.bytes().position(|b| scan.step(b) == Some(0)).map(|i| i + 1);
                let n = end.unwrap_or(self.pending.len());
                out.push(Event::Arguments { index, text: self.pending.drain(..n).collect() });
                self.state = if end.is_some() { State::AfterCall { brace: false } } else { State::Arguments(scan) };
                end.is_some()
            }
            State::AfterCall { brace } => {
                let t = self.pending.trim_start();
                if t.is_empty() {
                    return false;
                }
                let rest = if !brace {
                    match t.strip_prefix('}') {
                        Some(rest) => {
                            self.hide(self.pending.len() - rest.len());
                            self.state = State::AfterCall { brace: true };
                        }
                        None => self.state = State::Done,
                    }
                    return true;
                } else if format == Format::Hermes {
                    if t.len() < HERMES_CLOSE.len() && HERMES_CLOSE.starts_with(t) {
                        return false;
                    }
                    t.strip_prefix(HERMES_CLOSE)
                } else {
                    Some(t)
                };
                match rest {
                    Some(rest) => {
                        self.hide(self.pending.len() - rest.len());
                        self.state = State::Between;
                    }
                    None => self.state = State::Done,
                }
                true
            }
            State::Response => {
                let (upto, closed) = whole_string_prefix(&self.pending);
                let piece: String = self.pending.drain(..upto).collect();
                let decoded = serde_json::from_str::<String>(&format!("\"{piece}\"")).unwrap_or(piece);
                out.push(Event::Content(decoded));
                if closed {
                    self.state = State::Done;
                }
                false
            }
        }
    }

    /// The `Text` state: text passes until the format's trigger.
    fn text(&mut self, format: Format, out: &mut Vec<Event>) -> bool {
        match format {
            // Read by its own `XmlStream`; never here.
            Format::SeedOss | Format::QwenCoder => {
                out.push(Event::Content(std::mem::take(&mut self.pending)));
                false
            }
            Format::Hermes => {
                if let Some(i) = self.pending.find(HERMES_OPEN) {
                    let text: String = self.pending.drain(..i).collect();
                    out.push(Event::Content(text.trim_end().to_string()));
                    self.hidden = text[text.trim_end().len()..].to_string();
                    self.state = State::Between;
                    return true;
                }
                // Hold back a tail that may begin `<tool_call>`, and trailing whitespace (which
                // `parse` trims before a call).
                let send = self.pending.len() - held_tail(&self.pending, HERMES_OPEN);
                out.push(Event::Content(self.pending.drain(..send).collect()));
                false
            }
            Format::Llama3 => {
                let t = self.pending.trim_start();
                if t.is_empty() || (t.len() < PYTHON_TAG.len() && PYTHON_TAG.starts_with(t)) {
                    return false;
                }
                let body = t.strip_prefix(PYTHON_TAG).unwrap_or(t).trim_start();
                if body.is_empty() {
                    return false;
                }
                if body.starts_with('{') {
                    self.hide(self.pending.len() - body.len());
                    self.state = State::Header;
                    return true;
                }
                self.format = None;
                out.push(Event::Content(std::mem::take(&mut self.pending)));
                false
            }
            Format::Generic => {
                let t = self.pending.trim_start();
                let calls = strip_header(t, &["{", "\"tool_calls\"", ":", "["]);
                let response = strip_header(t, &["{", "\"response\"", ":", "\""]);
                if let Some(rest) = calls.or(response) {
                    let next = if calls.is_some() { State::Between } else { State::Response };
                    self.hide(self.pending.len() - rest.len());
                    self.responded = next == State::Response;
                    self.state = next;
                    return true;
                }
                // Neither shape (yet): wait a little, then it is all text.
                if t.len() > 64 || (!t.is_empty() && !t.starts_with('{')) {
                    self.format = None;
                    out.push(Event::Content(std::mem::take(&mut self.pending)));
                }
                false
            }
        }
    }
}

/// How much of the JSON string body at the start of `text` can be decoded now (no escape cut in
/// two, no surrogate pair split), and whether its closing quote is there.
fn whole_string_prefix(text: &str) -> (usize, bool) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return (i, true),
            b'\\' => {
                let need = match b.get(i + 1) {
                    Some(b'u') => 6,
                    Some(_) => 2,
                    None => return (i, false),
                };
                let high = need == 6
                    && b.len() >= i + 4
                    && b[i + 2].eq_ignore_ascii_case(&b'd')
                    && matches!(b[i + 3], b'8'..=b'9' | b'a'..=b'b' | b'A'..=b'B');
                let need = if high { 12 } else { need };
                if i + need > b.len() {
                    return (i, false);
                }
                i += need;
            }
            _ => i += 1,
        }
    }
    (b.len(), false)
}

/// How many bytes at the end of `text` to hold back because they may begin `marker` (or are
/// whitespace that would be trimmed before it).
pub(super) fn held_tail(text: &str, marker: &str) -> usize {
    let keep = super::reasoning::partial_tail(text, marker);
    let body = &text[..text.len() - keep];
    keep + (body.len() - body.trim_end().len())
}

/// `text` past the tokens `parts`, each after optional whitespace; `None` until all are there
/// (or when they differ).
fn strip_header<'a>(text: &'a str, parts: &[&str]) -> Option<&'a str> {
    let mut rest = text;
    for p in parts {
        rest = rest.trim_start();
        rest = rest.strip_prefix(p)?;
    }
    Some(rest)
}

/// A call object's opening `{"name": "<name>", "arguments": ` (or `"parameters"`): the name and
/// the text after the colon; `None` until it is all there.
fn call_header(text: &str) -> Option<(String, &str)> {
    let rest = strip_header(text, &["{", "\"name\"", ":"])?.trim_start();
    if !rest.starts_with('"') {
        return None;
    }
    let mut scan = Scanner::default();
    let mut end = None;
    for (i, b) in rest.bytes().enumerate() {
        scan.step(b);
        if i > 0 && !scan.in_string {
            end = Some(i + 1);
            break;
        }
    }
    let end = end?;
    let name: String = serde_json::from_str(&rest[..end]).ok()?;
    let after = rest[end..].trim_start().strip_prefix(',')?.trim_start();
    let after = after.strip_prefix("\"arguments\"").or_else(|| after.strip_prefix("\"parameters\""))?;
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    if after.is_empty() {
        return None;
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Tool {
        let parameters = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        Tool {
            name: "get_weather".into(),
            description: Some("Weather now".into()),
            parameters: parameters.clone(),
            definition: json!({"type": "function", "function": {"name": "get_weather", "parameters": parameters}}),
        }
    }

    fn forecast() -> Tool {
        let parameters = json!({"type": "object", "properties": {
            "days": {"type": "integer"}, "hourly": {"type": "boolean"}, "place": {"type": "object"},
            "note": {"type": "string"}}});
        Tool {
            name: "forecast".into(),
            description: None,
            parameters: parameters.clone(),
            definition: json!({"type": "function", "function": {"name": "forecast", "parameters": parameters}}),
        }
    }

    fn plan(format: Format, choice: Choice) -> Plan {
        Plan { format, tools: vec![weather(), forecast()], choice, parallel: true, thinking: None }
    }

    fn call(name: &str, arguments: &str) -> Call {
        Call { name: name.into(), arguments: arguments.into() }
    }

    /// Every answer of every format, with what `parse` reads from it.
    fn answers() -> Vec<(Format, &'static str, Parsed)> {
        let paris = r#"{"city": "Paris"}"#;
        let odd = r#"{"city": "Pa\"ris}{ é 😀"}"#;
        vec![
            (Format::Hermes, "Just text, no <tool_ call.", Parsed { content: "Just text, no <tool_ call.".into(), calls: vec![] }),
            (
                Format::Hermes,
                "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
                Parsed { content: "Let me look.".into(), calls: vec![call("get_weather", paris)] },
            ),
            (
                Format::Hermes,
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa\\\"ris}{ é 😀\"}}\n</tool_call>",
                Parsed { content: String::new(), calls: vec![call("get_weather", paris), call("get_weather", odd)] },
            ),
            (
                Format::Llama3,
                "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Pa\\\"ris}{ é 😀\"}}",
                Parsed { content: String::new(), calls: vec![call("get_weather", paris), call("get_weather", odd)] },
            ),
            (Format::Llama3, "It is sunny.", Parsed { content: "It is sunny.".into(), calls: vec![] }),
            (
                Format::Generic,
                "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa\\\"ris}{ é 😀\"}}]}",
                Parsed { content: String::new(), calls: vec![call("get_weather", paris), call("get_weather", odd)] },
            ),
            (Format::SeedOss, "It is sunny < 30 C.", Parsed { content: "It is sunny < 30 C.".into(), calls: vec![] }),
            (
                Format::SeedOss,
                "<seed:think>Weather, then.</seed:think>\n<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n</function>\n</seed:tool_call>",
                Parsed { content: "<seed:think>Weather, then.</seed:think>".into(), calls: vec![call("get_weather", paris)] },
            ),
            (
                // Values typed by the schema: numbers, booleans and objects as JSON, text as text
                // (quotes, braces, `<`, new lines and all); no parameters is `{}`.
                Format::SeedOss,
                "<seed:tool_call>\n<function=forecast>\n<parameter=days>3</parameter>\n<parameter=hourly>true</parameter>\n<parameter=place>{\"lat\": 1.5}</parameter>\n<parameter=note>a \"<b>\"}{\nline é 😀</parameter>\n</function>\n</seed:tool_call>\n<seed:tool_call>\n<function=forecast>\n</function>\n</seed:tool_call>",
                Parsed {
                    content: String::new(),
                    calls: vec![
                        call("forecast", r#"{"days": 3, "hourly": true, "place": {"lat":1.5}, "note": "a \"<b>\"}{\nline é 😀"}"#),
                        call("forecast", "{}"),
                    ],
                },
            ),
            (
                Format::QwenCoder,
                "I will look.\n<tool_call>\n<function=forecast>\n<parameter=days>\n3\n</parameter>\n<parameter=note>\ntwo\nlines\n</parameter>\n</function>\n</tool_call>",
                Parsed {
                    content: "I will look.".into(),
                    calls: vec![call("forecast", r#"{"days": 3, "note": "two\nlines"}"#)],
                },
            ),
            (
                Format::Generic,
                "{\"response\": \"Sunny \\\"and\\\" warm \\u00e9\\ud83d\\ude00 \\n done\"}",
                Parsed { content: "Sunny \"and\" warm é😀 \n done".into(), calls: vec![] },
            ),
        ]
    }

    /// What a stream's events say, put together.
    fn assemble(events: Vec<Event>) -> Parsed {
        let mut p = Parsed::default();
        for e in events {
            match e {
                Event::Content(t) => p.content.push_str(&t),
                Event::Call { index, name } => {
                    assert_eq!(index, p.calls.len(), "calls come in order, each once");
                    p.calls.push(call(&name, ""));
                }
                Event::Arguments { index, text } => p.calls[index].arguments.push_str(&text),
                Event::Reasoning(_) => panic!("no reasoning without thinking tags"),
            }
        }
        p
    }

    #[test]
    fn reasoning_is_read_before_the_calls() {
        let template = "{{ '<seed:tool_call>' }} {{ '<seed:think>' }} {{ '</seed:think>' }}";
        let mut p = plan(Format::SeedOss, Choice::Auto);
        p.thinking = Thinking::for_prompt(template, "<seed:bos>assistant\n");
        let text = "<seed:think>Paris, so get_weather.</seed:think>\n<seed:tool_call>\n<function=get_weather>\n\
                    <parameter=city>Paris</parameter>\n</function>\n</seed:tool_call>";
        let (reasoning, parsed) = p.parse_answer(text);
        assert_eq!(reasoning, "Paris, so get_weather.");
        assert_eq!(parsed, Parsed { content: String::new(), calls: vec![call("get_weather", r#"{"city": "Paris"}"#)] });
        for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let mut s = p.stream();
            let mut events = s.push(&text[..cut]);
            events.extend(s.push(&text[cut..]));
            events.extend(s.finish());
            let thought: String = events
                .iter()
                .filter_map(|e| if let Event::Reasoning(t) = e { Some(t.as_str()) } else { None })
                .collect();
            assert_eq!(thought, reasoning, "cut at {cut}");
            events.retain(|e| !matches!(e, Event::Reasoning(_)));
            assert_eq!(assemble(events), parsed, "cut at {cut}");
        }
    }

    #[test]
    fn whole_answers_parse_in_every_format() {
        for (format, text, want) in answers() {
            assert_eq!(plan(format, Choice::Auto).parse(text), want, "{format:?}: {text}");
        }
    }

    #[test]
    fn streams_cut_at_every_byte_say_what_the_whole_says() {
        for (format, text, want) in answers() {
            let p = plan(format, Choice::Auto);
            // One piece, two pieces cut at every character boundary, and one character at a time.
            for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                let mut s = p.stream();
                let mut events = s.push(&text[..cut]);
                events.extend(s.push(&text[cut..]));
                events.extend(s.finish());
                assert_eq!(assemble(events), want, "{format:?} cut at {cut}: {text}");
            }
            let mut s = p.stream();
            let mut events = Vec::new();
            for c in text.chars() {
                events.extend(s.push(&c.to_string()));
            }
            events.extend(s.finish());
            let got = assemble(events.clone());
            assert_eq!(got, want, "{format:?} by characters: {text}");
            // Arguments come in pieces, each call's name once.
            let names = events.iter().filter(|e| matches!(e, Event::Call { .. })).count();
            assert_eq!(names, want.calls.len());
            if want.calls.iter().any(|c| c.arguments != "{}") {
                assert!(events.iter().filter(|e| matches!(e, Event::Arguments { .. })).count() > want.calls.len());
            }
        }
    }

    #[test]
    fn calls_that_do_not_parse_are_text() {
        let p = plan(Format::Hermes, Choice::Auto);
        let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \n</tool_call>";
        assert_eq!(p.parse(text), Parsed { content: text.into(), calls: vec![] });
        // Cut before the name: a stream shows it as text too.
        let mut s = p.stream();
        let mut events = s.push("Hm. <tool_call>\n{\"na");
        events.extend(s.finish());
        assert_eq!(assemble(events).content, "Hm. <tool_call>\n{\"na");
        let g = plan(Format::Generic, Choice::Auto);
        assert_eq!(g.parse("{\"other\": 1}").content, "{\"other\": 1}");
        assert_eq!(g.parse("plain").content, "plain");
    }

    #[test]
    fn inactive_plans_pass_text_through() {
        let p = plan(Format::Hermes, Choice::None);
        let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>";
        assert_eq!(p.parse(text).content, text);
        assert!(p.grammar().is_none());
        let mut s = p.stream();
        assert_eq!(assemble(s.push(text)).content, text);
    }

    #[test]
    fn formats_are_told_apart_by_their_templates() {
        assert_eq!(Format::detect("{% if tools %}<tool_call>{% endif %}"), Format::Hermes);
        assert_eq!(Format::detect("<|start_header_id|>{% if tools %}{% endif %}"), Format::Llama3);
        assert_eq!(Format::detect("<|im_start|>{{ m.content }}"), Format::Generic);
        assert_eq!(Format::detect("{{ '<seed:tool_call>' }}"), Format::SeedOss);
        assert_eq!(Format::detect("<tool_call>\n<function=example_function_name>"), Format::QwenCoder);
    }

    #[test]
    fn the_generic_format_describes_the_tools_and_rewrites_history() {
        let p = plan(Format::Generic, Choice::Required);
        let mut messages = vec![
            Message::new("user", "Weather in Paris?"),
            Message {
                role: "assistant".into(),
                tool_calls: vec![super::super::ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                }],
                ..Message::default()
            },
            Message {
                role: "tool".into(),
                content: "18 C".into(),
                tool_call_id: Some("call_1".into()),
                ..Message::default()
            },
        ];
        assert_eq!(p.prepare(&mut messages), None);
        assert_eq!(messages[0].role, "system");
        assert!(
            messages[0]
                .content
                .contains(r#"{"name": "get_weather", "description": "Weather now", "parameters": {"type": "object""#),
            "{}",
            messages[0].content
        );
        assert!(messages[0].content.contains("Call at least one tool"));
        assert_eq!(messages[2].content, r#"{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}"#);
        assert!(messages[2].tool_calls.is_empty());
        assert_eq!(messages[3].role, "user");
        assert_eq!(messages[3].content, r#"{"tool_response": {"tool_call_id": "call_1", "content": "18 C"}}"#);
        // A native format leaves the conversation as it is and hands the definitions to the template.
        let h = plan(Format::Hermes, Choice::Auto);
        let mut same = vec![Message::new("user", "Hi")];
        let tools = h.prepare(&mut same).expect("tools");
        assert_eq!(tools[0]["function"]["name"], "get_weather");
        assert_eq!(same, vec![Message::new("user", "Hi")]);
    }

    #[test]
    fn grammars_follow_the_choice() {
        let Some(Spec::Lark(auto)) = plan(Format::Hermes, Choice::Auto).grammar() else { panic!("lark") };
        assert!(auto.contains("start: TEXT | head"), "{auto}");
        let Some(Spec::Lark(req)) = plan(Format::Hermes, Choice::Required).grammar() else { panic!("lark") };
        assert!(req.starts_with("%llguidance {}\nstart: call (\"\\n\" call)*"), "{req}");
        let Some(Spec::JsonSchema(g)) = plan(Format::Generic, Choice::Function("get_weather".into())).grammar() else {
            panic!("schema")
        };
        assert_eq!(g["properties"]["tool_calls"]["items"]["properties"]["name"]["const"], "get_weather");
        let Some(Spec::JsonSchema(g)) = plan(Format::Generic, Choice::Auto).grammar() else { panic!("schema") };
        assert_eq!(g["anyOf"].as_array().map(Vec::len), Some(2));
    }
}
