//! `seed serve` as a child process on a free loopback port (`--port 0`; the
//! port is read from its `listening on` line), killed when dropped, and a
//! minimal HTTP/1.1 client for it. Every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `seed serve`.
pub struct ServeProcess {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The temporary data folder (its store), unless the caller gave `--data-dir`.
    _data: Option<tempfile::TempDir>,
}

impl ServeProcess {
    /// Starts `seed serve` on the tiny model (2 threads, context 1024,
    /// alias `any`, a temporary `--data-dir` unless `extra` names one) with `extra` flags, and
    /// waits until `/health` is 200. A `--model` in `extra` replaces the tiny model.
    pub fn start(extra: &[&str]) -> ServeProcess {
        let data = (!extra.contains(&"--data-dir")).then(|| tempfile::tempdir().expect("tempdir"));
        let mut args: Vec<String> = ["--port", "0", "-t", "2", "--ctx", "1024", "--parallel", "4", "--alias", "any"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !extra.contains(&"--model") {
            args.extend(["--model".to_string(), super::MODEL_ID.to_string()]);
        }
        if let Some(d) = &data {
            args.extend(["--data-dir".to_string(), d.path().display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(&args, data)
    }

    /// Starts `seed serve --port 0` with exactly `args` (no defaults), and waits until
    /// `/health` is 200 (every model loaded).
    pub fn start_raw(args: &[&str]) -> ServeProcess {
        Self::spawn(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None)
    }

    fn spawn(args: &[String], data: Option<tempfile::TempDir>) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seed"))
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting seed serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening on http://127.0.0.1:").and_then(|p| p.parse().ok()) {
                    let _ = tx.send(port);
                }
                eprintln!("[seed serve] {line}");
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(120)).expect("seed serve printed no `listening on` line");
        let server = ServeProcess { child, port, _data: data };
        let deadline = Instant::now() + Duration::from_secs(120);
        while server.get("/health").0 != 200 {
            assert!(Instant::now() < deadline, "seed serve did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A connection to the server (reads time out after a minute).
    pub fn connect(&self) -> TcpStream {
        connect(self.port)
    }

    /// Sends a request; returns the stream to read the answer from.
    pub fn send(&self, method: &str, path: &str, body: &str) -> TcpStream {
        self.send_with(method, path, body, &[])
    }

    /// Sends a request with extra `headers`; returns the stream to read the answer from.
    pub fn send_with(&self, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> TcpStream {
        send_to(self.port, method, path, body, headers)
    }

    /// A whole exchange: status and body (chunked bodies are returned raw).
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        self.request_with(method, path, body, &[])
    }

    /// A whole exchange with extra `headers`: status and body (chunked bodies are returned raw).
    pub fn request_with(&self, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http(self.port, method, path, body, headers)
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, "")
    }

    /// One unlabelled sample of `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let (status, page) = self.get("/metrics");
        assert_eq!(status, 200);
        server::metrics::sample(&page, name).unwrap_or_else(|| panic!("{name} not in /metrics"))
    }

    /// A labelled sample of `/metrics`, by its exact series text.
    pub fn series(&self, series: &str) -> f64 {
        let (_, page) = self.get("/metrics");
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} not in /metrics"))
    }

    /// Polls `metric` until it equals `value`, for at most `limit`.
    pub fn wait_metric(&self, name: &str, value: f64, limit: Duration) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.metric(name);
            if v == value || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection to `port` on 127.0.0.1 (reads time out after a minute).
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s
}

/// Sends a request to `port` (`Host: 127.0.0.1` unless `headers` name one); returns the
/// stream to read the answer from.
pub fn send_to(port: u16, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> TcpStream {
    let mut s = connect(port);
    let host = if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) { "" } else { "Host: 127.0.0.1\r\n" };
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\n{host}Content-Type: application/json\r\n{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    s
}

/// A whole exchange with `port`: status and body (chunked bodies are returned raw).
pub fn http(port: u16, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = send_to(port, method, path, body, headers);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// Reads from `s` until `needle` has been seen (or the stream ends); returns
/// everything read.
pub fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}
