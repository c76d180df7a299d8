//! `GET /openapi.json`: an OpenAPI 3.0 document of this server's API, for
//! clients and for schema-driven fuzzers (schemathesis).
//!
//! The document is built per request from what the validators enforce on this
//! server: the ranges are the constants `validate` checks against, the caps are
//! this server's [`Limits`], the model names are the ones it serves, token ids
//! are bounded by the loaded vocabulary. Rules between fields are stated as
//! `anyOf`s where OpenAPI 3.0 can (`stream_options` needs `stream`), in the
//! description where it cannot (the prompt plus `max_tokens` fit the context). It is
//! not derived from the validator's code by a macro; instead the test
//! `crates/server/tests/openapi.rs` walks every bounded request field of the
//! document and checks that the validator accepts its bounds and rejects the
//! values just past them with a 400, so the two cannot drift apart silently.
//!
//! Like `/v1/models`, it sits behind the API-key guard: it names the served
//! models and the limits.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::config::Limits;
use crate::state::AppState;
use crate::validate::fields::open_lower_bound;

/// One numeric request field and the range the validator enforces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Field name (top level of the body).
    pub name: &'static str,
    /// `integer` or `number`.
    pub integer: bool,
    /// Lowest accepted value.
    pub min: f64,
    /// Whether `min` itself is refused (`(min, max]`).
    pub exclusive_min: bool,
    /// Highest accepted value (`None`: a server cap, filled in from [`Limits`]).
    pub max: Option<f64>,
}

const fn number(name: &'static str, min: f64, max: f64, exclusive_min: bool) -> Range {
    Range { name, integer: false, min, exclusive_min, max: Some(max) }
}

/// The sampling ranges `validate::gen_params` checks, shared by chat and
/// completions.
pub const SAMPLING: &[Range] = &[
    number("temperature", 0.0, 2.0, false),
    number("top_p", 0.0, 1.0, true),
    number("min_p", 0.0, 1.0, false),
    number("frequency_penalty", -2.0, 2.0, false),
    number("presence_penalty", -2.0, 2.0, false),
    number("repetition_penalty", 0.0, 2.0, true),
    Range { name: "top_k", integer: true, min: -1.0, exclusive_min: false, max: Some(u32::MAX as f64) },
];

