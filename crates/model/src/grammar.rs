//! Constrained decoding: a grammar (a JSON schema, any JSON object, or a Lark grammar) that
//! masks a sequence's logits before each sample, so the output can only be text the grammar
//! allows.
//!
//! The grammar engine is `llguidance` (the one behind llama.cpp's, vLLM's and SGLang's structured
//! output). [`Vocab`] indexes the model's tokens once — each token's bytes as this tokenizer
//! decodes them, control tokens behind llguidance's marker byte so no grammar can produce them as
//! text — and [`Vocab::compile`] turns a request's [`Spec`] into a [`Constraint`], bounded in
//! size and work by llguidance's limits (a schema past them is an error naming the limit, never
//! a hang). A JSON schema is compiled without free whitespace between tokens (separators `, `
//! and `: `, as Python's `json.dumps` writes them), so a small model cannot fill its budget with
//! blank lines.

use std::sync::Arc;

use llguidance::api::{GrammarWithLexer, ParserLimits, TopLevelGrammar};
use llguidance::toktrie::{ApproximateTokEnv, InferenceCapabilities, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};

use crate::tokenizer::Tokenizer;

/// What a request constrains its output to.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    JsonObject,
    /// JSON valid against this schema.
    JsonSchema(serde_json::Value),
    /// A Lark grammar (llguidance's dialect: `start: …`, `/regex/` terminals, `%json {…}`).
    Lark(String),
}

/// Why a grammar could not be used: a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GrammarError(pub String);

/// The most a compiled grammar may hold (symbols in productions); past it, an error.
pub const MAX_GRAMMAR_SIZE: usize = 200_000;

/// A model's vocabulary indexed for grammars; build once per model.
pub struct Vocab {
    factory: Arc<ParserFactory>,
    eos: u32,
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocab").field("eos", &self.eos).finish_non_exhaustive()
    }
}

impl Vocab {
    /// Indexes `tokenizer`'s tokens. The end of a constrained answer is the tokenizer's
    /// end-of-turn token if it has one (a chat's end), else its end-of-sequence token.
    pub fn new(tokenizer: &Tokenizer) -> Result<Vocab, GrammarError> {
        let n = tokenizer.n_vocab();
        let eos = tokenizer
            .eot()
            .or(tokenizer.eos())
            .ok_or_else(|| GrammarError("this model's vocabulary has no end-of-sequence token".into()))?;
        let words: Vec<Vec<u8>> = (0..n as u32)
            .map(|id| {
                if tokenizer.is_control(id) || tokenizer.is_eog(id) {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(&tokenizer.token_to_piece(id, true));
                    w
                } else {
                    tokenizer.token_to_piece(id, false).into_owned()
                }
            })
            .collect();
        let mut info = TokRxInfo::new(n as u32, eos);
        info.tok_bos = tokenizer.bos();
        info.tok_end_of_turn = tokenizer.eot();
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new(&env, InferenceCapabilities::default(), &[])
            .map_err(|e| GrammarError(format!("indexing the vocabulary failed: {e}")))?;
        factory.set_stderr_log_level(0);
        *factory.limits_mut() = ParserLimits { max_grammar_size: MAX_GRAMMAR_SIZE, ..ParserLimits::default() };
        Ok(Vocab { factory: Arc::new(factory), eos })
    }

    /// The token a constrained answer ends with.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Compiles `spec` for this vocabulary.
    pub fn compile(&self, spec: &Spec) -> Result<Constraint, GrammarError> {
        let grammar = match spec {
            Spec::JsonObject => json_grammar(serde_json::json!({"type": "object"})),
            Spec::JsonSchema(schema) => {
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(GrammarError("a JSON schema must be an object (or true/false)".into()));
                }
                json_grammar(schema.clone())
            }
            Spec::Lark(text) => {
                if text.trim().is_empty() {
                    return Err(GrammarError("the grammar is empty".into()));
                }
                TopLevelGrammar::from_lark(text.clone())
            }
        };
        let parser = self.factory.create_parser(grammar).map_err(|e| GrammarError(clean(&e.to_string())))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(GrammarError(clean(&e)));
        }
        Ok(Constraint { matcher, eos: self.eos })
    }
}

/// A JSON grammar without free whitespace (unless the schema's own `x-guidance` asks for it).
fn json_grammar(mut schema: serde_json::Value) -> TopLevelGrammar {
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("x-guidance").or_insert_with(
            || serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    TopLevelGrammar::from_grammar(GrammarWithLexer::from_json_schema(schema))
}

/// The engine's message as a client's sentence (first line, no internal prefixes).
fn clean(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    first.strip_prefix("Error: ").unwrap_or(first).to_string()
}

/// One sequence's constraint: which tokens may come next, advanced by each token taken.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    eos: u32,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").field("stopped", &self.matcher.is_stopped()).finish_non_exhaustive()
    }
}

impl Constraint {
    /// A copy in the same state (one per choice of a request).
    pub fn fork(&self) -> Constraint {
        Constraint { matcher: self.matcher.deep_clone(), eos: self.eos }
    }

    /// Whether `token` may come next (checked without computing the whole mask). The end
    /// token may come once the grammar is complete (token validation alone never takes it).
    pub fn allows(&mut self, token: u32) -> bool {
        if token == self.eos && (self.matcher.is_stopped() || self.matcher.is_accepting().unwrap_or(false)) {
            return true;
        }
        self.matcher.validate_tokens(&[token]).is_ok_and(|n| n == 1)
    }

    /// Sets the logits of every token the grammar forbids next to −∞ (once it is complete, all
    /// but the end token).
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), GrammarError> {
        let mask = self.matcher.compute_mask_or_eos().map_err(|e| GrammarError(clean(&e.to_string())))?;
        for (id, l) in logits.iter_mut().enumerate() {
            if !mask.is_allowed(id as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Advances past `token` (one the mask allowed).
    pub fn accept(&mut self, token: u32) -> Result<(), GrammarError> {
        if token == self.eos && self.matcher.is_stopped() {
            return Ok(());
        }
        self.matcher.consume_token(token).map_err(|e| GrammarError(clean(&e.to_string())))
    }

    /// The token that ends the answer.
    pub fn eos(&self) -> u32 {
        self.eos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_grammar_has_no_free_whitespace_unless_asked() {
        let g = json_grammar(serde_json::json!({"type": "object"}));
        let text = serde_json::to_string(&g).expect("json");
        assert!(text.contains("whitespace_flexible"), "{text}");
        let own = serde_json::json!({"type": "object", "x-guidance": {"whitespace_flexible": true}});
        let text = serde_json::to_string(&json_grammar(own)).expect("json");
        assert!(text.contains("\"whitespace_flexible\":true"), "{text}");
    }
}
