//! The `seed` binary end to end on the default model: `generate --json` gives the
//! golden token ids, `run` answers a piped chat, and bad arguments fail cleanly.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

fn seed() -> Command {
    // Make sure the model is in the cache before the binary looks for it.
    seed::catalogue::ensure_model("smollm2-135m-instruct").expect("model");
    Command::new(env!("CARGO_BIN_EXE_seed"))
}

#[test]
fn generate_json_has_ids_text_and_logprobs() {
    let out = seed()
        .args(["generate", "--prompt", "The capital of France is", "--raw", "-n", "4", "--json", "--logprobs", "3"])
        .output()
        .expect("run seed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["prompt_token_ids"], serde_json::json!([504, 3575, 282, 4649, 314]));
    // llama.cpp's greedy continuation starts " Paris.\n\n".
    assert_eq!(v["token_ids"], serde_json::json!([7042, 30, 198, 198]));
    assert_eq!(v["text"], " Paris.\n\n");
    assert_eq!(v["finish_reason"], "length");
    let lp = v["logprobs"].as_array().expect("logprobs");
    assert_eq!(lp.len(), 4);
    assert_eq!(lp[0]["id"], 7042);
    assert_eq!(lp[0]["top_logprobs"].as_array().map(Vec::len), Some(3));
    assert!((lp[0]["logprob"].as_f64().expect("logprob") + 0.2484).abs() < 0.01);
}

/// Runs `seed run` with `input` on stdin; returns stdout.
fn run_piped(input: &[u8], extra: &[&str]) -> String {
    let mut child = seed()
        .args(["run", "-n", "24"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run seed");
    child.stdin.take().expect("stdin").write_all(input).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn run_keeps_the_conversation_and_clear_forgets_it() {
    // Greedy answers, one per turn (each ends with a newline).
    let greedy = ["--temperature", "0"];
    let alone = run_piped(b"And of Germany?\n", &greedy);
    let chat = run_piped(b"What is the capital of France?\nAnd of Germany?\n", &greedy);
    let cleared = run_piped(b"What is the capital of France?\n/clear\nAnd of Germany?\n", &greedy);
    assert!(!alone.trim().is_empty());
    // The follow-up is answered differently with the first turn in context...
    assert!(chat.ends_with('\n') && !chat.ends_with(&alone), "{chat:?} vs {alone:?}");
    // ...and exactly as alone once the conversation is cleared.
    assert!(cleared.ends_with(&alone), "{cleared:?} vs {alone:?}");
}

/// `seed run ARGS "What is the capital of France?"`: (stdout, stderr).
fn ask(args: &[&str]) -> (String, String) {
    let out = seed().args(["run"]).args(args).arg("What is the capital of France?").output().expect("run seed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn run_samples_as_the_model_recommends_unless_told_to_be_greedy() {
    // SmolLM2's card recommends temperature 0.2 and top-p 0.9; the rest are the chat defaults.
    let (_, err) = ask(&["-v", "-n", "4"]);
    assert!(
        err.contains("sampling: temperature 0.2 top_k 40 top_p 0.9 min_p 0 repeat_penalty 1.1 (last 64 tokens)"),
        "{err}"
    );
    let (_, err) = ask(&["-v", "-n", "4", "--temperature", "0"]);
    assert!(err.contains("sampling: greedy"), "{err}");
    // A seed makes a sampled answer repeat itself; greedy starts as llama.cpp's answer
    // does ("L'Étoile, la Marseillaise, ..."): at its eighth token llama.cpp's top two
    // (" Mar", " Cit") are 0.069 nats apart, inside the golden rule's 0.45, and Seed's
    // order takes " Cit".
    let seeded = ask(&["-n", "24", "--seed", "7"]).0;
    assert_eq!(seeded, ask(&["-n", "24", "--seed", "7"]).0);
    let greedy = ask(&["-n", "24", "--temperature", "0"]).0;
    assert!(greedy.starts_with("L'Étoile, la "), "{greedy:?}");
    let sampled: Vec<String> = (1..=4).map(|s| ask(&["-n", "24", "--seed", &s.to_string()]).0).collect();
    assert!(sampled.iter().any(|a| *a != greedy), "four seeds all gave the greedy answer: {sampled:?}");
}

#[test]
fn an_answer_cut_by_the_limit_says_so() {
    let (out, err) = ask(&["-n", "3", "--temperature", "0"]);
    assert!(!out.trim().is_empty());
    assert!(err.contains("(answer cut at 3 tokens; --max-tokens N or /set max_tokens N allows longer ones)"), "{err}");
}

#[test]
fn run_with_a_prompt_answers_once() {
    let out = seed().args(["run", "-n", "8", "Say hello."]).output().expect("run seed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.trim().is_empty() && text.ends_with('\n'), "{text:?}");
}

#[test]
fn a_missing_model_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["generate", "--model", "no/such/file.gguf", "--prompt", "x"])
        .output()
        .expect("run seed");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/file.gguf") && err.contains("does not exist"), "{err}");
}

#[test]
fn a_corrupt_model_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.gguf");
    std::fs::write(&path, b"GGUF\x03\x00\x00\x00garbage").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["generate", "--model", path.to_str().expect("utf8"), "--prompt", "x"])
        .output()
        .expect("run seed");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.gguf") && !err.contains("panicked"), "{err}");
}

/// A GGUF file with no tensors and the one metadata key `general.architecture`.
fn gguf_with_architecture(arch: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes()); // version
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // metadata pairs
    let key = b"general.architecture";
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&8u32.to_le_bytes()); // string
    b.extend_from_slice(&(arch.len() as u64).to_le_bytes());
    b.extend_from_slice(arch.as_bytes());
    b
}

