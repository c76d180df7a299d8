//! `/openapi.json`: the document parses, lists every route, and agrees with the
//! validator field by field: each bounded request field's bounds are accepted
//! and the values just past them are refused with a 400 naming the field.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Map, Value};
use server::routes::openapi::document;
use server::validate::{chat, completion, embeddings, Context};
use server::{AppState, Limits, ServerConfig};
use tower::ServiceExt;

const N_VOCAB: usize = 1000;
const CONTEXT: usize = 512;

fn doc(limits: &Limits) -> Value {
    document(limits, &["m".to_string()], Some(N_VOCAB), Some(CONTEXT), false)
}

fn properties<'a>(doc: &'a Value, path: &str) -> &'a Map<String, Value> {
    doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{path} has no request properties"))
}

/// A minimal valid body for `path`, with `extra` merged in.
fn body(path: &str, extra: Value) -> Value {
    let mut b = if path.contains("chat") {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    } else {
        json!({"model": "m", "prompt": "hi"})
    };
    if let (Some(b), Value::Object(e)) = (b.as_object_mut(), extra) {
        b.extend(e);
    }
    b
}

/// Validates `body` as `path` does; `Err(param)` on a 400.
fn validate(path: &str, body: &Value, limits: &Limits) -> Result<(), String> {
    let ctx = Context { n_vocab: N_VOCAB, limits };
    let r =
        if path.contains("chat") { chat::parse(body, ctx).map(drop) } else { completion::parse(body, ctx).map(drop) };
    r.map_err(|e| {
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{body}: {e}");
        e.body()["error"]["param"].as_str().unwrap_or_default().to_string()
    })
}

/// Fields that need a companion to be valid at all.
fn companion(path: &str, name: &str) -> Value {
    match (path.contains("chat"), name) {
        (true, "top_logprobs") => json!({"logprobs": true}),
        _ => json!({}),
    }
}

