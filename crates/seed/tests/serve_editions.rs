//! Editions through the real router on the default model (in process, no socket): an edition's
//! persona leads a chat that has no system message (and only then), its sampling defaults fill
//! what the client left out, `/metrics` counts requests and tokens by tenant and edition with
//! bounded labels, a tenant over its quota gets 429 with `Retry-After` naming the limit, and with
//! several models each name reaches its own engine while `/health` waits for all of them.

mod serving;

use std::sync::Arc;

use axum::http::StatusCode;
use model::chat::Message;
use serde_json::{json, Value};
use server::{AppState, ServerConfig};
use serving::{assert_envelope, call, config, engine, model, Reply};

const CHAT: &str = "/v1/chat/completions";
const PERSONA: &str = "You are Cici, a friendly and concise assistant. Answer in English.";

/// A platform config: edition `cici` (persona, greedy, 3 tokens by default) and `plain` (neither),
/// both on the default model, for tenant `acme` (quotas as given) in region `global`.
fn platform(quotas: &str) -> platform::Config {
    platform::Config::parse(&format!(
        r##"
        [[region]]
        name = "global"
        [[edition]]
        name = "cici"
        model = "tiny-llama"
        system = "{PERSONA}"
        display_name = "Cici"
        language = "en"
        greeting = "Hi, I'm Cici."
        suggestions = ["Plan a trip", "Explain a proof"]
        accent = "#E0457B"
        regions = ["global"]
        sampling = {{ temperature = 0.0, max_tokens = 3 }}
        [[edition]]
        name = "plain"
        model = "tiny-llama"
        regions = ["global"]
        [[tenant]]
        id = "acme"
        region = "global"
        editions = ["cici", "plain"]
        quotas = {{ {quotas} }}
        "##
    ))
    .expect("config")
}

/// A ready server over `platform` with tenant keys; returns it and a key of `acme`.
fn tenant_state(platform: platform::Config, dir: &std::path::Path) -> (AppState, String) {
    let store = Arc::new(platform::Store::open_file(&dir.join("global.sqlite")).expect("store"));
    let (_, secret) = platform::keys::create(&store, "acme").expect("key");
    let mut cfg: ServerConfig = config();
    cfg.aliases.extend(["cici".to_string(), "plain".to_string()]);
    cfg.keys = Some(Arc::new(platform::KeyStore::new(vec![Arc::clone(&store)])));
    // The region's store admits requests under the tenant's quotas.
    cfg.stores.regions.insert("global".into(), store);
    cfg.platform = Some(Arc::new(platform));
    (AppState::ready(cfg, model(), engine(64, 64)), secret)
}

async fn chat(state: &AppState, key: &str, body: Value) -> Reply {
    let auth = format!("Bearer {key}");
    call(state, "POST", CHAT, body.to_string(), &[("authorization", auth.as_str())]).await
}

/// Prompt tokens of `messages` as the server renders and tokenizes them.
fn prompt_tokens(messages: &[Message]) -> u64 {
    let m = model();
    let text = m.chat_template.as_ref().expect("template").render(messages, true).expect("render");
    m.tokenize_chat_prompt(&text).len() as u64
}

