//! Conversations, usage metering, residency and a full store, through the real router on the
//! default model (in process, no socket), with stores in temporary folders.

mod serving;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use model::LoadedModel;
use platform::store::sqlite::SqliteStore;
use platform::Store;
use serde_json::{json, Value};
use server::{AppState, ServerConfig};
use serving::{assert_envelope, call, config, engine, model, sse_frames, streamed_text};
use tower::ServiceExt;

fn local_state(dir: &std::path::Path, max_pages: Option<u64>) -> (AppState, Arc<Store>) {
    local_state_on(dir, max_pages, model())
}

/// [`local_state`] serving `model`.
fn local_state_on(dir: &std::path::Path, max_pages: Option<u64>, model: Arc<LoadedModel>) -> (AppState, Arc<Store>) {
    let store = Arc::new(Store::new(SqliteStore::open_limited(&dir.join("seed.sqlite"), max_pages).expect("store")));
    let mut cfg = config();
    cfg.stores.local = Some(Arc::clone(&store));
    let engine = serving::engine_for(Arc::clone(&model), 128, 64);
    (AppState::ready(cfg, model, engine), store)
}

/// `PRAGMA integrity_check` of the local store's file, through a second connection.
fn integrity(dir: &std::path::Path) -> String {
    SqliteStore::open(&dir.join("seed.sqlite")).expect("open").integrity_check().expect("check")
}

async fn json_call(state: &AppState, method: &str, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let r = call(state, method, path, body, &headers).await;
    (r.status.as_u16(), r.json())
}

