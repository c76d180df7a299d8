//! Anthropic's Messages API and OpenAI's Responses API, in process: the same greedy answer as chat
//! gives (on the tiny model), whole and streamed in each API's event shapes
//! (named SSE events, in order, that put together say what the whole answer says), forced tool
//! use with schema-valid input (on the real default model: a random model never ends its calls), and errors in each API's envelope — Anthropic's on its route,
//! for a bad body, a bad key (sent as `x-api-key`) and an unknown model alike.

mod serving;

use serde_json::{json, Value};
use server::AppState;
use serving::{call, config, engine, model, post, real_state, state, Reply};

const MESSAGES: &str = "/v1/messages";
const RESPONSES: &str = "/v1/responses";
const QUESTION: &str = "What is the capital of France?";

/// The events of a named-event SSE body: (event name, data as JSON), checking the framing (one
/// `event:` line and one `data:` line, in either order, then a blank line).
fn events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "an SSE body ends with a blank line: {text:?}");
    text.trim_end_matches('\n')
        .split("\n\n")
        .filter(|e| !e.starts_with(':'))
        .map(|e| {
            let lines: Vec<&str> = e.lines().collect();
            assert_eq!(lines.len(), 2, "two lines per event: {e:?}");
            let field = |prefix: &str| lines.iter().find_map(|l| l.strip_prefix(prefix));
            let name = field("event: ").unwrap_or_else(|| panic!("no event: {e:?}"));
            let data = field("data: ").unwrap_or_else(|| panic!("no data: {e:?}"));
            let v: Value = serde_json::from_str(data).expect("data is JSON");
            assert_eq!(v["type"], name, "the data's type is the event's name");
            (name.to_string(), v)
        })
        .collect()
}

