//! Durability: `seed serve` is killed with SIGKILL at random moments while clients create
//! conversations and chat into them; after every restart the store passes
//! `PRAGMA integrity_check` and holds every acknowledged write. Kill rounds go on until
//! enough writes have been acknowledged to mean something (a busy machine needs more
//! of them) and at least [`MIN_ROUNDS`] moments were tried, bounded by [`TIME_LIMIT`] and
//! [`MAX_ROUNDS`].

mod serving;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use platform::Conversations;
use serde_json::{json, Value};
use serving::process::ServeProcess;

/// One exchange; `None` when the server went away mid-way (nothing acknowledged).
fn request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
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
#[derive(Default)]
struct Acked {
    conversations: Vec<(String, String)>,
    turns: Vec<(String, String)>,
}

fn client(port: u16, who: usize, acked: Arc<Mutex<Acked>>) {
    for i in 0.. {
        let title = format!("c{who}-{i}-{}", std::process::id());
        let Some((200, conv)) = request(port, "POST", "/v1/conversations", &json!({"title": title}).to_string()) else {
            return;
        };
        let id = conv["id"].as_str().expect("id").to_string();
        acked.lock().expect("lock").conversations.push((id.clone(), title.clone()));
        for t in 0..2 {
            let text = format!("{title} turn {t}");
            let body = json!({"model": "any", "conversation": id, "max_tokens": 1,
                "messages": [{"role": "user", "content": text}]});
            match request(port, "POST", "/v1/chat/completions", &body.to_string()) {
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

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("path").to_string();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    eprintln!("kill-moment seed: {rng}");
    let started = Instant::now();
    let mut rounds = 0;
    let enough = |a: &Acked| a.conversations.len() >= ENOUGH && a.turns.len() >= ENOUGH;
    while rounds < MIN_ROUNDS || (!enough(&acked.lock().expect("lock")) && started.elapsed() < TIME_LIMIT) {
        let server = ServeProcess::start(&["--data-dir", &data]);
        let clients: Vec<_> = (0..3)
            .map(|who| {
                let (port, acked) = (server.port, Arc::clone(&acked));
                std::thread::spawn(move || client(port, who, acked))
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
    let acked = acked.lock().expect("lock");
    eprintln!(
        "{rounds} kills in {:.0?}; {} conversations and {} turns acknowledged",
        started.elapsed(),
        acked.conversations.len(),
        acked.turns.len()
    );
    assert!(enough(&acked), "too few writes to mean anything in {TIME_LIMIT:?} ({rounds} kills)");

    let store = platform::store::sqlite::SqliteStore::open(&dir.path().join("seed.sqlite")).expect("reopen");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    for (id, title) in &acked.conversations {
        let (conv, _) = store.get_conversation("local", id).unwrap_or_else(|e| panic!("lost conversation {id}: {e}"));
        assert_eq!(conv.title.as_deref(), Some(title.as_str()));
    }
    for (id, text) in &acked.turns {
        let (_, msgs) = store.get_conversation("local", id).expect("conversation");
        let at = msgs.iter().position(|m| m.role == "user" && &m.content == text);
        let at = at.unwrap_or_else(|| panic!("lost the acknowledged turn `{text}` of {id}"));
        assert_eq!(msgs.get(at + 1).map(|m| m.role.as_str()), Some("assistant"), "its answer is stored with it");
    }
    // And the server serves them after the last crash.
    drop(store);
    let server = ServeProcess::start(&["--data-dir", &data]);
    let (status, list) = server.get("/v1/conversations");
    assert_eq!(status, 200);
    let listed = list_len(&list);
    assert!(listed >= acked.conversations.len(), "{listed} listed, {} acknowledged", acked.conversations.len());
}

fn list_len(body: &str) -> usize {
    let v: Value = serde_json::from_str(body).expect("JSON");
    v["data"].as_array().map_or(0, Vec::len)
}
