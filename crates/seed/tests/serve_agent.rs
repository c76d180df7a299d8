//! `seed serve --agent-port`: HAProxy's agent check answers `ready up W%` while the replica
//! serves, and `drain` once SIGTERM has begun the shutdown while a stream still runs.

mod serving;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serving::process::{read_until, ServeProcess};

/// The one line the agent answers on `port`.
fn agent_line(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the agent port");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut line = String::new();
    s.read_to_string(&mut line).expect("read the agent's answer");
    line
}

#[test]
fn the_agent_check_says_ready_with_a_weight_then_drain_on_sigterm() {
    let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let server = ServeProcess::start(&["--agent-port", &port.to_string(), "--drain-timeout", "30"]);
    let line = agent_line(port);
    assert_eq!(line, "ready up 100%\n", "an idle replica takes its full weight");

    // A long stream keeps the replica draining after SIGTERM.
    let body = r#"{"model":"any","stream":true,"max_tokens":400,"temperature":0,"ignore_eos":true,
        "messages":[{"role":"user","content":"Count from one to one thousand."}]}"#;
    let mut stream = server.send("POST", "/v1/chat/completions", body);
    read_until(&mut stream, "data: ");
    let busy = agent_line(port);
    assert!(busy.starts_with("ready up ") && busy.ends_with("%\n"), "{busy:?}");
    server.terminate();
    let mut drained = String::new();
    for _ in 0..50 {
        drained = agent_line(port);
        if drained == "drain\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(drained, "drain\n", "once shutdown has begun the agent says drain");
    // And the stream still finishes.
    let rest = read_until(&mut stream, "[DONE]");
    assert!(rest.contains("[DONE]"), "the running stream finished: {rest}");
}
