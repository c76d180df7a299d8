//! The HTTP API through the router with `oneshot` (no socket): every bad input is a 4xx in
//! OpenAI's envelope, responses and stream chunks have OpenAI's shapes (on the tiny model),
//! and the answers are the model's (on the real default model, `real_state`).

mod serving;

use axum::http::StatusCode;
use serde_json::{json, Value};
use server::AppState;
use serving::{assert_envelope, call, post, real_state, sse_frames, state, streamed_text, MAX_BODY, N_CTX};

const CHAT: &str = "/v1/chat/completions";
const COMPLETIONS: &str = "/v1/completions";
const EMBEDDINGS: &str = "/v1/embeddings";

fn chat(extra: Value) -> Value {
    let mut body = json!({"model": "any", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

fn completion(extra: Value) -> Value {
    let mut body = json!({"model": "any", "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

fn embedding(extra: Value) -> Value {
    let mut body = json!({"model": "any"});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

/// Every case of the API's bad input: (what, route, body, status, param).
fn bad_inputs() -> Vec<(&'static str, &'static str, String, u16, Option<&'static str>)> {
    let n_vocab = serving::model().tokenizer.n_vocab();
    let c = |v: Value| chat(v).to_string();
    let p = |v: Value| completion(v).to_string();
    let e = |v: Value| embedding(v).to_string();
    vec![
        ("malformed JSON", CHAT, "{\"model\": \"any\", ".into(), 400, None),
        ("a body that is not an object", CHAT, "[1, 2]".into(), 400, Some("body")),
        ("an empty body", COMPLETIONS, String::new(), 400, None),
        ("temperature of the wrong type", CHAT, c(json!({"temperature": "warm"})), 400, Some("temperature")),
        ("temperature above 2", CHAT, c(json!({"temperature": 2.01})), 400, Some("temperature")),
        ("top_p of 0", CHAT, c(json!({"top_p": 0.0})), 400, Some("top_p")),
        ("top_p above 1", COMPLETIONS, p(json!({"top_p": 1.5})), 400, Some("top_p")),
        ("n above the cap", CHAT, c(json!({"n": 17})), 400, Some("n")),
        ("top_logprobs above 20", CHAT, c(json!({"logprobs": true, "top_logprobs": 21})), 400, Some("top_logprobs")),
        ("completions logprobs above 20", COMPLETIONS, p(json!({"logprobs": 21})), 400, Some("logprobs")),
        (
            "logit_bias id = vocabulary size",
            CHAT,
            c(json!({"logit_bias": {n_vocab.to_string(): 1}})),
            400,
            Some("logit_bias"),
        ),
        ("logit_bias above 100", CHAT, c(json!({"logit_bias": {"42": 100.5}})), 400, Some("logit_bias.42")),
        ("too many stop strings", CHAT, c(json!({"stop": ["a", "b", "c", "d", "e"]})), 400, Some("stop")),
        ("a too long stop string", CHAT, c(json!({"stop": "s".repeat(257)})), 400, Some("stop")),
        ("empty messages", CHAT, c(json!({"messages": []})), 400, Some("messages")),
        ("messages missing", CHAT, json!({"model": "any"}).to_string(), 400, Some("messages")),
        ("empty prompt", COMPLETIONS, p(json!({"prompt": ""})), 400, Some("prompt")),
        ("token id outside the vocabulary", COMPLETIONS, p(json!({"prompt": [1, n_vocab]})), 400, Some("prompt[1]")),
        ("max_tokens over the context", CHAT, c(json!({"max_tokens": N_CTX})), 400, Some("max_tokens")),
        ("prompt over the context", COMPLETIONS, p(json!({"prompt": vec![42; N_CTX + 1]})), 400, Some("prompt")),
        ("max_tokens of 0", COMPLETIONS, p(json!({"max_tokens": 0})), 400, Some("max_tokens")),
        ("unknown model", CHAT, c(json!({"model": "gpt-17"})), 404, Some("model")),
        ("unknown model (completions)", COMPLETIONS, p(json!({"model": "gpt-17"})), 404, Some("model")),
        ("body over the limit", CHAT, c(json!({"user": "u", "pad": "x".repeat(MAX_BODY)})), 413, None),
        (
            "an unsupported content part",
            CHAT,
            c(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})),
            400,
            Some("messages[0].content[0].type"),
        ),
        // Wrong types.
        ("model of the wrong type", CHAT, c(json!({"model": 7})), 400, Some("model")),
        ("max_tokens as a string", CHAT, c(json!({"max_tokens": "10"})), 400, Some("max_tokens")),
        ("max_tokens negative", COMPLETIONS, p(json!({"max_tokens": -1})), 400, Some("max_tokens")),
        ("max_tokens fractional", COMPLETIONS, p(json!({"max_tokens": 1.5})), 400, Some("max_tokens")),
        ("n of 0", CHAT, c(json!({"n": 0})), 400, Some("n")),
        ("n negative", COMPLETIONS, p(json!({"n": -3})), 400, Some("n")),
        ("stream as a string", CHAT, c(json!({"stream": "yes"})), 400, Some("stream")),
        ("messages as a string", CHAT, c(json!({"messages": "hello"})), 400, Some("messages")),
        ("a message that is not an object", CHAT, c(json!({"messages": ["hi"]})), 400, Some("messages[0]")),
        ("a message without a role", CHAT, c(json!({"messages": [{"content": "hi"}]})), 400, Some("messages[0].role")),
        (
            "an unknown role",
            CHAT,
            c(json!({"messages": [{"role": "wizard", "content": "hi"}]})),
            400,
            Some("messages[0].role"),
        ),
        (
            "content of the wrong type",
            CHAT,
            c(json!({"messages": [{"role": "user", "content": 42}]})),
            400,
            Some("messages[0].content"),
        ),
        (
            "a text part without text",
            CHAT,
            c(json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]})),
            400,
            Some("messages[0].content[0].text"),
        ),
        ("prompt of the wrong type", COMPLETIONS, p(json!({"prompt": {"text": "hi"}})), 400, Some("prompt")),
        (
            "a prompt list with a number among strings",
            COMPLETIONS,
            p(json!({"prompt": ["a", 3]})),
            400,
            Some("prompt[1]"),
        ),
        ("a negative token id", COMPLETIONS, p(json!({"prompt": [1, -5]})), 400, Some("prompt[1]")),
        ("an empty prompt list", COMPLETIONS, p(json!({"prompt": []})), 400, Some("prompt")),
        ("stop of the wrong type", CHAT, c(json!({"stop": 5})), 400, Some("stop")),
        ("a stop list with a number", CHAT, c(json!({"stop": ["a", 1]})), 400, Some("stop[1]")),
        ("an empty stop string", CHAT, c(json!({"stop": [""]})), 400, Some("stop")),
        ("a huge stop list", CHAT, c(json!({"stop": vec!["x"; 10_000]})), 400, Some("stop")),
        // Out of range.
        ("temperature negative", CHAT, c(json!({"temperature": -0.5})), 400, Some("temperature")),
        ("top_k negative", CHAT, c(json!({"top_k": -2})), 400, Some("top_k")),
        ("min_p above 1", CHAT, c(json!({"min_p": 1.5})), 400, Some("min_p")),
        ("frequency_penalty above 2", CHAT, c(json!({"frequency_penalty": 2.5})), 400, Some("frequency_penalty")),
        ("presence_penalty below -2", CHAT, c(json!({"presence_penalty": -2.5})), 400, Some("presence_penalty")),
        ("repetition_penalty of 0", CHAT, c(json!({"repetition_penalty": 0})), 400, Some("repetition_penalty")),
        ("a huge temperature", CHAT, c(json!({"temperature": 1e308})), 400, Some("temperature")),
        (
            "a number too large for f64",
            CHAT,
            chat(json!({})).to_string().replace("\"max_tokens\":4", "\"max_tokens\":1e999"),
            400,
            None,
        ),
        ("a huge max_tokens", COMPLETIONS, p(json!({"max_tokens": u64::MAX})), 400, Some("max_tokens")),
        ("a seed that is not an integer", CHAT, c(json!({"seed": 1.5})), 400, Some("seed")),
        ("top_logprobs without logprobs", CHAT, c(json!({"top_logprobs": 3})), 400, Some("top_logprobs")),
        ("top_logprobs negative", CHAT, c(json!({"logprobs": true, "top_logprobs": -1})), 400, Some("top_logprobs")),
        // Bad logit_bias.
        ("logit_bias key not a number", CHAT, c(json!({"logit_bias": {"abc": 1}})), 400, Some("logit_bias")),
        ("logit_bias negative key", CHAT, c(json!({"logit_bias": {"-1": 1}})), 400, Some("logit_bias")),
        ("logit_bias value not a number", CHAT, c(json!({"logit_bias": {"42": "high"}})), 400, Some("logit_bias.42")),
        ("logit_bias of the wrong type", CHAT, c(json!({"logit_bias": [1, 2]})), 400, Some("logit_bias")),
        // Encoding and structure.
        ("a lone surrogate escape", CHAT, c(json!({})).replace("Say hi.", "Say \\ud800 hi."), 400, None),
        ("invalid UTF-8 in the body", CHAT, String::from_utf8_lossy(b"{\"model\": \"\xff\"}").into_owned(), 400, None),
        ("deeply nested JSON", CHAT, format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)), 400, None),
        (
            "deep nesting in a field",
            CHAT,
            c(json!({})).replacen("{", &format!("{{\"user\": {}1{},", "[".repeat(5_000), "]".repeat(5_000)), 1),
            400,
            None,
        ),
        // Tools: what cannot be used is a 400 naming where.
        (
            "a tool whose name is not a string",
            CHAT,
            c(json!({"tools": [{"type": "function", "function": {"name": 5}}]})),
            400,
            Some("tools[0].function.name"),
        ),
        (
            "a tool whose parameters schema cannot be compiled",
            CHAT,
            c(json!({"tools": [{"type": "function", "function": {"name": "f",
                "parameters": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}}],
                "tool_choice": "required"})),
            400,
            Some("tools"),
        ),
        (
            "tool_choice naming an unknown function",
            CHAT,
            c(json!({"tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "g"}}})),
            400,
            Some("tool_choice.function.name"),
        ),
        (
            "a tool message answering no call",
            CHAT,
            c(json!({"messages": [{"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_9", "content": "18"}]})),
            400,
            Some("messages[1].tool_call_id"),
        ),
        (
            "a Responses request continuing a stored response",
            "/v1/responses",
            json!({"model": "any", "input": "hi", "previous_response_id": "resp_1"}).to_string(),
            400,
            Some("previous_response_id"),
        ),
        ("tools of the wrong type", CHAT, c(json!({"tools": "calculator"})), 400, Some("tools")),
        ("tool_choice of the wrong type", CHAT, c(json!({"tool_choice": 12})), 400, Some("tool_choice")),
        ("tool_choice asking for a tool", CHAT, c(json!({"tool_choice": "required"})), 400, Some("tool_choice")),
        (
            "chat_template_kwargs of the wrong type",
            CHAT,
            c(json!({"chat_template_kwargs": "enable_thinking=false"})),
            400,
            Some("chat_template_kwargs"),
        ),
        (
            "chat_template_kwargs replacing the messages",
            CHAT,
            c(json!({"chat_template_kwargs": {"messages": []}})),
            400,
            Some("chat_template_kwargs.messages"),
        ),
        // llama-server's tokenizer routes.
        ("tokenize without content", "/tokenize", json!({}).to_string(), 400, Some("content")),
        ("tokenize content of the wrong type", "/tokenize", json!({"content": 5}).to_string(), 400, Some("content")),
        (
            "tokenize with_pieces of the wrong type",
            "/tokenize",
            json!({"content": "a", "with_pieces": "yes"}).to_string(),
            400,
            Some("with_pieces"),
        ),
        ("tokenize for an unknown model", "/tokenize", json!({"content": "a", "model": "nope"}).to_string(), 404, None),
        (
            "detokenize a token id outside the vocabulary",
            "/detokenize",
            json!({"tokens": [1, n_vocab]}).to_string(),
            400,
            Some("tokens[1]"),
        ),
        (
            "detokenize tokens of the wrong type",
            "/detokenize",
            json!({"tokens": "1 2"}).to_string(),
            400,
            Some("tokens"),
        ),
        ("detokenize without tokens", "/detokenize", json!({}).to_string(), 400, Some("tokens")),
        ("embeddings without input", EMBEDDINGS, json!({"model": "any"}).to_string(), 400, Some("input")),
        ("embeddings of an empty string", EMBEDDINGS, e(json!({"input": ""})), 400, Some("input")),
        ("embeddings of an empty list", EMBEDDINGS, e(json!({"input": []})), 400, Some("input")),
        ("embeddings input of a number", EMBEDDINGS, e(json!({"input": 7})), 400, Some("input")),
        ("embeddings of mixed inputs", EMBEDDINGS, e(json!({"input": ["a", 1]})), 400, Some("input[1]")),
        ("embeddings token outside", EMBEDDINGS, e(json!({"input": [[1], [n_vocab]]})), 400, Some("input[1][0]")),
        (
            "embeddings in int8",
            EMBEDDINGS,
            e(json!({"input": "a", "encoding_format": "int8"})),
            400,
            Some("encoding_format"),
        ),
        ("embeddings of 0 dimensions", EMBEDDINGS, e(json!({"input": "a", "dimensions": 0})), 400, Some("dimensions")),
        ("embeddings shortened", EMBEDDINGS, e(json!({"input": "a", "dimensions": 8})), 400, Some("dimensions")),
        ("embeddings of 257 inputs", EMBEDDINGS, e(json!({"input": vec!["a"; 257]})), 400, Some("input")),
        ("embeddings over the context", EMBEDDINGS, e(json!({"input": [vec![1; N_CTX]]})), 400, Some("input")),
        (
            "embeddings of an unknown model",
            EMBEDDINGS,
            json!({"model": "nope", "input": "a"}).to_string(),
            404,
            Some("model"),
        ),
    ]
}

#[tokio::test]
async fn every_bad_input_is_a_4xx_in_the_openai_envelope() {
    let s = state();
    let cases = bad_inputs();
    assert!(cases.len() >= 50, "the table holds {} cases", cases.len());
    let mut wrong = Vec::new();
    for (what, route, body, status, param) in cases {
        let r = call(&s, "POST", route, body, &[]).await;
        if r.status.as_u16() != status {
            wrong.push(format!("{what}: status {} (want {status}): {}", r.status, r.text));
            continue;
        }
        let v = r.json();
        assert_envelope(&v);
        if let Some(param) = param {
            if v["error"]["param"] != param {
                wrong.push(format!("{what}: param {} (want {param})", v["error"]["param"]));
            }
        }
    }
    assert!(wrong.is_empty(), "{} cases answered wrongly:\n{}", wrong.len(), wrong.join("\n"));
}

#[tokio::test]
async fn tokenize_and_detokenize_in_llama_servers_shapes() {
    let s = real_state();
    // llama.cpp's ids for this prompt (the golden file's first case).
    let ids = json!([504, 3575, 282, 4649, 314]);
    let r = post(&s, "/tokenize", &json!({"content": "The capital of France is"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!({ "tokens": ids }));

    let r = post(&s, "/tokenize", &json!({"content": "The capital of France is", "with_pieces": true})).await;
    let v = r.json();
    let pieces: Vec<&str> = v["tokens"].as_array().unwrap().iter().map(|t| t["piece"].as_str().unwrap()).collect();
    assert_eq!(pieces.concat(), "The capital of France is");
    assert_eq!(v["tokens"][1], json!({"id": 3575, "piece": " capital"}));
    // A piece that is not UTF-8 on its own comes as its bytes; together they are the text.
    let r = post(&s, "/tokenize", &json!({"content": "日本🌍", "with_pieces": true})).await;
    let v = r.json();
    let mut bytes = Vec::new();
    for t in v["tokens"].as_array().unwrap() {
        match &t["piece"] {
            Value::String(p) => bytes.extend_from_slice(p.as_bytes()),
            Value::Array(b) => bytes.extend(b.iter().map(|x| x.as_u64().unwrap() as u8)),
            other => panic!("a piece is a string or bytes, not {other}"),
        }
    }
    assert_eq!(String::from_utf8(bytes).unwrap(), "日本🌍");
    assert!(v["tokens"].as_array().unwrap().iter().any(|t| t["piece"].is_array()), "{v}");

    // Special tokens are parsed unless asked not to.
    let r = post(&s, "/tokenize", &json!({"content": "<|im_start|>"})).await;
    assert_eq!(r.json()["tokens"].as_array().map(Vec::len), Some(1));
    let r = post(&s, "/tokenize", &json!({"content": "<|im_start|>", "parse_special": false})).await;
    assert!(r.json()["tokens"].as_array().map_or(0, Vec::len) > 1);

    let r = post(&s, "/detokenize", &json!({ "tokens": ids })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!({"content": "The capital of France is"}));
}

#[tokio::test]
async fn context_overflow_names_both_counts() {
    let s = real_state();
    let r = post(&s, COMPLETIONS, &completion(json!({"max_tokens": N_CTX - 2}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = r.json();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    // "The capital of France is" is 5 tokens.
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("5 tokens") && msg.contains(&(N_CTX - 2).to_string()) && msg.contains(&N_CTX.to_string()),
        "{msg}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_envelope() {
    let s = state();
    let r = call(&s, "GET", "/v1/engines", "", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_envelope(&r.json());
    let r = call(&s, "GET", CHAT, "", &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_envelope(&r.json());
}

#[tokio::test]
async fn completion_is_the_models_greedy_answer_in_openais_shape() {
    let s = real_state();
    let r = post(&s, COMPLETIONS, &completion(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("cmpl-")), "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(v["created"].as_u64().is_some_and(|t| t > 1_600_000_000));
    assert_eq!(v["model"], "any");
    assert!(v["system_fingerprint"].as_str().is_some_and(|f| f.starts_with("fp_")));
    let c = &v["choices"][0];
    // llama.cpp's greedy continuation (as `seed generate`).
    assert_eq!(c["text"], " Paris.\n\n");
    assert_eq!(c["index"], 0);
    assert_eq!(c["finish_reason"], "length");
    assert!(c["logprobs"].is_null());
    let u = &v["usage"];
    assert_eq!(
        (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64(), u["total_tokens"].as_u64()),
        (Some(5), Some(4), Some(9))
    );
    assert!(u["prompt_tokens_details"]["cached_tokens"].as_u64().is_some());
}

#[tokio::test]
async fn chat_answer_in_openais_shape_and_the_same_streamed() {
    let s = real_state();
    let body = chat(json!({"temperature": 0, "max_tokens": 12}));
    let r = post(&s, CHAT, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("chatcmpl-")), "{v}");
    assert_eq!(v["object"], "chat.completion");
    let c = &v["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    let text = c["message"]["content"].as_str().expect("content").to_string();
    assert!(!text.is_empty());
    assert!(["stop", "length"].contains(&c["finish_reason"].as_str().unwrap_or_default()));
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap_or(0) + u["completion_tokens"].as_u64().unwrap_or(0))
    );

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let r = post(&s, CHAT, &stream).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"].to_str().unwrap_or_default().starts_with("text/event-stream"));
    let frames = sse_frames(&r.text);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        frames[..frames.len() - 1].iter().map(|f| serde_json::from_str(f).expect("JSON")).collect();
    let id = chunks[0]["id"].as_str().expect("id");
    for ch in &chunks {
        assert_eq!(ch["id"], id, "one id per stream");
        assert_eq!(ch["object"], "chat.completion.chunk");
        assert!(ch.get("usage").is_some(), "with include_usage every chunk has `usage`: {ch}");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let last = chunks.last().expect("usage chunk");
    assert_eq!(last["choices"], json!([]));
    for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(last["usage"][k], v["usage"][k], "{k}");
    }
    // The same prompt again: its first full 32-token block comes from the prefix cache.
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 32, "{last}");
    let finish = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(finish["finish_reason"], c["finish_reason"]);
    assert_eq!(finish["delta"], json!({}));
    assert_eq!(streamed_text(&frames), text, "streamed text = whole text");
}

#[tokio::test]
async fn completion_stream_without_usage_has_no_usage_field() {
    let s = real_state();
    let r = post(&s, COMPLETIONS, &completion(json!({"stream": true, "logprobs": 2}))).await;
    let frames = sse_frames(&r.text);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(streamed_text(&frames), " Paris.\n\n");
    let mut tokens = 0;
    for f in &frames[..frames.len() - 1] {
        let ch: Value = serde_json::from_str(f).expect("JSON");
        assert_eq!(ch["object"], "text_completion");
        assert!(ch.get("usage").is_none(), "{ch}");
        let lp = &ch["choices"][0]["logprobs"];
        if !lp.is_null() {
            tokens += 1;
            assert_eq!(lp["top_logprobs"][0].as_object().map(|m| m.len()), Some(2), "{lp}");
        }
    }
    assert_eq!(tokens, 4, "one log-prob entry per token");
}

#[tokio::test]
async fn logprobs_in_both_formats() {
    let s = real_state();
    let r = post(&s, CHAT, &chat(json!({"temperature": 0, "logprobs": true, "top_logprobs": 3}))).await;
    let v = r.json();
    let content = v["choices"][0]["logprobs"]["content"].as_array().expect("content").clone();
    assert_eq!(content.len() as u64, v["usage"]["completion_tokens"].as_u64().expect("n"));
    for t in &content {
        let top = t["top_logprobs"].as_array().expect("top");
        assert_eq!(top.len(), 3);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(top[0]["token"], t["token"]);
        assert!(t["logprob"].as_f64().is_some_and(|l| l <= 0.0));
        assert!(t["bytes"].as_array().is_some_and(|b| !b.is_empty()));
    }
    let r = post(&s, COMPLETIONS, &completion(json!({"logprobs": 1}))).await;
    let lp = r.json()["choices"][0]["logprobs"].clone();
    assert_eq!(lp["tokens"], json!([" Paris", ".", "\n", "\n"]));
    assert_eq!(lp["text_offset"], json!([0, 6, 7, 8]));
    // llama.cpp gives " Paris" -0.2484 after this prompt.
    assert!((lp["token_logprobs"][0].as_f64().expect("lp") + 0.2484).abs() < 0.01, "{lp}");
}

#[tokio::test]
async fn stop_strings_end_the_text_before_them() {
    let s = real_state();
    let r = post(&s, COMPLETIONS, &completion(json!({"stop": ["."], "max_tokens": 8}))).await;
    let c = &r.json()["choices"][0];
    assert_eq!(c["text"], " Paris");
    assert_eq!(c["finish_reason"], "stop");
    let r = post(&s, COMPLETIONS, &completion(json!({"stop": "ris", "stream": true}))).await;
    assert_eq!(streamed_text(&sse_frames(&r.text)), " Pa");
}

#[tokio::test]
async fn seeds_repeat_and_n_choices_use_seed_plus_i() {
    let s = state();
    let body =
        completion(json!({"prompt": "Once upon a time", "temperature": 1.0, "max_tokens": 12, "seed": 7, "n": 3}));
    let texts = |v: Value| -> Vec<String> {
        v["choices"]
            .as_array()
            .expect("choices")
            .iter()
            .map(|c| c["text"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let a = texts(post(&s, COMPLETIONS, &body).await.json());
    let b = texts(post(&s, COMPLETIONS, &body).await.json());
    assert_eq!(a, b, "the same seed repeats");
    assert_eq!(a.len(), 3);
    assert!(a[0] != a[1] || a[1] != a[2], "choices differ: {a:?}");
    // Choice i has seed 7 + i: choice 1 is the seed-8 request's choice 0.
    let mut single = body.clone();
    single["n"] = json!(1);
    single["seed"] = json!(8);
    assert_eq!(texts(post(&s, COMPLETIONS, &single).await.json()), vec![a[1].clone()]);
}

#[tokio::test]
async fn several_prompts_and_n_choices_are_indexed_prompt_major() {
    let s = real_state();
    let body = completion(json!({"prompt": ["The capital of France is", "The capital of France is"], "n": 2}));
    let v = post(&s, COMPLETIONS, &body).await.json();
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 4);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["text"], " Paris.\n\n");
    }
    // Prompt tokens count once per prompt, not per choice.
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 16);
}

#[tokio::test]
async fn greedy_output_under_concurrent_load_equals_each_request_alone() {
    let s = state();
    let prompts = ["The capital of France is", "Water boils at", "My favourite colour is", "In 1492,"];
    let body = |p: &str| completion(json!({"prompt": p, "max_tokens": 24}));
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(post(&s, COMPLETIONS, &body(p)).await.json()["choices"][0]["text"].clone());
    }
    let mut tasks = Vec::new();
    for round in 0..3 {
        for p in prompts {
            let (s, b) = (s.clone(), body(p));
            tasks.push((round, p, tokio::spawn(async move { post(&s, COMPLETIONS, &b).await.json() })));
        }
    }
    for (round, p, t) in tasks {
        let v = t.await.expect("task");
        let i = prompts.iter().position(|x| *x == p).expect("prompt");
        assert_eq!(v["choices"][0]["text"], alone[i], "round {round}, {p:?}");
    }
}

#[tokio::test]
async fn models_health_and_metrics() {
    let s = state();
    let v = call(&s, "GET", "/v1/models", "", &[]).await.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], serving::MODEL_ID);
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(call(&s, "GET", "/v1/models/any", "", &[]).await.status, StatusCode::OK);
    assert_eq!(call(&s, "GET", "/v1/models/other", "", &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&s, "GET", "/health", "", &[]).await.json()["status"], "ok");
    post(&s, COMPLETIONS, &completion(json!({}))).await;
    let r = call(&s, "GET", "/metrics", "", &[]).await;
    assert!(r.headers["content-type"].to_str().unwrap_or_default().starts_with("text/plain"));
    let m = |name: &str| server::metrics::sample(&r.text, name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(m("seed_kv_blocks_total"), 256.0);
    assert!(m("seed_generation_tokens_total") >= 4.0);
    assert!(m("seed_time_to_first_token_seconds_count") >= 1.0);
    assert!(r.text.contains("seed_requests_finished_total{finish_reason=\"length\"}"));
}

#[tokio::test]
async fn loading_and_shutting_down_answer_503() {
    let loading = AppState::new(serving::config());
    let r = call(&loading, "GET", "/health", "", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_envelope(&r.json());
    let r = post(&loading, CHAT, &chat(json!({}))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("loading")));
    assert_eq!(call(&loading, "GET", "/v1/models", "", &[]).await.status, StatusCode::OK);
    let metrics = call(&loading, "GET", "/metrics", "", &[]).await.text;
    assert_eq!(server::metrics::sample(&metrics, "seed_ready"), Some(0.0));

    let closing = AppState::ready(serving::config(), serving::model(), serving::engine(8, 4));
    assert_eq!(call(&closing, "GET", "/health", "", &[]).await.status, StatusCode::OK);
    closing.begin_shutdown();
    assert_eq!(call(&closing, "GET", "/health", "", &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = post(&closing, COMPLETIONS, &completion(json!({}))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("shutting down")));
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after_at_once() {
    // A waiting queue of zero: every submission finds it full.
    let busy = AppState::ready(serving::config(), serving::model(), serving::engine(8, 0));
    let r = post(&busy, COMPLETIONS, &completion(json!({}))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.headers["retry-after"], "1");
    assert_envelope(&r.json());
    let metrics = call(&busy, "GET", "/metrics", "", &[]).await.text;
    assert!(metrics.contains("seed_requests_rejected_total{reason=\"queue_full\"} 1\n"), "{metrics}");
}

#[tokio::test]
async fn the_api_key_guards_every_route_but_health() {
    let mut cfg = serving::config();
    cfg.api_key = Some("sk-test".into());
    let guarded = AppState::ready(cfg, serving::model(), serving::engine(8, 4));
    assert_eq!(call(&guarded, "GET", "/health", "", &[]).await.status, StatusCode::OK);
    for (method, path) in
        [("GET", "/v1/models"), ("GET", "/metrics"), ("POST", CHAT), ("POST", COMPLETIONS), ("GET", "/nope")]
    {
        let r = call(&guarded, method, path, completion(json!({})).to_string(), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_envelope(&r.json());
        let r = call(&guarded, method, path, "", &[("authorization", "Bearer sk-wrong")]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let ok = [("authorization", "Bearer sk-test")];
    assert_eq!(call(&guarded, "GET", "/v1/models", "", &ok).await.status, StatusCode::OK);
    let r = call(&guarded, "POST", COMPLETIONS, completion(json!({})).to_string(), &ok).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn streamed_text_never_splits_a_character() {
    let s = real_state();
    let body = completion(json!({"prompt": "日本の首都は東京です。中国の首都は", "max_tokens": 24}));
    let whole = post(&s, COMPLETIONS, &body).await.json()["choices"][0]["text"].as_str().expect("text").to_string();
    assert!(!whole.is_ascii(), "a multi-byte answer: {whole:?}");
    assert!(!whole.contains('\u{FFFD}'), "no replacement characters: {whole:?}");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let frames = sse_frames(&post(&s, COMPLETIONS, &streamed).await.text);
    // Each chunk is a JSON string, so whole characters; together they are the answer.
    assert_eq!(streamed_text(&frames), whole);
}

#[tokio::test]
async fn the_chat_page_is_served_at_the_root_even_with_an_api_key() {
    let mut cfg = serving::config();
    cfg.api_key = Some("sk-test".into());
    let guarded = AppState::ready(cfg, serving::model(), serving::engine(8, 4));
    let r = call(&guarded, "GET", "/", "", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.starts_with("<!doctype html>") && r.text.contains("/v1/chat/completions"), "{}", r.text);
    // Everything is in the page: nothing is fetched from another host.
    assert!(!r.text.contains("http://") && !r.text.contains("https://") && !r.text.contains("src="));
}

#[tokio::test]
async fn tenant_keys_guard_every_route_with_one_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(platform::Store::open_file(&dir.path().join("keys.sqlite")).expect("store"));
    let (live, secret) = platform::keys::create(&store, "acme").expect("create");
    let (dead, revoked_secret) = platform::keys::create(&store, "acme").expect("create");
    platform::keys::revoke(&[std::sync::Arc::clone(&store)], &dead.id).expect("revoke");
    let mut cfg = serving::config();
    cfg.keys = Some(std::sync::Arc::new(platform::KeyStore::new(vec![store])));
    let guarded = AppState::ready(cfg, serving::model(), serving::engine(8, 4));
    assert_eq!(call(&guarded, "GET", "/health", "", &[]).await.status, StatusCode::OK);
    let malformed = "Basic abc".to_string();
    let unknown = format!("Bearer {}", "sk-seed-0".repeat(8));
    let revoked = format!("Bearer {revoked_secret}");
    let mut bodies = Vec::new();
    for (method, path) in [("GET", "/v1/models"), ("POST", CHAT), ("POST", COMPLETIONS)] {
        let r = call(&guarded, method, path, completion(json!({})).to_string(), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "missing: {method} {path}");
        bodies.push(r.text);
        for header in [&malformed, &unknown, &revoked] {
            let r = call(&guarded, method, path, "", &[("authorization", header.as_str())]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{header}: {method} {path}");
            assert_envelope(&r.json());
            bodies.push(r.text);
        }
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every 401 is the same: {bodies:?}");
    let ok = format!("Bearer {secret}");
    let ok = [("authorization", ok.as_str())];
    assert_eq!(call(&guarded, "GET", "/v1/models", "", &ok).await.status, StatusCode::OK, "{}", live.id);
    let r = call(&guarded, "POST", COMPLETIONS, completion(json!({})).to_string(), &ok).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_tenant_gets_403_for_editions_outside_its_region_or_allow_list() {
    let config = platform::Config::parse(
        r#"
        [[region]]
        name = "cn"
        [[region]]
        name = "global"
        [[edition]]
        name = "doubao"
        model = "gemma3-270m"
        regions = ["cn"]
        [[edition]]
        name = "cici"
        model = "tiny-llama"
        regions = ["global"]
        [[tenant]]
        id = "acme"
        region = "cn"
        editions = ["doubao"]
        [[tenant]]
        id = "globex"
        region = "global"
        editions = ["cici"]
        "#,
    )
    .expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(platform::Store::open_file(&dir.path().join("keys.sqlite")).expect("store"));
    let (_, acme) = platform::keys::create(&store, "acme").expect("create");
    let (_, globex) = platform::keys::create(&store, "globex").expect("create");
    let mut cfg = serving::config();
    cfg.aliases.push("cici".into());
    cfg.keys = Some(std::sync::Arc::new(platform::KeyStore::new(vec![store])));
    cfg.platform = Some(std::sync::Arc::new(config));
    let s = AppState::ready(cfg, serving::model(), serving::engine(8, 4));
    let acme = format!("Bearer {acme}");
    let globex = format!("Bearer {globex}");
    for (key, model, status) in [
        (&acme, "cici", StatusCode::FORBIDDEN),
        (&globex, "doubao", StatusCode::FORBIDDEN),
        (&globex, "nonexistent", StatusCode::FORBIDDEN),
        (&globex, "cici", StatusCode::OK),
    ] {
        for path in [CHAT, COMPLETIONS] {
            let body = if path == CHAT { chat(json!({"model": model})) } else { completion(json!({"model": model})) };
            let r = call(&s, "POST", path, body.to_string(), &[("authorization", key.as_str())]).await;
            assert_eq!(r.status, status, "{model} {path}: {}", r.text);
            if status == StatusCode::FORBIDDEN {
                assert_envelope(&r.json());
                assert!(r.text.contains("may not use"), "{}", r.text);
            }
        }
    }
}

/// The `embedding` of each item of an embeddings response, as floats (decoding base64).
fn vectors(v: &Value) -> Vec<Vec<f32>> {
    let data = v["data"].as_array().expect("data");
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(
                (item["object"].as_str(), item["index"].as_u64()),
                (Some("embedding"), Some(i as u64)),
                "{item}"
            );
            match &item["embedding"] {
                Value::Array(a) => a.iter().map(|x| x.as_f64().expect("a number") as f32).collect(),
                Value::String(b64) => {
                    let out = std::process::Command::new("python3")
                        .args([
                            "-c",
                            "import base64,sys,struct; b=base64.b64decode(sys.argv[1]); \
                               print(' '.join(repr(x) for x in struct.unpack('<%df' % (len(b)//4), b)))",
                            b64,
                        ])
                        .output()
                        .expect("python3");
                    String::from_utf8_lossy(&out.stdout).split_whitespace().map(|x| x.parse().expect("f32")).collect()
                }
                other => panic!("embedding is {other}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn embeddings_are_unit_vectors_in_input_order_the_same_alone_batched_or_beside_a_generation() {
    let s = state();
    let texts = ["The capital of France", "is Paris", "and of Japan, Tokyo."];
    let embed = |input: Value, extra: Value| {
        let mut body = embedding(json!({"input": input}));
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let s = s.clone();
        async move {
            let r = post(&s, EMBEDDINGS, &body).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.json()
        }
    };
    let m = serving::model();
    let n_embd = m.model.hparams().n_embd;
    let alone: Vec<Vec<f32>> = {
        let mut out = Vec::new();
        for t in texts {
            let v = embed(json!(t), json!({})).await;
            assert_eq!((v["object"].as_str(), v["model"].as_str()), (Some("list"), Some("any")), "{v}");
            let n = m.tokenize_chat_prompt(t).len() as u64;
            assert_eq!(v["usage"], json!({"prompt_tokens": n, "total_tokens": n}));
            out.extend(vectors(&v));
        }
        out
    };
    for e in &alone {
        assert_eq!(e.len(), n_embd);
        let norm = e.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length: {norm}");
    }
    assert!(alone[0] != alone[1] && alone[1] != alone[2], "different inputs, different vectors");

    // Batched, in order, each the same bits as alone; usage sums the inputs.
    let batch = embed(json!(texts), json!({})).await;
    assert_eq!(vectors(&batch), alone);
    let total: u64 = texts.iter().map(|t| m.tokenize_chat_prompt(t).len() as u64).sum();
    assert_eq!(batch["usage"]["prompt_tokens"], total);
    // As token ids; as base64 (the same little-endian f32 values); `dimensions` = the model's.
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| m.tokenize_chat_prompt(t)).collect();
    assert_eq!(vectors(&embed(json!(ids), json!({})).await), alone);
    assert_eq!(vectors(&embed(json!(ids[0]), json!({})).await), alone[..1]);
    let b64 = embed(json!(texts), json!({"encoding_format": "base64", "dimensions": n_embd})).await;
    assert!(b64["data"][0]["embedding"].is_string(), "{b64}");
    assert_eq!(vectors(&b64), alone);

    // Beside a long generation in the same engine batches: still the same bits.
    let long = completion(json!({"max_tokens": 200, "ignore_eos": true}));
    let (generated, beside) = tokio::join!(post(&s, COMPLETIONS, &long), embed(json!(texts), json!({})));
    assert_eq!(generated.status, StatusCode::OK);
    assert_eq!(vectors(&beside), alone);
}
