//! MaskBench conformance (JSONSchemaBench's `maskbench/data`: real-world schemas, each with valid
//! and invalid instances): for every schema the grammar layer compiles, every valid instance's
//! tokens must be allowed (and the answer may end after them) and every invalid instance must
//! be refused somewhere — a token refused, or no end allowed after the last one.
//!
//! Instances are written as the grammar writes JSON (Python's `json.dumps` layout, keys in the
//! file's order — MaskBench orders them as the schemas' `properties` do) and tokenized by the
//! model's tokenizer. Used by the sample test (`tests/maskbench.rs`) and the whole-set run
//! (`examples/maskbench.rs`).
#![allow(dead_code)]

use model::chat::pyjson;
use model::grammar::{Spec, Vocab};
use model::tokenizer::Tokenizer;
use serde_json::Value;

/// What one schema file gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The grammar layer refused the schema (why).
    pub compile_error: Option<String>,
    /// Valid instances allowed / refused.
    pub valid_ok: usize,
    /// Valid instances refused (each a conformance failure), with where.
    pub valid_refused: Vec<String>,
    /// Invalid instances refused.
    pub invalid_ok: usize,
    /// Invalid instances allowed whole (each a conformance failure).
    pub invalid_accepted: Vec<String>,
}

/// Whether `vocab` allows `text` whole under `spec`: `Ok(None)` when it does, `Ok(Some(at))`
/// with the first refused token's index (the token count when only the end is refused).
pub fn first_refusal(vocab: &Vocab, tokenizer: &Tokenizer, spec: &Spec, text: &str) -> Result<Option<usize>, String> {
    let mut c = vocab.compile(spec).map_err(|e| e.0)?;
    let ids = tokenizer.encode(text, false, false);
    for (i, &id) in ids.iter().enumerate() {
        if !c.allows(id) {
            return Ok(Some(i));
        }
        c.accept(id).map_err(|e| e.0)?;
    }
    Ok((!c.allows(vocab.eos())).then_some(ids.len()))
}

/// Checks one MaskBench file's schema and instances.
pub fn check_file(vocab: &Vocab, tokenizer: &Tokenizer, file: &Value) -> Outcome {
    let mut out = Outcome::default();
    let spec = Spec::JsonSchema(file["schema"].clone());
    if let Err(e) = vocab.compile(&spec) {
        out.compile_error = Some(e.0);
        return out;
    }
    for (i, t) in file["tests"].as_array().into_iter().flatten().enumerate() {
        let text = pyjson::to_string(&t["data"], &pyjson::Options::default());
        let valid = t["valid"].as_bool().unwrap_or(false);
        match first_refusal(vocab, tokenizer, &spec, &text) {
            Ok(None) if valid => out.valid_ok += 1,
            Ok(None) => out.invalid_accepted.push(format!("test {i}: {}", clip(&text))),
            Ok(Some(_)) if !valid => out.invalid_ok += 1,
            Ok(Some(at)) => {
                let ids = tokenizer.encode(&text, false, false);
                let piece = ids
                    .get(at)
                    .map_or_else(|| "the end".to_string(), |&id| format!("{:?}", tokenizer.token_to_piece(id, false)));
                out.valid_refused.push(format!(
                    "test {i}: refused {piece} (token {at} of {}): {}",
                    ids.len(),
                    clip(&text)
                ))
            }
            Err(e) => out.valid_refused.push(format!("test {i}: {e}")),
        }
    }
    out
}

fn clip(s: &str) -> String {
    s.chars().take(160).collect()
}
