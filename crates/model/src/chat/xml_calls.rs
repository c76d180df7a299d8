//! Tool calls written as tags, one parameter per tag (ByteDance Seed-OSS; Qwen3-Coder writes the
//! same inside `<tool_call>`, each value on lines of its own):
//!
//! ```text
//! <seed:tool_call>
//! <function=get_weather>
//! <parameter=city>Paris</parameter>
//! <parameter=days>3</parameter>
//! </function>
//! </seed:tool_call>
//! ```
//!
//! A parameter's value is raw text; it becomes JSON by the type its schema gives (a string
//! stays text; `integer`, `number`, `boolean`, objects and arrays are read as JSON, and
//! text that does not read stays a string), so a call's arguments are the JSON object a
//! client expects. The grammar follows each tool's schema: its parameters in the schema's
//! order, the required ones always, values of the declared type.

use serde_json::{json, Value};

use super::tools::{held_tail, Call, Event, Tool};

/// The tags around one call, and where values stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tags {
    /// Opens a call.
    pub open: &'static str,
    /// Closes it.
    pub close: &'static str,
    /// Values stand on lines of their own (`<parameter=x>\nvalue\n</parameter>`).
    pub lines: bool,
}

/// Seed-OSS: `<seed:tool_call>`, values inline.
pub(super) const SEED: Tags = Tags { open: "<seed:tool_call>", close: "</seed:tool_call>", lines: false };
/// Qwen3-Coder: `<tool_call>`, values on their own lines.
pub(super) const QWEN_CODER: Tags = Tags { open: "<tool_call>", close: "</tool_call>", lines: true };

const FUNCTION: &str = "<function=";
const FUNCTION_END: &str = "</function>";
const PARAMETER: &str = "<parameter=";
const PARAMETER_END: &str = "</parameter>";

/// The schema of `tool`'s parameter `name`, if it declares one.
fn param_schema<'a>(tool: Option<&'a Tool>, name: &str) -> Option<&'a Value> {
    tool?.parameters.get("properties")?.get(name)
}

/// A parameter's raw text as JSON, by its schema's type. The template writes values
/// between the tags; a newline right inside either tag is layout, not value.
fn value(raw: &str, schema: Option<&Value>) -> Value {
    let raw = raw.strip_prefix('\n').unwrap_or(raw);
    let raw = raw.strip_suffix('\n').unwrap_or(raw);
    let ty = schema.and_then(|s| s.get("type")).and_then(Value::as_str);
    match ty {
        Some("string") => Value::String(raw.to_string()),
        _ => match serde_json::from_str::<Value>(raw.trim()) {
            Ok(v) if ty.is_some() || !v.is_string() => v,
            _ => Value::String(raw.to_string()),
        },
    }
}

/// The arguments text a parameter adds: `{"name": value` for the first, `, "name": value` after.
fn piece(first: bool, name: &str, raw: &str, schema: Option<&Value>) -> String {
    let key = Value::String(name.to_string());
    format!("{}{key}: {}", if first { "{" } else { ", " }, value(raw, schema))
}

/// The tool called `name` among `tools`.
fn tool<'a>(tools: &'a [Tool], name: &str) -> Option<&'a Tool> {
    tools.iter().find(|t| t.name == name)
}

/// Reads the calls after the first opening tag; `None` when they do not read as calls.
pub(super) fn parse(text: &str, tools: &[Tool], tags: &Tags) -> Option<(String, Vec<Call>)> {
    let start = text.find(tags.open)?;
    let mut calls = Vec::new();
    let mut rest = &text[start..];
    while let Some(after) = rest.trim_start().strip_prefix(tags.open) {
        let body = after.trim_start().strip_prefix(FUNCTION)?;
        let (name, mut body) = body.split_once('>')?;
        let t = tool(tools, name);
        let mut arguments = String::new();
        loop {
            body = body.trim_start();
            if let Some(after) = body.strip_prefix(FUNCTION_END) {
                body = after;
                break;
            }
            let p = body.strip_prefix(PARAMETER)?;
            let (pname, p) = p.split_once('>')?;
            let (raw, after) = p.split_once(PARAMETER_END)?;
            arguments.push_str(&piece(arguments.is_empty(), pname, raw, param_schema(t, pname)));
            body = after;
        }
        arguments.push_str(if arguments.is_empty() { "{}" } else { "}" });
        calls.push(Call { name: name.to_string(), arguments });
        rest = body.trim_start().strip_prefix(tags.close)?;
    }
    if !rest.trim().is_empty() {
        return None;
    }
    Some((text[..start].trim_end().to_string(), calls))
}

