//! The token list: text, score and attributes of every token, and text → id lookup.
//!
//! Attributes follow llama.cpp's `llama_token_attr`: the GGUF token type (1 normal,
//! 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; anything else undefined)
//! gives one attribute, and loading may add `CONTROL` (end-of-turn and fill-in-middle
//! tokens recognised by their text) or `UNUSED` (control tokens named "...unused...").

use super::hash::FastMap;
use super::TokenizerError;

/// Token attributes, a bit set (llama.cpp's `llama_token_attr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attr(u16);

impl Attr {
    pub const UNDEFINED: Attr = Attr(0);
    pub const UNKNOWN: Attr = Attr(1 << 0);
    pub const UNUSED: Attr = Attr(1 << 1);
    pub const NORMAL: Attr = Attr(1 << 2);
    pub const CONTROL: Attr = Attr(1 << 3);
    pub const USER_DEFINED: Attr = Attr(1 << 4);
    pub const BYTE: Attr = Attr(1 << 5);

    /// The attribute of GGUF token type `ty`.
    pub fn from_token_type(ty: i32) -> Attr {
        match ty {
            1 => Attr::NORMAL,
            2 => Attr::UNKNOWN,
            3 => Attr::CONTROL,
            4 => Attr::USER_DEFINED,
            5 => Attr::UNUSED,
            6 => Attr::BYTE,
            _ => Attr::UNDEFINED,
        }
    }

    /// Whether any bit of `other` is set.
    pub fn has(self, other: Attr) -> bool {
        self.0 & other.0 != 0
    }

    /// `self` with the bits of `other` added.
    pub fn with(self, other: Attr) -> Attr {
        Attr(self.0 | other.0)
    }

    /// `self | other`, for building masks.
    pub const fn or(self, other: Attr) -> Attr {
        Attr(self.0 | other.0)
    }
}

/// Every token's text, score and attributes, and the reverse map.
pub(crate) struct Vocab {
    /// (n_vocab) token texts; empty texts were renamed `[EMPTY_<id>]` as llama.cpp does.
    texts: Vec<String>,
    /// (n_vocab) SentencePiece scores (0 when the file has none; NaN read as -inf).
    scores: Vec<f32>,
    /// (n_vocab) attributes.
    attrs: Vec<Attr>,
    /// text → id.
    ids: FastMap<String, u32>,
}

