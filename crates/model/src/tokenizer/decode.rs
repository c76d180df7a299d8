//! From token ids back to bytes: every token's piece, rendered once at load, and
//! llama.cpp's detokenizing rules on top.
//!
//! A piece is what llama.cpp's `token_to_piece` gives with `special = true`:
//! - control, unknown and user-defined tokens: their text as is;
//! - normal tokens: byte-level vocabularies map each character back to its byte;
//!   SentencePiece vocabularies turn `▁` into a space;
//! - byte tokens (`<0xNN>`): that byte;
//! - unused and undefined tokens: nothing.
//!
//! [`Tokenizer::token_to_piece`](super::Tokenizer::token_to_piece) hides control and
//! unknown tokens unless asked; [`detokenize`] also drops the first piece's leading
//! space when the vocabulary adds one while encoding, and applies llama.cpp's
//! `clean_spaces` rules when the vocabulary asks for them.

use super::unicode::char_to_byte;
use super::vocab::{parse_byte_token, Attr, Vocab};

/// Every token's piece, in one buffer.
pub(crate) struct Pieces {
    /// All pieces, back to back.
    bytes: Vec<u8>,
    /// (n_vocab + 1) piece `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
}

impl Pieces {
    /// Renders every token of `vocab`; `byte_level` selects the GPT-2 spelling of normal tokens.
    pub fn new(vocab: &Vocab, byte_level: bool) -> Pieces {
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(vocab.len() + 1);
        offsets.push(0);
        for (_, text, attr) in vocab.iter() {
            render(text, attr, byte_level, &mut bytes);
            offsets.push(bytes.len());
        }
        Pieces { bytes, offsets }
    }

    /// The piece of token `id` (empty outside the vocabulary).
    pub fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.bytes.get(a..b).unwrap_or_default(),
            _ => &[],
        }
    }
}

fn render(text: &str, attr: Attr, byte_level: bool, out: &mut Vec<u8>) {
    if attr.has(Attr::UNKNOWN.or(Attr::CONTROL).or(Attr::USER_DEFINED)) {
        out.extend_from_slice(text.as_bytes());
    } else if attr.has(Attr::NORMAL) {
        if byte_level {
            render_byte_level(text, out);
        } else {
            for c in text.chars() {
                match c {
                    '\u{2581}' => out.push(b' '),
                    c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
        }
    } else if attr.has(Attr::BYTE) {
        out.extend(parse_byte_token(text));
    }
}

/// Maps each character of a byte-level token back to its byte. A character outside
/// the byte alphabet becomes `[UNK_BYTE_0x<its UTF-8 in hex><token text>]`, as llama.cpp writes it.
fn render_byte_level(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// Joins pieces as llama.cpp's `detokenize` does (special tokens are never removed):
/// the first piece loses one leading space when `strip_first_space`, and
/// `clean_spaces` then tidies spaces around punctuation and contractions.
pub(crate) fn detokenize<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    strip_first_space: bool,
    clean_spaces: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, piece) in pieces.into_iter().enumerate() {
        let piece = match piece {
            [b' ', rest @ ..] if i == 0 && strip_first_space => rest,
            p => p,
        };
        out.extend_from_slice(piece);
    }
    if clean_spaces {
        clean_punctuation(&mut out);
        clean_lone_apostrophes(&mut out);
        clean_contractions(&mut out);
    }
    out
}

/// `" ?"`, `" !"`, `" ."`, `" ,"` lose their space.
fn clean_punctuation(buf: &mut Vec<u8>) {
    let mut w = usize::from(!buf.is_empty());
    for r in 1..buf.len() {
        let x = buf[r];
        if buf[r - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            w -= 1;
        }
        buf[w] = x;
        w += 1;
    }
    buf.truncate(w);
}

/// `" ' "` becomes `"'"`. Works in place like llama.cpp's pass, including its habit
/// of zeroing the skipped space (which a following `" ' "` then does not match).
fn clean_lone_apostrophes(buf: &mut Vec<u8>) {
    let n = buf.len();
    let mut w = usize::from(n > 0);
    let mut r = 1;
    while r < n {
        let x = buf[r];
        if x == b'\'' && r + 1 < n && buf[r - 1] == b' ' && buf[r + 1] == b' ' {
            w -= 1;
            r += 1;
            buf[r] = 0;
        }
        buf[w] = x;
        w += 1;
        r += 1;
    }
    buf.truncate(w);
}

/// `" 's"`, `" 'm"`, `" 're"`, `" 've"` lose their space (`" 't"`, `" 'd"`, `" 'll"` keep it).
fn clean_contractions(buf: &mut Vec<u8>) {
    let n = buf.len();
    let mut w = usize::from(n > 0);
    for r in 1..n {
        let x = buf[r];
        if buf[r - 1] == b' ' && x == b'\'' && r + 1 < n {
            let x1 = buf[r + 1];
            let drop_space = match x1 {
                b's' | b'm' => true,
                b't' | b'd' => false,
                _ => r + 2 < n && matches!((x1, buf[r + 2]), (b'r', b'e') | (b'v', b'e')),
            };
            if drop_space {
                w -= 1;
            }
        }
        buf[w] = x;
        w += 1;
    }
    buf.truncate(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        String::from_utf8_lossy(&detokenize([s.as_bytes()], false, true)).into_owned()
    }

    #[test]
    fn clean_spaces_rules() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("it ' s"), "it's");
        assert_eq!(clean("he 's here , I 'm sure they 're ok"), "he's here, I'm sure they're ok");
        assert_eq!(clean("don 't we 'll"), "don 't we 'll");
        assert_eq!(clean(" ' ' "), "'' "); // the second apostrophe sees the zeroed space
        assert_eq!(clean(""), "");
        assert_eq!(clean(" ."), ".");
    }

    #[test]
    fn first_space_is_stripped_once() {
        let out = detokenize([&b" a"[..], b" b"], true, false);
        assert_eq!(out, b"a b");
        let out = detokenize([&b"a"[..], b" b"], true, false);
        assert_eq!(out, b"a b");
    }

    #[test]
    fn byte_level_unknown_characters_are_marked() {
        let mut out = Vec::new();
        render_byte_level("Ġa中", &mut out);
        assert_eq!(String::from_utf8_lossy(&out), " a[UNK_BYTE_0xe4b8adĠa中]");
    }
}