/// The document for a server with these limits, model names, vocabulary size
/// and context (the last two unknown while the model loads).
///
/// With `auth`, every route but `/health` is documented as needing a bearer key
/// (the server has `--api-key` or tenant keys); without, none does.
pub fn document(
    limits: &Limits,
    models: &[String],
    n_vocab: Option<usize>,
    context: Option<usize>,
    auth: bool,
) -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let error_response =
        |what: &str| json!({ "description": what, "content": { "application/json": { "schema": error } } });
    let errors = |codes: &[(&str, &str)]| -> Map<String, Value> {
        codes.iter().map(|(code, what)| (code.to_string(), error_response(what))).collect()
    };
    let common = [
        ("400", "Invalid request (the envelope names the parameter)"),
        ("401", "Missing or wrong API key"),
        ("403", "The tenant may not use this model"),
        ("404", "Unknown model or path"),
        ("413", "Body over the size limit"),
        ("429", "Busy or over a quota (Retry-After)"),
        ("503", "Loading, failed to load, or shutting down"),
    ];
    let json_body =
        |schema: Value| json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    let ok = |what: &str, schema: Value| {
        json!({ "description": what, "content": {
            "application/json": { "schema": schema },
        } })
    };
    let streamed = |what: &str, schema: Value| {
        json!({ "description": what, "content": {
            "application/json": { "schema": schema },
            "text/event-stream": { "schema": { "type": "object", "required": ["data"],
                "description": "One server-sent event: `data` is a JSON chunk, or `[DONE]` last.",
                "properties": { "data": { "type": "string" }, "event": { "type": "string" } } } },
        } })
    };
    let with = |mut responses: Map<String, Value>, ok: Value| {
        responses.insert("200".into(), ok);
        Value::Object(responses)
    };
    let generation = errors(&common);
    let plain = errors(&[("401", "Missing or wrong API key"), ("503", "Not ready")]);
    let token_id = match n_vocab {
        Some(n) => json!({ "type": "integer", "minimum": 0, "maximum": n.saturating_sub(1) }),
        None => json!({ "type": "integer", "minimum": 0 }),
    };

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Seed",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "OpenAI-compatible chat and text completions, conversations and usage. \
                Errors use OpenAI's envelope: {\"error\": {\"message\", \"type\", \"param\", \"code\"}}.",
        },
        "servers": [{ "url": "/" }],
        "security": if auth { json!([{ "bearer": [] }, { "apiKey": [] }]) } else { json!([]) },
        "paths": {
            "/v1/chat/completions": { "post": {
                "operationId": "createChatCompletion",
                "requestBody": json_body(chat_request(limits, models, n_vocab, context)),
                "responses": with(generation.clone(), streamed("A chat completion, or its chunks when `stream` is true",
                    json!({ "$ref": "#/components/schemas/ChatCompletion" }))),
            } },
            "/v1/completions": { "post": {
                "operationId": "createCompletion",
                "requestBody": json_body(completion_request(limits, models, n_vocab, context)),
                "responses": with(generation.clone(), streamed("A text completion, or its chunks when `stream` is true",
                    json!({ "$ref": "#/components/schemas/Completion" }))),
            } },
            "/v1/messages": { "post": {
                "operationId": "createMessage",
                "description": "Anthropic's Messages API, run as a chat: `system`, text, `tool_use` and \
                    `tool_result` blocks, `tools` with `input_schema`, `tool_choice` (auto, any, tool, none), \
                    `stop_sequences`, `output_config.format` JSON schemas, streaming events `message_start` … \
                    `message_stop`. Errors use Anthropic's envelope: {\"type\": \"error\", \"error\": \
                    {\"type\", \"message\"}}. The key may be sent as `x-api-key`.",
                "requestBody": json_body(json!({ "type": "object", "required": ["model", "max_tokens", "messages"],
                    "properties": {
                        "model": { "type": "string" },
                        "max_tokens": { "type": "integer", "minimum": 1 },
                        "messages": { "type": "array", "minItems": 1, "items": { "type": "object",
                            "required": ["role", "content"], "properties": {
                                "role": { "type": "string", "enum": ["user", "assistant"] },
                                "content": { "oneOf": [{ "type": "string" }, { "type": "array", "items": { "type": "object" } }] } } } },
                        "system": { "oneOf": [{ "type": "string" }, { "type": "array", "items": { "type": "object" } }] },
                        "temperature": { "type": "number", "minimum": 0, "maximum": 1 },
                        "stop_sequences": { "type": "array", "items": { "type": "string" } },
                        "stream": { "type": "boolean" },
                        "tools": { "type": "array", "items": { "type": "object", "required": ["name", "input_schema"] } },
                        "tool_choice": { "type": "object", "required": ["type"] },
                    } })),
                "responses": with(generation.clone(), streamed("A message, or its events when `stream` is true",
                    json!({ "type": "object", "required": ["id", "type", "role", "content", "stop_reason", "usage"] }))),
            } },
            "/v1/responses": { "post": {
                "operationId": "createResponse",
                "description": "OpenAI's Responses API, run as a chat and stateless (`previous_response_id` is a \
                    400): `input` as text or items (messages, `function_call`, `function_call_output`), \
                    `instructions`, `text.format`, function tools, `max_output_tokens`, streaming `response.*` events.",
                "requestBody": json_body(json!({ "type": "object", "required": ["model", "input"],
                    "properties": {
                        "model": { "type": "string" },
                        "input": { "oneOf": [{ "type": "string" }, { "type": "array", "minItems": 1, "items": { "type": "object" } }] },
                        "instructions": { "type": "string", "nullable": true },
                        "max_output_tokens": { "type": "integer", "minimum": 1, "nullable": true },
                        "text": { "type": "object", "nullable": true },
                        "tools": { "type": "array", "items": { "type": "object", "required": ["type", "name"] } },
                        "stream": { "type": "boolean", "nullable": true },
                    } })),
                "responses": with(generation, streamed("A response, or its events when `stream` is true",
                    json!({ "type": "object", "required": ["id", "object", "status", "output"] }))),
            } },
            "/v1/embeddings": { "post": {
                "operationId": "createEmbedding",
                "description": "OpenAI's embeddings: one vector per input, the final-normed hidden state at \
                    the input's last token, scaled to unit length (last-token pooling, for decoder models and \
                    files that declare it; other poolings are a 400). `dimensions`, if given, must be the \
                    model's own. Each input plus one position must fit the context.",
                "requestBody": json_body(json!({ "type": "object", "required": ["model", "input"],
                    "properties": {
                        "model": { "type": "string" },
                        "input": { "oneOf": [
                            { "type": "string", "minLength": 1 },
                            { "type": "array", "minItems": 1, "maxItems": limits.max_embedding_inputs,
                              "items": { "type": "string", "minLength": 1 } },
                            { "type": "array", "minItems": 1, "items": token_id.clone() },
                            { "type": "array", "minItems": 1, "maxItems": limits.max_embedding_inputs,
                              "items": { "type": "array", "minItems": 1, "items": token_id.clone() } },
                        ] },
                        "encoding_format": { "type": "string", "enum": ["float", "base64"] },
                        "dimensions": { "type": "integer", "minimum": 1 },
                        "user": { "type": "string" },
                    } })),
                "responses": with(errors(&common),
                    ok("One embedding per input, in input order", json!({ "type": "object",
                    "required": ["object", "data", "model", "usage"], "properties": {
                        "object": { "type": "string", "enum": ["list"] },
                        "data": { "type": "array", "items": { "type": "object",
                            "required": ["object", "index", "embedding"], "properties": {
                            "object": { "type": "string", "enum": ["embedding"] },
                            "index": { "type": "integer" },
                            "embedding": { "oneOf": [{ "type": "array", "items": { "type": "number" } },
                                { "type": "string", "format": "byte" }] } } } },
                        "model": { "type": "string" },
                        "usage": { "type": "object", "required": ["prompt_tokens", "total_tokens"] } } }))),
            } },
            "/v1/models": { "get": {
                "operationId": "listModels",
                "responses": with(plain.clone(), ok("The served model and its aliases", json!({ "$ref": "#/components/schemas/ModelList" }))),
            } },
            "/v1/models/{id}": { "get": {
                "operationId": "getModel",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": with(errors(&[("401", "Missing or wrong API key"), ("404", "Not a served model")]),
                    ok("The model", json!({ "$ref": "#/components/schemas/Model" }))),
            } },
            "/v1/conversations": {
                "post": {
                    "operationId": "createConversation",
                    "requestBody": { "required": false, "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": {
                            "title": { "type": "string", "nullable": true, "maxLength": 1000 },
                            "model": { "type": "string", "nullable": true, "maxLength": 256 },
                        },
                    } } } },
                    "responses": with(errors(&[("400", "Invalid body"), ("401", "Missing or wrong API key"),
                        ("413", "Body over the size limit"), ("503", "No conversation store")]),
                        ok("The new conversation", json!({ "$ref": "#/components/schemas/Conversation" }))),
                },
                "get": {
                    "operationId": "listConversations",
                    "parameters": [{ "name": "q", "in": "query", "description": "Only the conversations whose title or any message contains this text (ASCII letters in either case)",
                        "schema": { "type": "string", "maxLength": 200 } }],
                    "responses": with(errors(&[("401", "Missing or wrong API key"), ("503", "No conversation store")]),
                        ok("The caller's conversations, most recent first", json!({ "type": "object",
                            "required": ["object", "data"],
                            "properties": { "object": { "type": "string" },
                                "data": { "type": "array", "items": { "$ref": "#/components/schemas/Conversation" } } } }))),
                },
            },
            "/v1/conversations/{id}": {
                "get": {
                    "operationId": "getConversation",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": with(errors(&[("401", "Missing or wrong API key"), ("404", "Unknown conversation"),
                        ("503", "No conversation store")]), ok("The conversation and its messages", json!({ "type": "object" }))),
                },
                "post": {
                    "operationId": "updateConversation",
                    "description": "Renames it (PATCH does the same).",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "required": ["title"],
                        "properties": { "title": { "type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S" } },
                    } } } },
                    "responses": with(errors(&[("400", "Invalid body"), ("401", "Missing or wrong API key"),
                        ("404", "Unknown conversation"), ("413", "Body over the size limit"), ("503", "No conversation store")]),
                        ok("The renamed conversation", json!({ "$ref": "#/components/schemas/Conversation" }))),
                },
                "delete": {
                    "operationId": "deleteConversation",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": with(errors(&[("401", "Missing or wrong API key"), ("404", "Unknown conversation"),
                        ("503", "No conversation store")]), ok("Deleted", json!({ "type": "object" }))),
                },
            },
            "/v1/usage": { "get": {
                "operationId": "getUsage",
                "parameters": [
                    { "name": "from", "in": "query", "schema": { "type": "string", "format": "date" } },
                    { "name": "to", "in": "query", "schema": { "type": "string", "format": "date" } },
                ],
                "responses": with(errors(&[("400", "A day that does not parse, or `from` after `to`"),
                    ("401", "Missing or wrong API key"), ("503", "No usage store")]),
                    ok("The caller's totals by day and edition", json!({ "type": "object" }))),
            } },
            "/tokenize": { "post": {
                "operationId": "tokenize",
                "description": "llama-server's tokenizer: the token ids of `content` (with `with_pieces`, each \
                    with its text, or its bytes when they are not UTF-8 alone). `model` picks the model \
                    (default: the server's first).",
                "requestBody": json_body(json!({ "type": "object", "required": ["content"], "properties": {
                    "content": { "type": "string" },
                    "add_special": { "type": "boolean" },
                    "parse_special": { "type": "boolean" },
                    "with_pieces": { "type": "boolean" },
                    "model": { "type": "string" },
                } })),
                "responses": with(errors(&[("400", "A malformed request"), ("401", "Missing or wrong API key"),
                    ("404", "No such model")]), ok("The tokens", json!({ "type": "object", "required": ["tokens"],
                    "properties": { "tokens": { "type": "array" } } }))),
            } },
            "/detokenize": { "post": {
                "operationId": "detokenize",
                "description": "llama-server's detokenizer: the text of `tokens` (special tokens rendered).",
                "requestBody": json_body(json!({ "type": "object", "required": ["tokens"], "properties": {
                    "tokens": { "type": "array", "items": { "type": "integer", "minimum": 0 } },
                    "model": { "type": "string" },
                } })),
                "responses": with(errors(&[("400", "A malformed request or a token id outside the vocabulary"),
                    ("401", "Missing or wrong API key"), ("404", "No such model")]),
                    ok("The text", json!({ "type": "object", "required": ["content"],
                    "properties": { "content": { "type": "string" } } }))),
            } },
            "/health": { "get": {
                "operationId": "health",
                "security": [],
                "responses": with(plain.clone(), ok("Requests are admitted", json!({ "type": "object",
                    "required": ["status"], "properties": { "status": { "type": "string", "enum": ["ok"] } } }))),
            } },
            "/metrics": { "get": {
                "operationId": "metrics",
                "responses": { "200": { "description": "Prometheus text", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "401": error_response("Missing or wrong API key") },
            } },
            "/openapi.json": { "get": {
                "operationId": "openapi",
                "responses": { "200": { "description": "This document", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "401": error_response("Missing or wrong API key") },
            } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" } },
            "schemas": components(),
        },
    })
}

