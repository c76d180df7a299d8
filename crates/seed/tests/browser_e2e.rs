//! The chat page in a real browser: `web/e2e/chat.mjs` drives Debian's
//! headless Chromium with playwright-core against `seed serve` on the real
//! default model (send, stream, stop, switch edition, phone layout, reload
//! and find the conversation). It writes the screenshots of `docs/`.

mod serving;

use std::path::Path;
use std::process::Command;

use serving::process::ServeProcess;

fn ready(root: &Path) -> bool {
    Path::new("/usr/bin/chromium").exists() && root.join("web/e2e/node_modules/playwright-core/package.json").exists()
}

#[test]
fn the_chat_page_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !ready(&root) {
        let setup = Command::new(root.join("scripts/setup-browser-test.sh")).status();
        assert!(
            setup.is_ok_and(|s| s.success()) && ready(&root),
            "the browser test needs /usr/bin/chromium and playwright-core: run scripts/setup-browser-test.sh (as root)"
        );
    }
    let data = tempfile_dir();
    let server = ServeProcess::start(&[]);
    let shots = std::env::var("SEED_SCREENSHOTS").map_or_else(|_| data.clone(), Into::into);
    let out = Command::new("timeout")
        .args(["600", "node"])
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