#[tokio::test]
async fn conversations_keep_history_and_usage_is_metered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, _store) = local_state(dir.path(), None);
    let (s, conv) = json_call(&state, "POST", "/v1/conversations", json!({"model": "any"}), None).await;
    assert_eq!(s, 200, "{conv}");
    let id = conv["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("conv_") && conv["object"] == "conversation" && conv["title"].is_null(), "{conv}");

    // First turn: the title comes from the user message.
    let q1 = "Name one colour of the sky, in one word, and then explain at length why it looks that way.";
    let body = json!({"model": "any", "conversation": id, "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": q1}]});
    let (s, a1) = json_call(&state, "POST", "/v1/chat/completions", body, None).await;
    assert_eq!(s, 200, "{a1}");
    let p1 = a1["usage"]["prompt_tokens"].as_u64().expect("prompt tokens");
    let answer1 = a1["choices"][0]["message"]["content"].as_str().expect("answer").to_string();

    // Second turn, streamed: the stored history is put before it, so the prompt is longer.
    let body = json!({"model": "any", "conversation": id, "max_tokens": 3, "temperature": 0, "stream": true,
        "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Again?"}]});
    let r = call(&state, "POST", "/v1/chat/completions", body.to_string(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let frames = sse_frames(&r.text);
    let answer2 = streamed_text(&frames);
    let usage: Value = serde_json::from_str(&frames[frames.len() - 2]).expect("usage chunk");
    let p2 = usage["usage"]["prompt_tokens"].as_u64().expect("prompt tokens");
    assert!(p2 > p1 + 5, "the history went into the second prompt: {p1} then {p2}");

    let (s, got) = json_call(&state, "GET", &format!("/v1/conversations/{id}"), Value::Null, None).await;
    assert_eq!(s, 200, "{got}");
    let title: String = q1.chars().take(60).collect();
    assert_eq!(got["title"], title.as_str());
    let msgs = got["messages"].as_array().expect("messages");
    let pairs: Vec<(&str, &str)> =
        msgs.iter().map(|m| (m["role"].as_str().unwrap_or(""), m["content"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        pairs,
        [("user", q1), ("assistant", answer1.as_str()), ("user", "Again?"), ("assistant", answer2.as_str())]
    );

    // The list: most recently updated first.
    let (_, other) = json_call(&state, "POST", "/v1/conversations", json!({"title": "later"}), None).await;
    let (_, list) = json_call(&state, "GET", "/v1/conversations", Value::Null, None).await;
    let ids: Vec<&str> = list["data"].as_array().expect("data").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(list["object"], "list");
    assert_eq!(ids.first().copied(), other["id"].as_str());
    assert!(ids.contains(&id.as_str()));

    // Search (`q`, in the title or any message) and rename (POST as OpenAI's API, or PATCH).
    let found = |list: &Value| -> Vec<String> {
        list["data"].as_array().expect("data").iter().filter_map(|c| c["id"].as_str().map(String::from)).collect()
    };
    let (s, hits) = json_call(&state, "GET", "/v1/conversations?q=AGAIN%3F", Value::Null, None).await;
    assert_eq!((s, found(&hits)), (200, vec![id.clone()]), "a later user message, ASCII case ignored: {hits}");
    let (_, hits) = json_call(&state, "GET", "/v1/conversations?q=late", Value::Null, None).await;
    assert_eq!(found(&hits), [other["id"].as_str().expect("id")], "a title: {hits}");
    let (_, hits) = json_call(&state, "GET", "/v1/conversations?q=%E5%8C%97%E4%BA%AC", Value::Null, None).await;
    assert!(found(&hits).is_empty(), "{hits}");
    let path = format!("/v1/conversations/{id}");
    let (s, renamed) = json_call(&state, "PATCH", &path, json!({"title": " Sky colours "}), None).await;
    assert_eq!((s, renamed["title"].as_str(), renamed["id"].as_str()), (200, Some("Sky colours"), Some(id.as_str())));
    let (s, renamed) = json_call(&state, "POST", &path, json!({"title": "天空"}), None).await;
    assert_eq!((s, renamed["title"].as_str()), (200, Some("天空")), "{renamed}");
    let (_, got) = json_call(&state, "GET", &path, Value::Null, None).await;
    assert_eq!((got["title"].as_str(), got["messages"].as_array().map(Vec::len)), (Some("天空"), Some(4)));
    for (body, status) in [(json!({"title": ""}), 400), (json!({"title": 5}), 400), (json!({}), 400), (json!([1]), 400)]
    {
        let (s, e) = json_call(&state, "PATCH", &path, body.clone(), None).await;
        assert_eq!(s, status, "{body}: {e}");
        assert_envelope(&e);
    }
    let (s, e) = json_call(&state, "PATCH", "/v1/conversations/conv_nope", json!({"title": "x"}), None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("conversation_not_found")), "{e}");
    let long = format!("/v1/conversations?q={}", "a".repeat(201));
    let (s, e) = json_call(&state, "GET", &long, Value::Null, None).await;
    assert_eq!((s, e["error"]["param"].as_str()), (400, Some("q")), "{e}");

    // Usage: both requests, with the engine's counts.
    let (s, usage) = json_call(&state, "GET", "/v1/usage", Value::Null, None).await;
    assert_eq!(s, 200, "{usage}");
    assert_eq!(usage["tenant"], "local");
    assert_eq!(usage["total"]["requests"], 2, "{usage}");
    assert_eq!(usage["total"]["prompt_tokens"], p1 + p2, "{usage}");
    let completion = a1["usage"]["completion_tokens"].as_u64().expect("n") + usage_of(&frames);
    assert_eq!(usage["total"]["completion_tokens"], completion, "{usage}");
    assert_eq!(usage["data"][0]["edition"], "any");
    assert_eq!(integrity(dir.path()), "ok");

    // Delete, then the id is unknown.
    let (s, del) = json_call(&state, "DELETE", &format!("/v1/conversations/{id}"), Value::Null, None).await;
    assert_eq!((s, del["deleted"].as_bool()), (200, Some(true)), "{del}");
    let (s, gone) = json_call(&state, "GET", &format!("/v1/conversations/{id}"), Value::Null, None).await;
    assert_eq!(s, 404);
    assert_envelope(&gone);
    assert_eq!(gone["error"]["code"], "conversation_not_found");

    // Bad input: clear 400s, nothing stored.
    for (body, param) in [(json!({"title": 5}), "title"), (json!({"model": ["x"]}), "model")] {
        let (s, e) = json_call(&state, "POST", "/v1/conversations", body, None).await;
        assert_eq!((s, e["error"]["param"].as_str()), (400, Some(param)), "{e}");
    }
    for body in ["\t", " \n"] {
        let r = call(&state, "POST", "/v1/conversations", body.to_string(), &[]).await;
        assert_eq!(r.status.as_u16(), 400, "a body of whitespace is not JSON");
    }
    let (s, e) = json_call(&state, "GET", "/v1/usage?from=2026-02-30", Value::Null, None).await;
    assert_eq!((s, e["error"]["param"].as_str()), (400, Some("from")), "{e}");
    let body = json!({"model": "any", "conversation": 7, "messages": [{"role": "user", "content": "x"}]});
    let (s, e) = json_call(&state, "POST", "/v1/chat/completions", body, None).await;
    assert_eq!((s, e["error"]["param"].as_str()), (400, Some("conversation")), "{e}");
}

/// The same routes on a PostgreSQL store (a real server in a temporary folder): a
/// conversation's turns and the usage are written there; once the database is gone, a request
/// that needs it gets a plain 503 that names neither the database nor what it said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_serves_conversations_and_its_loss_is_a_plain_503() {
    let server = platform::testing::PgServer::start().expect("a PostgreSQL server");
    let url = server.create_database("seed").expect("database");
    let store = Store::open(&platform::Location::parse(&url, None).expect("url")).expect("store");
    let mut cfg = config();
    cfg.stores.local = Some(Arc::new(store));
    let state = AppState::ready(cfg, model(), engine(128, 64));

    let (s, conv) = json_call(&state, "POST", "/v1/conversations", json!({"model": "any"}), None).await;
    assert_eq!(s, 200, "{conv}");
    let id = conv["id"].as_str().expect("id").to_string();
    let body = json!({"model": "any", "conversation": id, "max_tokens": 3, "temperature": 0,
        "messages": [{"role": "user", "content": "Hello there"}]});
    let (s, a) = json_call(&state, "POST", "/v1/chat/completions", body, None).await;
    assert_eq!(s, 200, "{a}");
    let (s, got) = json_call(&state, "GET", &format!("/v1/conversations/{id}"), Value::Null, None).await;
    assert_eq!((s, got["title"].as_str()), (200, Some("Hello there")), "{got}");
    assert_eq!(got["messages"].as_array().map(Vec::len), Some(2), "{got}");
    // The rows are in the database itself.
    let rows = server.psql("seed", "SELECT count(*) FROM messages").expect("psql");
    assert_eq!(rows, "2");
    let completion = a["usage"]["completion_tokens"].as_u64().expect("completion tokens");
    let used = server.psql("seed", "SELECT count(*) || ' ' || sum(completion_tokens) FROM usage").expect("psql");
    assert_eq!(used, format!("1 {completion}"));

    let socket = server.socket_dir().display().to_string();
    drop(server);
    for (method, path, body) in [
        ("POST", "/v1/conversations".to_string(), json!({"model": "any"})),
        ("GET", format!("/v1/conversations/{id}"), Value::Null),
        ("GET", "/v1/usage".to_string(), Value::Null),
    ] {
        let (s, e) = json_call(&state, method, &path, body, None).await;
        assert_eq!((s, e["error"]["code"].as_str()), (503, Some("storage_unavailable")), "{method} {path}: {e}");
        let text = e.to_string();
        assert!(!text.contains(&socket) && !text.contains("postgres") && !text.contains("seed@"), "{text}");
    }
}

fn usage_of(frames: &[String]) -> u64 {
    let v: Value = serde_json::from_str(&frames[frames.len() - 2]).expect("usage chunk");
    v["usage"]["completion_tokens"].as_u64().expect("completion tokens")
}

#[tokio::test]
async fn a_client_that_goes_away_is_recorded_as_cancelled_with_its_partial_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, store) = local_state(dir.path(), None);
    let (_, conv) = json_call(&state, "POST", "/v1/conversations", json!({}), None).await;
    let id = conv["id"].as_str().expect("id").to_string();
    let body = json!({"model": "any", "conversation": id, "max_tokens": 400, "ignore_eos": true, "stream": true,
        "messages": [{"role": "user", "content": "Count to a thousand."}]});
    let req = Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = server::router(state.clone()).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), 200);
    let mut stream = resp.into_body().into_data_stream();
    let mut seen = String::new();
    while seen.matches("data: ").count() < 6 {
        let chunk = stream.next().await.expect("more frames").expect("frame");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream); // the client goes away
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let totals = loop {
        let t = store.usage_totals(Some("local"), "1970-01-01", "9999-12-31").expect("totals");
        if !t.is_empty() || std::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(totals.len(), 1, "{totals:?}");
    assert_eq!(totals[0].cancelled, 1, "{totals:?}");
    let done = totals[0].completion_tokens;
    assert!((4..400).contains(&done), "tokens actually generated before the disconnect: {done}");
    assert!(totals[0].prompt_tokens > 5);
    let (_, msgs) = store.get_conversation("local", &id).expect("conversation");
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[1].role, "assistant");
    assert!(!msgs[1].content.is_empty(), "the partial answer is stored");
}