fn merged(a: Value, b: Value) -> Value {
    let mut a = a;
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

#[test]
fn the_document_is_openapi_3_and_lists_every_route() {
    let d = doc(&Limits::default());
    assert_eq!(d["openapi"], "3.0.3");
    assert_eq!(d["security"], json!([]));
    let with_keys = document(&Limits::default(), &["m".to_string()], None, None, true);
    assert_eq!(with_keys["security"], json!([{ "bearer": [] }, { "apiKey": [] }]));
    assert_eq!(with_keys["paths"]["/health"]["get"]["security"], json!([]));
    let paths = d["paths"].as_object().expect("paths");
    for p in [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/messages",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/models",
        "/v1/models/{id}",
        "/v1/conversations",
        "/v1/conversations/{id}",
        "/v1/usage",
        "/health",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Every 4xx of the generation routes is OpenAI's error envelope.
    let responses = &d["paths"]["/v1/chat/completions"]["post"]["responses"];
    for code in ["400", "401", "404", "413", "429"] {
        assert_eq!(responses[code]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error");
    }
    let error = &d["components"]["schemas"]["Error"]["properties"]["error"]["required"];
    assert_eq!(error, &json!(["message", "type", "param", "code"]));
}

#[test]
fn the_embeddings_caps_and_formats_are_the_validators() {
    let limits = Limits::default();
    let d = doc(&limits);
    let body = &d["paths"]["/v1/embeddings"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let shapes = body["properties"]["input"]["oneOf"].as_array().expect("the input's shapes");
    let ctx = Context { n_vocab: N_VOCAB, limits: &limits };
    for shape in shapes.iter().filter(|s| s["maxItems"].is_u64()) {
        let cap = shape["maxItems"].as_u64().expect("cap") as usize;
        let item = if shape["items"]["type"] == "string" { json!("a") } else { json!([1]) };
        let input = |n: usize| json!({"model": "m", "input": vec![item.clone(); n]});
        assert!(embeddings::parse(&input(cap), ctx).is_ok(), "{cap} inputs of {item}");
        assert!(embeddings::parse(&input(cap + 1), ctx).is_err(), "{} inputs of {item}", cap + 1);
    }
    let top = shapes.iter().find(|s| s["items"]["type"] == "integer").expect("token ids");
    let max_id = top["items"]["maximum"].as_u64().expect("the largest id");
    assert!(embeddings::parse(&json!({"model": "m", "input": [max_id]}), ctx).is_ok());
    assert!(embeddings::parse(&json!({"model": "m", "input": [max_id + 1]}), ctx).is_err());
    for format in body["properties"]["encoding_format"]["enum"].as_array().expect("formats") {
        assert!(embeddings::parse(&json!({"model": "m", "input": "a", "encoding_format": format}), ctx).is_ok());
    }
}

#[test]
fn every_numeric_bound_in_the_document_is_the_validators() {
    let limits = Limits::default();
    let d = doc(&limits);
    let mut checked = 0;
    for path in ["/v1/chat/completions", "/v1/completions"] {
        for (name, schema) in properties(&d, path) {
            let integer = schema["type"] == "integer";
            if !integer && schema["type"] != "number" {
                continue;
            }
            let step = if integer { 1.0 } else { 0.001 };
            let num = |x: f64| if integer { json!(x as i64) } else { json!(x) };
            let with = |x: f64| merged(body(path, json!({ name: num(x) })), companion(path, name));
            if let Some(min) = schema["minimum"].as_f64() {
                if schema["exclusiveMinimum"] == true {
                    assert_eq!(
                        validate(path, &with(min), &limits),
                        Err(name.clone()),
                        "{path} {name} = {min} (exclusive)"
                    );
                    assert_eq!(validate(path, &with(min + step), &limits), Ok(()), "{path} {name} just above {min}");
                } else {
                    assert_eq!(validate(path, &with(min), &limits), Ok(()), "{path} {name} = {min}");
                    assert_eq!(validate(path, &with(min - step), &limits), Err(name.clone()), "{path} {name} < {min}");
                }
                checked += 1;
            }
            // `max_tokens` is bounded by the context at admission, against the prompt's length.
            if let Some(max) = schema["maximum"].as_f64().filter(|_| !name.starts_with("max_")) {
                assert_eq!(validate(path, &with(max), &limits), Ok(()), "{path} {name} = {max}");
                assert_eq!(validate(path, &with(max + step), &limits), Err(name.clone()), "{path} {name} > {max}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} bounds checked");
    // Found by schemathesis: 5e-324 is above 0 but rounds to 0 as an f32.
    for path in ["/v1/chat/completions", "/v1/completions"] {
        for name in ["top_p", "repetition_penalty"] {
            assert_eq!(validate(path, &body(path, json!({ name: 5e-324 })), &limits), Err(name.to_string()));
        }
    }
}

#[test]
fn enums_caps_and_lists_agree_with_the_validator() {
    let limits = Limits::default();
    let d = doc(&limits);
    let chat_path = "/v1/chat/completions";
    let p = properties(&d, chat_path);
    let ok =
        |extra: Value| assert_eq!(validate(chat_path, &body(chat_path, extra.clone()), &limits), Ok(()), "{extra}");
    let bad = |extra: Value, param: &str| {
        assert_eq!(validate(chat_path, &body(chat_path, extra.clone()), &limits), Err(param.to_string()), "{extra}")
    };
    // Every enum value, `null` included, is accepted.
    let tool = json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    for v in p["tool_choice"]["oneOf"][0]["enum"].as_array().expect("enum") {
        ok(json!({ "tool_choice": v, "tools": [tool] }));
    }
    ok(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}, "tools": [tool]}));
    bad(json!({"tool_choice": "required"}), "tool_choice");
    let max_tools = p["tools"]["maxItems"].as_u64().expect("maxItems") as usize;
    let named = |i: usize| json!({"type": "function", "function": {"name": format!("f{i}")}});
    ok(json!({ "tools": (0..max_tools).map(named).collect::<Vec<_>>() }));
    bad(json!({ "tools": (0..=max_tools).map(named).collect::<Vec<_>>() }), "tools");
    let call = json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
    for v in p["messages"]["items"]["properties"]["role"]["enum"].as_array().expect("roles") {
        ok(json!({"messages": [
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": v, "content": "x", "tool_call_id": "c1"}]}));
    }
    bad(json!({"messages": [{"role": "function", "content": "x"}]}), "messages[0].role");
    let max_messages = p["messages"]["maxItems"].as_u64().expect("maxItems") as usize;
    let m = json!({"role": "user", "content": "x"});
    ok(json!({ "messages": vec![m.clone(); max_messages] }));
    bad(json!({ "messages": vec![m; max_messages + 1] }), "messages");
    let stop = &p["stop"]["oneOf"][1];
    let (n, len) =
        (stop["maxItems"].as_u64().expect("n") as usize, stop["items"]["maxLength"].as_u64().expect("len") as usize);
    ok(json!({ "stop": vec!["s".repeat(len); n] }));
    bad(json!({ "stop": vec!["s"; n + 1] }), "stop");
    bad(json!({ "stop": "s".repeat(len + 1) }), "stop");
    bad(json!({ "stop": "" }), "stop");
    let user = p["user"]["maxLength"].as_u64().expect("user") as usize;
    ok(json!({ "user": "u".repeat(user) }));
    bad(json!({ "user": "u".repeat(user + 1) }), "user");
    let bias = &p["logit_bias"];
    let entries = bias["maxProperties"].as_u64().expect("maxProperties") as usize;
    let below = bias["x-token-id-below"].as_u64().expect("vocab") as usize;
    let map = |n: usize, v: f64| Value::Object((0..n).map(|i| (i.to_string(), json!(v))).collect());
    ok(json!({ "logit_bias": map(entries.min(below), 100.0) }));
    bad(json!({ "logit_bias": { below.to_string(): 1 } }), "logit_bias");
    bad(json!({ "logit_bias": { "1": -100.5 } }), "logit_bias.1");
    ok(json!({"response_format": {"type": "text"}}));
    ok(json!({"response_format": {"type": "json_object"}}));
    ok(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}}}));
    bad(json!({"response_format": {"type": "yaml"}}), "response_format");
    bad(json!({"response_format": {"type": "json_schema"}}), "response_format");
    ok(json!({"grammar": "start: \"yes\" | \"no\""}));
    ok(json!({"tools": []}));
    bad(json!({"tools": [{"type": "function"}]}), "tools[0].function");

    let cpath = "/v1/completions";
    let cp = properties(&d, cpath);
    let below = cp["prompt"]["oneOf"][2]["items"]["maximum"].as_u64().expect("token id max");
    assert_eq!(validate(cpath, &body(cpath, json!({ "prompt": [below] })), &limits), Ok(()));
    assert_eq!(validate(cpath, &body(cpath, json!({ "prompt": [below + 1] })), &limits), Err("prompt[0]".into()));
    assert_eq!(validate(cpath, &body(cpath, json!({ "prompt": [] })), &limits), Err("prompt".into()));
    assert_eq!(validate(cpath, &body(cpath, json!({ "best_of": 2 })), &limits), Err("best_of".into()));
    assert_eq!(validate(cpath, &body(cpath, json!({ "echo": true })), &limits), Err("echo".into()));
}

#[tokio::test]
async fn the_route_serves_the_document() {
    let state = AppState::new(ServerConfig::new("smol"));
    let req = Request::get("/openapi.json").body(Body::empty()).expect("request");
    let resp = server::router(state).oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    let d: Value = serde_json::from_slice(&bytes).expect("the document is JSON");
    assert_eq!(d["openapi"], "3.0.3");
    assert!(d["paths"]["/v1/chat/completions"]["post"].is_object());
    assert_eq!(
        d["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["properties"]["model"]["enum"],
        json!(["smol"])
    );
}
