//! Durability: `seed serve` is killed with SIGKILL at random moments while clients create
//! conversations and chat into them; the store then holds every acknowledged write — a SQLite
//! file (which also passes `PRAGMA integrity_check`), and a PostgreSQL database (a real server
//! this test starts), where no usage row is left `running` once the last lease has run out.
//! Kill rounds go on until enough writes have been acknowledged to mean something (a busy
//! machine needs more of them) and at least [`MIN_ROUNDS`] moments were tried, bounded by
//! [`TIME_LIMIT`] and [`MAX_ROUNDS`].

mod serving;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use serving::process::ServeProcess;

/// One exchange (with `auth` as the bearer key, if any); `None` when the server went away
/// mid-way (nothing acknowledged).
fn request(port: u16, auth: Option<&str>, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let auth = auth.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some((status, serde_json::from_str(body).ok()?))
}

/// What the server acknowledged: conversations (id, title) and chat turns (id, user text).
#[derive(Default, Debug)]
struct Acked {
    conversations: Vec<(String, String)>,
    turns: Vec<(String, String)>,
}

fn client(port: u16, auth: Option<&str>, who: usize, acked: Arc<Mutex<Acked>>) {
    for i in 0.. {
        let title = format!("c{who}-{i}-{}", std::process::id());
        let body = json!({"title": title}).to_string();
        let Some((200, conv)) = request(port, auth, "POST", "/v1/conversations", &body) else {
            return;
        };
        let id = conv["id"].as_str().expect("id").to_string();
        acked.lock().expect("lock").conversations.push((id.clone(), title.clone()));
        for t in 0..2 {
            let text = format!("{title} turn {t}");
            let body = json!({"model": "any", "conversation": id, "max_tokens": 1,
                "messages": [{"role": "user", "content": text}]});
            match request(port, auth, "POST", "/v1/chat/completions", &body.to_string()) {
                Some((200, _)) => acked.lock().expect("lock").turns.push((id.clone(), text)),
                Some((status, v)) => panic!("chat answered {status}: {v}"),
                None => return,
            }
        }
    }
}

/// Acknowledged conversations and turns the test needs, each.
const ENOUGH: usize = 20;
/// The longest the kill rounds go on for, however few writes got through.
const TIME_LIMIT: Duration = Duration::from_secs(300);
/// The fewest kill rounds (kill moments tried), however quickly writes get through.
const MIN_ROUNDS: usize = 10;
/// The most kill rounds.
const MAX_ROUNDS: usize = 200;

/// Where the store is and how a server reaches it.
struct Target {
    /// `seed serve` flags besides the defaults.
    args: Vec<String>,
    /// The bearer key requests carry (with tenants).
    key: Option<String>,
    /// The tenant the writes belong to.
    tenant: String,
    /// Opens the store to check it.
    open: Box<dyn Fn() -> platform::Store>,
}

/// Kill rounds against `target`'s server; returns what was acknowledged.
fn kill_rounds(target: &Target) -> Acked {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    eprintln!("kill-moment seed: {rng}");
    let started = Instant::now();
    let mut rounds = 0;
    let enough = |a: &Acked| a.conversations.len() >= ENOUGH && a.turns.len() >= ENOUGH;
    let args: Vec<&str> = target.args.iter().map(String::as_str).collect();
    while rounds < MIN_ROUNDS || (!enough(&acked.lock().expect("lock")) && started.elapsed() < TIME_LIMIT) {
        let server = ServeProcess::start(&args);
        let clients: Vec<_> = (0..3)
            .map(|who| {
                let (port, acked, key) = (server.port, Arc::clone(&acked), target.key.clone());
                std::thread::spawn(move || client(port, key.as_deref(), who, acked))
            })
            .collect();
        // xorshift: a kill moment between 0.2 and 2 s.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(200 + rng % 1800));
        drop(server); // SIGKILL, then reaped
        for c in clients {
            c.join().expect("client");
        }
        rounds += 1;
        if rounds >= MAX_ROUNDS {
            break;
        }
    }
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    eprintln!(
        "{rounds} kills in {:.0?}; {} conversations and {} turns acknowledged",
        started.elapsed(),
        acked.conversations.len(),
        acked.turns.len()
    );
    assert!(enough(&acked), "too few writes to mean anything in {TIME_LIMIT:?} ({rounds} kills)");
    acked
}

