//! llama.cpp's own tokenizer suite: for each `ggml-vocab-NAME.gguf` (a vocabulary-only GGUF)
//! beside its `.gguf.inp` (texts separated by `\n__ggml_vocab_test__\n`) and `.gguf.out`
//! (the ids llama.cpp's `test-tokenizer-0` gives each text, one line each, no special
//! tokens added, special texts not parsed), Seed's tokenizer must give the same ids.
//!
//! The files are llama.cpp's (`models/` of its repository), not ours to commit; the test
//! reads them from the folder `SEED_LLAMA_VOCABS` names and says SKIPPED without it. To
//! get them from a clone of llama.cpp:
//!
//! ```text
//! mkdir vocabs && for f in $(git -C llama.cpp ls-tree --name-only HEAD models/ | grep ggml-vocab); do
//!   git -C llama.cpp show HEAD:$f > vocabs/$(basename $f); done
//! SEED_LLAMA_VOCABS=$PWD/vocabs cargo test -p model --test llama_vocab_suite -- --nocapture
//! ```
//!
//! A vocabulary of a kind Seed does not read yet is listed as not run, not failed; every
//! vocabulary it reads must pass every case.
#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use std::path::{Path, PathBuf};

use model::gguf::GgufFile;
use model::tokenizer::Tokenizer;

const SEPARATOR: &str = "\n__ggml_vocab_test__\n";

/// The texts of an `.inp` file, split as `test-tokenizer-0` splits them.
fn cases(raw: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        match rest.find(SEPARATOR) {
            Some(n) => {
                out.push(&rest[..n]);
                rest = &rest[n + SEPARATOR.len()..];
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

#[test]
fn every_readable_vocabulary_tokenizes_as_llama_cpp_does() {
    let Some(dir) = std::env::var_os("SEED_LLAMA_VOCABS") else {
        eprintln!("SKIPPED: set SEED_LLAMA_VOCABS to a folder of llama.cpp's ggml-vocab-* files (see the file's doc)");
        return;
    };
    let mut vocabs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf") && with_suffix(p, ".inp").is_file())
        .collect();
    vocabs.sort();
    assert!(!vocabs.is_empty(), "no ggml-vocab-*.gguf with its .inp in {}", Path::new(&dir).display());
    let (mut ran, mut not_run, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for path in &vocabs {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = GgufFile::open(path).unwrap();
        let tokenizer = match Tokenizer::from_gguf(&file) {
            Ok(t) => t,
            Err(e) => {
                not_run.push(format!("{name} ({e})"));
                continue;
            }
        };
        let raw = std::fs::read_to_string(with_suffix(path, ".inp")).unwrap();
        let texts = cases(&raw);
        let expected: Vec<Vec<u32>> = std::fs::read_to_string(with_suffix(path, ".out"))
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
            .collect();
        assert_eq!(texts.len(), expected.len(), "{name}: .inp and .out disagree on the number of cases");
        let mut passed = 0;
        for (text, want) in texts.iter().zip(&expected) {
            let got = tokenizer.encode(text, false, false);
            if got == *want {
                passed += 1;
            } else {
                failures.push(format!("{name}: {text:?}\n  llama.cpp {want:?}\n  seed      {got:?}"));
            }
        }
        ran.push(format!("{name} {passed}/{}", texts.len()));
    }
    eprintln!("ran: {}", ran.join(", "));
    eprintln!("not run: {}", if not_run.is_empty() { "none".into() } else { not_run.join("; ") });
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
}
