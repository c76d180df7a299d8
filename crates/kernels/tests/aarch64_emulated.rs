//! The ARM64 build of Seed under emulation: `scripts/test-aarch64.sh` cross-builds the
//! kernel, model and golden tests for `aarch64-unknown-linux-gnu` and runs them under
//! `qemu-aarch64` (its default CPU has NEON, dotprod and i8mm, so every ARM64 level
//! runs). Here so that the workspace's one test command covers ARM64 too; on an
//! ARM64 machine those tests run natively instead, and this one is not compiled.

#![cfg(target_arch = "x86_64")]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_arm64_build_passes_its_tests_under_qemu() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/test-aarch64.sh"))
        .current_dir(&root)
        // The outer `cargo test`'s settings are not the inner build's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("SEED_KERNELS")
        .output()
        .expect("running scripts/test-aarch64.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let tail: String = text.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "scripts/test-aarch64.sh failed:\n{tail}");
    // Each test binary reported, and none ran nothing.
    let results: Vec<&str> = text.lines().filter(|l| l.starts_with("test result: ok.")).collect();
    assert!(results.len() >= 8, "too few test binaries ran under qemu:\n{tail}");
    for name in ["every_isa_matches_the_scalar_kernels", "teacher_forced_logprobs_match_llama_cpp"] {
        assert!(text.contains(&format!("test {name} ... ok")), "{name} did not run under qemu:\n{tail}");
    }
    eprintln!("{}", results.join("\n"));
}
