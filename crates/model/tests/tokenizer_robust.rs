//! The tokenizer on random vocabularies and random text: loading either succeeds or
//! gives an error, and a tokenizer that loads encodes any text and decodes any ids
//! without panicking (byte-complete vocabularies also round-trip).

#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use model::gguf::{Array, GgufBuilder, GgufFile, Value};
use model::tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ATOMS: &[&str] = &[
    "a", "b", "ab", "ba", "Ġ", "Ġa", "▁", "▁a", "中", "é", "<s>", "</s>", "<|x|>", "<0x41>", "<0x0A>", "<0xzz>", " ",
    "\n", "  ", "1", "12", "'s", "🎉", "\u{301}", "",
];

fn random_text(rng: &mut ChaCha8Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.gen_range(0..20) {
        match rng.gen_range(0..4) {
            0 => s.push_str(ATOMS[rng.gen_range(0..ATOMS.len())]),
            1 => s.push(char::from_u32(rng.gen_range(0..0x11_0000)).unwrap_or('?')),
            2 => s.push_str(&" ".repeat(rng.gen_range(1..40))),
            _ => s.push(char::from(rng.gen_range(0u8..128))),
        }
    }
    s
}

fn random_vocab(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let n = rng.gen_range(0..40);
    let mut tokens: Vec<String> = (0..n).map(|_| ATOMS[rng.gen_range(0..ATOMS.len())].to_string()).collect();
    if rng.gen_bool(0.9) {
        tokens.sort();
        tokens.dedup();
    }
    let n = tokens.len();
    let mut b = GgufBuilder::new();
    let model = ["gpt2", "llama", "llama", "gpt2", "gpt2", "llama", "bert"][rng.gen_range(0..7)];
    b.add_kv("tokenizer.ggml.model", Value::String(model.into()));
    b.add_kv("tokenizer.ggml.tokens", Value::Array(Array::String(tokens.clone())));
    if rng.gen_bool(0.8) {
        let len = if rng.gen_bool(0.9) { n } else { rng.gen_range(0..n + 2) };
        // Byte type (6) mostly on byte-token texts; rarely elsewhere (an error).
        let types = (0..len)
            .map(|i| match tokens.get(i).map(String::as_str) {
                Some("<0x41>" | "<0x0A>") if rng.gen_bool(0.8) => 6,
                _ if rng.gen_bool(0.01) => 6,
                _ => [1, 1, 1, 1, 2, 3, 4, 5, 0, 7, -1][rng.gen_range(0..11)],
            })
            .collect();
        b.add_kv("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    }
    if rng.gen_bool(0.8) {
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0];
        let scores =
            (0..n)
                .map(|_| {
                    if rng.gen_bool(0.1) {
                        specials[rng.gen_range(0..specials.len())]
                    } else {
                        rng.gen_range(-10.0..0.0)
                    }
                })
                .collect();
        b.add_kv("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
    }
    if model == "gpt2" {
        b.add_kv(
            "tokenizer.ggml.pre",
            Value::String(["smollm", "gpt-2", "llama3", "qwen2"][rng.gen_range(0..4)].into()),
        );
        let merges = (0..rng.gen_range(0..30))
            .map(|_| match rng.gen_range(0..10) {
                0 => ATOMS[rng.gen_range(0..ATOMS.len())].to_string(),
                _ => format!("{} {}", ATOMS[rng.gen_range(0..ATOMS.len())], ATOMS[rng.gen_range(0..ATOMS.len())]),
            })
            .collect();
        b.add_kv("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    }
    for key in ["bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id", "fim_pad_token_id"] {
        if rng.gen_bool(0.3) {
            b.add_kv(&format!("tokenizer.ggml.{key}"), Value::U32(rng.gen_range(0..n as u32 + 3)));
        }
    }
    for key in ["add_bos_token", "add_eos_token", "add_space_prefix"] {
        if rng.gen_bool(0.3) {
            b.add_kv(&format!("tokenizer.ggml.{key}"), Value::Bool(rng.gen_bool(0.5)));
        }
    }
    b.build()
}

#[test]
fn random_vocabularies_load_or_fail_cleanly_and_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut loaded, mut rejected) = (0, 0);
    for _ in 0..3000 {
        let file = GgufFile::from_bytes(random_vocab(&mut rng)).unwrap();
        let tok = match Tokenizer::from_gguf(&file) {
            Ok(t) => t,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                rejected += 1;
                continue;
            }
        };
        loaded += 1;
        for _ in 0..10 {
            let text = random_text(&mut rng);
            for (add, parse) in [(true, true), (false, false), (true, false), (false, true)] {
                let ids = tok.encode(&text, add, parse);
                assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()), "{text:?} -> {ids:?}");
                let _ = tok.decode(&ids, parse);
            }
            let ids: Vec<u32> = (0..rng.gen_range(0..10)).map(|_| rng.gen_range(0..tok.n_vocab() as u32 + 5)).collect();
            let _ = tok.decode(&ids, rng.gen_bool(0.5));
        }
    }
    // Both outcomes are exercised.
    assert!(loaded > 500 && rejected > 500, "loaded {loaded}, rejected {rejected}");
}

/// A byte-level vocabulary with every byte and random merges: any text round-trips.
#[test]
fn byte_complete_vocabularies_round_trip_random_text() {
    let byte_char = |b: u8| {
        let printable = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        if printable(b) {
            char::from(b)
        } else {
            char::from_u32(0x100 + (0..b).filter(|&x| !printable(x)).count() as u32).unwrap()
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for _ in 0..50 {
        let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
        let mut merges = Vec::new();
        for _ in 0..100 {
            let (l, r) =
                (tokens[rng.gen_range(0..tokens.len())].clone(), tokens[rng.gen_range(0..tokens.len())].clone());
            merges.push(format!("{l} {r}"));
            let merged = format!("{l}{r}");
            if !tokens.contains(&merged) {
                tokens.push(merged);
            }
        }
        let mut b = GgufBuilder::new();
        b.add_kv("tokenizer.ggml.model", Value::String("gpt2".into()))
            .add_kv("tokenizer.ggml.pre", Value::String("smollm".into()))
            .add_kv("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
            .add_kv("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
        let tok = Tokenizer::from_gguf(&GgufFile::from_bytes(b.build()).unwrap()).unwrap();
        for _ in 0..50 {
            let text = random_text(&mut rng);
            assert_eq!(tok.decode(&tok.encode(&text, true, true), true), text.as_bytes());
        }
    }
}
