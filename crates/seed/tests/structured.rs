//! Structured output on the real default model (SmolLM2, in process): `response_format` with a
//! JSON schema or any JSON object, and the `grammar` extension (a Lark grammar), constrain the
//! decoding so that the answer is JSON that validates against the schema — greedy and sampled,
//! whole and streamed, for every choice of `n` — or is cut by `max_tokens` (`finish_reason:
//! length`); a schema or grammar that cannot be compiled is a 400 naming `response_format` or
//! `grammar`.

mod serving;

use serde_json::{json, Value};
use serving::{assert_envelope, post, sse_frames, state, streamed_text};

const CHAT: &str = "/v1/chat/completions";

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]}
        },
        "required": ["name", "age", "city"],
        "additionalProperties": false
    })
}

/// Whether `v` is a person as [`person_schema`] says (checked by hand, field by field).
fn is_person(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.len() == 3
        && o["name"].as_str().is_some_and(|s| s.chars().count() <= 40)
        && o["age"].as_i64().is_some_and(|a| (0..=150).contains(&a))
        && o["city"].as_str().is_some_and(|c| ["Paris", "London", "Tokyo"].contains(&c))
}

fn ask(extra: Value) -> Value {
    let mut body = json!({"model": "any", "max_tokens": 80, "temperature": 0,
        "messages": [{"role": "user", "content": "Invent a person: their name, age and city, as JSON."}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn schema_format() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "person", "schema": person_schema(), "strict": true}})
}

#[tokio::test]
async fn a_json_schema_answer_validates_greedy_sampled_and_streamed() {
    let s = state();
    // Greedy, whole.
    let r = post(&s, CHAT, &ask(json!({"response_format": schema_format()}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let text = v["choices"][0]["message"]["content"].as_str().expect("content");
    let answer: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(is_person(&answer), "{text}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(!text.contains('\n'), "no free whitespace: {text:?}");

    // Sampled, three choices, each its own constrained sequence.
    let r =
        post(&s, CHAT, &ask(json!({"response_format": schema_format(), "temperature": 1.0, "n": 3, "seed": 7}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for c in r.json()["choices"].as_array().expect("choices") {
        let text = c["message"]["content"].as_str().expect("content");
        if c["finish_reason"] == "stop" {
            let answer: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            assert!(is_person(&answer), "{text}");
        } else {
            assert_eq!(c["finish_reason"], "length", "{c}");
        }
    }

    // Streamed: the deltas put together are the same valid answer as the whole one.
    let r = post(&s, CHAT, &ask(json!({"response_format": schema_format(), "stream": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let streamed = streamed_text(&sse_frames(&r.text));
    assert_eq!(streamed, text, "streamed and whole greedy answers differ");
}

#[tokio::test]
async fn json_object_and_a_lark_grammar_shape_the_answer() {
    let s = state();
    // Any JSON object: complete when the model ends it, else a prefix of one cut at max_tokens.
    let r = post(&s, CHAT, &ask(json!({"response_format": {"type": "json_object"}, "max_tokens": 200}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let text = v["choices"][0]["message"]["content"].as_str().expect("content").to_string();
    if v["choices"][0]["finish_reason"] == "stop" {
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert!(v.is_object(), "{text}");
    } else {
        assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
        assert!(text.starts_with('{'), "{text}");
    }

    let body = json!({"model": "any", "max_tokens": 8, "temperature": 0, "grammar": "start: \"yes\" | \"no\"",
        "messages": [{"role": "user", "content": "Is the sky green? Answer yes or no."}]});
    let r = post(&s, CHAT, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let answer = v["choices"][0]["message"]["content"].as_str().expect("content");
    assert!(answer == "yes" || answer == "no", "{answer:?}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    // Text completions take the same fields.
    let body = json!({"model": "any", "prompt": "The colour of the sky:", "max_tokens": 30, "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema":
            {"type": "object", "properties": {"colour": {"type": "string", "enum": ["blue", "green"]}},
             "required": ["colour"], "additionalProperties": false}}}});
    let r = post(&s, "/v1/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r.json()["choices"][0]["text"].as_str().expect("text").to_string();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(v["colour"] == "blue" || v["colour"] == "green", "{text}");
}

#[tokio::test]
async fn an_answer_cut_by_max_tokens_says_length_and_is_a_valid_prefix() {
    let s = state();
    let r = post(&s, CHAT, &ask(json!({"response_format": schema_format(), "max_tokens": 4}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    let text = v["choices"][0]["message"]["content"].as_str().expect("content");
    assert!(text.starts_with('{'), "{text:?}");
}

#[tokio::test]
async fn schemas_and_grammars_that_cannot_be_used_are_400s_naming_the_field() {
    let s = state();
    let cases = [
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
            "schema": {"type": "object", "properties": {"a": {"type": "frobnicate"}}}}}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
            "schema": {"type": "integer", "minimum": 5, "maximum": 1}}}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
            "schema": {"$ref": "#/definitions/missing"}}}}),
            "response_format",
        ),
        (json!({"grammar": "start: nothing_defined_here"}), "grammar"),
        (json!({"grammar": "   "}), "grammar"),
    ];
    for (extra, param) in cases {
        let r = post(&s, CHAT, &ask(extra.clone())).await;
        assert_eq!(r.status, 400, "{extra}: {}", r.text);
        let v = r.json();
        assert_envelope(&v);
        assert_eq!(v["error"]["param"], param, "{v}");
    }
}