/// The Lark grammar for calls of `callable`: from the first token when `forced`, else free
/// text until the opening tag; one call, or several with `parallel`.
pub(super) fn grammar(callable: &[&Tool], forced: bool, parallel: bool, tags: &Tags) -> String {
    let nl = if tags.lines { "\n" } else { "" };
    let lit = |s: &str| Value::String(s.to_string()).to_string();
    let mut rules = Vec::new();
    let mut functions = Vec::new();
    for (f, t) in callable.iter().enumerate() {
        let mut seq = vec![lit(&format!("{FUNCTION}{}>\n", t.name))];
        let props = t.parameters.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = t
            .parameters
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (p, (name, schema)) in props.into_iter().flatten().enumerate() {
            let rule = format!("f{f}p{p}");
            let open = lit(&format!("{PARAMETER}{name}>{nl}"));
            let end = lit(&format!("{nl}{PARAMETER_END}"));
            rules.push(match value_rule(schema) {
                Some(v) => format!("{rule}: {open} {rule}v {end} \"\\n\"\n{rule}v: {v}"),
                // Free text up to the closing tag.
                None => format!("{rule}: {open} {rule}v \"\\n\"\n{rule}v[lazy]: TEXT {end}"),
            });
            seq.push(if required.contains(&name.as_str()) { rule } else { format!("{rule}?") });
        }
        seq.push(lit(&format!("{FUNCTION_END}\n")));
        rules.push(format!("f{f}: {}", seq.join(" ")));
        functions.push(format!("f{f}"));
    }
    let more = if parallel { " (\"\\n\" call)*" } else { "" };
    let head = if forced {
        "start: call".to_string()
    } else {
        format!("start: TEXT | head \"\\n\" function {}", lit(tags.close))
    };
    format!(
        "%llguidance {{}}\n{head}{more}\n\
         call: {} \"\\n\" function {}\n\
         head[lazy]: TEXT {}\n\
         function: {}\n\
         {}\n\
         TEXT: /(?s:.*)/\n",
        lit(tags.open),
        lit(tags.close),
        lit(tags.open),
        functions.join(" | "),
        rules.join("\n"),
    )
}

/// The grammar of a value of `schema`'s type; `None` for text (strings, and what declares no type).
fn value_rule(schema: &Value) -> Option<String> {
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.is_empty() && options.iter().all(Value::is_string) {
            let alts: Vec<String> =
                options.iter().filter_map(Value::as_str).map(|s| Value::String(s.to_string()).to_string()).collect();
            return Some(format!("({})", alts.join(" | ")));
        }
    }
    let bound = |k: &str| schema.get(k).and_then(Value::as_u64);
    match schema.get("type").and_then(Value::as_str) {
        // A string with length bounds: that many characters, none a `<` (so the value cannot
        // run into the closing tag).
        Some("string") if bound("maxLength").is_some() || bound("minLength").is_some() => {
            let min = bound("minLength").unwrap_or(0);
            let max = bound("maxLength").map_or(String::new(), |m| m.to_string());
            Some(format!("/[^<]{{{min},{max}}}/"))
        }
        Some("integer") => Some(r"/-?(0|[1-9][0-9]*)/".to_string()),
        Some("number") => Some(r"/-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/".to_string()),
        Some("boolean") => Some("(\"true\" | \"false\")".to_string()),
        Some("object") | Some("array") => {
            let mut s = schema.clone();
            if let Some(o) = s.as_object_mut() {
                o.insert(
                    "x-guidance".into(),
                    json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
                );
            }
            Some(format!("%json {s}"))
        }
        _ => None,
    }
}

/// Reads an answer in this format as it arrives (see [`super::tools::Stream`]).
#[derive(Debug)]
pub(super) struct XmlStream {
    tools: Vec<Tool>,
    tags: Tags,
    pending: String,
    /// What was held back since the text stopped passing (shown if no call comes of it).
    hidden: String,
    state: XmlState,
    calls: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum XmlState {
    Text,
    /// At the start of a call, or between calls.
    Between,
    /// Inside `<function=NAME>`: parameters so far.
    Params {
        name: String,
        count: usize,
    },
    /// Past `</function>`, before the closing tag.
    AfterCall,
    Done,
}

impl XmlStream {
    pub(super) fn new(tools: Vec<Tool>, tags: Tags) -> XmlStream {
        XmlStream { tools, tags, pending: String::new(), hidden: String::new(), state: XmlState::Text, calls: 0 }
    }