/// The JSON schema of one [`Range`] (caps filled in from `limits`).
fn range_schema(r: &Range) -> Value {
    let mut s = Map::new();
    s.insert("type".into(), json!(if r.integer { "integer" } else { "number" }));
    let num = |x: f64| if r.integer { json!(x as i64) } else { json!(x) };
    if r.exclusive_min {
        // Open at `min`: the least value that stays above it as the f32 the server uses.
        s.insert("minimum".into(), json!(open_lower_bound(r.min)));
        s.insert("description".into(), json!(format!("Above {} (as a 32-bit float).", r.min)));
    } else {
        s.insert("minimum".into(), num(r.min));
    }
    if let Some(max) = r.max {
        s.insert("maximum".into(), num(max));
    }
    s.insert("nullable".into(), json!(true));
    Value::Object(s)
}

fn int(min: usize, max: Option<usize>) -> Value {
    let mut s = json!({ "type": "integer", "minimum": min, "nullable": true });
    if let Some(max) = max {
        s["maximum"] = json!(max);
    }
    s
}

/// Fields chat and completions share (`validate::gen_params`).
fn shared(limits: &Limits, models: &[String], n_vocab: Option<usize>, context: Option<usize>) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("model".into(), json!({ "type": "string", "enum": models }));
    for r in SAMPLING {
        p.insert(r.name.into(), range_schema(r));
    }
    // No `maximum`: the bound is the context less the prompt, checked at admission
    // (and only for the one of the two that is used).
    let room = match context {
        Some(n) => format!("The prompt's tokens plus this fit in the context ({n} tokens)."),
        None => "The prompt's tokens plus this fit in the context.".to_string(),
    };
    p.insert("max_tokens".into(), merge(int(1, None), &room));
    p.insert("max_completion_tokens".into(), merge(int(1, None), &format!("{room} Wins over `max_tokens`.")));
    p.insert("n".into(), int(1, Some(limits.max_choices)));
    p.insert("seed".into(), json!({ "type": "integer", "nullable": true }));
    p.insert("stream".into(), json!({ "type": "boolean", "nullable": true }));
    p.insert(
        "stream_options".into(),
        json!({ "type": "object", "nullable": true, "description": "Only with `stream: true`.",
            "properties": { "include_usage": { "type": "boolean", "nullable": true } } }),
    );
    p.insert("user".into(), json!({ "type": "string", "maxLength": 256, "nullable": true }));
    let stop = json!({ "type": "string", "minLength": 1, "maxLength": limits.max_stop_bytes });
    p.insert(
        "stop".into(),
        json!({ "nullable": true, "oneOf": [stop, { "type": "array", "maxItems": limits.max_stop, "items": stop }] }),
    );
    let mut bias = json!({ "type": "object", "nullable": true, "maxProperties": limits.max_logit_bias,
        "description": "Token id (a decimal string below the vocabulary size) to a bias.",
        "additionalProperties": { "type": "number", "minimum": -100, "maximum": 100 } });
    if let Some(n) = n_vocab {
        bias["x-token-id-below"] = json!(n);
    }
    p.insert("logit_bias".into(), bias);
    p.insert("ignore_eos".into(), json!({ "type": "boolean", "nullable": true }));
    p.insert(
        "tools".into(),
        json!({ "type": "array", "maxItems": 0, "nullable": true, "items": {},
        "description": "Tools belong to chat: only an empty list here." }),
    );
    p.insert("tool_choice".into(), json!({ "type": "string", "enum": ["none", "auto", null], "nullable": true }));
    p.insert(
        "response_format".into(),
        json!({ "type": "object", "nullable": true, "required": ["type"],
            "description": "The output as any JSON object, or as JSON valid against `json_schema.schema` \
                (decoding is constrained: the answer validates, unless cut by max_tokens). A schema that \
                cannot be compiled, or is larger than the limit, is a 400.",
            "properties": {
                "type": { "type": "string", "enum": ["text", "json_object", "json_schema"] },
                "json_schema": { "type": "object", "properties": {
                    "name": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
                    "description": { "type": "string" },
                    "schema": { "type": "object" },
                    "strict": { "type": "boolean", "nullable": true } } } } }),
    );
    p.insert(
        "grammar".into(),
        json!({ "type": "string", "nullable": true, "maxLength": crate::validate::MAX_GRAMMAR_BYTES,
            "description": "An extension: a Lark grammar (llguidance's dialect) the output must follow; \
                excludes a JSON `response_format`." }),
    );
    p
}