impl Vocab {
    /// Builds the vocabulary from parallel arrays (`scores`, `types` at least as long as
    /// `texts` when present). Fails on an empty list, too many tokens, a short array,
    /// or two tokens with the same text.
    pub fn new(texts: &[String], scores: Option<Vec<f32>>, types: Option<&[i32]>) -> Result<Vocab, TokenizerError> {
        let n = texts.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if n > i32::MAX as usize {
            return Err(TokenizerError::TooManyTokens { n });
        }
        let scores = match scores {
            Some(s) if s.len() < n => {
                return Err(TokenizerError::LengthMismatch { key: "tokenizer.ggml.scores", len: s.len(), n_vocab: n })
            }
            Some(mut s) => {
                s.truncate(n);
                // One order for every score: -0 is 0 (as `<` sees it), NaN ranks last.
                for x in &mut s {
                    *x = if x.is_nan() { f32::NEG_INFINITY } else { *x + 0.0 };
                }
                s
            }
            None => vec![0.0; n],
        };
        let attrs = match types {
            Some(t) if t.len() < n => {
                return Err(TokenizerError::LengthMismatch {
                    key: "tokenizer.ggml.token_type",
                    len: t.len(),
                    n_vocab: n,
                })
            }
            Some(t) => t[..n].iter().map(|&ty| Attr::from_token_type(ty)).collect(),
            None => vec![Attr::NORMAL; n],
        };
        let mut owned = Vec::with_capacity(n);
        let mut ids = FastMap::with_capacity_and_hasher(n, Default::default());
        for (i, text) in texts.iter().enumerate() {
            let id = i as u32; // n <= i32::MAX
            let text = if text.is_empty() { format!("[EMPTY_{id}]") } else { text.clone() };
            if let Some(&first) = ids.get(&text) {
                return Err(TokenizerError::DuplicateToken { text, first, second: id });
            }
            ids.insert(text.clone(), id);
            owned.push(text);
        }
        Ok(Vocab { texts: owned, scores, attrs, ids })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// The id of the token spelt exactly `text`.
    pub fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The text of token `id`.
    pub fn text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    /// The score of token `id` (0 outside the vocabulary).
    pub fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// The attributes of token `id` (undefined outside the vocabulary).
    pub fn attr(&self, id: u32) -> Attr {
        self.attrs.get(id as usize).copied().unwrap_or(Attr::UNDEFINED)
    }

    /// Adds `extra` to the attributes of token `id`.
    pub fn add_attr(&mut self, id: u32, extra: Attr) {
        if let Some(a) = self.attrs.get_mut(id as usize) {
            *a = a.with(extra);
        }
    }

    /// Replaces the attributes of token `id`.
    pub fn set_attr(&mut self, id: u32, attr: Attr) {
        if let Some(a) = self.attrs.get_mut(id as usize) {
            *a = attr;
        }
    }

    /// `(id, text, attr)` of every token, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str, Attr)> + '_ {
        self.texts.iter().zip(&self.attrs).enumerate().map(|(i, (t, &a))| (i as u32, t.as_str(), a))
    }
}

/// The byte a byte token stands for: its text must be exactly `<0xNN>` with two
/// uppercase hex digits, as SentencePiece writes them.
pub(crate) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    let digits = hex.as_bytes();
    if digits.len() != 2 || !digits.iter().all(|&d| d.is_ascii_digit() || (b'A'..=b'F').contains(&d)) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// The text of the byte token for `b`: `<0xNN>`, uppercase.
pub(crate) fn byte_token_text(b: u8) -> String {
    format!("<0x{b:02X}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_parse_strictly() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xFF>"), Some(255));
        assert_eq!(parse_byte_token("<0xff>"), None);
        assert_eq!(parse_byte_token("<0x0A"), None);
        assert_eq!(parse_byte_token("<0xA>"), None);
        assert_eq!(parse_byte_token("<0x0AB>"), None);
        assert_eq!(parse_byte_token("<0x+A>"), None);
        assert_eq!(parse_byte_token("<0x٣٣>"), None);
        for b in 0..=255u8 {
            assert_eq!(parse_byte_token(&byte_token_text(b)), Some(b));
        }
    }

    #[test]
    fn duplicates_and_empty_lists_are_errors() {
        let texts: Vec<String> = ["a", "b", "a"].iter().map(|s| s.to_string()).collect();
        let e = Vocab::new(&texts, None, None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("\"a\": ids 0 and 2"), "{e}");
        assert!(matches!(Vocab::new(&[], None, None), Err(TokenizerError::EmptyVocab)));
        let short = Vocab::new(&texts[..2], Some(vec![0.0]), None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(short.contains("'tokenizer.ggml.scores' has 1 entries, but tokenizer.ggml.tokens has 2"), "{short}");
    }

    #[test]
    fn empty_texts_are_renamed() {
        let texts: Vec<String> = ["x", ""].iter().map(|s| s.to_string()).collect();
        let v = Vocab::new(&texts, None, Some(&[1, 9])).ok();
        let v = v.as_ref();
        assert_eq!(v.and_then(|v| v.text(1)), Some("[EMPTY_1]"));
        assert_eq!(v.map(|v| v.attr(1)), Some(Attr::UNDEFINED));
        assert_eq!(v.and_then(|v| v.id("x")), Some(0));
        assert_eq!(v.and_then(|v| v.text(2)), None);
    }
}
