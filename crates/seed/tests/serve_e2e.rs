//! `seed serve` as a process on a loopback port: the official `openai` and `anthropic` Python
//! SDKs against it, a client that disconnects mid-stream gives every KV block
//! back (seen through `/metrics`), and SIGTERM ends in-flight streams with a
//! final event and exits 0.

mod serving;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use serving::process::{read_until, ServeProcess};

/// A virtual environment under the target folder with `openai` and `anthropic` installed, or
/// why it could not be made (no network and no cached wheel).
fn sdk_python() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv");
    let python = venv.join("bin").join("python");
    let has_sdk = |py: &Path| {
        Command::new(py).args(["-c", "import openai, anthropic"]).output().is_ok_and(|o| o.status.success())
    };
    if has_sdk(&python) {
        return Ok(python);
    }
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "openai",
        "anthropic",
    ]))?;
    if has_sdk(&python) {
        Ok(python)
    } else {
        Err("openai and anthropic installed but do not import".into())
    }
}

/// Runs `script` (in `tests/serving/`) with the SDKs against a `seed serve` with a key.
fn sdk_script(script: &str) {
    let python = match sdk_python() {
        Ok(p) => p,
        Err(why) => {
            // Offline machines cannot install the SDKs; say so loudly.
            eprintln!("SKIPPED the SDK test {script}: cannot install the `openai` and `anthropic` packages: {why}");
            return;
        }
    };
    // The official clients run against the real default model: their checks read its answers.
    let server = ServeProcess::start(&["--model", serving::REAL_MODEL_ID, "--api-key", "sk-e2e"]);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serving").join(script);
    let out = Command::new(python)
        .arg(path)
        .args([&server.port.to_string(), "sk-e2e"])
        .output()
        .expect("running the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("checks passed"), "{stdout}");
    eprintln!("{stdout}");
}

#[test]
fn the_official_openai_sdk_works_against_seed_serve() {
    sdk_script("openai_client.py");
}

#[test]
fn the_official_anthropic_sdk_works_against_seed_serve() {
    sdk_script("anthropic_client.py");
}

fn long_stream(server: &ServeProcess) -> std::net::TcpStream {
    let body = json!({
        "model": "any", "prompt": "Once upon a time", "max_tokens": 1000, "temperature": 0,
        "ignore_eos": true, "stream": true,
    });
    server.send("POST", "/v1/completions", &body.to_string())
}

#[test]
fn a_client_that_disconnects_mid_stream_gives_back_every_kv_block() {
    let server = ServeProcess::start(&[]);
    let start = server.metric("seed_kv_blocks_used");
    assert_eq!(start, 0.0);
    let before = server.metric("seed_generation_tokens_total");
    // Four streams that would run for 1000 tokens each, and one whole
    // (non-streamed) request of the same length.
    let mut streams: Vec<_> = (0..4).map(|_| long_stream(&server)).collect();
    for s in &mut streams {
        let seen = read_until(s, "\"text\":\"");
        assert!(seen.contains("200 OK"), "{seen}");
    }
    let whole = json!({"model": "any", "prompt": "Hello", "max_tokens": 1000, "temperature": 0, "ignore_eos": true});
    let pending = server.send("POST", "/v1/completions", &whole.to_string());
    // Wait until the whole request runs too, so that all five are cancelled.
    assert_eq!(server.wait_metric("seed_requests_running", 5.0, Duration::from_secs(60)), 5.0);
    assert!(server.metric("seed_kv_blocks_used") > 0.0, "the requests hold blocks");
    drop(streams);
    drop(pending);
    let used = server.wait_metric("seed_kv_blocks_used", start, Duration::from_secs(60));
    assert_eq!(used, start, "KV blocks back at the starting count");
    assert_eq!(server.wait_metric("seed_requests_running", 0.0, Duration::from_secs(10)), 0.0);
    assert!(server.series("seed_requests_finished_total{finish_reason=\"cancelled\"}") >= 5.0);
    // Cancelled, not run to the end: far fewer than 5 × 1000 tokens were made.
    let made = server.metric("seed_generation_tokens_total") - before;
    assert!(made < 2500.0, "{made} tokens generated for departed clients");
}

#[test]
fn sigterm_ends_streams_with_a_final_event_and_exits_zero() {
    let mut server = ServeProcess::start(&["--drain-timeout", "0"]);
    let mut stream = long_stream(&server);
    read_until(&mut stream, "\"text\":\"");
    server.terminate();
    let rest = read_until(&mut stream, "data: [DONE]");
    assert!(rest.contains("\"error\"") && rest.contains("shutting down"), "final error event: {rest}");
    assert!(rest.contains("data: [DONE]"), "{rest}");
    let status = server.wait_exit(Duration::from_secs(30)).expect("seed serve exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}
