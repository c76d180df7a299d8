//! A region served by several replicas on one PostgreSQL database, and a second region on its
//! own, behind a real HAProxy: a PostgreSQL server per region, started by the test (initdb into a
//! temporary folder, Unix socket only), three `seed serve --region eu` processes
//! and one `--region us` (one thread, a small KV pool, a 3-second request lease and an agent
//! port each), keys made by `seed keys` into the regions' databases, and HAProxy routing by
//! `Host` to each region's replicas with health and agent checks. It shows that a per-minute
//! limit holds for a burst of 4× the limit through the proxy, as does a concurrency cap across replicas, whose
//! slot a `kill -9`ed replica gives back when its lease runs out (its row closed as
//! `interrupted`, its client's stream cut, the retry served by another replica); that every
//! answered request leaves exactly one usage row with the tokens its client was told; that a
//! conversation written through two replicas reads the same from a third; that SIGTERM drains a
//! replica (its agent says `drain`, its stream finishes, new requests go elsewhere); that a revoked key is refused by
//! every replica within 5 s; and that a tenant of one region is refused by the other's replicas,
//! whose database holds none of its rows.

mod serving;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use platform::testing::PgServer;
use serde_json::{json, Value};
use serving::haproxy::{free_port, HaProxy, Server};
use serving::process::{http, read_until, ServeProcess};

fn write_config(dir: &Path, eu_db: &PgServer, us_db: &PgServer) -> std::path::PathBuf {
    let (eu, us) = (eu_db.create_database("seed").expect("eu"), us_db.create_database("seed").expect("us"));
    let text = format!(
        r#"
[[region]]
name = "eu"
store = "{eu}"
[[region]]
name = "us"
store = "{us}"
[[edition]]
name = "cici"
model = "smollm2-135m-instruct"
regions = ["eu", "us"]
[[tenant]]
id = "burst"
region = "eu"
editions = ["cici"]
quotas = {{ requests_per_minute = 8 }}
[[tenant]]
id = "capped"
region = "eu"
editions = ["cici"]
quotas = {{ concurrent_requests = 2 }}
[[tenant]]
id = "plain"
region = "eu"
editions = ["cici"]
[[tenant]]
id = "globex"
region = "us"
editions = ["cici"]
"#
    );
    let path = dir.join("seed.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn seed(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_seed")).args(args).output().expect("seed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "seed {args:?}: {text}");
    text
}

fn create_key(config: &Path, tenant: &str) -> String {
    let text = seed(&["keys", "--config", &config.display().to_string(), "create", "--tenant", tenant]);
    text.lines().find(|l| l.starts_with("sk-")).unwrap_or_else(|| panic!("no secret in: {text}")).trim().to_string()
}

fn replica(config: &Path, region: &str, agent: u16) -> ServeProcess {
    ServeProcess::start_raw(&[
        "--agent-port",
        &agent.to_string(),
        "--config",
        &config.display().to_string(),
        "--region",
        region,
        "--port",
        "0",
        "-t",
        "1",
        "--ctx",
        "2048",
        "--parallel",
        "2",
        "--request-lease",
        "3",
    ])
}

