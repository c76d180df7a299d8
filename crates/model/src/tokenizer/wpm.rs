//! WordPiece (BERT's vocabularies, `tokenizer.ggml.model = "bert"`), as llama.cpp runs it.
//!
//! The text is normalized codepoint by codepoint — to the base of its NFD decomposition
//! (accents dropped), then lowercase; control characters, NUL and U+FFFD are dropped — and
//! cut into words at white space, with every punctuation mark, ASCII symbol and CJK
//! ideograph a word of its own. Each word, with `▁` in front (the GGUF spelling of a
//! word start; continuation pieces carry no `##`), is covered greedily from the left by
//! the longest token that matches; a word that cannot be covered is one unknown token.

use super::unicode::{lowercase, nfd_base, CharInfo};
use super::vocab::Vocab;

/// The greedy-longest-match state: the longest token text, in bytes.
pub(super) struct Wpm {
    max_token_len: usize,
}

impl Wpm {
    pub(super) fn new(vocab: &Vocab) -> Wpm {
        Wpm { max_token_len: vocab.iter().map(|(_, text, _)| text.len()).max().unwrap_or(0) }
    }

    /// Appends the tokens of `text` to `out`.
    pub(super) fn encode(&self, text: &str, vocab: &Vocab, unk: Option<u32>, out: &mut Vec<u32>) {
        for word in words(text) {
            let word = format!("\u{2581}{word}");
            let start = out.len();
            let mut i = 0;
            while i < word.len() {
                let longest = (i + 1..=word.len().min(i + self.max_token_len))
                    .rev()
                    .find_map(|j| word.get(i..j).and_then(|piece| vocab.id(piece)).map(|id| (id, j)));
                match longest {
                    Some((id, j)) => {
                        out.push(id);
                        i = j;
                    }
                    None => {
                        out.truncate(start);
                        break;
                    }
                }
            }
            if out.len() == start {
                out.extend(unk);
            }
        }
    }
}

/// The normalized words of `text`.
fn words(text: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    for c in text.chars() {
        let cp = nfd_base(c as u32);
        let info = char::from_u32(cp).map_or(CharInfo::NONE, CharInfo::of);
        if info.is_whitespace() {
            if !words.last().is_some_and(String::is_empty) {
                words.push(String::new());
            }
            continue;
        }
        if cp == 0 || cp == 0xFFFD || info.is_control() {
            continue;
        }
        let lower = char::from_u32(lowercase(cp)).unwrap_or(char::REPLACEMENT_CHARACTER);
        if info.is_punctuation() || (cp < 0x7F && info.is_symbol()) || is_chinese(cp) {
            if !words.last().is_some_and(String::is_empty) {
                words.push(String::new());
            }
            if let Some(last) = words.last_mut() {
                last.push(lower);
            }
            words.push(String::new());
        } else if let Some(last) = words.last_mut() {
            last.push(lower);
        }
    }
    if words.last().is_some_and(String::is_empty) {
        words.pop();
    }
    words
}

/// The CJK ideograph blocks BERT isolates (with the upper bound of Extension E as Hugging
/// Face's code has it, which llama.cpp follows).
fn is_chinese(cp: u32) -> bool {
    matches!(cp,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_normalized_and_cut_as_bert_cuts_them() {
        assert_eq!(words("Héllo, WORLD!"), ["hello", ",", "world", "!"]);
        assert_eq!(words("  a\tb\n"), ["a", "b"]);
        assert_eq!(words("x$y"), ["x", "$", "y"]);
        assert_eq!(words("1+1=2"), ["1", "+", "1", "=", "2"]);
        assert_eq!(words("中文ok"), ["中", "文", "ok"]);
        assert_eq!(words("a\u{0}\u{7}b\u{FFFD}"), ["ab"]);
        // Symbols above ASCII stay inside words.
        assert_eq!(words("a€b"), ["a€b"]);
    }
}
