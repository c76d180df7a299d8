//! Chat templates: turning a conversation into the prompt text a model was tuned on.
//!
//! The template is the Jinja source in the GGUF's `tokenizer.chat_template`,
//! rendered with `minijinja` as Hugging Face's `apply_chat_template` renders it with
//! jinja2: `trim_blocks` and `lstrip_blocks`, Python-style string methods (`.strip()`,
//! `.startswith()` …), `tojson` as `json.dumps` ([`pyjson`]), `raise_exception` and
//! `strftime_now`. A template comes from a stranger's file, so
//! rendering is sandboxed: no file or network access exists in minijinja at all,
//! a fuel budget bounds the work (a template looping ten billion times fails in
//! milliseconds), a memory budget bounds what its strings and lists may grow to
//! (checked before allocating, see [`budget`]), and the output is capped in size.

mod budget;
pub mod pyjson;
pub mod reasoning;
pub mod tools;
mod xml_calls;

use minijinja::machinery::{make_string_output, Vm};
use minijinja::value::Kwargs;
use minijinja::{Environment, ErrorKind, Value};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// One message of a conversation, as a template sees it (Hugging Face's message dicts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The message text. An assistant turn that only calls tools has none: templates see
    /// `content` as `none` then, as with OpenAI's `"content": null`.
    pub content: String,
    /// The tools an assistant turn called.
    pub tool_calls: Vec<ToolCall>,
    /// A `tool` turn: the call it answers.
    pub tool_call_id: Option<String>,
    /// A `tool` turn: the tool's name, when given.
    pub name: Option<String>,
}

/// One call of a tool by the assistant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id (`call_…`), which the tool's answer refers to.
    pub id: String,
    /// The function called.
    pub name: String,
    /// Its arguments: JSON text, as OpenAI's API carries them.
    pub arguments: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message { role: role.into(), content: content.into(), ..Message::default() }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("role", &self.role)?;
        if self.content.is_empty() && !self.tool_calls.is_empty() {
            m.serialize_entry("content", &None::<String>)?;
        } else {
            m.serialize_entry("content", &self.content)?;
        }
        if !self.tool_calls.is_empty() {
            m.serialize_entry("tool_calls", &self.tool_calls)?;
        }
        if let Some(id) = &self.tool_call_id {
            m.serialize_entry("tool_call_id", id)?;
        }
        if let Some(name) = &self.name {
            m.serialize_entry("name", name)?;
        }
        m.end()
    }
}

impl Serialize for ToolCall {
    /// `{"id", "type": "function", "function": {"name", "arguments"}}` with the arguments as an
    /// object when they are one (Hugging Face's templates index into them; vLLM and llama.cpp
    /// pass them so too), else as the text given.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let arguments = match serde_json::from_str::<serde_json::Value>(&self.arguments) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => serde_json::Value::String(self.arguments.clone()),
        };
        let function = serde_json::json!({"name": self.name, "arguments": arguments});
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("type", "function")?;
        m.serialize_entry("function", &function)?;
        m.end()
    }
}

/// Why a template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    /// The template does not parse.
    #[error("chat template does not parse: {0}")]
    Syntax(String),
    /// Rendering failed (including `raise_exception` in the template).
    #[error("chat template failed to render: {0}")]
    Render(String),
    /// Rendering ran out of its instruction budget.
    #[error("chat template exceeded its budget of {0} instructions")]
    OutOfFuel(u64),
    /// The rendered text grew past the size cap.
    #[error("chat template output exceeded {0} bytes")]
    OutputTooLarge(usize),
    /// The strings and lists the template built would pass its memory budget.
    #[error("chat template exceeded its memory budget of {0} bytes: {1}")]
    OutOfMemory(usize, String),
}