fn post(server: &ServeProcess, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let (status, text) = server.request_with("POST", path, &body.to_string(), &[("Authorization", &auth)]);
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

fn ask(max_tokens: u32) -> Value {
    json!({"model": "cici", "max_tokens": max_tokens, "temperature": 0,
           "messages": [{"role": "user", "content": "Say something."}]})
}

/// A streamed request that runs long, read up to its first token; the caller holds the stream.
fn start_stream(server: &ServeProcess, key: &str) -> std::net::TcpStream {
    let body = json!({"model": "cici", "max_tokens": 1800, "ignore_eos": true, "stream": true,
                      "messages": [{"role": "user", "content": "Count to a thousand."}]});
    let auth = format!("Bearer {key}");
    let mut s = server.send_with("POST", "/v1/chat/completions", &body.to_string(), &[("Authorization", &auth)]);
    let head = read_until(&mut s, "\"content\":\"");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

/// Polls `f` every 100 ms until it holds, for at most `limit`; returns how long it took.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn replicas_of_a_region_share_its_quotas_usage_keys_and_conversations() {
    // The real model: the concurrency cap below needs streams that are still running seconds
    // later, which the tiny model finishes in a blink.
    seed::catalogue::ensure_model("smollm2-135m-instruct").expect("fetching the default model");
    // One PostgreSQL server per region, as regions are run.
    let eu_db = PgServer::start().expect("the eu region's PostgreSQL server");
    let us_db = PgServer::start().expect("the us region's PostgreSQL server");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &eu_db, &us_db);
    seed(&["migrate", "--config", &config.display().to_string()]);
    let keys: Vec<String> = ["burst", "capped", "plain", "globex"].iter().map(|t| create_key(&config, t)).collect();
    let (burst, capped, plain, globex) = (&keys[0], &keys[1], &keys[2], &keys[3]);
    let agents: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut eu: Vec<ServeProcess> = agents[..3].iter().map(|&a| replica(&config, "eu", a)).collect();
    let us = replica(&config, "us", agents[3]);
    let server = |name: &str, p: &ServeProcess, agent: u16| Server { name: name.into(), port: p.port, agent };
    let eu_servers: Vec<Server> = (0..3).map(|i| server(&format!("eu{i}"), &eu[i], agents[i])).collect();
    let us_servers = [server("us0", &us, agents[3])];
    let proxy = HaProxy::start(&[("eu", &eu_servers), ("us", &us_servers)]);
    let via_proxy = |host: &str, key: &str, body: &Value| -> (u16, String) {
        let auth = format!("Bearer {key}");
        http(proxy.port, "POST", "/v1/chat/completions", &body.to_string(), &[("Host", host), ("Authorization", &auth)])
    };

    // A per-minute limit of 8 holds for a burst of 32 (4×) through the proxy to three replicas.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..32).map(|_| scope.spawn(|| via_proxy("eu.seed.test", burst, &ask(1)).0)).collect();
        calls.into_iter().map(|c| c.join().expect("no panic")).collect()
    });
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 8, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 24, "{statuses:?}");
    // The burst reached every replica, and their admissions added up to the one limit.
    let count = |p: &ServeProcess, series: &str| -> f64 {
        let (_, page) = p.request_with("GET", "/metrics", "", &[("Authorization", &format!("Bearer {burst}"))]);
        page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    };
    let served: Vec<f64> =
        eu.iter().map(|p| count(p, "seed_tenant_requests_total{tenant=\"burst\",edition=\"cici\"}")).collect();
    let refused: Vec<f64> = eu.iter().map(|p| count(p, "seed_requests_rejected_total{reason=\"quota\"}")).collect();
    assert!(served.iter().zip(&refused).all(|(s, r)| s + r > 0.0), "a replica got none: {served:?} {refused:?}");
    assert_eq!(served.iter().sum::<f64>(), 8.0, "{served:?}");

    // Every answered request leaves one row, with the tokens its client was told.
    let told: Vec<Value> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..9)
            .map(|i| {
                scope.spawn({
                    let server = &eu[i % 3];
                    move || {
                        let (status, v) = post(server, plain, "/v1/chat/completions", &ask(2 + i as u32));
                        assert_eq!(status, 200, "{v}");
                        v
                    }
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().expect("no panic")).collect()
    });
    let sum = |field: &str| told.iter().map(|v| v["usage"][field].as_u64().expect("count")).sum::<u64>();
    let rows = eu_db
        .psql(
            "seed",
            "SELECT count(*) || ' ' || sum(prompt_tokens) || ' ' || sum(completion_tokens) FROM usage \
                     WHERE tenant = 'plain' AND finish_reason <> 'running'",
        )
        .expect("psql");
    assert_eq!(rows, format!("9 {} {}", sum("prompt_tokens"), sum("completion_tokens")));

    // A concurrency cap of 2 holds across replicas; a killed replica's slot comes back when its
    // lease runs out, and its row is closed as interrupted.
    let on_first = start_stream(&eu[0], capped);
    let mut on_third = start_stream(&eu[2], capped);
    let (status, e) = post(&eu[1], capped, "/v1/chat/completions", &ask(1));
    assert_eq!((status, e["error"]["code"].as_str()), (429, Some("concurrent_requests")), "{e}");
    drop(eu.remove(2)); // kill -9 mid-stream
    let cut = read_until(&mut on_third, "[DONE]");
    assert!(!cut.contains("[DONE]"), "the killed replica's client saw [DONE]");
    // Its client's retry, through the proxy, is served by another replica.
    let (status, text) = via_proxy("eu.seed.test", plain, &ask(2));
    assert_eq!(status, 200, "{text}\n{}", proxy.log());
    let interrupted = || eu_db.psql("seed", "SELECT count(*) FROM usage WHERE finish_reason = 'interrupted'");
    let closed = within(Duration::from_secs(20), "the killed replica's row", || interrupted().expect("psql") == "1");
    eprintln!("the killed replica's request was closed as interrupted after {closed:?}");
    // The first stream still runs: the slot that is free now is the dead one's.
    let (status, e) = post(&eu[1], capped, "/v1/chat/completions", &ask(1));
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        eu_db
            .psql("seed", "SELECT count(*) FROM usage WHERE tenant = 'capped' AND finish_reason = 'running'")
            .expect("psql"),
        "1"
    );
    drop(on_first); // the client goes away: its request ends as cancelled

    // A conversation written through two replicas reads the same from a third.
    let (status, conv) = post(&eu[0], plain, "/v1/conversations", &json!({}));
    assert_eq!(status, 200, "{conv}");
    let id = conv["id"].as_str().expect("id").to_string();
    let third = replica(&config, "eu", free_port());
    for (server, q) in [(&eu[0], "First question?"), (&eu[1], "Second question?")] {
        let body = json!({"model": "cici", "max_tokens": 3, "conversation": id,
                          "messages": [{"role": "user", "content": q}]});
        assert_eq!(post(server, plain, "/v1/chat/completions", &body).0, 200);
    }
    let auth = format!("Bearer {plain}");
    let (status, text) = third.request_with("GET", &format!("/v1/conversations/{id}"), "", &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{text}");
    let got: Value = serde_json::from_str(&text).expect("json");
    let roles: Vec<&str> =
        got["messages"].as_array().expect("messages").iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{got}");
    assert_eq!(got["messages"][2]["content"], "Second question?");

    // Each region's replicas know only their own tenants, and each database only its own rows.
    assert_eq!(via_proxy("us.seed.test", plain, &ask(1)).0, 401);
    assert_eq!(via_proxy("eu.seed.test", globex, &ask(1)).0, 401);
    assert_eq!(via_proxy("us.seed.test", globex, &ask(1)).0, 200);
    assert_eq!(us_db.psql("seed", "SELECT count(*) FROM usage WHERE tenant <> 'globex'").expect("psql"), "0");
    assert_eq!(eu_db.psql("seed", "SELECT count(*) FROM usage WHERE tenant = 'globex'").expect("psql"), "0");

    // A revoked key is refused by every replica of its region within 5 s.
    let id_of = seed(&["keys", "--config", &config.display().to_string(), "list"]);
    let key_id = id_of
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("plain"))
        .and_then(|l| l.split_whitespace().next())
        .expect("plain's key id")
        .to_string();
    // SIGTERM drains a replica: its running stream finishes, new requests go to the others.
    let body = json!({"model": "cici", "max_tokens": 60, "ignore_eos": true, "stream": true,
                      "messages": [{"role": "user", "content": "Count to a hundred."}]});
    let auth = format!("Bearer {plain}");
    let mut draining = eu[1].send_with("POST", "/v1/chat/completions", &body.to_string(), &[("Authorization", &auth)]);
    assert!(read_until(&mut draining, "\"content\":\"").starts_with("HTTP/1.1 200"));
    eu[1].terminate();
    // Its agent says so at once, and HAProxy stops sending it new requests.
    let agent_says = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", agents[1])).expect("agent");
        let mut line = String::new();
        std::io::Read::read_to_string(&mut s, &mut line).expect("agent answer");
        line
    };
    within(Duration::from_secs(2), "the agent's drain", || agent_says() == "drain\n");
    for _ in 0..6 {
        let (status, text) = via_proxy("eu.seed.test", plain, &ask(1));
        assert_eq!(status, 200, "during the drain: {text}");
    }
    assert!(read_until(&mut draining, "[DONE]").contains("[DONE]"), "the draining replica cut its stream");
    assert!(eu[1].wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()), "no clean exit after the drain");

    seed(&["keys", "--config", &config.display().to_string(), "revoke", &key_id]);
    let all = [&eu[0], &third];
    let took = within(Duration::from_secs(5), "the revocation", || {
        all.iter().all(|s| post(s, plain, "/v1/chat/completions", &ask(1)).0 == 401)
    });
    eprintln!("every replica refused the revoked key after {took:?}");
}
