//! The tokenizer against llama.cpp's own output for the real models
//! (`testdata/golden`): prompt token ids with `add_special` and `parse_special`, the
//! bytes of the generated tokens, plus round trips, special tokens and the
//! end-of-generation set. The models come from the catalogue (pulled on first use).

#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use std::path::PathBuf;

use model::gguf::GgufFile;
use model::tokenizer::Tokenizer;
use serde_json::Value;

fn tokenizer(name: &str) -> Tokenizer {
    let path = seed::catalogue::ensure_model(name).unwrap();
    let file = GgufFile::open(&path).unwrap();
    Tokenizer::from_gguf(&file).unwrap()
}

fn golden(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden").join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| u32::try_from(x.as_u64().unwrap()).unwrap()).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Checks `encode(prompt, true, true)` against the golden ids for every record;
/// returns (matching, total) and the mismatches.
fn check_prompts(tok: &Tokenizer, records: &[Value], text_key: &str, ids_key: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for r in records {
        let text = r[text_key].as_str().unwrap();
        let want = ids(&r[ids_key]);
        let got = tok.encode(text, true, true);
        if got != want {
            bad.push(format!("{text:?}\n  ours:      {got:?}\n  llama.cpp: {want:?}"));
        }
    }
    bad
}

/// The golden bytes are the generated tokens' pieces joined, less a trailing
/// incomplete UTF-8 sequence (the reference withholds it). Checks that our decoding
/// is exactly those bytes plus, at most, such a tail.
fn check_generated(tok: &Tokenizer, records: &[Value], ids_key: &str, hex_key: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let want = unhex(r[hex_key].as_str().unwrap());
        let got = tok.decode(&ids(&r[ids_key]), false);
        let tail_ok = got.strip_prefix(want.as_slice()).is_some_and(|tail| match std::str::from_utf8(tail) {
            Ok(s) => s.is_empty(),
            Err(e) => e.valid_up_to() == 0 && e.error_len().is_none(),
        });
        if !tail_ok {
            bad.push(format!(
                "record {i}: ours {:?}, llama.cpp {:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            ));
        }
    }
    bad
}

#[test]
fn smollm2_prompts_match_llama_cpp() {
    let tok = tokenizer("smollm2-135m-instruct");
    let g = golden("smollm2-135m-instruct-q4_1.json");
    let raw = g["raw_completions"].as_array().unwrap();
    let chat = g["chat_completions"].as_array().unwrap();
    assert_eq!((raw.len(), chat.len()), (8, 8));
    let mut bad = check_prompts(&tok, raw, "prompt", "prompt_token_ids");
    bad.extend(check_prompts(&tok, chat, "templated_prompt", "templated_prompt_token_ids"));
    assert!(bad.is_empty(), "{} of 16 prompts differ:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn smollm2_generated_tokens_decode_to_the_golden_bytes() {
    let tok = tokenizer("smollm2-135m-instruct");
    let g = golden("smollm2-135m-instruct-q4_1.json");
    let mut bad =
        check_generated(&tok, g["raw_completions"].as_array().unwrap(), "generated_token_ids", "generated_bytes_hex");
    bad.extend(check_generated(
        &tok,
        g["chat_completions"].as_array().unwrap(),
        "generated_token_ids_via_completion_on_templated_prompt",
        "generated_bytes_hex_via_completion",
    ));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn gemma3_prompts_match_llama_cpp() {
    let tok = tokenizer("gemma3-270m");
    let g = golden("gemma3-270m-q4_k_m.json");
    let raw = g["raw_completions"].as_array().unwrap();
    assert_eq!(raw.len(), 5);
    let bad = check_prompts(&tok, raw, "prompt", "prompt_token_ids");
    assert!(bad.is_empty(), "{} of 5 prompts differ:\n{}", bad.len(), bad.join("\n"));
    let bad = check_generated(&tok, raw, "generated_token_ids", "generated_bytes_hex");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Texts that must survive encode → decode byte for byte.
const ROUND_TRIP: &[&str] = &[
    "Hello, world! How's it going? I'm fine; they're here, we'll see.",
    "emoji 🎉🚀👩‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽",
    "中文：中国的首都是北京。日本語のテキスト、한국어 텍스트",
    "combining: e\u{301} n\u{303} a\u{30a}\u{301} — Zalgo: Z\u{351}\u{36b}\u{343}a\u{35b}l\u{34c}g\u{36e}o",
    "whitespace:  two   three    four\t\ttabs\n\n\nnewlines \r\n crlf \u{a0}nbsp \u{3000}ideographic   ",
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
    "<table><tr><td>html</td></tr></table> <b>bold</b> </s> <unused0> [multimodal]",
    "digits 1234567890 ٣٤٥ ²³ ½ and 3.14159e-10",
    "control \u{1}\u{7}\u{1b}[31m and \u{feff}BOM \u{200b}zero-width \u{fffd}",
    "   leading and trailing spaces   ",
    "Ελληνικά, русский, עברית, العربية, हिन्दी, ไทย",
];

fn assert_round_trips(tok: &Tokenizer) {
    for s in ROUND_TRIP {
        let ids = tok.encode(s, false, false);
        assert_eq!(String::from_utf8_lossy(&tok.decode(&ids, false)), *s);
        // With special tokens parsed and printed, the text comes back too.
        let ids = tok.encode(s, false, true);
        assert_eq!(String::from_utf8_lossy(&tok.decode(&ids, true)), *s);
    }
}

#[test]
fn smollm2_round_trips_and_special_tokens() {
    let tok = tokenizer("smollm2-135m-instruct");
    assert_eq!(tok.n_vocab(), 49152);
    assert_round_trips(&tok);
    assert!(!tok.add_bos());
    assert_eq!((tok.bos(), tok.eos(), tok.eot()), (Some(1), Some(2), Some(2)));
    assert_eq!(tok.encode("<|im_start|>user", true, true), [1, 4093]);
    assert_ne!(tok.encode("<|im_start|>user", true, false)[0], 1);
    assert_eq!(tok.decode(&[1, 4093, 2], false), b"user");
    assert_eq!(tok.decode(&[1, 4093, 2], true), b"<|im_start|>user<|im_end|>");
    // <|endoftext|>, <|im_end|> and (as fill-in-middle "repo" token) <reponame> end generation.
    assert_eq!(tok.eog_tokens().collect::<Vec<_>>(), [0, 2, 4]);
    assert!(tok.is_control(1) && !tok.is_control(4093));
    assert_eq!(tok.token_id("Ġcapital"), Some(3575));
    assert_eq!(tok.token_text(3575), Some("Ġcapital"));
}

#[test]
fn gemma3_round_trips_and_special_tokens() {
    let tok = tokenizer("gemma3-270m");
    assert_eq!(tok.n_vocab(), 262144);
    assert_round_trips(&tok);
    assert!(tok.add_bos());
    assert_eq!((tok.bos(), tok.eos(), tok.eot()), (Some(2), Some(1), Some(106)));
    let turn = tok.encode("<start_of_turn>user\nHi<end_of_turn>", true, true);
    assert_eq!(turn[..2], [2, 105]);
    assert_eq!(turn.last(), Some(&106));
    // User-defined tokens (runs of spaces, newlines, HTML tags) are whole even without parse_special.
    assert_eq!(tok.encode("\n\n", false, false), [108]);
    assert_eq!(tok.encode("<b>", false, false), [200]);
    // <eos>, <end_of_turn> and </s> (llama.cpp's end-of-generation text list) end generation.
    assert_eq!(tok.eog_tokens().collect::<Vec<_>>(), [1, 106, 212]);
    // Byte tokens decode to their byte.
    assert_eq!(
        tok.decode(
            &[tok.token_id("<0xE4>").unwrap(), tok.token_id("<0xB8>").unwrap(), tok.token_id("<0xAD>").unwrap()],
            false
        ),
        "中".as_bytes()
    );
}

#[test]
fn long_runs_of_one_character_encode_and_round_trip() {
    for name in ["smollm2-135m-instruct", "gemma3-270m"] {
        let tok = tokenizer(name);
        for unit in ["a", " ", "\n", "é", "中", "1", "<b>", "🎉"] {
            let text = unit.repeat(100_000);
            let ids = tok.encode(&text, false, false);
            assert!(!ids.is_empty() && ids.len() <= text.len());
            assert_eq!(tok.decode(&ids, false), text.as_bytes(), "{name}: run of {unit:?}");
        }
    }
}