/// The greedy chat answer to [`QUESTION`] in `max_tokens` tokens (what the adapters must equal).
async fn chat_answer(s: &AppState, max_tokens: u32) -> String {
    let body = json!({"model": "any", "max_tokens": max_tokens, "temperature": 0,
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": QUESTION}]});
    let r = post(s, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["choices"][0]["message"]["content"].as_str().expect("content").to_string()
}

fn weather() -> Value {
    json!({"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": false})
}

fn valid_weather(input: &Value) -> bool {
    input.as_object().is_some_and(|o| o.len() == 2)
        && ["Paris", "London", "Tokyo"].contains(&input["city"].as_str().unwrap_or_default())
        && ["celsius", "fahrenheit"].contains(&input["unit"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn anthropic_messages_answer_as_chat_does_whole_and_streamed() {
    let s = state();
    let expected = chat_answer(&s, 16).await;
    let body = json!({"model": "any", "max_tokens": 16, "temperature": 0, "system": "Answer briefly.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]});
    let r = post(&s, MESSAGES, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = r.json();
    assert_eq!((m["type"].as_str(), m["role"].as_str()), (Some("message"), Some("assistant")), "{m}");
    assert!(m["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert_eq!(m["content"], json!([{"type": "text", "text": expected}]));
    assert!(["end_turn", "max_tokens"].contains(&m["stop_reason"].as_str().unwrap_or_default()), "{m}");
    let out = m["usage"]["output_tokens"].as_u64().expect("output_tokens");
    assert!(out > 0 && out <= 16 && m["usage"]["input_tokens"].as_u64() > Some(0), "{m}");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = post(&s, MESSAGES, &streamed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ev = events(&r.text);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(&names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
    let text: String = ev
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, v)| v["delta"]["text"].as_str().expect("text_delta").to_string())
        .collect();
    assert_eq!(text, expected);
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], m["stop_reason"]);
    assert_eq!(delta["usage"]["output_tokens"], out);

    // A stop sequence in the answer ends it there, and says which.
    let word = expected.split_whitespace().nth(1).expect("a second word").to_string();
    let mut stopped = body.clone();
    stopped["stop_sequences"] = json!(["no such text", word]);
    let m = post(&s, MESSAGES, &stopped).await.json();
    assert_eq!(
        (m["stop_reason"].as_str(), m["stop_sequence"].as_str()),
        (Some("stop_sequence"), Some(word.as_str())),
        "{m}"
    );
    let before = &expected[..expected.find(word.as_str()).expect("the word")];
    assert_eq!(m["content"][0]["text"].as_str().unwrap_or_default(), before, "{m}");
    stopped["stream"] = json!(true);
    let ev = events(&post(&s, MESSAGES, &stopped).await.text);
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_sequence"].as_str(), Some(word.as_str()), "{delta}");
}

#[tokio::test]
async fn anthropic_tool_use_is_forced_valid_and_streams_its_input() {
    let s = real_state();
    let body = json!({"model": "any", "max_tokens": 160, "temperature": 0,
        "tools": [{"name": "get_weather", "description": "The weather now in a city", "input_schema": weather()}],
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "What is the weather in Paris right now?"}]});
    let r = post(&s, MESSAGES, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = r.json();
    assert_eq!(m["stop_reason"], "tool_use", "{m}");
    let use_ = m["content"].as_array().and_then(|c| c.iter().find(|b| b["type"] == "tool_use")).expect("tool_use");
    assert_eq!(use_["name"], "get_weather");
    assert!(use_["id"].as_str().is_some_and(|id| id.starts_with("toolu_")));
    assert!(valid_weather(&use_["input"]), "{use_}");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let ev = events(&post(&s, MESSAGES, &streamed).await.text);
    let start = ev.iter().find(|(n, v)| n == "content_block_start" && v["content_block"]["type"] == "tool_use");
    assert_eq!(start.expect("a tool_use block").1["content_block"]["name"], "get_weather");
    let json_text: String = ev
        .iter()
        .filter(|(n, v)| n == "content_block_delta" && v["delta"]["type"] == "input_json_delta")
        .map(|(_, v)| v["delta"]["partial_json"].as_str().expect("partial_json").to_string())
        .collect();
    let input: Value = serde_json::from_str(&json_text).expect("the pieces make JSON");
    assert_eq!(input, use_["input"]);

    // The result goes back as a tool_result block.
    let follow = json!({"model": "any", "max_tokens": 20, "temperature": 0,
    "tools": [{"name": "get_weather", "input_schema": weather()}], "tool_choice": {"type": "none"},
    "messages": [
        {"role": "user", "content": "What is the weather in Paris right now?"},
        {"role": "assistant", "content": [use_.clone()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_["id"], "content": "18 C, clear"}]}
    ]});
    let r = post(&s, MESSAGES, &follow).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["content"][0]["type"], "text");
}

fn assert_anthropic_error(r: &Reply, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

#[tokio::test]
async fn anthropic_errors_carry_anthropics_envelope_and_keys_come_as_x_api_key() {
    let s = state();
    let ok = json!({"model": "any", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]});
    let mut no_max = ok.clone();
    no_max.as_object_mut().map(|o| o.remove("max_tokens"));
    assert_anthropic_error(&post(&s, MESSAGES, &no_max).await, 400, "invalid_request_error");
    let mut unknown = ok.clone();
    unknown["model"] = json!("no-such-model");
    assert_anthropic_error(&post(&s, MESSAGES, &unknown).await, 404, "not_found_error");
    assert_anthropic_error(&call(&s, "POST", MESSAGES, "{not json", &[]).await, 400, "invalid_request_error");
    // OpenAI's routes keep OpenAI's envelope.
    let r = post(&s, "/v1/chat/completions", &json!({"model": "any"})).await;
    assert!(r.json()["error"]["param"].is_string(), "{}", r.text);

    // With an API key: `x-api-key` is taken as `Authorization: Bearer` is.
    let mut cfg = config();
    cfg.api_key = Some("sk-shapes".into());
    let keyed = AppState::ready(cfg, model(), engine(32, 8));
    let r = call(&keyed, "POST", MESSAGES, ok.to_string(), &[("x-api-key", "wrong")]).await;
    assert_anthropic_error(&r, 401, "authentication_error");
    let r = call(&keyed, "POST", MESSAGES, ok.to_string(), &[("x-api-key", "sk-shapes")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(&keyed, "GET", "/v1/models", String::new(), &[("x-api-key", "sk-shapes")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn responses_answer_as_chat_does_whole_and_streamed() {
    let s = state();
    let expected = chat_answer(&s, 16).await;
    let body = json!({"model": "any", "input": QUESTION, "instructions": "Answer briefly.",
        "max_output_tokens": 16, "temperature": 0});
    let r = post(&s, RESPONSES, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("resp_")));
    assert!(["completed", "incomplete"].contains(&v["status"].as_str().unwrap_or_default()), "{v}");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["text"], expected.as_str());
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["input_tokens"].as_u64().unwrap_or(0) + usage["output_tokens"].as_u64().unwrap_or(0)
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let ev = events(&post(&s, RESPONSES, &streamed).await.text);
    for (i, (_, e)) in ev.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "sequence numbers count from 0");
    }
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..4],
        ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    );
    let last = ev.last().expect("events");
    assert_eq!(last.0, if v["status"] == "completed" { "response.completed" } else { "response.incomplete" });
    let text: String = ev
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, e)| e["delta"].as_str().expect("delta").to_string())
        .collect();
    assert_eq!(text, expected);
    assert_eq!(last.1["response"]["output"][0]["content"][0]["text"], expected.as_str());
}

#[tokio::test]
async fn responses_call_functions_and_follow_schemas() {
    let s = real_state();
    let tool = json!({"type": "function", "name": "get_weather", "description": "The weather now in a city",
        "parameters": weather()});
    let body = json!({"model": "any", "input": "What is the weather in Paris right now?", "max_output_tokens": 160,
        "temperature": 0, "tools": [tool], "tool_choice": "required"});
    let r = post(&s, RESPONSES, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let call = v["output"].as_array().and_then(|o| o.iter().find(|i| i["type"] == "function_call")).expect("a call");
    assert_eq!(call["name"], "get_weather");
    let args: Value = serde_json::from_str(call["arguments"].as_str().expect("arguments")).expect("JSON");
    assert!(valid_weather(&args), "{args}");

    // Streamed: the call's arguments in pieces, their sum the final item's.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let ev = events(&post(&s, RESPONSES, &streamed).await.text);
    let pieces: String = ev
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, e)| e["delta"].as_str().expect("delta").to_string())
        .collect();
    let done = ev.iter().find(|(n, _)| n == "response.function_call_arguments.done").expect("done");
    assert_eq!(done.1["arguments"].as_str(), Some(pieces.as_str()));
    assert_eq!(pieces, call["arguments"].as_str().expect("arguments"));

    // A JSON schema in `text.format`.
    let schema = json!({"type": "object", "properties": {"capital": {"type": "string", "maxLength": 30}},
        "required": ["capital"], "additionalProperties": false});
    let body = json!({"model": "any", "input": QUESTION, "max_output_tokens": 40, "temperature": 0,
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": true}}});
    let v = post(&s, RESPONSES, &body).await.json();
    let text = v["output"][0]["content"][0]["text"].as_str().expect("text");
    let answer: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(answer["capital"].is_string(), "{answer}");

    // Stateless: `previous_response_id` is refused, saying why.
    let r = post(&s, RESPONSES, &json!({"model": "any", "input": "Hi", "previous_response_id": "resp_1"})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["param"], "previous_response_id");
}
