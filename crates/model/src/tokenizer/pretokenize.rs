//! Pre-tokenizers: splitting text into words before byte-level BPE runs on each word.
//!
//! A pre-tokenizer is data: a list of [`Split`] passes, each applied to every piece the
//! previous pass left (the first pass sees the whole text), plus the vocabulary flags
//! llama.cpp ties to the pre-tokenizer's name. [`PRE_TYPES`] maps `tokenizer.ggml.pre`
//! values to them; adding a pre-type whose regex is one of the families below is one
//! table row.
//!
//! The word rules reproduce llama.cpp's hand-written matchers for the GPT-2, Llama 3
//! and Qwen 2 regexes (`unicode_regex_split_custom_*`), quirks included, so word
//! boundaries agree with llama.cpp codepoint for codepoint:
//! - GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! - Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//!   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` (Qwen 2: `\p{N}` instead of `\p{N}{1,3}`)
//!
//! Only `smollm` is checked against llama.cpp's output (the golden tests); the other
//! rows follow llama.cpp's source.

use std::ops::Range;

use super::unicode::CharInfo;

/// One splitting pass.
#[derive(Clone, Copy, Debug)]
pub enum Split {
    /// `\p{N}`: every number codepoint becomes a piece of its own; the runs between
    /// them stay whole.
    EachNumber,
    /// A GPT-2-family word regex.
    Words(WordRules),
}

/// The parameters that tell the GPT-2-family word regexes apart.
#[derive(Clone, Copy, Debug)]
pub struct WordRules {
    /// `'s|'t|'re|'ve|'m|'ll|'d` also matches upper case (`(?i:...)`).
    pub contractions_ignore_case: bool,
    /// How a letter run may be preceded.
    pub letter_prefix: LetterPrefix,
    /// `None`: ` ?\p{N}+`; `Some(k)`: `\p{N}{1,k}` (no leading space).
    pub number_chunk: Option<usize>,
    /// Punctuation runs swallow the `[\r\n]*` after them, and `\s*[\r\n]+` is a rule.
    pub newline_rules: bool,
}

/// What may stand before a run of letters.
#[derive(Clone, Copy, Debug)]
pub enum LetterPrefix {
    /// ` ?\p{L}+`: one optional space.
    Space,
    /// `[^\r\n\p{L}\p{N}]?\p{L}+`: one optional codepoint that is not CR, LF, a letter or a number.
    AnyButNewlineOrNumber,
}

/// GPT-2's regex.
pub const GPT2: WordRules = WordRules {
    contractions_ignore_case: false,
    letter_prefix: LetterPrefix::Space,
    number_chunk: None,
    newline_rules: false,
};

/// Llama 3's regex.
pub const LLAMA3: WordRules = WordRules {
    contractions_ignore_case: true,
    letter_prefix: LetterPrefix::AnyButNewlineOrNumber,
    number_chunk: Some(3),
    newline_rules: true,
};

/// Qwen 2's regex: Llama 3's with single digits.
pub const QWEN2: WordRules = WordRules { number_chunk: Some(1), ..LLAMA3 };

/// A named pre-tokenizer and the vocabulary defaults llama.cpp ties to its name.
#[derive(Debug)]
pub struct PreType {
    /// `tokenizer.ggml.pre` values that select it.
    pub names: &'static [&'static str],
    /// The passes, in order.
    pub splits: &'static [Split],
    /// Detokenizing removes spaces before punctuation and some contractions.
    pub clean_spaces: bool,
    /// A word that is a token as a whole is emitted without running merges.
    pub ignore_merges: bool,
    /// BOS is added unless `tokenizer.ggml.add_bos_token` says otherwise.
    pub add_bos: bool,
}

/// The pre-tokenizers Seed knows, by `tokenizer.ggml.pre` value.
pub static PRE_TYPES: &[PreType] = &[
    PreType {
        names: &["smollm", "command-r"],
        splits: &[Split::EachNumber, Split::Words(GPT2)],
        clean_spaces: false,
        ignore_merges: false,
        add_bos: false,
    },
    PreType {
        names: &["starcoder", "refact", "codeshell", "exaone", "minerva-7b"],
        splits: &[Split::EachNumber, Split::Words(GPT2)],
        clean_spaces: true,
        ignore_merges: false,
        add_bos: false,
    },
    PreType {
        names: &["gpt-2", "phi-2", "mpt", "olmo", "jina-es", "jina-de"],
        splits: &[Split::Words(GPT2)],
        clean_spaces: true,
        ignore_merges: false,
        add_bos: false,
    },
    PreType {
        names: &["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"],
        splits: &[Split::Words(LLAMA3)],
        clean_spaces: true,
        ignore_merges: true,
        add_bos: true,
    },
    PreType {
        names: &["dbrx", "smaug-bpe"],
        splits: &[Split::Words(LLAMA3)],
        clean_spaces: true,
        ignore_merges: false,
        add_bos: false,
    },
    PreType {
        names: &["qwen2", "deepseek-r1-qwen"],
        splits: &[Split::Words(QWEN2)],
        clean_spaces: false,
        ignore_merges: false,
        add_bos: false,
    },
];