/// Every acknowledged conversation and turn is in the store, and a restarted server lists them.
fn check_acknowledged(target: &Target, acked: &Acked) {
    let store = (target.open)();
    for (id, title) in &acked.conversations {
        let (conv, _) =
            store.get_conversation(&target.tenant, id).unwrap_or_else(|e| panic!("lost conversation {id}: {e}"));
        assert_eq!(conv.title.as_deref(), Some(title.as_str()));
    }
    for (id, text) in &acked.turns {
        let (_, msgs) = store.get_conversation(&target.tenant, id).expect("conversation");
        let at = msgs.iter().position(|m| m.role == "user" && &m.content == text);
        let at = at.unwrap_or_else(|| panic!("lost the acknowledged turn `{text}` of {id}"));
        assert_eq!(msgs.get(at + 1).map(|m| m.role.as_str()), Some("assistant"), "its answer is stored with it");
    }
    drop(store);
    let args: Vec<&str> = target.args.iter().map(String::as_str).collect();
    let server = ServeProcess::start(&args);
    let auth = target.key.as_ref().map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, list) = server.request_with("GET", "/v1/conversations", "", &headers);
    assert_eq!(status, 200, "{list}");
    let listed = list_len(&list);
    assert!(listed >= acked.conversations.len(), "{listed} listed, {} acknowledged", acked.conversations.len());
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("path").to_string();
    let file = dir.path().join("seed.sqlite");
    let target = Target {
        args: vec!["--data-dir".into(), data],
        key: None,
        tenant: "local".into(),
        open: Box::new(move || platform::Store::open_file(&file).expect("reopen")),
    };
    let acked = kill_rounds(&target);
    let store = platform::store::sqlite::SqliteStore::open(&dir.path().join("seed.sqlite")).expect("reopen");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    drop(store);
    check_acknowledged(&target, &acked);
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write_on_postgres() {
    let pg = platform::testing::PgServer::start().expect("a PostgreSQL server");
    let url = pg.create_database("crash").expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("seed.toml");
    let toml = format!(
        "[[region]]\nname = \"r\"\nstore = \"{url}\"\n\
         [[edition]]\nname = \"any\"\nmodel = \"tiny-llama\"\nregions = [\"r\"]\n\
         [[tenant]]\nid = \"t\"\nregion = \"r\"\neditions = [\"any\"]\n"
    );
    std::fs::write(&config, toml).expect("config");
    let location = platform::Location::parse(&url, None).expect("url");
    let store = platform::Store::open(&location).expect("store");
    let (_, key) = platform::keys::create(&store, "t").expect("key");
    drop(store);
    let target = Target {
        args: ["--config", &config.display().to_string(), "--region", "r", "--request-lease", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        key: Some(key),
        tenant: "t".into(),
        open: Box::new(move || platform::Store::open(&location).expect("reopen")),
    };
    let acked = kill_rounds(&target);
    check_acknowledged(&target, &acked);
    // Once the killed servers' leases have run out, the next admission closes their rows: none
    // is left running, and each acknowledged turn has its completed row.
    std::thread::sleep(Duration::from_secs(4));
    let args: Vec<&str> = target.args.iter().map(String::as_str).collect();
    let server = ServeProcess::start(&args);
    let body = json!({"model": "any", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]});
    let auth = format!("Bearer {}", target.key.as_deref().unwrap_or_default());
    let (status, text) =
        server.request_with("POST", "/v1/chat/completions", &body.to_string(), &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{text}");
    let count = |filter: &str| -> usize {
        pg.psql("crash", &format!("SELECT count(*) FROM usage WHERE {filter}")).expect("psql").parse().expect("count")
    };
    assert_eq!(count("finish_reason = 'running'"), 0);
    let (closed, interrupted) =
        (count("finish_reason NOT IN ('running', 'interrupted')"), count("finish_reason = 'interrupted'"));
    eprintln!("{closed} completed and {interrupted} interrupted usage rows");
    assert!(closed > acked.turns.len(), "{closed} completed rows for {} acknowledged turns", acked.turns.len());
}

fn list_len(body: &str) -> usize {
    let v: Value = serde_json::from_str(body).expect("JSON");
    v["data"].as_array().map_or(0, Vec::len)
}