#[tokio::test]
async fn a_full_store_answers_503_storage_full_writes_nothing_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The real model: the turn below must carry more text than the store has room for, which
    // the tiny model's byte-sized tokens cannot fit into the context.
    let (state, store) = local_state_on(dir.path(), Some(20), serving::real_model());
    let big = "long title ".repeat(90);
    let mut made = Vec::new();
    let full = loop {
        let (s, v) = json_call(&state, "POST", "/v1/conversations", json!({"title": big}), None).await;
        if s != 200 {
            break (s, v);
        }
        made.push(v["id"].as_str().expect("id").to_string());
        assert!(made.len() < 500, "the store never filled");
    };
    assert_eq!(full.0, 503, "{}", full.1);
    assert_envelope(&full.1);
    assert_eq!(full.1["error"]["code"], "storage_full");
    assert_eq!(full.1["error"]["type"], "server_error");
    // Nothing partial: exactly the acknowledged conversations exist.
    let listed = store.list_conversations("local").expect("list");
    assert_eq!(listed.len(), made.len());
    // A chat turn into a conversation cannot be stored either: 503, and no message rows.
    let id = made[0].clone();
    let body = json!({"model": "any", "conversation": id, "max_tokens": 2,
        "messages": [{"role": "user", "content": "long title ".repeat(420)}]});
    let (s, v) = json_call(&state, "POST", "/v1/chat/completions", body.clone(), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("storage_full")), "{v}");
    assert!(store.get_conversation("local", &id).expect("get").1.is_empty());
    // Space is freed (conversations deleted): the same server accepts writes again.
    for other in &made[1..] {
        let (s, _) = json_call(&state, "DELETE", &format!("/v1/conversations/{other}"), Value::Null, None).await;
        assert_eq!(s, 200);
    }
    let (s, v) = json_call(&state, "POST", "/v1/chat/completions", body, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(store.get_conversation("local", &id).expect("get").1.len(), 2);
    assert_eq!(integrity(dir.path()), "ok");
}

