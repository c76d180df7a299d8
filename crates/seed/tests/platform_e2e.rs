//! The platform end to end: `seed serve --config` on a copy of `examples/seed.toml` in a
//! temporary folder, serving both editions' real models (Gemma 3 270M for `doubao`, SmolLM2 for
//! `cici`) in one process, with a key per tenant made by `seed keys`. Each edition answers its
//! own tenant, `doubao`'s Chinese persona shows in its greedy answer, a tenant asking for the
//! other region's edition gets 403, a missing or bad key 401, and each tenant's usage rows land
//! only in its own region's store.

mod serving;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use serving::process::ServeProcess;

/// `seed keys --config CONFIG create --tenant TENANT`: the secret it prints once.
fn create_key(config: &Path, tenant: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["keys", "--config"])
        .arg(config)
        .args(["create", "--tenant", tenant])
        .output()
        .expect("seed keys");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text.lines().find(|l| l.starts_with("sk-")).unwrap_or_else(|| panic!("no secret in: {text}")).trim().to_string()
}

fn chat(server: &ServeProcess, key: Option<&str>, body: &Value) -> (u16, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, text) = server.request_with("POST", "/v1/chat/completions", &body.to_string(), &headers);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

#[test]
fn both_editions_serve_their_own_tenants_from_one_process_and_data_stays_in_its_region() {
    for name in ["gemma3-270m", "smollm2-135m-instruct"] {
        seed::catalogue::ensure_model(name).expect("fetching the edition models");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed.toml");
    let config = dir.path().join("seed.toml");
    std::fs::copy(&example, &config).expect("copying examples/seed.toml");
    let acme = create_key(&config, "acme-cn");
    let globex = create_key(&config, "globex");
    let config_arg = config.display().to_string();
    let server = ServeProcess::start_raw(&[
        "--config",
        &config_arg,
        "--port",
        "0",
        "-t",
        "2",
        "--ctx",
        "512",
        "--parallel",
        "2",
    ]);

    // Each tenant is shown the editions it may use, and only those.
    for (key, mine, other) in [(&globex, "cici", "doubao"), (&acme, "doubao", "cici")] {
        let auth = format!("Bearer {key}");
        let (status, models) = server.request_with("GET", "/v1/models", "", &[("Authorization", &auth)]);
        assert_eq!(status, 200, "{models}");
        assert!(models.contains(&format!("\"id\":\"{mine}\"")), "{mine} missing: {models}");
        assert!(!models.contains(&format!("\"id\":\"{other}\"")), "{other} listed: {models}");
    }

    // Each edition answers its tenant; doubao's persona makes Gemma answer in Chinese.
    let ask = |model: &str| {
        json!({"model": model, "temperature": 0, "max_tokens": 24,
               "messages": [{"role": "user", "content": "Hello! Who are you?"}]})
    };
    let (status, d) = chat(&server, Some(&acme), &ask("doubao"));
    assert_eq!(status, 200, "{d}");
    let answer = d["choices"][0]["message"]["content"].as_str().expect("content").to_string();
    assert!(has_cjk(&answer), "doubao's persona asks for Chinese: {answer:?}");
    // The same question with the client's own (English) system message: no persona, and the
    // prompt is not the persona's.
    let mut own = ask("doubao");
    own["messages"] = json!([{"role": "system", "content": "You are a pirate."},
                             {"role": "user", "content": "Hello! Who are you?"}]);
    let (status, o) = chat(&server, Some(&acme), &own);
    assert_eq!(status, 200, "{o}");
    assert_ne!(o["usage"]["prompt_tokens"], d["usage"]["prompt_tokens"], "{o} vs {d}");
    let (status, c) = chat(&server, Some(&globex), &ask("cici"));
    assert_eq!(status, 200, "{c}");
    assert!(c["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.trim().is_empty()), "{c}");
    assert_eq!(c["model"], "cici");

    // Cross-region: 403, naming the rule.
    for (key, edition) in [(&acme, "cici"), (&globex, "doubao")] {
        let (status, e) = chat(&server, Some(key), &ask(edition));
        assert_eq!(status, 403, "{e}");
        assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("may not use")), "{e}");
    }
    // No key, a bad key: 401.
    for key in [None, Some("sk-seed-not-a-key")] {
        let (status, e) = chat(&server, key, &ask("cici"));
        assert_eq!(status, 401, "{e}");
    }

    // Both engines are on /metrics, each labelled with its model.
    let (_, page) = server.request_with("GET", "/metrics", "", &[("Authorization", &format!("Bearer {globex}"))]);
    for id in ["gemma3-270m", "smollm2-135m-instruct"] {
        assert!(page.contains(&format!("seed_kv_blocks_total{{model=\"{id}\"}}")), "{page}");
    }
    assert!(page.contains("seed_tenant_requests_total{tenant=\"acme-cn\",edition=\"doubao\"} 2"), "{page}");
    assert!(page.contains("seed_tenant_requests_total{tenant=\"globex\",edition=\"cici\"} 1"), "{page}");

    // Residency: each region's store holds its own tenant's usage, and nothing of the other's.
    drop(server);
    let rows = |store: &str| {
        let s = platform::Store::open_file(&dir.path().join(store)).expect("store");
        s.usage_totals(None, "1970-01-01", "9999-12-31").expect("usage")
    };
    let (cn, global) = (rows("seed-cn.sqlite"), rows("seed-global.sqlite"));
    assert!(!cn.is_empty() && cn.iter().all(|u| u.tenant == "acme-cn" && u.edition == "doubao"), "{cn:?}");
    assert!(!global.is_empty() && global.iter().all(|u| u.tenant == "globex" && u.edition == "cici"), "{global:?}");
    assert_eq!(cn.iter().map(|u| u.requests).sum::<u64>(), 2, "{cn:?}");
    assert_eq!(global.iter().map(|u| u.requests).sum::<u64>(), 1, "{global:?}");
}
