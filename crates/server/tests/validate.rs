//! Validation without a model: every bad-input case of the API is a 400 that
//! names its field, and good bodies become the typed values expected.

use serde_json::{json, Value};
use server::validate::{chat, completion, Context, Prompt};
use server::{ApiError, Limits};

const N_VOCAB: usize = 1000;

fn ctx(limits: &Limits) -> Context<'_> {
    Context { n_vocab: N_VOCAB, limits }
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

fn param_of(e: &ApiError) -> String {
    e.body()["error"]["param"].as_str().unwrap_or("<none>").to_string()
}

/// (what, extra fields of a chat body, the param the 400 must name)
const CHAT_CASES: &[(&str, &str, &str)] = &[
    ("temperature as a string", r#"{"temperature": "hot"}"#, "temperature"),
    ("temperature above 2", r#"{"temperature": 2.5}"#, "temperature"),
    ("temperature below 0", r#"{"temperature": -0.1}"#, "temperature"),
    ("top_p of 0", r#"{"top_p": 0}"#, "top_p"),
    ("top_p above 1", r#"{"top_p": 1.01}"#, "top_p"),
    ("top_k fractional", r#"{"top_k": 1.5}"#, "top_k"),
    ("top_k below -1", r#"{"top_k": -2}"#, "top_k"),
    ("min_p above 1", r#"{"min_p": 2}"#, "min_p"),
    ("frequency_penalty above 2", r#"{"frequency_penalty": 2.5}"#, "frequency_penalty"),
    ("presence_penalty below -2", r#"{"presence_penalty": -3}"#, "presence_penalty"),
    ("repetition_penalty 0", r#"{"repetition_penalty": 0}"#, "repetition_penalty"),
    ("max_tokens 0", r#"{"max_tokens": 0}"#, "max_tokens"),
    ("max_tokens negative", r#"{"max_tokens": -5}"#, "max_tokens"),
    ("max_tokens as a string", r#"{"max_tokens": "10"}"#, "max_tokens"),
    ("max_completion_tokens 0", r#"{"max_completion_tokens": 0}"#, "max_completion_tokens"),
    (
        "max_tokens of the wrong type beside max_completion_tokens",
        r#"{"max_completion_tokens": 1, "max_tokens": {}}"#,
        "max_tokens",
    ),
    ("n 0", r#"{"n": 0}"#, "n"),
    ("n above the cap", r#"{"n": 17}"#, "n"),
    ("n huge", r#"{"n": 18446744073709551615}"#, "n"),
    ("seed as a string", r#"{"seed": "42"}"#, "seed"),
    ("stream as a string", r#"{"stream": "yes"}"#, "stream"),
    ("stream_options without stream", r#"{"stream_options": {"include_usage": true}}"#, "stream_options"),
    (
        "stream_options.include_usage wrong type",
        r#"{"stream": true, "stream_options": {"include_usage": 1}}"#,
        "stream_options.include_usage",
    ),
    ("logprobs as an integer in chat", r#"{"logprobs": 3}"#, "logprobs"),
    ("top_logprobs above 20", r#"{"logprobs": true, "top_logprobs": 21}"#, "top_logprobs"),
    ("top_logprobs without logprobs", r#"{"top_logprobs": 2}"#, "top_logprobs"),
    ("logit_bias id outside the vocabulary", r#"{"logit_bias": {"1000": 5}}"#, "logit_bias"),
    ("logit_bias key not a number", r#"{"logit_bias": {"abc": 5}}"#, "logit_bias"),
    ("logit_bias value above 100", r#"{"logit_bias": {"5": 101}}"#, "logit_bias.5"),
    ("logit_bias value a string", r#"{"logit_bias": {"5": "x"}}"#, "logit_bias.5"),
    ("logit_bias not an object", r#"{"logit_bias": [1, 2]}"#, "logit_bias"),
    ("too many stop strings", r#"{"stop": ["a", "b", "c", "d", "e"]}"#, "stop"),
    ("empty stop string", r#"{"stop": ""}"#, "stop"),
    ("stop string too long", r#"{"stop": "LONG"}"#, "stop"),
    ("stop of a number", r#"{"stop": 5}"#, "stop"),
    ("stop list with a number", r#"{"stop": ["a", 5]}"#, "stop[1]"),
    ("user too long", r#"{"user": "LONG"}"#, "user"),
    ("user a number", r#"{"user": 5}"#, "user"),
    ("tool without its function", r#"{"tools": [{"type": "function"}]}"#, "tools[0].function"),
    ("tools not an array", r#"{"tools": {"type": "function"}}"#, "tools"),
    ("tool of another type", r#"{"tools": [{"type": "retrieval"}]}"#, "tools[0].type"),
    ("function without a name", r#"{"tools": [{"type": "function", "function": {}}]}"#, "tools[0].function.name"),
    (
        "function name with a space",
        r#"{"tools": [{"type": "function", "function": {"name": "get weather"}}]}"#,
        "tools[0].function.name",
    ),
    (
        "function parameters a string",
        r#"{"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}"#,
        "tools[0].function.parameters",
    ),
    (
        "function parameters not of type object",
        r#"{"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}"#,
        "tools[0].function.parameters",
    ),
    (
        "two tools of one name",
        r#"{"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]}"#,
        "tools[1].function.name",
    ),
    (
        "tool_choice naming an unknown function",
        r#"{"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}"#,
        "tool_choice.function.name",
    ),
    ("tool_choice required without tools", r#"{"tool_choice": "required"}"#, "tool_choice"),
    ("tool_choice unknown word", r#"{"tool_choice": "always"}"#, "tool_choice"),
    ("tool_choice a number", r#"{"tool_choice": 1}"#, "tool_choice"),
    ("parallel_tool_calls a string", r#"{"parallel_tool_calls": "yes"}"#, "parallel_tool_calls"),
    ("functions (the deprecated form)", r#"{"functions": [{"name": "f"}]}"#, "functions"),
    (
        "tools beside a JSON response_format",
        r#"{"tools": [{"type": "function", "function": {"name": "f"}}], "response_format": {"type": "json_object"}}"#,
        "response_format",
    ),
    (
        "a tool message answering no call",
        r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_9", "content": "18"}]}"#,
        "messages[1].tool_call_id",
    ),
    (
        "a tool message without its call id",
        r#"{"messages": [{"role": "tool", "content": "18"}]}"#,
        "messages[0].tool_call_id",
    ),
    (
        "tool_calls on a user message",
        r#"{"messages": [{"role": "user", "content": "hi", "tool_calls": []}]}"#,
        "messages[0].tool_calls",
    ),
    (
        "a tool call without its id",
        r#"{"messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}"#,
        "messages[0].tool_calls[0].id",
    ),
    (
        "tool call arguments a number",
        r#"{"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": 5}}]}]}"#,
        "messages[0].tool_calls[0].function.arguments",
    ),
    ("response_format of an unknown type", r#"{"response_format": {"type": "yaml"}}"#, "response_format"),
    ("response_format not an object", r#"{"response_format": "json"}"#, "response_format"),
    ("json_schema without its schema object", r#"{"response_format": {"type": "json_schema"}}"#, "response_format"),
    (
        "json_schema's schema a string",
        r#"{"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": "{}"}}}"#,
        "response_format.json_schema.schema",
    ),
    (
        "json_schema's name with a space",
        r#"{"response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}}"#,
        "response_format.json_schema.name",
    ),
    (
        "grammar beside a JSON response_format",
        r#"{"grammar": "start: \"a\"", "response_format": {"type": "json_object"}}"#,
        "grammar",
    ),
    ("grammar a number", r#"{"grammar": 5}"#, "grammar"),
    ("messages empty", r#"{"messages": []}"#, "messages"),
    ("messages not an array", r#"{"messages": "hi"}"#, "messages"),
    ("message not an object", r#"{"messages": ["hi"]}"#, "messages[0]"),
    ("message without role", r#"{"messages": [{"content": "hi"}]}"#, "messages[0].role"),
    ("message with an unknown role", r#"{"messages": [{"role": "wizard", "content": "hi"}]}"#, "messages[0].role"),
    ("user message without content", r#"{"messages": [{"role": "user"}]}"#, "messages[0].content"),
    ("content a number", r#"{"messages": [{"role": "user", "content": 5}]}"#, "messages[0].content"),
    (
        "image content part",
        r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}"#,
        "messages[0].content[0].type",
    ),
    (
        "text part without text",
        r#"{"messages": [{"role": "user", "content": [{"type": "text"}]}]}"#,
        "messages[0].content[0].text",
    ),
    ("model missing", r#"{"model": null}"#, "model"),
    ("model a number", r#"{"model": 7}"#, "model"),
];

#[test]
fn every_bad_chat_field_is_a_400_naming_it() {
    let limits = Limits::default();
    let long = "x".repeat(300);
    for (what, extra, param) in CHAT_CASES {
        let extra: Value = serde_json::from_str(&extra.replace("LONG", &long)).expect("case JSON");
        let err = chat::parse(&chat_body(extra), ctx(&limits)).expect_err(what);
        assert_eq!(err.status(), 400, "{what}: {err}");
        assert_eq!(param_of(&err), *param, "{what}: {err}");
        let msg = err.to_string();
        assert!(!msg.is_empty() && msg.len() < 400, "{what}: message {msg:?}");
    }
}

#[test]
fn body_that_is_not_an_object_is_a_400() {
    let limits = Limits::default();
    for body in [json!([1, 2]), json!("text"), json!(null), json!(3)] {
        let err = chat::parse(&body, ctx(&limits)).expect_err("not an object");
        assert_eq!(err.status(), 400);
    }
    assert_eq!(server::validate::parse_json(b"{\"model\": ").expect_err("truncated").status(), 400);
    assert_eq!(server::validate::parse_json(&[0xff, 0xfe]).expect_err("not UTF-8").status(), 400);
}

#[test]
fn good_chat_body_becomes_typed_values() {
    let limits = Limits::default();
    let body = chat_body(json!({
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null},
        ],
        "temperature": 0, "top_p": 0.5, "top_k": -1, "seed": -1, "n": 2,
        "logprobs": true, "top_logprobs": 3, "logit_bias": {"7": -100, "3": 2.5},
        "stop": "END", "stream": true, "stream_options": {"include_usage": true},
        "max_completion_tokens": 9, "max_tokens": 99, "user": "u1", "tools": [],
    }));
    let req = chat::parse(&body, ctx(&limits)).expect("valid");
    assert_eq!(req.messages[0].role, "system");
    assert_eq!(req.messages[1].content, "a\nb");
    assert_eq!(req.messages[2].content, "");
    let p = &req.params;
    assert_eq!(p.sampling.temperature, 0.0);
    assert_eq!(p.sampling.top_k, 0);
    assert_eq!(p.sampling.seed, Some(u64::MAX));
    assert_eq!(p.sampling.logit_bias, vec![(3, 2.5), (7, -100.0)]);
    assert_eq!((p.n, p.logprobs, p.max_tokens), (2, Some(3), Some(9)));
    assert_eq!(p.stop, vec!["END".to_string()]);
    assert!(p.stream && p.include_usage);
}

#[test]
fn a_conversation_with_tools_becomes_typed_values() {
    use model::chat::tools::Choice;
    let limits = Limits::default();
    let weather = json!({"type": "function", "function": {"name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
    let body = chat_body(json!({
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        ],
        "tools": [weather, {"type": "function", "function": {"name": "now"}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
    }));
    let req = chat::parse(&body, ctx(&limits)).expect("valid");
    assert_eq!(req.messages[1].tool_calls[0].name, "get_weather");
    assert_eq!(req.messages[1].tool_calls[0].arguments, r#"{"city": "Paris"}"#);
    assert_eq!(req.messages[2].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(req.tools.tools.len(), 2);
    assert_eq!(req.tools.tools[0].definition, weather);
    assert_eq!(req.tools.tools[1].parameters, json!({"type": "object", "properties": {}}));
    assert_eq!(req.tools.choice(), Choice::Function("get_weather".into()));
    assert!(!req.tools.parallel && req.tools.active());
    // Tools without a choice mean `auto`; `none` turns them off.
    let auto = chat::parse(&chat_body(json!({"tools": [weather]})), ctx(&limits)).expect("valid");
    assert_eq!(auto.tools.choice(), Choice::Auto);
    let none =
        chat::parse(&chat_body(json!({"tools": [weather], "tool_choice": "none"})), ctx(&limits)).expect("valid");
    assert!(!none.tools.active());
}

#[test]
fn unset_fields_take_the_defaults() {
    let limits = Limits::default();
    let req = chat::parse(&chat_body(json!({})), ctx(&limits)).expect("valid");
    let p = &req.params;
    assert_eq!(p.sampling, model::sampler::SamplingParams::default());
    assert_eq!((p.n, p.logprobs, p.max_tokens, p.stream, p.include_usage), (1, None, None, false, false));
    let req = chat::parse(&chat_body(json!({"logprobs": true})), ctx(&limits)).expect("valid");
    assert_eq!(req.params.logprobs, Some(0));
}

fn completion_body(extra: Value) -> Value {
    let mut body = json!({"model": "m", "prompt": "Once"});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

const COMPLETION_CASES: &[(&str, &str, &str)] = &[
    ("prompt missing", r#"{"prompt": null}"#, "prompt"),
    ("tools on completions", r#"{"tools": [{"type": "function", "function": {"name": "f"}}]}"#, "tools"),
    ("tool_choice required on completions", r#"{"tool_choice": "required"}"#, "tool_choice"),
    ("prompt empty", r#"{"prompt": ""}"#, "prompt"),
    ("prompt list empty", r#"{"prompt": []}"#, "prompt"),
    ("prompt list with an empty string", r#"{"prompt": ["a", ""]}"#, "prompt"),
    ("prompt list mixing strings and ids", r#"{"prompt": ["a", 5]}"#, "prompt[1]"),
    ("prompt a number", r#"{"prompt": 5}"#, "prompt"),
    ("prompt token id outside the vocabulary", r#"{"prompt": [1, 1000]}"#, "prompt[1]"),
    ("prompt token id negative", r#"{"prompt": [-1]}"#, "prompt[0]"),
    ("prompt token lists with an empty one", r#"{"prompt": [[1], []]}"#, "prompt"),
    ("prompt token lists with a bad id", r#"{"prompt": [[1], [2, 5000]]}"#, "prompt[1][1]"),
    ("prompt list of objects", r#"{"prompt": [{}]}"#, "prompt[0]"),
    ("logprobs above 20", r#"{"logprobs": 21}"#, "logprobs"),
    ("logprobs a boolean", r#"{"logprobs": true}"#, "logprobs"),
    ("prompts times n over the cap", r#"{"prompt": ["a", "b", "c"], "n": 6}"#, "n"),
    ("echo", r#"{"echo": true}"#, "echo"),
    ("suffix", r#"{"suffix": "end"}"#, "suffix"),
    ("best_of 3", r#"{"best_of": 3}"#, "best_of"),
    ("temperature 3", r#"{"temperature": 3}"#, "temperature"),
];

#[test]
fn every_bad_completion_field_is_a_400_naming_it() {
    let limits = Limits::default();
    for (what, extra, param) in COMPLETION_CASES {
        let extra: Value = serde_json::from_str(extra).expect("case JSON");
        let err = completion::parse(&completion_body(extra), ctx(&limits)).expect_err(what);
        assert_eq!(err.status(), 400, "{what}: {err}");
        assert_eq!(param_of(&err), *param, "{what}: {err}");
    }
}

#[test]
fn the_four_prompt_shapes() {
    let limits = Limits::default();
    let parse =
        |p: Value| completion::parse(&completion_body(json!({"prompt": p})), ctx(&limits)).expect("valid").prompts;
    assert_eq!(parse(json!("a")), vec![Prompt::Text("a".into())]);
    assert_eq!(parse(json!(["a", "b"])), vec![Prompt::Text("a".into()), Prompt::Text("b".into())]);
    assert_eq!(parse(json!([1, 2])), vec![Prompt::Tokens(vec![1, 2])]);
    assert_eq!(parse(json!([[1], [2, 3]])), vec![Prompt::Tokens(vec![1]), Prompt::Tokens(vec![2, 3])]);
    let req = completion::parse(&completion_body(json!({"logprobs": 2})), ctx(&limits)).expect("valid");
    assert_eq!(req.params.logprobs, Some(2));
    assert_eq!(req.params.max_tokens, Some(completion::DEFAULT_MAX_TOKENS));
}

#[test]
fn a_schema_or_grammar_past_the_size_limit_is_refused_naming_its_field() {
    let limits = Limits::default();
    let ctx = Context { n_vocab: 100, limits: &limits };
    let big = "x".repeat(server::validate::MAX_GRAMMAR_BYTES + 1);
    let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "grammar": big});
    let e = server::validate::chat::parse(&body, ctx).map(drop).expect_err("too big");
    assert_eq!(e.body()["error"]["param"], "grammar");
    let schema = serde_json::json!({"description": big});
    let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}});
    let e = server::validate::chat::parse(&body, ctx).map(drop).expect_err("too big");
    assert_eq!(e.body()["error"]["param"], "response_format");
}