fn chat_request(limits: &Limits, models: &[String], n_vocab: Option<usize>, context: Option<usize>) -> Value {
    let mut p = shared(limits, models, n_vocab, context);
    let part = json!({ "type": "object", "required": ["type", "text"],
        "properties": { "type": { "type": "string", "enum": ["text"] }, "text": { "type": "string" } } });
    p.insert(
        "messages".into(),
        json!({ "type": "array", "minItems": 1, "maxItems": limits.max_messages, "items": {
            "type": "object", "required": ["role"],
            "description": "`content` is required except on assistant turns; a `tool` turn needs the \
                `tool_call_id` of an earlier assistant turn's call.",
            "properties": {
                "role": { "type": "string", "enum": ["system", "developer", "user", "assistant", "tool"] },
                "content": { "nullable": true, "oneOf": [{ "type": "string" }, { "type": "array", "items": part }] },
                "name": { "type": "string", "nullable": true },
                "tool_call_id": { "type": "string", "nullable": true },
                "tool_calls": { "type": "array", "nullable": true, "items": {
                    "type": "object", "required": ["id", "function"], "properties": {
                        "id": { "type": "string" },
                        "type": { "type": "string", "enum": ["function"] },
                        "function": { "type": "object", "required": ["name"], "properties": {
                            "name": { "type": "string" },
                            "arguments": { "type": "string", "description": "JSON text" } } } } } },
            },
        } }),
    );
    p.insert("logprobs".into(), json!({ "type": "boolean", "nullable": true }));
    let name = json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" });
    p.insert(
        "tools".into(),
        json!({ "type": "array", "nullable": true, "maxItems": crate::validate::tools::MAX_TOOLS,
            "description": "Functions the model may call. Their definitions reach the chat template's `tools` \
                variable as given; a model whose template has no tool syntax is told of them in the system \
                message. Calls are constrained to the tools' parameter schemas (a schema that cannot be \
                compiled is a 400 naming `tools`). Names are unique.",
            "items": { "type": "object", "required": ["type", "function"], "properties": {
                "type": { "type": "string", "enum": ["function"] },
                "function": { "type": "object", "required": ["name"], "properties": {
                    "name": name,
                    "description": { "type": "string", "nullable": true },
                    "parameters": { "type": "object", "nullable": true,
                        "description": "A JSON schema of `type` object (the default: no arguments)." },
                    "strict": { "type": "boolean", "nullable": true } } } } } }),
    );
    p.insert(
        "tool_choice".into(),
        json!({ "nullable": true, "description": "`auto` when tools are given, else `none`; `required` or a \
                named function (one of `tools`) forces a call.",
            "oneOf": [
                { "type": "string", "enum": ["none", "auto", "required", null] },
                { "type": "object", "required": ["type", "function"], "properties": {
                    "type": { "type": "string", "enum": ["function"] },
                    "function": { "type": "object", "required": ["name"], "properties": { "name": name } } } },
            ] }),
    );
    p.insert(
        "chat_template_kwargs".into(),
        json!({ "type": "object", "nullable": true, "description": "Further chat-template variables, as vLLM and \
            llama.cpp take them (`enable_thinking`, `thinking_budget`); not `messages`, `tools`, \
            `add_generation_prompt`, `bos_token` or `eos_token`." }),
    );
    p.insert(
        "reasoning_format".into(),
        json!({ "type": "string", "enum": ["auto", "deepseek", "none"], "nullable": true,
            "description": "A thinking model's reasoning: read out of its tags into `reasoning_content` \
            (`auto`, `deepseek`: the default) or left in the text (`none`)." }),
    );
    p.insert(
        "parallel_tool_calls".into(),
        json!({ "type": "boolean", "nullable": true, "description": "More than one call per answer (default true)." }),
    );
    p.insert(
        "conversation".into(),
        json!({ "type": "string", "nullable": true,
            "description": "A stored conversation's id: the exchange is appended to it (404 if unknown)." }),
    );
    p.insert("top_logprobs".into(), merge(int(0, Some(limits.max_top_logprobs)), "Only with `logprobs: true`."));
    let rules = vec![needs("stream_options", "stream"), needs("top_logprobs", "logprobs")];
    json!({ "type": "object", "required": ["model", "messages"], "properties": p, "description": CROSS_FIELD,
        "allOf": rules })
}