/// The pre-type called `name`.
pub fn pre_type(name: &str) -> Option<&'static PreType> {
    PRE_TYPES.iter().find(|p| p.names.contains(&name))
}

/// Every name [`pre_type`] accepts, for error messages.
pub fn known_names() -> String {
    let names: Vec<String> = PRE_TYPES.iter().flat_map(|p| p.names).map(|n| format!("'{n}'")).collect();
    names.join(", ")
}

/// Splits `text` with `splits`; returns the words as byte ranges of `text`, in order,
/// covering it without gaps.
pub fn split(text: &str, splits: &[Split]) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let cps: Vec<char> = chars.iter().map(|&(_, c)| c).collect();
    let info: Vec<CharInfo> = cps.iter().map(|&c| CharInfo::of(c)).collect();
    let mut pieces = Vec::with_capacity(1);
    pieces.push(0..cps.len());
    let mut next = Vec::new();
    for pass in splits {
        next.clear();
        for piece in pieces.drain(..) {
            match pass {
                Split::EachNumber => split_numbers(&info, piece, &mut next),
                Split::Words(rules) => {
                    Words { rules, cps: &cps, info: &info, end: piece.end }.split(piece.start, &mut next)
                }
            }
        }
        std::mem::swap(&mut pieces, &mut next);
    }
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    pieces.into_iter().map(|r| byte_at(r.start)..byte_at(r.end)).collect()
}

/// `\p{N}`, isolated.
fn split_numbers(info: &[CharInfo], piece: Range<usize>, out: &mut Vec<Range<usize>>) {
    let mut run_start = piece.start;
    for i in piece.clone() {
        if info[i].is_number() {
            if run_start < i {
                out.push(run_start..i);
            }
            out.push(i..i + 1);
            run_start = i + 1;
        }
    }
    if run_start < piece.end {
        out.push(run_start..piece.end);
    }
}

/// One piece being split by word rules. Positions are codepoint indices; anything at
/// or past `end` reads as "no codepoint".
struct Words<'a> {
    rules: &'a WordRules,
    cps: &'a [char],
    info: &'a [CharInfo],
    end: usize,
}

