//! How long a grammar takes per token on a model's vocabulary: the vocabulary's index (once per
//! model), a JSON schema's compile (once per request), and the mask before each token while the
//! tokens of a valid instance are fed through (p50, p99, max), beside the check of one token
//! that greedy decoding makes first.
//!
//! ```sh
//! cargo run --release -p model --example grammar_bench -- MODEL.gguf [ROUNDS]
//! ```

use std::time::{Duration, Instant};

use model::gguf::GgufFile;
use model::grammar::{Spec, Vocab};
use model::tokenizer::Tokenizer;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: grammar_bench MODEL.gguf [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(20);
    let file = GgufFile::open(std::path::Path::new(path)).expect("gguf");
    let tokenizer = Tokenizer::from_gguf(&file).expect("tokenizer");

    let t = Instant::now();
    let vocab = Vocab::new(&tokenizer).expect("vocab");
    println!("vocabulary of {} tokens indexed in {:.1} ms", tokenizer.n_vocab(), ms(t.elapsed()));

    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 60},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
            "address": {"type": "object", "properties": {
                "city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"], "additionalProperties": false}
        },
        "required": ["name", "age", "tags", "address"],
        "additionalProperties": false
    });
    let instance = r#"{"name": "Ada Lovelace, Countess of Lovelace", "age": 36, "tags": ["mathematician", "writer", "analytical engine"], "address": {"city": "London", "zip": "10001"}}"#;
    let tokens = tokenizer.encode(instance, false, false);

    let mut compile = Vec::new();
    let mut masks = Vec::new();
    let mut checks = Vec::new();
    let mut logits = vec![0.0f32; tokenizer.n_vocab()];
    for _ in 0..rounds {
        let t = Instant::now();
        let mut c = vocab.compile(&Spec::JsonSchema(schema.clone())).expect("compile");
        compile.push(t.elapsed());
        for &tok in &tokens {
            let t = Instant::now();
            assert!(c.allows(tok), "the instance's token {tok} was refused");
            checks.push(t.elapsed());
            let t = Instant::now();
            c.mask(&mut logits).expect("mask");
            masks.push(t.elapsed());
            assert!(logits[tok as usize].is_finite(), "the mask refused the instance's token {tok}");
            logits.iter_mut().for_each(|l| *l = 0.0);
            c.accept(tok).expect("accept");
        }
    }
    for (name, v) in [("compile", &mut compile), ("mask", &mut masks), ("check one token", &mut checks)] {
        v.sort();
        let at = |p: f64| ms(v[((v.len() as f64 - 1.0) * p).round() as usize]);
        println!(
            "{name:<16} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} samples)",
            at(0.5),
            at(0.99),
            at(1.0),
            v.len()
        );
    }
}