#[test]
fn an_unsupported_architecture_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.gguf");
    std::fs::write(&path, gguf_with_architecture("mamba")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["generate", "--model", path.to_str().expect("utf8"), "--prompt", "x"])
        .output()
        .expect("run seed");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("architecture 'mamba' is not supported") && err.contains("qwen3moe"), "{err}");
}

#[test]
fn models_lists_the_supported_architectures() {
    let out = Command::new(env!("CARGO_BIN_EXE_seed")).arg("models").output().expect("run seed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("architectures:")).unwrap_or_else(|| panic!("{text}"));
    for arch in ["llama", "gemma3", "qwen2", "qwen3", "qwen3moe"] {
        assert!(line.split([' ', ',']).any(|w| w == arch), "{arch} missing from {line:?}");
    }
}

/// `seed run` in a pseudo-terminal (made by util-linux `script`): the line editor
/// prompts, a multi-turn exchange keeps context, `/clear` forgets it, and the up
/// arrow brings back the last input.
#[test]
fn run_in_a_terminal_chats_and_clears() {
    use std::io::Read;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let first = "What is the capital of France?";
    let follow = "And of Germany?";
    // The reference answers, from the piped mode (greedy, so the same).
    let alone = run_piped(format!("{follow}\n").as_bytes(), &["--temperature", "0"]);
    let chat = run_piped(format!("{first}\n{follow}\n").as_bytes(), &["--temperature", "0"]);
    let chat_second = chat.lines().last().expect("an answer").trim().to_string();

    let bin = seed().get_program().to_string_lossy().into_owned();
    let mut child = Command::new("script")
        .args(["-qfec", &format!("{bin} run -n 24 --temperature 0"), "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::<u8>::new();
    // Waits until the output holds `count` prompts.
    let mut wait_prompts = |count: usize| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = String::from_utf8_lossy(&seen).into_owned();
            if text.matches(">>> ").count() >= count {
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.extend_from_slice(&chunk),
                Err(_) => panic!("no prompt #{count} in {text:?}"),
            }
        }
    };
    // rustyline redraws the prompt on some keys, so count prompts after each step.
    let mut send = |s: &str| {
        stdin.write_all(s.as_bytes()).expect("write");
        stdin.flush().expect("flush");
    };
    wait_prompts(1);
    send(&format!("{first}\r"));
    let after_first = wait_prompts(2).matches(">>> ").count();
    send(&format!("{follow}\r"));
    let after_second = wait_prompts(after_first + 1);
    send("/clear\r");
    let n = wait_prompts(after_second.matches(">>> ").count() + 1).matches(">>> ").count();
    send(&format!("{follow}\r"));
    let n = wait_prompts(n + 1).matches(">>> ").count();
    // The up arrow brings back the last input.
    send("\x1b[A\r");
    let n = wait_prompts(n + 2).matches(">>> ").count();
    let _ = n;
    send("/bye\r");
    let status = child.wait().expect("wait");
    assert!(status.success());
    let text = String::from_utf8_lossy(&seen).replace('\r', "");
    let (before, after) = text.split_once("(conversation cleared)").expect("/clear answered");
    assert!(before.contains(&chat_second), "{chat_second:?} not in {before:?}");
    assert!(after.contains(alone.trim()), "{alone:?} not in {after:?}");
    // The recalled input shows up a second time after /clear.
    assert!(after.matches(follow).count() >= 2, "{after:?}");
}

#[test]
fn run_with_a_json_schema_prints_json_that_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = dir.path().join("person.json");
    let text = r#"{"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150}},
        "required": ["name", "age"], "additionalProperties": false}"#;
    std::fs::write(&schema, text).expect("schema");
    let schema = schema.display().to_string();
    for extra in [&["--temperature", "0"][..], &["--seed", "3"][..]] {
        let out = seed()
            .args(["run", "-n", "80", "--json-schema", &schema])
            .args(extra)
            .arg("Invent a person.")
            .output()
            .expect("run seed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let answer = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value =
            serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"));
        let o = v.as_object().expect("an object");
        assert_eq!(o.len(), 2, "{answer}");
        assert!(o["name"].as_str().is_some_and(|n| n.chars().count() <= 40), "{answer}");
        assert!(o["age"].as_i64().is_some_and(|a| (0..=150).contains(&a)), "{answer}");
    }
    // A schema that cannot be used is an error naming the file and why.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"type": "frobnicate"}"#).expect("schema");
    let out = seed().args(["run", "--json-schema"]).arg(&bad).arg("x").output().expect("run seed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.json") && err.contains("frobnicate"), "{err}");
}

#[test]
fn tokenize_prints_ids_pieces_and_a_table() {
    let run = |args: &[&str]| {
        let out = seed().arg("tokenize").args(args).output().expect("run seed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    // llama.cpp's ids for the golden prompt.
    assert_eq!(run(&["--ids", "The capital of France is"]), "[504, 3575, 282, 4649, 314]\n");
    assert_eq!(run(&["--pieces", "The capital"]), "[\"The\",\" capital\"]\n");
    assert_eq!(run(&["The capital"]), "   504 -> 'The'\n  3575 -> ' capital'\n");
    // Special texts are one token unless --no-parse-special.
    assert_eq!(run(&["--ids", "<|im_start|>"]).matches(',').count(), 0);
    assert!(run(&["--ids", "--no-parse-special", "<|im_start|>"]).matches(',').count() > 0);
}