impl Words<'_> {
    fn cp(&self, i: usize) -> Option<char> {
        if i < self.end {
            self.cps.get(i).copied()
        } else {
            None
        }
    }

    fn info(&self, i: usize) -> CharInfo {
        if i < self.end {
            self.info.get(i).copied().unwrap_or(CharInfo::NONE)
        } else {
            CharInfo::NONE
        }
    }

    /// Not `\s`, `\p{L}` or `\p{N}`, but a codepoint.
    fn is_other(&self, i: usize) -> bool {
        let f = self.info(i);
        f.exists() && !(f.is_whitespace() || f.is_letter() || f.is_number())
    }

    fn split(&self, start: usize, out: &mut Vec<Range<usize>>) {
        let mut pos = start;
        while pos < self.end {
            let next = self.word_end(pos);
            out.push(pos..next);
            pos = next;
        }
    }

    /// Where the word starting at `pos` ends (always past `pos`).
    fn word_end(&self, pos: usize) -> usize {
        let r = self.rules;
        let c = self.cp(pos);
        if let Some(len) = self.contraction(pos) {
            return pos + len;
        }
        let space = usize::from(c == Some(' '));
        // The class that decides ` ?X+` rules: the codepoint after a leading space.
        let after_space = self.info(pos + space);
        match r.letter_prefix {
            LetterPrefix::Space if after_space.is_letter() => return self.skip(pos + space, CharInfo::is_letter),
            LetterPrefix::AnyButNewlineOrNumber => {
                let here = self.info(pos);
                let prefix_ok = !(c == Some('\r') || c == Some('\n') || here.is_number());
                if prefix_ok && (here.is_letter() || self.info(pos + 1).is_letter()) {
                    return self.skip(pos + 1, CharInfo::is_letter);
                }
            }
            LetterPrefix::Space => {}
        }
        match r.number_chunk {
            None if after_space.is_number() => return self.skip(pos + space, CharInfo::is_number),
            Some(k) if self.info(pos).is_number() => return self.skip(pos, CharInfo::is_number).min(pos + k.max(1)),
            _ => {}
        }
        if self.is_other(pos + space) {
            let mut end = pos + space;
            while self.is_other(end) {
                end += 1;
            }
            if r.newline_rules {
                while matches!(self.cp(end), Some('\r' | '\n')) {
                    end += 1;
                }
            }
            return end;
        }
        let mut n_space = 0;
        let mut after_newline = None;
        while self.info(pos + n_space).is_whitespace() {
            if matches!(self.cp(pos + n_space), Some('\r' | '\n')) {
                after_newline = Some(pos + n_space + 1);
            }
            n_space += 1;
        }
        match after_newline {
            // \s*[\r\n]+
            Some(end) if r.newline_rules => end,
            // \s+(?!\S): leave the last space to start the next word.
            _ if n_space > 1 && self.cp(pos + n_space).is_some() => pos + n_space - 1,
            // \s+
            _ if n_space > 0 => pos + n_space,
            _ => pos + 1,
        }
    }

    /// The first position at or after `from` whose codepoint is not in `class`.
    fn skip(&self, from: usize, class: fn(CharInfo) -> bool) -> usize {
        let mut end = from;
        while class(self.info(end)) {
            end += 1;
        }
        end
    }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `pos`, if one starts there.
    fn contraction(&self, pos: usize) -> Option<usize> {
        if self.cp(pos) != Some('\'') {
            return None;
        }
        let fold = |c: Option<char>| match c {
            Some(c) if self.rules.contractions_ignore_case => Some(c.to_ascii_lowercase()),
            c => c,
        };
        let (c1, c2) = (fold(self.cp(pos + 1)), fold(self.cp(pos + 2)));
        match (c1, c2) {
            (Some('s' | 't' | 'm' | 'd'), _) => Some(2),
            (Some('r' | 'v'), Some('e')) | (Some('l'), Some('l')) => Some(3),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<'a>(text: &'a str, splits: &[Split]) -> Vec<&'a str> {
        split(text, splits).into_iter().map(|r| &text[r]).collect()
    }

    const SMOLLM: &[Split] = &[Split::EachNumber, Split::Words(GPT2)];

    #[test]
    fn gpt2_words() {
        let gpt2 = &[Split::Words(GPT2)];
        assert_eq!(words("Hello world", gpt2), ["Hello", " world"]);
        assert_eq!(words("I'm here, isn't it?", gpt2), ["I", "'m", " here", ",", " isn", "'t", " it", "?"]);
        assert_eq!(words("I'M", gpt2), ["I", "'", "M"]);
        assert_eq!(words("a  b", gpt2), ["a", " ", " b"]);
        assert_eq!(words("a   ", gpt2), ["a", "   "]);
        assert_eq!(words("x\n\ny", gpt2), ["x", "\n", "\n", "y"]);
        assert_eq!(words("x \n y", gpt2), ["x", " \n", " y"]);
        assert_eq!(words("price 100$", gpt2), ["price", " 100", "$"]);
        assert_eq!(words(" !!?", gpt2), [" !!?"]);
        assert_eq!(words("中文 字", gpt2), ["中文", " 字"]);
        assert_eq!(words("", gpt2), Vec::<&str>::new());
    }

    #[test]
    fn smollm_isolates_every_digit_before_the_gpt2_rules() {
        assert_eq!(words("is 17 + 25?", SMOLLM), ["is", " ", "1", "7", " +", " ", "2", "5", "?"]);
        assert_eq!(words("12 * 12 =", SMOLLM), ["1", "2", " *", " ", "1", "2", " ="]);
        assert_eq!(words("x²", SMOLLM), ["x", "²"]);
    }

    #[test]
    fn llama3_words() {
        let l3 = &[Split::Words(LLAMA3)];
        assert_eq!(words("12345 apples", l3), ["123", "45", " apples"]);
        assert_eq!(words("I'M ok", l3), ["I", "'M", " ok"]);
        assert_eq!(words("(hello)", l3), ["(hello", ")"]);
        assert_eq!(words("a.\n\nb", l3), ["a", ".\n\n", "b"]);
        assert_eq!(words("a \n  b", l3), ["a", " \n", " ", " b"]);
        let q2 = &[Split::Words(QWEN2)];
        assert_eq!(words("2024", q2), ["2", "0", "2", "4"]);
    }

    #[test]
    fn pieces_cover_the_text() {
        let text = "  tabs\t\tand\u{3000}ideographic\u{A0}spaces, émoji 🎉🎉 and e\u{301}\r\n\r\n'' 'S";
        for splits in [SMOLLM, &[Split::Words(LLAMA3)]] {
            let ranges = split(text, splits);
            let mut at = 0;
            for r in &ranges {
                assert_eq!(r.start, at);
                assert!(r.end > r.start);
                at = r.end;
            }
            assert_eq!(at, text.len());
        }
    }

    #[test]
    fn every_pre_type_name_is_unique() {
        let mut names: Vec<&str> = PRE_TYPES.iter().flat_map(|p| p.names.iter().copied()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(pre_type("smollm").is_some_and(|p| !p.clean_spaces));
        assert!(pre_type("nonesuch").is_none());
    }
}
