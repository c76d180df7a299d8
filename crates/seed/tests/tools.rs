//! Tool calling on the real default model (SmolLM2, in process): `tools` with `tool_choice`
//! `required`, a named function and `auto`, whole and streamed, in the generic format (SmolLM2's
//! template has no tool syntax) and in the Hermes format (the same model behind a ChatML template
//! that shows tools the way Qwen's does), and in Seed-OSS's tag format (behind a template that shows
//! tools as Seed-OSS's does). Forced calls name a given tool with arguments valid
//! against its schema; streams send each call's id and name once and its arguments in pieces, and
//! put together equal the whole answer; a conversation carrying calls and their results renders;
//! a tool schema that cannot be compiled is a 400 naming `tools`.

mod serving;

use std::sync::{Arc, OnceLock};

use model::LoadedModel;
use serde_json::{json, Value};
use server::AppState;
use serving::{assert_envelope, config_for, engine_for, post, real_state, sse_frames, REAL_MODEL_ID};

const CHAT: &str = "/v1/chat/completions";

fn weather() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather now in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
        }, "required": ["city", "unit"], "additionalProperties": false}
    }})
}

fn clock() -> Value {
    json!({"type": "function", "function": {
        "name": "get_time",
        "description": "The time now in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 30}},
            "required": ["zone"], "additionalProperties": false}
    }})
}

/// Whether `args` (JSON text) are valid arguments of the tool called `name`.
fn valid_arguments(name: &str, args: &str) -> bool {
    let Ok(Value::Object(a)) = serde_json::from_str::<Value>(args) else { return false };
    match name {
        "get_weather" => {
            a.len() == 2
                && a["city"].as_str().is_some_and(|c| ["Paris", "London", "Tokyo"].contains(&c))
                && a["unit"].as_str().is_some_and(|u| ["celsius", "fahrenheit"].contains(&u))
        }
        "get_time" => a.len() == 1 && a["zone"].as_str().is_some_and(|z| z.chars().count() <= 30),
        _ => false,
    }
}

