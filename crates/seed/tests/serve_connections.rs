//! Connection abuse against a real server on a loopback socket: a thousand idle
//! connections and a hundred slow-loris ones do not stop real requests; past the
//! connection cap a client gets a 503 in the error envelope; idle connections are
//! closed by the header-read timeout; oversized headers get 431; a body that
//! never finishes arriving gets a 400. Everything talks to 127.0.0.1 only and
//! every read has a timeout.

mod serving;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use server::{AppState, ServerConfig};

/// A server on its own runtime thread, stopped (and drained) on drop.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(cfg: ServerConfig) -> Running {
        let state = AppState::ready(cfg, serving::model(), serving::engine(64, 64));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                server::serve(listener, state, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            });
        });
        Running { addr, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Raises this process's open-file soft limit to at least `n` (the server's and
/// the clients' sockets share it), or fails saying why.
fn need_files(n: u64) {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    if soft < n {
        assert!(hard >= n, "this test needs {n} open files; the hard limit is {hard}");
        rlimit::setrlimit(rlimit::Resource::NOFILE, n, hard).expect("setrlimit");
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    s
}

/// Sends `raw` on a fresh connection and reads the whole answer: (status, body).
fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = connect(addr);
    s.write_all(raw).expect("send");
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> (u16, String) {
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text); // a reset after the answer is fine
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chat(addr: SocketAddr) -> (u16, Value) {
    let body = r#"{"model":"any","messages":[{"role":"user","content":"Say hi"}],"max_tokens":3,"temperature":0}"#;
    let (status, text) = exchange(addr, &post("/v1/chat/completions", body));
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}")))
}

#[test]
fn a_thousand_idle_connections_do_not_stop_real_requests() {
    need_files(4096);
    let mut cfg = serving::config();
    cfg.connections.max_connections = 1200;
    let server = Running::start(cfg);
    let mut idle: Vec<TcpStream> = (0..1000).map(|_| connect(server.addr)).collect();
    // A hundred slow-loris clients: a request line and half a header, then nothing.
    for _ in 0..100 {
        let mut s = connect(server.addr);
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-le").expect("send");
        idle.push(s);
    }
    let started = Instant::now();
    for _ in 0..3 {
        let (status, v) = chat(server.addr);
        assert_eq!(status, 200, "{v}");
        assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    }
    let (status, _) = exchange(server.addr, b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "real requests took {took:?} beside 1,100 idle connections");
    drop(idle);
}

#[test]
fn past_the_cap_a_connection_gets_503_and_idle_ones_are_closed_by_the_header_timeout() {
    let mut cfg = serving::config();
    cfg.connections.max_connections = 8;
    cfg.connections.header_read_timeout = Duration::from_secs(1);
    let server = Running::start(cfg);
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(server.addr)).collect();
    std::thread::sleep(Duration::from_millis(200)); // let the server accept them all
    let (status, body) = exchange(server.addr, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON body");
    serving::assert_envelope(&v);
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("8 open connections")), "{v}");

    // The header-read timeout closes every idle connection (EOF, not a hang).
    let started = Instant::now();
    for s in &mut idle {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n == 0 || buf.starts_with(b"HTTP/1.1 408"), "an idle connection got {:?}", &buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_secs(10), "idle connections closed after {:?}", started.elapsed());
    std::thread::sleep(Duration::from_millis(200));
    let (status, v) = chat(server.addr);
    assert_eq!(status, 200, "{v}");
}

#[test]
fn oversized_headers_get_431_and_a_stalled_body_gets_400() {
    let mut cfg = serving::config();
    cfg.connections.body_read_timeout = Duration::from_secs(1);
    let server = Running::start(cfg);

    let big =
        format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n", "a".repeat(20 << 10));
    assert_eq!(exchange(server.addr, big.as_bytes()).0, 431, "a 20 KiB header");
    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\nhost: x\r\n{many}connection: close\r\n\r\n");
    assert_eq!(exchange(server.addr, many.as_bytes()).0, 431, "100 header fields");

    // Ten bytes of a promised hundred, then silence.
    let mut s = connect(server.addr);
    s.write_all(b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":")
        .expect("send");
    let started = Instant::now();
    let (status, body) = read_answer(&mut s);
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON body");
    serving::assert_envelope(&v);
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("did not arrive within 1 s")), "{v}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Headers within the limits still work.
    let (status, _) = exchange(server.addr, b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(status, 200);
}