fn completion_request(limits: &Limits, models: &[String], n_vocab: Option<usize>, context: Option<usize>) -> Value {
    let mut p = shared(limits, models, n_vocab, context);
    let text = json!({ "type": "string", "minLength": 1 });
    let mut id = json!({ "type": "integer", "minimum": 0 });
    if let Some(n) = n_vocab {
        id["maximum"] = json!(n.saturating_sub(1));
    }
    let ids = json!({ "type": "array", "minItems": 1, "items": id });
    p.insert(
        "prompt".into(),
        json!({ "oneOf": [text, { "type": "array", "minItems": 1, "items": text }, ids,
            { "type": "array", "minItems": 1, "items": ids }] }),
    );
    p.insert("logprobs".into(), int(0, Some(limits.max_top_logprobs)));
    p.insert("echo".into(), json!({ "type": "boolean", "enum": [false, null], "nullable": true }));
    p.insert("suffix".into(), json!({ "type": "string", "maxLength": 0, "nullable": true }));
    p.insert("best_of".into(), json!({ "type": "integer", "enum": [1, null], "nullable": true }));
    json!({ "type": "object", "required": ["model", "prompt"], "properties": p, "allOf": [needs("stream_options", "stream")],
        "description": format!("{CROSS_FIELD} The number of prompts times `n` is at most {}.", limits.max_choices) })
}