fn ask(extra: Value) -> Value {
    let mut body = json!({"model": "any", "max_tokens": 60, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the weather in Paris right now?"}],
        "tools": [weather(), clock()]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Checks one choice's forced calls; returns them as (name, arguments).
fn forced_calls(choice: &Value) -> Vec<(String, String)> {
    assert_eq!(choice["finish_reason"], "tool_calls", "{choice}");
    let m = &choice["message"];
    assert_eq!(m["role"], "assistant");
    assert!(m["content"].is_null(), "only calls: {m}");
    let calls = m["tool_calls"].as_array().unwrap_or_else(|| panic!("tool_calls: {m}"));
    assert!(!calls.is_empty());
    calls
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function");
            let id = c["id"].as_str().expect("id");
            assert!(id.starts_with("call_") && id.len() > 10, "{id}");
            let name = c["function"]["name"].as_str().expect("name").to_string();
            let args = c["function"]["arguments"].as_str().expect("arguments as JSON text").to_string();
            assert!(valid_arguments(&name, &args), "{name}({args})");
            (name, args)
        })
        .collect()
}

/// The calls and text a chat stream's deltas put together, checking OpenAI's shape: each call's
/// first delta has its index, id, type and name (arguments `""`), later ones only the index and
/// arguments; the choice ends with `tool_calls`.
fn streamed_calls(frames: &[String]) -> (String, Vec<(String, String)>, String) {
    let mut text = String::new();
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut finish = String::new();
    let mut pieces = 0;
    for f in frames.iter().filter(|f| f.as_str() != "[DONE]") {
        let chunk: Value = serde_json::from_str(f).expect("chunk JSON");
        for ch in chunk["choices"].as_array().cloned().unwrap_or_default() {
            let d = &ch["delta"];
            if let Some(t) = d["content"].as_str() {
                text.push_str(t);
            }
            for c in d["tool_calls"].as_array().cloned().unwrap_or_default() {
                let index = c["index"].as_u64().expect("index") as usize;
                if c.get("id").is_some() {
                    assert_eq!(index, calls.len(), "a new call has the next index: {c}");
                    assert!(c["id"].as_str().expect("id").starts_with("call_"));
                    assert_eq!(c["type"], "function");
                    assert_eq!(c["function"]["arguments"], "", "{c}");
                    calls.push((c["function"]["name"].as_str().expect("name").into(), String::new()));
                } else {
                    assert!(c["function"].get("name").is_none(), "the name comes once: {c}");
                    calls[index].1.push_str(c["function"]["arguments"].as_str().expect("arguments"));
                    pieces += 1;
                }
            }
            if let Some(r) = ch["finish_reason"].as_str() {
                finish = r.to_string();
            }
        }
    }
    assert!(calls.is_empty() || pieces > calls.len(), "arguments come in pieces");
    (text, calls, finish)
}

fn calls_of(choice: &Value) -> Vec<(String, String)> {
    choice["message"]["tool_calls"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["function"]["name"].as_str().unwrap_or_default().to_string(),
                        c["function"]["arguments"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn required_named_and_streamed(s: &AppState) {
    // Required: a call of one of the tools, arguments valid.
    let r = post(s, CHAT, &ask(json!({"tool_choice": "required"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let whole = forced_calls(&v["choices"][0]);

    // Streamed: the same calls, in OpenAI's delta shape.
    let r = post(s, CHAT, &ask(json!({"tool_choice": "required", "stream": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (text, calls, finish) = streamed_calls(&sse_frames(&r.text));
    assert_eq!((text.as_str(), calls, finish.as_str()), ("", whole, "tool_calls"));

    // A named function: only it, once (parallel calls off), for every sampled choice.
    let named = json!({"tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "parallel_tool_calls": false, "temperature": 1.0, "n": 3, "seed": 11});
    let r = post(s, CHAT, &ask(named)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for c in r.json()["choices"].as_array().expect("choices") {
        if c["finish_reason"] == "length" {
            continue; // cut by max_tokens
        }
        let calls = forced_calls(c);
        assert_eq!(calls.len(), 1, "{c}");
        assert_eq!(calls[0].0, "get_time");
    }
}

#[tokio::test]
async fn forced_calls_in_the_generic_format_name_a_tool_with_valid_arguments() {
    required_named_and_streamed(&real_state()).await;
}

#[tokio::test]
async fn auto_answers_are_text_or_valid_calls_and_streams_match() {
    auto_answers(&real_state()).await;
}

async fn auto_answers(s: &AppState) {
    let s = s.clone();
    for question in ["What is the weather in Paris right now?", "Say hello."] {
        let body = |extra: Value| {
            let mut b = ask(extra);
            b["messages"][0]["content"] = json!(question);
            b
        };
        let r = post(&s, CHAT, &body(json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let choice = &v["choices"][0];
        let calls = calls_of(choice);
        if calls.is_empty() {
            assert!(choice["message"]["content"].is_string(), "{choice}");
        } else {
            forced_calls(choice);
        }
        let r = post(&s, CHAT, &body(json!({"stream": true}))).await;
        let (text, streamed, finish) = streamed_calls(&sse_frames(&r.text));
        assert_eq!(streamed, calls, "{question}");
        assert_eq!(text, choice["message"]["content"].as_str().unwrap_or_default(), "{question}");
        assert_eq!(finish, choice["finish_reason"].as_str().expect("finish"));
    }
    // With `none` the tools take no part: a plain text answer.
    let r = post(&s, CHAT, &ask(json!({"tool_choice": "none", "max_tokens": 8}))).await;
    let v = r.json();
    assert!(v["choices"][0]["message"]["tool_calls"].is_null(), "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
}

#[tokio::test]
async fn a_conversation_with_calls_and_results_is_answered() {
    let s = real_state();
    let body = json!({"model": "any", "max_tokens": 30, "temperature": 0, "tools": [weather()],
    "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 18, \"sky\": \"clear\"}"}
    ]});
    let r = post(&s, CHAT, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let choice = &v["choices"][0];
    assert!(choice["message"]["content"].is_string() || choice["message"]["tool_calls"].is_array(), "{v}");
}

#[tokio::test]
async fn tool_schemas_that_cannot_be_used_are_400s_naming_tools() {
    let s = real_state();
    let bad = json!({"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}}}});
    let r = post(&s, CHAT, &ask(json!({"tools": [bad], "tool_choice": "required"}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let v = r.json();
    assert_envelope(&v);
    assert_eq!(v["error"]["param"], "tools", "{v}");
}

/// A ChatML template that shows tools as Qwen's templates do (tool definitions as JSON lines in
/// the system turn, calls in `<tool_call>` blocks, results in `<tool_response>` blocks in a user
/// turn). Written for this test.
const HERMES_TEMPLATE: &str = r#"{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}You may call functions. Their signatures:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
To call one, answer with <tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}<|im_start|>assistant
{% if message.content %}{{ message.content }}{% endif %}
{%- for call in message.tool_calls or [] %}{% if message.content or not loop.first %}
{% endif %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}
<tool_response>
{{ message.content }}
</tool_response>{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>
{% endif %}{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"#;

/// The default model behind `template`, served once per `cell`.
fn behind(cell: &'static OnceLock<AppState>, template: &str) -> AppState {
    cell.get_or_init(|| {
        let path = seed::catalogue::ensure_model(REAL_MODEL_ID).expect("model");
        let mut m = LoadedModel::open(&path).expect("load");
        m.chat_template = Some(m.compile_template(template).expect("template"));
        let m = Arc::new(m);
        AppState::ready(config_for(REAL_MODEL_ID), Arc::clone(&m), engine_for(m, 256, 64))
    })
    .clone()
}

/// The default model behind [`HERMES_TEMPLATE`].
fn hermes_state() -> AppState {
    static S: OnceLock<AppState> = OnceLock::new();
    behind(&S, HERMES_TEMPLATE)
}

#[tokio::test]
async fn the_hermes_format_renders_tools_as_json_lines_and_reads_calls_back() {
    let s = hermes_state();
    required_named_and_streamed(&s).await;
    auto_answers(&s).await;
    // The prompt holds each definition as `json.dumps` writes it, keys in the client's order.
    let m = serving::real_model();
    let t = m.compile_template(HERMES_TEMPLATE).expect("template");
    let msgs = vec![model::chat::Message::new("user", "Hi")];
    let tools = json!([weather()]);
    let text = t.render_with_tools(&msgs, Some(&tools), true).expect("render");
    assert!(
        text.contains(r#"{"type": "function", "function": {"name": "get_weather", "description": "The weather now in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]}"#),
        "{text}"
    );
}

/// A ChatML template that shows tools as Seed-OSS's does (Python-like signatures in the system
/// turn, calls as `<seed:tool_call>` blocks of `<function=…>` and `<parameter=…>` tags, results
/// in `tool` turns), with the thinking budget as a template variable. Written for this test.
const SEED_TEMPLATE: &str = r#"{%- if tools %}<|im_start|>system
{% if thinking_budget is defined %}Thinking budget: {{ thinking_budget }}.
{% endif %}You may call these functions:
{% for t in tools %}def {{ t.function.name }}({% for name, spec in t.function.parameters.properties.items() %}{{ name }}: {{ spec.type }}{% if not loop.last %}, {% endif %}{% endfor %}):
    """{{ t.function.description }}"""
{% endfor %}To call one, answer with
<seed:tool_call>
<function=NAME>
<parameter=ARG>VALUE</parameter>
</function>
</seed:tool_call><|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'assistant' %}<|im_start|>assistant
{% if message.content %}{{ message.content }}{% endif %}
{%- for call in message.tool_calls or [] %}
<seed:tool_call>
<function={{ call.function.name }}>
{% for k, v in call.function.arguments | items %}<parameter={{ k }}>{{ v }}</parameter>
{% endfor %}</function>
</seed:tool_call>{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"#;

/// The default model behind [`SEED_TEMPLATE`].
fn seed_state() -> AppState {
    static S: OnceLock<AppState> = OnceLock::new();
    behind(&S, SEED_TEMPLATE)
}

#[tokio::test]
async fn the_seed_oss_format_calls_with_one_tag_per_parameter() {
    let s = seed_state();
    required_named_and_streamed(&s).await;
    auto_answers(&s).await;
    // A conversation with a call and its result renders the call back as tags; the template
    // also sees `chat_template_kwargs`.
    let body = json!({"model": "any", "max_tokens": 8, "temperature": 0, "tools": [weather()],
    "chat_template_kwargs": {"thinking_budget": 512},
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
    ]});
    let r = post(&s, CHAT, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = serving::real_model();
    let t = m.compile_template(SEED_TEMPLATE).expect("template");
    let mut msgs = vec![model::chat::Message::new("user", "Hi")];
    msgs.push(model::chat::Message {
        role: "assistant".into(),
        tool_calls: vec![model::chat::ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city": "Paris", "unit": "celsius"}"#.into(),
        }],
        ..model::chat::Message::default()
    });
    let kwargs = serde_json::from_value(json!({"thinking_budget": 512})).expect("map");
    let text = t.render_with(&msgs, Some(&json!([weather()])), true, &kwargs).expect("render");
    assert!(text.contains("Thinking budget: 512."), "{text}");
    assert!(text.contains("def get_weather(city: string, unit: string):"), "{text}");
    assert!(
        text.contains("<function=get_weather>\n<parameter=city>Paris</parameter>\n<parameter=unit>celsius</parameter>\n</function>"),
        "{text}"
    );
}

/// A ChatML template whose generation prompt opens the reasoning, as DeepSeek R1's does: the
/// answer is reasoning until `</think>`. Written for this test.
const THINK_TEMPLATE: &str = "{%- for message in messages %}<|im_start|>{{ message.role }}\n\
    {{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\
    {% endif %}{# the answer closes its reasoning with </think> #}";

#[tokio::test]
async fn reasoning_comes_apart_from_the_answer_whole_and_streamed() {
    static S: OnceLock<AppState> = OnceLock::new();
    let s = behind(&S, THINK_TEMPLATE);
    let body = |extra: Value| {
        let mut b = json!({"model": "any", "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "user", "content": "What is 2 + 2?"}]});
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    // The default model never writes `</think>`: its whole answer is reasoning.
    let r = post(&s, CHAT, &body(json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let m = &v["choices"][0]["message"];
    let reasoning = m["reasoning_content"].as_str().unwrap_or_else(|| panic!("reasoning: {v}")).to_string();
    assert!(!reasoning.is_empty());
    assert_eq!(m["content"], "", "{v}");
    // Streamed: `reasoning_content` deltas that put together are the same.
    let r = post(&s, CHAT, &body(json!({"stream": true}))).await;
    let mut streamed = String::new();
    for frame in sse_frames(&r.text) {
        if frame == "[DONE]" {
            continue;
        }
        let c: Value = serde_json::from_str(&frame).expect("chunk");
        if let Some(t) = c["choices"][0]["delta"]["reasoning_content"].as_str() {
            streamed.push_str(t);
        }
        assert!(c["choices"][0]["delta"]["content"].as_str().unwrap_or_default().is_empty(), "{frame}");
    }
    assert_eq!(streamed, reasoning);
    // `reasoning_format: none` leaves it in the text.
    let r = post(&s, CHAT, &body(json!({"reasoning_format": "none"}))).await;
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], json!(reasoning), "{v}");
    assert!(v["choices"][0]["message"]["reasoning_content"].is_null(), "{v}");
    let r = post(&s, CHAT, &body(json!({"reasoning_format": "hidden"}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_envelope(&r.json());
}

/// How many of `text`'s tokens the plan's grammar takes before refusing one (all: `None`).
fn refused_at(plan: &model::chat::tools::Plan, text: &str) -> Option<usize> {
    let m = serving::real_model();
    let spec = plan.grammar().expect("a grammar");
    let mut c = m.grammar_vocab().expect("vocab").compile(&spec).expect("compiles");
    let ids = m.tokenizer.encode(text, false, false);
    for (i, &id) in ids.iter().enumerate() {
        if !c.allows(id) {
            return Some(i);
        }
        c.accept(id).expect("accept");
    }
    None
}

#[test]
fn auto_grammars_let_text_through_until_the_trigger_then_only_calls() {
    use model::chat::tools::{Choice, Format, Plan, Tool};
    let tool = |v: Value| Tool {
        name: v["function"]["name"].as_str().expect("name").into(),
        description: None,
        parameters: v["function"]["parameters"].clone(),
        definition: v,
    };
    let plan = |format, choice| Plan {
        format,
        tools: vec![tool(weather()), tool(clock())],
        choice,
        parallel: true,
        thinking: None,
    };
    let hermes = plan(Format::Hermes, Choice::Auto);
    let call = r#"{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}"#;
    assert_eq!(refused_at(&hermes, "Any text at all, {braces} and <tags> too."), None);
    assert_eq!(refused_at(&hermes, &format!("Let me check.\n<tool_call>\n{call}\n</tool_call>")), None);
    // After the trigger: an unknown tool, arguments off the schema, free text — all refused.
    for bad in [
        "<tool_call>\n{\"name\": \"get_mail\", \"arguments\": {}}",
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Berlin",
        "<tool_call>\nI will call it now",
    ] {
        assert!(refused_at(&hermes, &format!("Sure. {bad}")).is_some(), "{bad}");
    }
    // Required: no text first.
    let required = plan(Format::Hermes, Choice::Required);
    assert_eq!(refused_at(&required, &format!("<tool_call>\n{call}\n</tool_call>")), None);
    assert_eq!(refused_at(&required, "Sure."), Some(0));
    // Llama 3: text that does not open with `{`, or calls.
    let llama = plan(Format::Llama3, Choice::Auto);
    assert_eq!(refused_at(&llama, "It is sunny."), None);
    assert_eq!(
        refused_at(&llama, r#"{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}"#),
        None
    );
    assert!(refused_at(&llama, r#"{"name": "get_weather", "arguments": {}}"#).is_some());
    // Seed-OSS: text until `<seed:tool_call>`, then only a given tool, its parameters in order,
    // values of their schema (here enums and a string of at most 30 characters).
    let seed = plan(Format::SeedOss, Choice::Auto);
    let seed_call = "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n\
                     <parameter=unit>celsius</parameter>\n</function>\n</seed:tool_call>";
    assert_eq!(refused_at(&seed, "<seed:think>Easy.</seed:think> It is {sunny} <b>today</b>."), None);
    assert_eq!(refused_at(&seed, &format!("Let me check.\n{seed_call}")), None);
    let time = "<seed:tool_call>\n<function=get_time>\n<parameter=zone>Europe/Paris</parameter>\n</function>\n</seed:tool_call>";
    assert_eq!(refused_at(&plan(Format::SeedOss, Choice::Required), time), None);
    for bad in [
        "<seed:tool_call>\n<function=get_mail>",
        "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Berlin",
        "<seed:tool_call>\n<function=get_weather>\n<parameter=unit>celsius",
        "<seed:tool_call>\n<function=get_time>\n<parameter=zone>This zone name is far longer than thirty characters",
        "<seed:tool_call>\nI will call it now",
    ] {
        assert!(refused_at(&seed, &format!("Sure. {bad}")).is_some(), "{bad}");
    }
    assert_eq!(refused_at(&plan(Format::SeedOss, Choice::Required), "Sure."), Some(0));
    // Qwen3-Coder: the same tags inside `<tool_call>`, each value on lines of its own.
    let coder = plan(Format::QwenCoder, Choice::Auto);
    let coder_call = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n\
                      <parameter=unit>\ncelsius\n</parameter>\n</function>\n</tool_call>";
    assert_eq!(refused_at(&coder, &format!("I will look it up.\n{coder_call}")), None);
    assert!(refused_at(&coder, "<tool_call>\n<function=get_weather>\n<parameter=city>Paris").is_some());
    // A thinking model: its reasoning comes first and is free — a trigger inside it starts no
    // call — then text or calls as before.
    let template = "{{ '<think>' }}{{ '</think>' }}";
    let mut thinking = plan(Format::Hermes, Choice::Auto);
    thinking.thinking = model::chat::reasoning::Thinking::for_prompt(template, "assistant\n");
    let musing = "<think>I could write <tool_call> here, or not.</think>\n";
    assert!(refused_at(&hermes, &format!("{musing}It is sunny.")).is_some(), "without thinking, the trigger binds");
    assert_eq!(refused_at(&thinking, &format!("{musing}It is sunny.")), None);
    assert_eq!(refused_at(&thinking, &format!("{musing}<tool_call>\n{call}\n</tool_call>")), None);
    assert!(refused_at(&thinking, &format!("{musing}<tool_call>\nI will call it now")).is_some());
    assert_eq!(refused_at(&thinking, "No thinking at all."), None);
    thinking.thinking = model::chat::reasoning::Thinking::for_prompt(template, "assistant\n<think>\n");
    assert_eq!(
        refused_at(&thinking, &format!("Hm, <tool_call> maybe.</think><tool_call>\n{call}\n</tool_call>")),
        None
    );
}