    pub(super) fn push(&mut self, text: &str) -> Vec<Event> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        while self.advance(&mut out) {}
        out
    }

    pub(super) fn finish(&mut self) -> Vec<Event> {
        let rest = std::mem::take(&mut self.pending);
        let out = match &self.state {
            XmlState::Text => vec![Event::Content(rest)],
            _ if self.calls == 0 => vec![Event::Content(std::mem::take(&mut self.hidden) + &rest)],
            _ => Vec::new(),
        };
        self.state = XmlState::Done;
        out.into_iter().filter(|e| !matches!(e, Event::Content(t) if t.is_empty())).collect()
    }

    /// Moves the first `n` bytes of `pending` out of sight.
    fn hide(&mut self, n: usize) {
        self.hidden.extend(self.pending.drain(..n));
    }

    /// Whether `t` could still become `tag` (a prefix of it, so wait).
    fn may_become(t: &str, tag: &str) -> bool {
        t.len() < tag.len() && tag.starts_with(t)
    }

    fn advance(&mut self, out: &mut Vec<Event>) -> bool {
        match self.state.clone() {
            XmlState::Done => {
                self.pending.clear();
                false
            }
            XmlState::Text => {
                if let Some(i) = self.pending.find(self.tags.open) {
                    let text: String = self.pending.drain(..i).collect();
                    let kept = text.trim_end();
                    if !kept.is_empty() {
                        out.push(Event::Content(kept.to_string()));
                    }
                    self.hidden = text[kept.len()..].to_string();
                    self.state = XmlState::Between;
                    return true;
                }
                let send = self.pending.len() - held_tail(&self.pending, self.tags.open);
                let text: String = self.pending.drain(..send).collect();
                if !text.is_empty() {
                    out.push(Event::Content(text));
                }
                false
            }
            XmlState::Between => {
                let t = self.pending.trim_start();
                if t.is_empty() || Self::may_become(t, self.tags.open) {
                    return false;
                }
                let Some(after) = t.strip_prefix(self.tags.open) else {
                    self.state = XmlState::Done;
                    return true;
                };
                let a = after.trim_start();
                if a.is_empty() || Self::may_become(a, FUNCTION) {
                    return false;
                }
                let Some(header) = a.strip_prefix(FUNCTION) else {
                    self.state = XmlState::Done;
                    return true;
                };
                let Some((name, rest)) = header.split_once('>') else { return false };
                let name = name.to_string();
                self.hide(self.pending.len() - rest.len());
                out.push(Event::Call { index: self.calls, name: name.clone() });
                self.calls += 1;
                self.state = XmlState::Params { name, count: 0 };
                true
            }
            XmlState::Params { name, count } => {
                let index = self.calls - 1;
                let t = self.pending.trim_start();
                if t.is_empty() || Self::may_become(t, FUNCTION_END) || Self::may_become(t, PARAMETER) {
                    return false;
                }
                if let Some(rest) = t.strip_prefix(FUNCTION_END) {
                    self.hide(self.pending.len() - rest.len());
                    let text = if count == 0 { "{}" } else { "}" };
                    out.push(Event::Arguments { index, text: text.to_string() });
                    self.state = XmlState::AfterCall;
                    return true;
                }
                let Some(p) = t.strip_prefix(PARAMETER) else {
                    self.state = XmlState::Done;
                    return true;
                };
                let Some((pname, p)) = p.split_once('>') else { return false };
                let Some((raw, rest)) = p.split_once(PARAMETER_END) else { return false };
                let schema = param_schema(tool(&self.tools, &name), pname);
                let text = piece(count == 0, pname, raw, schema);
                self.hide(self.pending.len() - rest.len());
                out.push(Event::Arguments { index, text });
                self.state = XmlState::Params { name, count: count + 1 };
                true
            }
            XmlState::AfterCall => {
                let t = self.pending.trim_start();
                if t.is_empty() || Self::may_become(t, self.tags.close) {
                    return false;
                }
                match t.strip_prefix(self.tags.close) {
                    Some(rest) => {
                        self.hide(self.pending.len() - rest.len());
                        self.state = XmlState::Between;
                    }
                    None => self.state = XmlState::Done,
                }
                true
            }
        }
    }
}