/// Default instruction budget for one render.
pub const DEFAULT_FUEL: u64 = 5_000_000;
/// Default cap on the rendered prompt's size.
pub const DEFAULT_MAX_OUTPUT: usize = 8 << 20;
/// Default memory budget for one render: the bytes of strings and list slots the
/// template's operations, filters and output may produce in total.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// Gemma's turn format (`<start_of_turn>user … <end_of_turn>`, the assistant as `model`, a
/// system message folded into the first user turn), for Gemma files that carry no template of
/// their own, such as the base Gemma 3 270M.
pub const GEMMA_TEMPLATE: &str = "{{ bos_token }}\
{%- if messages[0]['role'] == 'system' -%}\
{%- set first = messages[0]['content'] + '\n\n' -%}{%- set turns = messages[1:] -%}\
{%- else -%}{%- set first = '' -%}{%- set turns = messages -%}{%- endif -%}\
{%- for message in turns -%}\
{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}\
{{ '<start_of_turn>' + role + '\n' }}{%- if loop.first -%}{{ first }}{%- endif -%}\
{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// The source of a built-in chat format by name (`gemma`), or `None`.
pub fn builtin_template(name: &str) -> Option<&'static str> {
    match name {
        "gemma" => Some(GEMMA_TEMPLATE),
        _ => None,
    }
}

/// A compiled chat template with the special-token texts it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    max_output: usize,
    fuel: u64,
    memory: usize,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("bos_token", &self.bos_token).field("eos_token", &self.eos_token).finish()
    }
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` are the texts the template sees
    /// under those names.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatTemplateError> {
        Self::with_limits(source, bos_token, eos_token, DEFAULT_FUEL, DEFAULT_MAX_OUTPUT)
    }

    /// [`ChatTemplate::new`] with an explicit fuel budget and output cap.
    pub fn with_limits(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        fuel: u64,
        max_output: usize,
    ) -> Result<Self, ChatTemplateError> {
        let source = &*join_continued_strings(source);
        let mut env = Environment::new();
        // As Hugging Face's environment: block tags take their line break and indentation along.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(fuel));
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_test("iterable", is_iterable);
        env.add_filter("string", python_string);
        budget::install(&mut env);
        // Compiled once here for its syntax errors; each render compiles the
        // checked bytecode from the source (see `render`).
        env.add_template_owned(NAME, source.to_string()).map_err(|e| ChatTemplateError::Syntax(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            max_output,
            fuel,
            memory: DEFAULT_MEMORY_BUDGET,
        })
    }

    /// The same template with a memory budget of `bytes` per render instead of
    /// [`DEFAULT_MEMORY_BUDGET`].
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory = bytes;
        self
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the
    /// assistant's answer should begin.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ChatTemplateError> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// [`ChatTemplate::render`] with the template's `tools` variable set to `tools` (a list of
    /// tool definitions as the client sent them, `{"type": "function", "function": {…}}`), as
    /// Hugging Face's `apply_chat_template(messages, tools=…)` sets it; `none` without.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        self.render_with(messages, tools, add_generation_prompt, &serde_json::Map::new())
    }

    /// [`ChatTemplate::render_with_tools`] with further template variables, as the keyword
    /// arguments of `apply_chat_template(…, **kwargs)` (`chat_template_kwargs` in vLLM's and
    /// llama.cpp's APIs: `enable_thinking` for Qwen 3, `thinking_budget` for Seed-OSS). They
    /// cannot replace [`RESERVED_VARIABLES`]; a name among them is an error.
    pub fn render_with(
        &self,
        messages: &[Message],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, ChatTemplateError> {
        if let Some(name) = extra.keys().find(|k| RESERVED_VARIABLES.contains(&k.as_str())) {
            return Err(ChatTemplateError::Render(format!(
                "`{name}` is set by the chat itself, not by an extra variable"
            )));
        }
        let compiled = budget::compile(NAME, &self.source).map_err(|e| ChatTemplateError::Syntax(describe(&e)))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(messages),
            tools => tools.map(Value::from_serialize),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            ..Value::from_serialize(extra)
        };
        let budget = budget::Budget::start(self.memory);
        let mut text = String::new();
        // The template engine has panicked on hostile templates before (fuzz finding 3 in
        // docs/FUZZING.md); a template is a stranger's input, so a panic inside it is a
        // render error, never a dropped connection or a dead engine thread.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out = make_string_output(&mut text);
            Vm::new(&self.env)
                .eval(&compiled.instructions, ctx, &compiled.blocks, &mut out, compiled.initial_auto_escape)
                .map(|_| ())
        }));
        let Ok(result) = result else {
            return Err(ChatTemplateError::Render("the template engine failed on this template".into()));
        };
        match result {
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(ChatTemplateError::OutOfFuel(self.fuel)),
            Err(e) if budget.exceeded() => Err(ChatTemplateError::OutOfMemory(self.memory, describe(&e))),
            Err(e) => Err(ChatTemplateError::Render(describe(&e))),
            Ok(()) if text.len() > self.max_output => Err(ChatTemplateError::OutputTooLarge(self.max_output)),
            Ok(()) => Ok(text),
        }
    }
}

/// The template variables the chat sets, which extra variables may not replace.
pub const RESERVED_VARIABLES: &[&str] = &["messages", "tools", "add_generation_prompt", "bos_token", "eos_token"];

/// An error with its position and the chain of causes, on one line.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `tojson` as Hugging Face's: `json.dumps(x, ensure_ascii=False, indent=…, separators=…,
/// sort_keys=…)` ([`pyjson`]), never HTML-escaped.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let indent: Option<usize> = kwargs.get::<Option<usize>>("indent")?;
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let separators = match kwargs.get::<Option<Vec<String>>>("separators")? {
        None => None,
        Some(pair) if pair.len() == 2 => Some((pair[0].clone(), pair[1].clone())),
        Some(_) => return Err(minijinja::Error::new(ErrorKind::InvalidOperation, "tojson: separators must be a pair")),
    };
    kwargs.assert_all_used()?;
    let mut text = pyjson::to_string(&json, &pyjson::Options { indent, separators, sort_keys });
    if ensure_ascii {
        text = pyjson::ascii_escaped(&text);
    }
    Ok(Value::from_safe_string(text))
}