/// The rules between fields that OpenAPI 3.0 cannot state; each breach is a 400.
const CROSS_FIELD: &str = "Beyond the field schemas: the prompt's tokens plus `max_tokens` fit in the context; \
    `logit_bias` keys are token ids of the model.";

/// `field` is absent or null unless `flag` is `true`.
fn needs(field: &str, flag: &str) -> Value {
    json!({ "anyOf": [
        { "properties": { field: { "nullable": true, "enum": [null] } } },
        { "required": [flag], "properties": { flag: { "type": "boolean", "enum": [true] } } },
    ] })
}

// A nullable field with an `enum` lists `null` in it (OpenAPI 3.0.3: `nullable`
// does not widen an `enum`; schemathesis found `tool_choice: null` "invalid").

fn merge(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

fn components() -> Value {
    let usage = json!({ "type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": { "prompt_tokens": { "type": "integer" }, "completion_tokens": { "type": "integer" },
            "total_tokens": { "type": "integer" } } });
    let finish = json!({ "type": "string", "enum": ["stop", "length", "tool_calls"] });
    let call = json!({ "type": "object", "required": ["id", "type", "function"], "properties": {
        "id": { "type": "string" }, "type": { "type": "string", "enum": ["function"] },
        "function": { "type": "object", "required": ["name", "arguments"], "properties": {
            "name": { "type": "string" }, "arguments": { "type": "string", "description": "JSON text" } } } } });
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": {
            "type": "object", "required": ["message", "type", "param", "code"],
            "properties": {
                "message": { "type": "string" },
                "type": { "type": "string" },
                "param": { "type": "string", "nullable": true },
                "code": { "type": "string", "nullable": true },
            } } } },
        "ChatCompletion": { "type": "object", "required": ["id", "object", "created", "model", "choices", "usage"],
            "properties": {
                "id": { "type": "string" }, "object": { "type": "string", "enum": ["chat.completion"] },
                "created": { "type": "integer" }, "model": { "type": "string" },
                "choices": { "type": "array", "items": { "type": "object", "required": ["index", "message", "finish_reason"],
                    "properties": { "index": { "type": "integer" }, "finish_reason": finish,
                        "message": { "type": "object", "required": ["role", "content"],
                            "properties": { "role": { "type": "string", "enum": ["assistant"] },
                                "content": { "type": "string", "nullable": true },
                                "tool_calls": { "type": "array", "items": call } } } } } },
                "usage": usage,
            } },
        "Completion": { "type": "object", "required": ["id", "object", "created", "model", "choices", "usage"],
            "properties": {
                "id": { "type": "string" }, "object": { "type": "string", "enum": ["text_completion"] },
                "created": { "type": "integer" }, "model": { "type": "string" },
                "choices": { "type": "array", "items": { "type": "object", "required": ["index", "text", "finish_reason"],
                    "properties": { "index": { "type": "integer" }, "text": { "type": "string" }, "finish_reason": finish } } },
                "usage": usage,
            } },
        "Model": { "type": "object", "required": ["id", "object", "created", "owned_by"],
            "properties": { "id": { "type": "string" }, "object": { "type": "string", "enum": ["model"] },
                "created": { "type": "integer" }, "owned_by": { "type": "string" },
                "chat_sampling": { "type": "object", "description": "Seed's extension: the sampling a chat front end should send for this name (the edition's defaults over the model file's general.sampling.* recommendations over Ollama-like defaults); absent while the model loads.",
                    "required": ["temperature", "top_k", "top_p", "min_p", "repetition_penalty"],
                    "properties": { "temperature": { "type": "number" }, "top_k": { "type": "integer" }, "top_p": { "type": "number" },
                        "min_p": { "type": "number" }, "repetition_penalty": { "type": "number" } } },
                "edition": { "type": "object", "description": "Seed's extension: how a chat page presents this name when it is an edition of seed.toml (its display name, interface language, greeting, suggested prompts, accent colour and persona).",
                    "required": ["display_name", "suggestions"],
                    "properties": { "display_name": { "type": "string" }, "language": { "type": "string", "nullable": true },
                        "greeting": { "type": "string", "nullable": true },
                        "suggestions": { "type": "array", "items": { "type": "string" } },
                        "accent": { "type": "string", "nullable": true, "pattern": "^#[0-9a-f]{6}$" },
                        "system": { "type": "string", "nullable": true } } } } },
        "ModelList": { "type": "object", "required": ["object", "data"],
            "properties": { "object": { "type": "string", "enum": ["list"] },
                "data": { "type": "array", "items": { "$ref": "#/components/schemas/Model" } } } },
        "Conversation": { "type": "object", "required": ["id", "object", "created", "updated"],
            "properties": { "id": { "type": "string" }, "object": { "type": "string", "enum": ["conversation"] },
                "created": { "type": "integer" }, "updated": { "type": "integer" },
                "title": { "type": "string", "nullable": true }, "model": { "type": "string", "nullable": true } } },
    })
}

/// The handler: the document for this server as it is now.
pub async fn handler(State(state): State<AppState>) -> Json<Value> {
    let config = state.config();
    let models: Vec<String> = state
        .backends()
        .names()
        .flat_map(|(id, aliases)| std::iter::once(id.to_string()).chain(aliases.iter().cloned()))
        .collect();
    // With several models, the bounds every one of them accepts.
    let n_vocab = state.backends().loaded().map(|(_, b)| b.model.tokenizer.n_vocab()).min();
    let context = state.backends().loaded().map(|(_, b)| b.max_sequence()).min();
    let auth = config.api_key.is_some() || config.keys.is_some();
    Json(document(&config.limits, &models, n_vocab, context, auth))
}
