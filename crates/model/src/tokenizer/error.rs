//! Why a vocabulary could not be turned into a [`Tokenizer`](super::Tokenizer).
//!
//! Every message names the metadata key or token at fault and the numbers that
//! explain the rejection. Encoding and decoding never fail: any text can be encoded
//! and any id decoded (ids outside the vocabulary decode to nothing).

use crate::gguf::GgufError;

/// A vocabulary Seed cannot tokenize with.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A key is missing, or holds a value of the wrong type.
    #[error("tokenizer metadata: {0}")]
    Gguf(#[from] GgufError),
    /// A key holds a value of a type it cannot have.
    #[error("'{key}' is {found}, expected {expected}")]
    WrongType {
        /// The metadata key.
        key: &'static str,
        /// The types accepted.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// `tokenizer.ggml.model` names a tokenizer Seed does not implement.
    #[error("tokenizer.ggml.model is '{model}': Seed reads 'gpt2' (byte-level BPE), 'llama' (SentencePiece-style) and 'bert' (WordPiece)")]
    UnknownModel {
        /// The value found.
        model: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer Seed does not implement.
    #[error("tokenizer.ggml.pre is '{pre}': Seed knows the pre-tokenizers {known}")]
    UnknownPreTokenizer {
        /// The value found (empty when the key is missing).
        pre: String,
        /// The names Seed accepts, for the message.
        known: String,
    },
    /// `tokenizer.ggml.tokens` is empty.
    #[error("tokenizer.ggml.tokens is empty")]
    EmptyVocab,
    /// More tokens than a 31-bit id can name.
    #[error("tokenizer.ggml.tokens has {n} tokens; at most {max} are supported", max = i32::MAX)]
    TooManyTokens {
        /// The number of tokens.
        n: usize,
    },
    /// A per-token array is shorter than the token list.
    #[error("'{key}' has {len} entries, but tokenizer.ggml.tokens has {n_vocab}")]
    LengthMismatch {
        /// The per-token array.
        key: &'static str,
        /// Its length.
        len: usize,
        /// The number of tokens.
        n_vocab: usize,
    },
    /// Two tokens have the same text, so text → id would be ambiguous.
    #[error("duplicate token {text:?}: ids {first} and {second}")]
    DuplicateToken {
        /// The shared text.
        text: String,
        /// The lower id.
        first: u32,
        /// The higher id.
        second: u32,
    },
    /// A BPE merge rule is not two pieces separated by one space.
    #[error("tokenizer.ggml.merges[{index}] is {text:?}: expected two pieces separated by a space")]
    BadMerge {
        /// Index of the merge (its rank).
        index: usize,
        /// The merge's text.
        text: String,
    },
    /// A special-token id in the metadata names no token.
    #[error("'{key}' is {id}, but the vocabulary has only {n_vocab} tokens")]
    TokenIdOutOfRange {
        /// The metadata key.
        key: &'static str,
        /// The id found.
        id: u64,
        /// The number of tokens.
        n_vocab: usize,
    },
    /// The vocabulary asks for BOS/EOS to be added but names no such token.
    #[error("'{flag}' is true, but no '{key}' is set")]
    MissingSpecialToken {
        /// The add-token flag.
        flag: &'static str,
        /// The id key that should name the token.
        key: &'static str,
    },
    /// A byte-typed token (type 6) whose text is not `<0xNN>` with two uppercase hex digits.
    #[error("token {id} has type 6 (byte), but its text {text:?} is not of the form <0xNN> with uppercase hex digits")]
    BadByteToken {
        /// The token id.
        id: u32,
        /// Its text.
        text: String,
    },
    /// The special-token matcher could not be built.
    #[error("cannot index the {n} special tokens for matching: {reason}")]
    SpecialTokens {
        /// Number of special tokens.
        n: usize,
        /// The matcher's error.
        reason: String,
    },
}
