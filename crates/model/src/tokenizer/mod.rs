//! Tokenizers that agree with llama.cpp token for token.
//!
//! [`Tokenizer::from_gguf`] reads the vocabulary from GGUF metadata; three kinds exist:
//! - `gpt2`: byte-level BPE. A pre-tokenizer chosen by `tokenizer.ggml.pre`
//!   (`pretokenize.rs`, a table of named pre-types) splits text into words; each
//!   word's bytes are merged by rank (`bpe.rs`). SmolLM2 uses this, with `smollm`.
//! - `llama`: SentencePiece-style BPE. Spaces become `▁`, and characters are merged by
//!   token score over the whole text, with `<0xNN>` byte tokens as fallback
//!   (`spm.rs`). Gemma 3 uses this.
//! - `bert`: WordPiece (`wpm.rs`): words normalized as BERT does (accents dropped,
//!   lowercase, punctuation and CJK ideographs alone), each covered greedily by the
//!   longest tokens. BERT-style embedding models use this.
//!
//! Encoding first cuts special tokens out of the text (`special.rs`), then tokenizes
//! the pieces between them, then adds BOS/EOS as the vocabulary asks. Decoding joins
//! each token's piece (`decode.rs`). The rest: `vocab.rs` (token texts, scores,
//! attributes), `load.rs` (metadata, defaults, the end-of-generation set),
//! `unicode.rs` and its generated table (codepoint classes, the byte-level alphabet),
//! `hash.rs` (the lookup tables' hash).
//!
//! Checked against llama.cpp (the golden files' commit) on SmolLM2 and Gemma 3: the
//! golden prompts, and in development some 16,000 random texts per model with every
//! combination of `add_special`/`parse_special`, every token's piece and
//! end-of-generation flag, and random id sequences through `detokenize`. The one
//! known difference: [`Tokenizer::eot`] takes the first end-of-turn text in a fixed
//! list when the file names none, where llama.cpp takes whichever its hash map
//! yields first (SmolLM2: ours `<|im_end|>`, llama.cpp's `<|endoftext|>`; both end
//! generation either way). llama.cpp's own vocabulary suite
//! (`tests/llama_vocab_suite.rs`) passes on every vocabulary file its repository
//! snapshot holds under 4 MiB: ten vocabularies, 460 cases.
//!
//! Not implemented from llama.cpp: the other tokenizer models (Unigram, RWKV,
//! PLaMo-2), pre-tokenizers outside the table, and the per-model `lstrip`/`rstrip`
//! token attributes llama.cpp sets by model name (Phi-3, Jina, ModernBERT).

mod bpe;
mod decode;
mod error;
mod hash;
mod load;
mod pretokenize;
mod special;
mod spm;
mod unicode;
mod unicode_table;
mod vocab;
mod wpm;

use std::borrow::Cow;
use std::collections::BTreeSet;

pub use error::TokenizerError;

use crate::gguf::GgufFile;
use pretokenize::PreType;
use special::Fragment;
pub(crate) use unicode::byte_to_char;
use vocab::{Attr, Vocab};

/// A vocabulary and the rules to turn text into its tokens and back.
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    special: special::SpecialTokens,
    pieces: decode::Pieces,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    /// Tokens that end generation.
    eog: BTreeSet<u32>,
    add_bos: bool,
    add_eos: bool,
    /// SentencePiece: a space goes before text that starts the input or follows a special token.
    add_space_prefix: bool,
    clean_spaces: bool,
}

/// The tokenizer model.
enum Model {
    /// Byte-level BPE with its pre-tokenizer.
    Bpe { bpe: Box<bpe::Bpe>, pre: &'static PreType },
    /// SentencePiece-style BPE.
    Spm { bytes: Box<spm::ByteFallback> },
    /// WordPiece, and the separator that ends an input with special tokens.
    Wpm { wpm: Box<wpm::Wpm>, sep: Option<u32> },
}

impl Tokenizer {
    /// Reads the tokenizer of a GGUF file.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        load::from_gguf(gguf)
    }