#[tokio::test]
async fn the_persona_leads_a_chat_without_a_system_message_and_defaults_fill_what_is_unset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, key) = tenant_state(platform(""), dir.path());
    let user = Message::new("user", "Say hi.");
    let ask =
        |model: &str| json!({"model": model, "ignore_eos": true, "messages": [{"role": "user", "content": "Say hi."}]});

    // cici: the persona goes first; greedy and 3 tokens come from the edition.
    let a = chat(&state, &key, ask("cici")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = a.json();
    let with_persona = prompt_tokens(&[Message::new("system", PERSONA), user.clone()]);
    assert_eq!(a["usage"]["prompt_tokens"].as_u64(), Some(with_persona), "{a}");
    assert_eq!(a["usage"]["completion_tokens"].as_u64(), Some(3), "max_tokens defaults to 3: {a}");
    let b = chat(&state, &key, ask("cici")).await.json();
    assert_eq!(a["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"], "greedy by default");

    // plain: no persona, no defaults: the template's own default system prompt, if any.
    let p = chat(
        &state,
        &key,
        json!({"model": "plain", "max_tokens": 1,
        "messages": [{"role": "user", "content": "Say hi."}]}),
    )
    .await
    .json();
    assert_eq!(p["usage"]["prompt_tokens"].as_u64(), Some(prompt_tokens(std::slice::from_ref(&user))), "{p}");
    assert_ne!(with_persona, prompt_tokens(std::slice::from_ref(&user)), "the persona changes the prompt");

    // The client's own system message replaces the persona; the client's max_tokens wins.
    let own = chat(
        &state,
        &key,
        json!({"model": "cici", "max_tokens": 5, "ignore_eos": true, "messages": [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hi."}]}),
    )
    .await
    .json();
    let expected = prompt_tokens(&[Message::new("system", "Be terse."), user.clone()]);
    assert_eq!(own["usage"]["prompt_tokens"].as_u64(), Some(expected), "{own}");
    assert_eq!(own["usage"]["completion_tokens"].as_u64(), Some(5), "{own}");

    // A client's value out of range is still refused (defaults do not mask validation).
    let r = chat(
        &state,
        &key,
        json!({"model": "cici", "temperature": 3,
        "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test]
async fn metrics_count_requests_and_tokens_by_tenant_and_edition_with_bounded_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, key) = tenant_state(platform(""), dir.path());
    for _ in 0..2 {
        let body = json!({"model": "cici", "ignore_eos": true, "messages": [{"role": "user", "content": "Hi"}]});
        let r = chat(&state, &key, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let auth = format!("Bearer {key}");
    let page = call(&state, "GET", "/metrics", "", &[("authorization", auth.as_str())]).await.text;
    let series = |s: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(s)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{s} missing in\n{page}"))
    };
    assert_eq!(series("seed_tenant_requests_total{tenant=\"acme\",edition=\"cici\"}"), 2.0);
    assert_eq!(series("seed_tenant_completion_tokens_total{tenant=\"acme\",edition=\"cici\"}"), 6.0);
    let prompt = prompt_tokens(&[Message::new("system", PERSONA), Message::new("user", "Hi")]) as f64;
    assert_eq!(series("seed_tenant_prompt_tokens_total{tenant=\"acme\",edition=\"cici\"}"), 2.0 * prompt);

    // Names outside the configuration are `other`: here the model's alias `any`, without keys
    // (tenant `local`).
    let mut cfg = config();
    cfg.platform = Some(Arc::new(platform("")));
    let open = AppState::ready(cfg, model(), engine(16, 8));
    let body = json!({"model": "any", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(call(&open, "POST", CHAT, body.to_string(), &[]).await.status, StatusCode::OK);
    let page = call(&open, "GET", "/metrics", "", &[]).await.text;
    assert!(page.contains("seed_tenant_requests_total{tenant=\"local\",edition=\"other\"} 1\n"), "{page}");
    let labelled: Vec<&str> = page.lines().filter(|l| l.starts_with("seed_tenant_")).collect();
    assert_eq!(labelled.len(), 4, "one series per family: {labelled:?}");

    // A flags-only server has no tenant or edition labels at all.
    let bare = AppState::ready(config(), model(), engine(16, 8));
    assert_eq!(call(&bare, "POST", CHAT, body.to_string(), &[]).await.status, StatusCode::OK);
    let page = call(&bare, "GET", "/metrics", "", &[]).await.text;
    assert!(!page.contains("tenant=") && !page.contains("edition="), "{page}");
    assert!(!page.contains("model="), "one model: engine series unlabelled");
}

#[tokio::test]
async fn a_tenant_over_its_requests_per_minute_gets_429_with_retry_after_naming_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, key) = tenant_state(platform("requests_per_minute = 2"), dir.path());
    let body = json!({"model": "cici", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]});
    for i in 0..2 {
        let r = chat(&state, &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text);
    }
    let r = chat(&state, &key, body).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    let retry: u64 = r.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let v = r.json();
    assert_envelope(&v);
    assert_eq!(v["error"]["code"], "requests_per_minute", "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("requests_per_minute")), "{v}");
}

#[tokio::test]
async fn a_burst_over_the_http_routes_admits_no_more_than_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, key) = tenant_state(platform("requests_per_minute = 5"), dir.path());
    let body = json!({"model": "cici", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]});
    let replies = futures_util::future::join_all((0..20).map(|_| chat(&state, &key, body.clone()))).await;
    let ok = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let limited = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((ok, limited), (5, 15), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
}

#[tokio::test]
async fn each_model_name_reaches_its_own_engine_and_health_waits_for_every_one() {
    // Two served models (both the default model's weights, each with its own engine), as
    // `seed serve --config` makes for editions naming two models.
    let mut cfg = config();
    cfg.model_id = "first".into();
    cfg.aliases = vec!["ed-a".into()];
    cfg.extra_models = vec![server::ServedModel { id: "second".into(), aliases: vec!["ed-b".into()] }];
    let state = AppState::new(cfg);
    state.set_ready(model(), engine(16, 8));
    // Only the first is loaded: /health waits, the second's requests are 503, the first's run.
    assert_eq!(call(&state, "GET", "/health", "", &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let ask = |m: &str| {
        json!({"model": m, "max_tokens": 2, "ignore_eos": true,
        "messages": [{"role": "user", "content": "Hi"}]})
    };
    let r = serving::post(&state, CHAT, &ask("ed-b")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.text.contains("`second` is still loading"), "{}", r.text);
    assert_eq!(serving::post(&state, CHAT, &ask("ed-a")).await.status, StatusCode::OK);
    state.set_ready_at(1, model(), engine(24, 8));
    assert_eq!(call(&state, "GET", "/health", "", &[]).await.status, StatusCode::OK);

    // Each name reaches its own engine: the generated tokens land on that engine's series.
    for (name, n) in [("ed-b", 1), ("second", 1), ("ed-a", 1)] {
        for _ in 0..n {
            let r = serving::post(&state, CHAT, &ask(name)).await;
            assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text);
            assert_eq!(r.json()["model"], name);
        }
    }
    let page = call(&state, "GET", "/metrics", "", &[]).await.text;
    assert!(page.contains("seed_generation_tokens_total{model=\"first\"} 4\n"), "{page}");
    assert!(page.contains("seed_generation_tokens_total{model=\"second\"} 4\n"), "{page}");
    assert!(page.contains("seed_kv_blocks_total{model=\"first\"} 16\n"), "{page}");
    assert!(page.contains("seed_kv_blocks_total{model=\"second\"} 24\n"), "{page}");
    let models = call(&state, "GET", "/v1/models", "", &[]).await.json();
    let ids: Vec<&str> = models["data"].as_array().expect("data").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["first", "ed-a", "second", "ed-b"]);
    assert_eq!(serving::post(&state, CHAT, &ask("third")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_model_list_gives_each_name_the_sampling_of_a_chat() {
    // The chat page sends these: the edition's own defaults over the model's (SmolLM2's file
    // recommends nothing, so Ollama-like defaults with a repetition penalty).
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, key) = tenant_state(platform("requests_per_minute = 100"), dir.path());
    let auth = format!("Bearer {key}");
    let models = call(&state, "GET", "/v1/models", "", &[("authorization", auth.as_str())]).await.json();
    let sampling = |id: &str| {
        let card = models["data"].as_array().expect("data").iter().find(|m| m["id"] == id).cloned();
        card.unwrap_or_else(|| panic!("{id} not listed: {models}"))["chat_sampling"].clone()
    };
    let plain = json!({"temperature": 0.8, "top_k": 40, "top_p": 0.9, "min_p": 0.0, "repetition_penalty": 1.1});
    let close = |got: &Value, want: &Value| {
        want.as_object()
            .expect("object")
            .iter()
            .all(|(k, w)| got[k].as_f64().zip(w.as_f64()).is_some_and(|(g, w)| (g - w).abs() < 1e-6))
    };
    assert!(close(&sampling("plain"), &plain), "{}", sampling("plain"));
    // An edition's face for the chat page (its persona included); a name that is no edition has none.
    let card = |id: &str| models["data"].as_array().expect("data").iter().find(|m| m["id"] == id).cloned();
    let face = json!({"display_name": "Cici", "language": "en", "greeting": "Hi, I'm Cici.",
        "suggestions": ["Plan a trip", "Explain a proof"], "accent": "#e0457b", "system": PERSONA});
    assert_eq!(card("cici").expect("cici")["edition"], face);
    let plain_face = json!({"display_name": "plain", "language": null, "greeting": null, "suggestions": [],
        "accent": null, "system": null});
    assert_eq!(card("plain").expect("plain")["edition"], plain_face);
    // The edition's temperature wins; greedy is exactly greedy, so its penalty is off.
    let cici = json!({"temperature": 0.0, "top_k": 40, "top_p": 0.9, "min_p": 0.0, "repetition_penalty": 1.0});
    assert!(close(&sampling("cici"), &cici), "{}", sampling("cici"));
}