/// `x | string` as Python's `str(x)`: strings as they are, `None`, `True`, and lists and dicts
/// as their `repr` (templates concatenate tool definitions and arguments this way).
fn python_string(value: Value) -> Result<Value, minijinja::Error> {
    use minijinja::value::ValueKind as K;
    match value.kind() {
        K::String => Ok(value),
        K::Undefined => Ok(Value::from("")),
        K::None | K::Bool | K::Number | K::Seq | K::Map => {
            let json = serde_json::to_value(&value)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("string: {e}")))?;
            Ok(Value::from(pyjson::python_str(&json)))
        }
        _ => Ok(Value::from(value.to_string())),
    }
}

/// `x is iterable` as Python answers it: strings, lists and dicts are; `None`, numbers and
/// booleans are not (templates test `tools is iterable` before taking its length).
fn is_iterable(value: Value) -> bool {
    use minijinja::value::ValueKind as K;
    matches!(value.kind(), K::String | K::Bytes | K::Seq | K::Map | K::Iterable)
}

/// `source` with every backslash-newline inside a string literal of a tag removed: Python's
/// jinja2 reads `"a\<newline>b"` as `"ab"` (a line continuation), minijinja would keep both.
fn join_continued_strings(source: &str) -> std::borrow::Cow<'_, str> {
    if !source.contains("\\\n") {
        return std::borrow::Cow::Borrowed(source);
    }
    let b = source.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let (mut in_tag, mut quote) = (false, None::<u8>);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match (in_tag, quote) {
            (false, _) => {
                if c == b'{' && matches!(b.get(i + 1), Some(b'{' | b'%')) {
                    in_tag = true;
                }
            }
            (true, None) => match c {
                b'"' | b'\'' => quote = Some(c),
                b'}' | b'%' if b.get(i + 1) == Some(&b'}') => in_tag = false,
                _ => {}
            },
            (true, Some(q)) => {
                if c == b'\\' && b.get(i + 1) == Some(&b'\n') {
                    i += 2;
                    continue;
                }
                if c == b'\\' {
                    out.extend_from_slice(&b[i..(i + 2).min(b.len())]);
                    i += 2;
                    continue;
                }
                if c == q {
                    quote = None;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    // Only whole ASCII pairs were removed, so the bytes are still UTF-8.
    std::borrow::Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| source.to_string()))
}

/// `raise_exception(msg)`, as HF templates use it to reject conversations.
fn raise_exception(msg: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// `strftime_now(fmt)`: the time now (UTC), for the directives templates use: `%Y %y %m %d
/// %-d %B %b %A %a %H %M %S %%`.
fn strftime_now(fmt: String) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    strftime(&fmt, secs)
}

