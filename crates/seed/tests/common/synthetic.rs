//! The synthetic fixtures of `../shared/` (see the golden README there): where they
//! are, a Python that can run their generator, and the files that are not shipped
//! but made from a regenerated F32 original with `seed quantize` (checked against
//! the sha256 sums the fixtures' README gives for llama-quantize's output).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// `../shared/` beside the repository root.
pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// The fixtures' generator script, if the fixtures are there.
pub fn generator() -> Option<PathBuf> {
    let script = shared().join("tools/make_synthetic_models.py");
    script.is_file().then_some(script)
}

/// A python3 that has numpy and gguf: the system's, else a venv made (with pip, as
/// an ordinary client) under the target directory.
pub fn python() -> PathBuf {
    let has = |py: &Path| {
        Command::new(py).args(["-c", "import numpy, gguf"]).output().map(|o| o.status.success()).unwrap_or(false)
    };
    let system = PathBuf::from("python3");
    if has(&system) {
        return system;
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synthetic-venv");
    let py = venv.join("bin/python3");
    if !has(&py) {
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "python3 -m venv {} failed", venv.display());
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "numpy==2.4.6", "gguf==0.19.0"])
            .status()
            .map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "pip could not install numpy and gguf");
    }
    py
}

/// Regenerates `<arch>-tiny-f32.gguf` into `dir` with the fixtures' script.
pub fn regenerate(script: &Path, arch: &str, dir: &Path) -> PathBuf {
    let donor = seed::catalogue::ensure_model("smollm2-135m-instruct").expect("SmolLM2 (the tokenizer donor)");
    let out = Command::new(python())
        .arg(script)
        .arg("--tokenizer-from")
        .arg(&donor)
        .arg("--out-dir")
        .arg(dir)
        .args(["--arch", arch])
        .output()
        .expect("run the generator");
    assert!(out.status.success(), "generator: {}", String::from_utf8_lossy(&out.stderr));
    dir.join(format!("{arch}-tiny-f32.gguf"))
}

/// Lowercase hex sha256 of a file.
pub fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The fixtures the README describes but does not ship: (name, file type, sha256
/// of llama-quantize's file).
const MADE: [(&str, &str, &str); 3] = [
    ("qwen3-tiny-q5_1", "Q5_1", "a32178cc8307bb7e98ca8c0502b0b07f8b2ec832b49dab01416fc621db3deed3"),
    ("qwen3-tiny-q2_k", "Q2_K", "cadd20cfa0f644b9a99341a45a75f26c540469035f68bbe22ec1e7bf5263a96a"),
    ("qwen3-tiny-iq4_nl", "IQ4_NL", "2dcbae7ce679de65a6c66eee316c272b3bb85ebf13a2f9de1fad1222e8785ad4"),
];

/// The path of fixture `name` made by `seed quantize` from a regenerated F32 (once
/// per target directory), or `None` if it is not one of those or the generator is
/// not there. Panics if the made file is not byte-identical to llama-quantize's.
pub fn made(name: &str) -> Option<PathBuf> {
    let &(_, ftype, sum) = MADE.iter().find(|(n, _, _)| *n == name)?;
    let script = generator()?;
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synthetic");
    let path = cache.join(format!("{name}.gguf"));
    if path.is_file() && sha256(&path) == sum {
        return Some(path);
    }
    std::fs::create_dir_all(&cache).expect("cache dir");
    let dir = tempfile::tempdir_in(&cache).expect("tempdir");
    let arch = name.split("-tiny").next().expect("arch");
    let f32_path = regenerate(&script, arch, dir.path());
    let opts = seed::quantize::Options {
        ftype: seed::quantize::FileType::parse(ftype).expect("type"),
        threads: 2,
        allow_requantize: false,
    };
    let made = dir.path().join("made.gguf");
    seed::quantize::quantize(&f32_path, &made, &opts, &mut |_, _, _| {}).expect("seed quantize");
    assert_eq!(sha256(&made), sum, "{name} made by seed quantize differs from llama-quantize's");
    std::fs::rename(&made, &path).expect("into the cache");
    Some(path)
}
