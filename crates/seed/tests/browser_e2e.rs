//! The chat page in a real browser: `web/e2e/chat.mjs` drives Debian's headless Chromium with
//! playwright-core against `seed serve` on the real default model, with two editions of it
//! (`cici` in English, `doubao` in Chinese, each with its own face): send, stream, stop,
//! regenerate, edit, settings, search, rename, delete with undo, tools, both themes, both
//! languages, desktop and phone, axe-core on every state, and a 10,000-token answer's frame
//! times. It writes the screenshots of `docs/` (set `SEED_SCREENSHOTS=docs` to refresh them).

mod serving;

use std::path::Path;
use std::process::Command;

use serving::process::ServeProcess;

fn ready(root: &Path) -> bool {
    let modules = root.join("web/e2e/node_modules");
    Path::new("/usr/bin/chromium").exists()
        && Path::new("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc").exists()
        && modules.join("playwright-core/package.json").exists()
        && modules.join("axe-core/axe.min.js").exists()
}

/// Two editions of the default model, as a region's `seed.toml` would give them.
const EDITIONS: &str = r##"
[[region]]
name = "local"
store = "region.sqlite"

[[edition]]
name = "cici"
model = "smollm2-135m-instruct"
language = "en"
display_name = "Cici"
greeting = "Hi, I'm Cici. What shall we explore today?"
suggestions = ["Name three colours of the sea.", "Write a haiku about the moon."]
accent = "#e0457b"
system = "You are Cici, a friendly and concise assistant."
regions = ["local"]

[[edition]]
name = "doubao"
model = "smollm2-135m-instruct"
language = "zh"
display_name = "豆包"
greeting = "你好，我是豆包。今天想聊点什么？"
suggestions = ["用一句话介绍北京。", "写一首关于秋天的短诗。"]
accent = "#1664ff"
system = "你是豆包，一个乐于助人的中文助手。"
regions = ["local"]
"##;

#[test]
fn the_chat_page_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !ready(&root) {
        let setup = Command::new(root.join("scripts/setup-browser-test.sh")).status();
        assert!(
            setup.is_ok_and(|s| s.success()) && ready(&root),
            "the browser test needs /usr/bin/chromium, a CJK font, playwright-core and axe-core: run scripts/setup-browser-test.sh (as root)"
        );
    }
    let data = tempfile_dir();
    let config = data.join("seed.toml");
    std::fs::write(&config, EDITIONS).expect("writing the config");
    let server =
        ServeProcess::start(&["--model", serving::REAL_MODEL_ID, "--config", config.to_str().expect("a UTF-8 path")]);
    let shots = std::env::var("SEED_SCREENSHOTS").map_or_else(|_| data.clone(), Into::into);
    let out = Command::new("timeout")
        .args(["900", "node"])
        .arg(root.join("web/e2e/chat.mjs"))
        .arg(server.port.to_string())
        .arg(&shots)
        .output()
        .expect("running node web/e2e/chat.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let _ = std::fs::remove_dir_all(&data);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("browser checks passed"), "{stdout}");
}

/// A fresh folder under the target's temporary folder.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}