/// `fmt` with its directives filled in for `secs` seconds after 1970-01-01 (UTC); an unknown
/// directive is left as it is.
fn strftime(fmt: &str, secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let month = MONTHS[(m - 1) as usize];
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[((days + 3).rem_euclid(7)) as usize];
    let (hour, minute, second) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut directive = chars.next();
        let unpadded = directive == Some('-');
        if unpadded {
            directive = chars.next();
        }
        match directive {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') if unpadded => out.push_str(&m.to_string()),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') if unpadded => out.push_str(&d.to_string()),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3]),
            Some('A') => out.push_str(weekday),
            Some('a') => out.push_str(&weekday[..3]),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_renders_with_default_system_and_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
        let out = t.render(&[Message::new("user", "Hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t.render(&[Message::new("system", "S"), Message::new("user", "U")], false).unwrap();
        assert_eq!(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
    }

    #[test]
    fn python_string_methods_and_special_tokens_work() {
        let src = "{{ bos_token }}{% for m in messages %}{{ m.content.strip().upper() }}{% if m.role.startswith('us') %}!{% endif %}{% endfor %}{{ eos_token }}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        assert_eq!(t.render(&[Message::new("user", "  hi ")], false).unwrap(), "<s>HI!</s>");
    }

    #[test]
    fn extra_variables_reach_the_template_but_cannot_replace_the_chats_own() {
        let src = "{% if enable_thinking is defined and not enable_thinking %}/no_think {% endif %}\
                   {{ thinking_budget | default(-1) }} {{ messages | length }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let msgs = [Message::new("user", "hi")];
        assert_eq!(t.render(&msgs, true).unwrap(), "-1 1");
        let extra: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"enable_thinking": false, "thinking_budget": 512}"#).unwrap();
        assert_eq!(t.render_with(&msgs, None, true, &extra).unwrap(), "/no_think 512 1");
        let extra: serde_json::Map<String, serde_json::Value> = serde_json::from_str(r#"{"messages": []}"#).unwrap();
        let err = t.render_with(&msgs, None, true, &extra).unwrap_err().to_string();
        assert!(err.contains("`messages` is set by the chat itself"), "{err}");
    }

    #[test]
    fn raise_exception_becomes_a_render_error_with_its_message() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "").unwrap();
        let err = t.render(&[], false).unwrap_err();
        assert!(matches!(&err, ChatTemplateError::Render(m) if m.contains("roles must alternate")), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported_at_load() {
        let err = ChatTemplate::new("{% for x in %}", "", "").unwrap_err();
        assert!(matches!(err, ChatTemplateError::Syntax(_)), "{err}");
    }

    #[test]
    fn endless_loops_run_out_of_fuel_quickly() {
        let src = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert!(matches!(t.render(&[], false), Err(ChatTemplateError::OutOfFuel(_))));
    }

    #[test]
    fn huge_output_is_capped() {
        let src = "{% for a in range(1000) %}{{ 'x' * 100000 }}{% endfor %}";
        let t = ChatTemplate::with_limits(src, "", "", DEFAULT_FUEL, 1 << 20).unwrap();
        assert!(matches!(t.render(&[], false), Err(ChatTemplateError::OutputTooLarge(_))));
    }

    #[test]
    fn unbounded_recursion_fails_cleanly() {
        let src = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert!(t.render(&[], false).is_err());
    }

    #[test]
    fn tools_and_calls_reach_the_template_as_hugging_face_passes_them() {
        let src = "{{ tools is none }};{% for t in tools or [] %}{{ t | tojson }}|{{ t.function | tojson(indent=2) }}{% endfor %}\
            {% for m in messages %}[{{ m.role }} {{ m.content is none }}\
            {% for c in m.tool_calls or [] %} {{ c.id }} {{ c.type }} {{ c.function.name }} {{ c.function.arguments.city }} {{ c.function.arguments | tojson }}{% endfor %}\
            {{ m.tool_call_id or '' }}]{% endfor %}";
        let t = ChatTemplate::new(src, "", "").expect("compiles");
        assert_eq!(t.render(&[Message::new("user", "hi")], false).expect("render"), "True;[user False]");
        let tools: serde_json::Value = serde_json::from_str(
            r#"[{"type": "function", "function": {"name": "w", "parameters": {"z": 1, "a": 2.0}}}]"#,
        )
        .expect("json");
        let call = ToolCall { id: "call_1".into(), name: "w".into(), arguments: r#"{"city":"Paris"}"#.into() };
        let messages = [
            Message { role: "assistant".into(), tool_calls: vec![call], ..Message::default() },
            Message {
                role: "tool".into(),
                content: "18".into(),
                tool_call_id: Some("call_1".into()),
                ..Message::default()
            },
        ];
        let out = t.render_with_tools(&messages, Some(&tools), false).expect("render");
        assert_eq!(
            out,
            "False;{\"type\": \"function\", \"function\": {\"name\": \"w\", \"parameters\": {\"z\": 1, \"a\": 2.0}}}|\
             {\n  \"name\": \"w\",\n  \"parameters\": {\n    \"z\": 1,\n    \"a\": 2.0\n  }\n}\
             [assistant True call_1 function w Paris {\"city\": \"Paris\"}][tool Falsecall_1]"
        );
    }

    #[test]
    fn templates_render_as_hugging_faces_jinja2_does() {
        let render = |src: &str, messages: &[Message]| {
            ChatTemplate::new(src, "", "").expect("compiles").render(messages, false).map_err(|e| e.to_string())
        };
        let hi = [Message::new("user", "hi")];
        // trim_blocks and lstrip_blocks: a block tag's line break and indentation go.
        assert_eq!(
            render("{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}", &hi)
                .unwrap(),
            "[hi]\n"
        );
        // None, booleans, lists and dicts print as Python prints them.
        let call = Message {
            role: "assistant".into(),
            tool_calls: vec![ToolCall { id: "c".into(), name: "f".into(), arguments: r#"{"a": [1, "x"]}"#.into() }],
            ..Message::default()
        };
        assert_eq!(
            render("{{ messages[0].content }}|{{ messages[0].tool_calls[0].function.arguments }}|{{ messages[0].tool_calls[0].function.arguments | string }}|{{ [true, none] }}", &[call]).unwrap(),
            "None|{'a': [1, 'x']}|{'a': [1, 'x']}|[True, None]"
        );
        // `is iterable` and `for` as Python has them: None is not iterable.
        assert_eq!(
            render("{{ none is iterable }}{{ 'ab' is iterable }}{{ [] is iterable }}", &hi).unwrap(),
            "FalseTrueTrue"
        );
        let err = render("{% for x in none %}{% endfor %}", &hi).unwrap_err();
        assert!(err.contains("'NoneType' object is not iterable"), "{err}");
        assert_eq!(render("{% for x in nothing %}x{% endfor %}ok", &hi).unwrap(), "ok");
        // A backslash-newline inside a string literal continues the line, as in Python.
        assert_eq!(render("{%- set s = 'one \\\ntwo' -%}{{ s }}|{{ 'a\\tb' }}", &hi).unwrap(), "one two|a\tb");
    }

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_420), (2025, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert!(strftime_now("%d %b %Y".into()).len() == 11);
        // 2026-12-07 06:41:09 UTC, a Monday.
        let t = 1_796_625_669;
        assert_eq!(
            strftime("%A %a %Y-%m-%d %H:%M:%S %-d %B %b %y %% %Q", t),
            "Monday Mon 2026-12-07 06:41:09 7 December Dec 26 % %Q"
        );
    }

    #[test]
    fn the_builtin_gemma_format_folds_the_system_turn_into_the_first_user_turn() {
        let t = ChatTemplate::new(builtin_template("gemma").expect("gemma"), "<bos>", "<eos>").expect("compiles");
        let messages = [
            Message::new("system", "Be brief."),
            Message::new("user", " Hi "),
            Message::new("assistant", "Hello."),
            Message::new("user", "Bye"),
        ];
        assert_eq!(
            t.render(&messages, true).expect("render"),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
        let plain = t.render(&[Message::new("user", "Hi")], false).expect("render");
        assert_eq!(plain, "<bos><start_of_turn>user\nHi<end_of_turn>\n");
        assert!(builtin_template("nope").is_none());
    }
}