#[tokio::test]
async fn each_tenant_writes_only_to_its_own_regions_store_and_sees_only_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        r#"[[region]]
name = "cn"
store = "{cn}"
[[region]]
name = "global"
store = "{global}"
[[edition]]
name = "ed-cn"
model = "tiny-llama"
regions = ["cn"]
prices = {{ input = 1000000.0, cached = 0.0, output = 2000000.0 }}
[[edition]]
name = "ed-global"
model = "tiny-llama"
regions = ["global"]
[[tenant]]
id = "t-cn"
region = "cn"
editions = ["ed-cn"]
[[tenant]]
id = "t-global"
region = "global"
editions = ["ed-global"]
"#,
        cn = dir.path().join("cn.sqlite").display(),
        global = dir.path().join("global.sqlite").display(),
    );
    let platform = platform::Config::parse(&toml).expect("config");
    let mut cfg: ServerConfig = config();
    cfg.aliases.extend(["ed-cn".to_string(), "ed-global".to_string()]);
    for r in &platform.regions {
        cfg.stores.regions.insert(r.name.clone(), Arc::new(Store::open(&r.store).expect("store")));
    }
    let (cn, global) = (Arc::clone(&cfg.stores.regions["cn"]), Arc::clone(&cfg.stores.regions["global"]));
    // Each tenant's key lives in its own region's store.
    let (_, key_cn) = platform::keys::create(&cn, "t-cn").expect("key");
    let (_, key_gl) = platform::keys::create(&global, "t-global").expect("key");
    assert_eq!((cn.list_keys().expect("keys").len(), global.list_keys().expect("keys").len()), (1, 1));
    cfg.keys = Some(Arc::new(platform::KeyStore::new(vec![Arc::clone(&cn), Arc::clone(&global)])));
    cfg.platform = Some(Arc::new(platform));
    let state = AppState::ready(cfg, model(), engine(128, 64));

    let mut ids = Vec::new();
    for (key, edition) in [(&key_cn, "ed-cn"), (&key_gl, "ed-global")] {
        let (s, conv) = json_call(&state, "POST", "/v1/conversations", json!({}), Some(key)).await;
        assert_eq!(s, 200, "{conv}");
        let id = conv["id"].as_str().expect("id").to_string();
        let body = json!({"model": edition, "conversation": id, "max_tokens": 2,
            "messages": [{"role": "user", "content": format!("hello from {edition}")}]});
        let (s, v) = json_call(&state, "POST", "/v1/chat/completions", body, Some(key)).await;
        assert_eq!(s, 200, "{v}");
        ids.push(id);
    }
    // Residency: each store holds only its own tenant's rows.
    assert_eq!(cn.list_conversations("t-cn").expect("list").len(), 1);
    assert_eq!(cn.list_conversations("t-global").expect("list").len(), 0);
    assert_eq!(global.list_conversations("t-global").expect("list").len(), 1);
    assert_eq!(global.list_conversations("t-cn").expect("list").len(), 0);
    let all_cn = cn.usage_totals(None, "1970-01-01", "9999-12-31").expect("usage");
    let all_gl = global.usage_totals(None, "1970-01-01", "9999-12-31").expect("usage");
    assert!(all_cn.iter().all(|u| u.tenant == "t-cn") && all_cn.len() == 1, "{all_cn:?}");
    assert!(all_gl.iter().all(|u| u.tenant == "t-global") && all_gl.len() == 1, "{all_gl:?}");
    // Cost at the edition's prices (per million tokens), zero for an edition without prices.
    let u = &all_cn[0];
    let expected = (u.prompt_tokens - u.cached_tokens) as f64 + 2.0 * u.completion_tokens as f64;
    assert!((u.cost - expected).abs() < 1e-6, "{u:?}");
    assert_eq!(all_gl[0].cost, 0.0);

    // No existence oracle: another tenant's id answers exactly as an unknown one.
    let (s1, theirs) =
        json_call(&state, "GET", &format!("/v1/conversations/{}", ids[1]), Value::Null, Some(&key_cn)).await;
    let (s2, unknown) =
        json_call(&state, "GET", &format!("/v1/conversations/{}", ids[1]), Value::Null, Some(&key_gl)).await;
    assert_eq!((s1, s2), (404, 200));
    let fake = format!("conv_{}", "x".repeat(24));
    let (s3, fake_body) =
        json_call(&state, "GET", &format!("/v1/conversations/{fake}"), Value::Null, Some(&key_cn)).await;
    assert_eq!(s3, 404);
    assert_eq!(theirs["error"]["code"], fake_body["error"]["code"]);
    assert_eq!(theirs["error"]["type"], fake_body["error"]["type"]);
    assert_eq!(unknown["id"], ids[1].as_str());
    let (s, _) =
        json_call(&state, "DELETE", &format!("/v1/conversations/{}", ids[1]), Value::Null, Some(&key_cn)).await;
    assert_eq!(s, 404);
    // A chat naming another tenant's conversation is refused and stores nothing there.
    let body = json!({"model": "ed-cn", "conversation": ids[1], "max_tokens": 2,
        "messages": [{"role": "user", "content": "sneak"}]});
    let (s, _) = json_call(&state, "POST", "/v1/chat/completions", body, Some(&key_cn)).await;
    assert_eq!(s, 404);
    assert_eq!(global.get_conversation("t-global", &ids[1]).expect("get").1.len(), 2);
    // Each tenant's usage answer is its own.
    let (_, u) = json_call(&state, "GET", "/v1/usage", Value::Null, Some(&key_gl)).await;
    assert_eq!((u["tenant"].as_str(), u["total"]["requests"].as_u64()), (Some("t-global"), Some(1)), "{u}");
}