    /// The tokens of `text`. `add_special` adds BOS (and EOS) where the vocabulary
    /// asks for them; `parse_special` lets the texts of control tokens in `text`
    /// (`<|im_start|>`, `<end_of_turn>`, ...) stand for those tokens. User-defined
    /// tokens are always matched as wholes, as in llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        if let Model::Wpm { .. } = self.model {
            return self.encode_wordpiece(text, add_special, parse_special);
        }
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let fragments = self.special.partition(text, parse_special);
        match &self.model {
            Model::Bpe { bpe, pre } => {
                let mut scratch = bpe::Scratch::default();
                for fragment in fragments {
                    match fragment {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(range) => {
                            let piece = text.get(range).unwrap_or_default();
                            for word in pretokenize::split(piece, pre.splits) {
                                let word = piece.as_bytes().get(word).unwrap_or_default();
                                match self.whole_word(word, pre) {
                                    Some(id) => out.push(id),
                                    None => bpe.encode_word(word, &mut scratch, &mut out),
                                }
                            }
                        }
                    }
                }
            }
            Model::Wpm { .. } => {} // encode_wordpiece
            Model::Spm { bytes } => {
                let mut scratch = spm::Scratch::default();
                let mut after_special = true;
                let mut escaped = String::new();
                for fragment in fragments {
                    match fragment {
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                        Fragment::Text(range) => {
                            escaped.clear();
                            if self.add_space_prefix && after_special {
                                escaped.push('\u{2581}');
                            }
                            for c in text.get(range).unwrap_or_default().chars() {
                                escaped.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm::encode(&escaped, &self.vocab, bytes, &mut scratch, &mut out);
                            after_special = false;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// WordPiece: `[CLS] text [SEP]` with `add_special`, as llama.cpp (and BERT) frame an input.
    fn encode_wordpiece(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let Model::Wpm { wpm, sep } = &self.model else { return Vec::new() };
        let mut out = Vec::new();
        if add_special {
            out.extend(self.bos);
        }
        for fragment in self.special.partition(text, parse_special) {
            match fragment {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(range) => {
                    wpm.encode(text.get(range).unwrap_or_default(), &self.vocab, self.unk, &mut out)
                }
            }
        }
        if add_special {
            out.extend(*sep);
        }
        out
    }

    /// With `ignore_merges` pre-tokenizers, a word that is a token as a whole.
    fn whole_word(&self, word: &[u8], pre: &PreType) -> Option<u32> {
        if !pre.ignore_merges {
            return None;
        }
        let spelt: String = word.iter().map(|&b| byte_to_char(b)).collect();
        self.vocab.id(&spelt)
    }

    /// The bytes token `id` stands for. Control and unknown tokens give their text only
    /// when `special` is true, and nothing otherwise; ids outside the vocabulary give nothing.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Cow<'_, [u8]> {
        if !special && self.vocab.attr(id).has(Attr::CONTROL.or(Attr::UNKNOWN)) {
            return Cow::Borrowed(&[]);
        }
        Cow::Borrowed(self.pieces.get(id))
    }

    /// The bytes of `ids`, as llama.cpp's `detokenize` gives them with special tokens
    /// kept (`special` as in [`Tokenizer::token_to_piece`]). For vocabularies that add
    /// a space prefix the first piece loses one leading space, and vocabularies that
    /// clean spaces (some byte-level ones, not SmolLM2's) drop spaces before
    /// punctuation; otherwise this is the pieces joined.
    pub fn decode(&self, ids: &[u32], special: bool) -> Vec<u8> {
        let pieces = ids.iter().map(|&id| self.token_to_piece(id, special));
        let pieces: Vec<Cow<'_, [u8]>> = pieces.collect();
        decode::detokenize(pieces.iter().map(|p| p.as_ref()), self.add_space_prefix, self.clean_spaces)
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// End-of-turn token (from the metadata, else found by its text, e.g. `<|im_end|>`).
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }

    /// Unknown token.
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }

    /// Padding token.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// Whether [`Tokenizer::encode`] with `add_special` puts BOS first.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether [`Tokenizer::encode`] with `add_special` puts EOS last.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether generation stops at `id`: EOS, end of turn, and the other tokens
    /// llama.cpp treats as end of generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// Every end-of-generation token, ascending.
    pub fn eog_tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.eog.iter().copied()
    }

    /// Whether `id` is a control token (hidden when decoding without `special`).
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.attr(id).has(Attr::CONTROL)
    }

    /// The id of the token whose text is exactly `text` (vocabulary spelling: `Ġ` for
    /// a space in byte-level vocabularies, `▁` in SentencePiece ones).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    /// The vocabulary text of token `id`.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.text(id)
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.model {
            Model::Bpe { pre, .. } => format!("gpt2 ({})", pre.names.first().copied().unwrap_or("?")),
            Model::Spm { .. } => "llama".to_owned(),
            Model::Wpm { .. } => "bert".to_owned(),
        };
        f.debug_struct("Tokenizer")
            .field("model", &kind)
            .field("n_vocab", &self.n_vocab())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}
