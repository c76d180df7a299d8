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
//! The pre-tokenizers llama.cpp runs through `std::regex` instead (Falcon, DeepSeek LLM and
//! Coder) are [`Pattern`] passes: sequences of quantified classes, matched the way that
//! engine matches them over llama.cpp's rewritten text (non-ASCII white space read as
//! U+000B, `\p{..}` as "ASCII members or a non-ASCII codepoint of the category").
//!
//! `smollm` is checked against llama.cpp's output by the golden tests; `gpt-2`, `mpt`,
//! `starcoder`, `refact`, `falcon`, `deepseek-llm`, `deepseek-coder` (and the SentencePiece
//! `llama-spm`, `phi-3`) by llama.cpp's own vocabulary suite
//! (`crates/model/tests/llama_vocab_suite.rs`); the other rows follow llama.cpp's source.

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
    /// One of the regexes llama.cpp runs through `std::regex` rather than a hand-written
    /// matcher ([`Pattern`]).
    Pattern(&'static Pattern),
}

/// A regex of the form llama.cpp's general path handles for the pre-tokenizers that use it:
/// a sequence of greedy quantified character classes, optionally anchored at the end of the
/// piece (`\s?\p{L}+`, `[\r\n]`, `[0-9][0-9][0-9]`, `\s+$`). Matches are found as
/// `std::regex_iterator` finds them: leftmost, greedy, backtracking.
#[derive(Debug)]
pub struct Pattern {
    /// The items, in order.
    pub items: &'static [Item],
    /// `$`: the match must end where the piece ends.
    pub at_end: bool,
}

/// A class repeated `min..=max` times.
#[derive(Debug)]
pub struct Item {
    /// The class.
    pub class: Class,
    /// Fewest repetitions.
    pub min: usize,
    /// Most repetitions (`usize::MAX`: unbounded).
    pub max: usize,
}

/// A character class as llama.cpp's regex sees a codepoint: non-ASCII white space reads as
/// U+000B (so `\s` matches it and no other range does); `\p{..}` classes (llama.cpp's
/// "collapsed" text) match their ASCII members and non-ASCII codepoints of that category.
#[derive(Debug)]
pub struct Class {
    /// `\s`: ASCII white space, and so every white space.
    pub space: bool,
    /// `\p{N}`.
    pub number: bool,
    /// `\p{L}`.
    pub letter: bool,
    /// `\p{P}`.
    pub punctuation: bool,
    /// Codepoint ranges, inclusive.
    pub ranges: &'static [(u32, u32)],
}

impl Class {
    const NONE: Class = Class { space: false, number: false, letter: false, punctuation: false, ranges: &[] };

    fn matches(&self, c: char, info: CharInfo) -> bool {
        let cp = c as u32;
        let seen = if cp >= 128 && info.is_whitespace() { 0x0B } else { cp };
        if self.space && matches!(seen, 0x09..=0x0D | 0x20) {
            return true;
        }
        if self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&seen)) {
            return true;
        }
        if cp < 128 {
            let b = cp as u8;
            (self.number && b.is_ascii_digit())
                || (self.letter && b.is_ascii_alphabetic())
                || (self.punctuation && b"!\"#%&'()*,-./:;?@[\\]_{}".contains(&b))
        } else {
            !info.is_whitespace()
                && ((self.number && info.is_number())
                    || (self.letter && info.is_letter())
                    || (self.punctuation && info.is_punctuation()))
        }
    }
}

const fn item(class: Class, min: usize, max: usize) -> Item {
    Item { class, min, max }
}

const MANY: usize = usize::MAX;
const SPACE: Class = Class { space: true, ..Class::NONE };
const NEWLINE: Class = Class { ranges: &[(0x0A, 0x0A), (0x0D, 0x0D)], ..Class::NONE };
const NUMBER: Class = Class { number: true, ..Class::NONE };
/// `[一-龥ࠀ-一가-퟿]`
const CJK: Class = Class { ranges: &[(0x4E00, 0x9FA5), (0x0800, 0x4E00), (0xAC00, 0xD7FF)], ..Class::NONE };

/// `[\r\n]`
static ONE_NEWLINE: Pattern = Pattern { items: &[item(NEWLINE, 1, 1)], at_end: false };
/// `[一-龥ࠀ-一가-퟿]+`
static CJK_RUN: Pattern = Pattern { items: &[item(CJK, 1, MANY)], at_end: false };

/// DeepSeek LLM's letters: `[A-Za-zµÀ-ÖØ-öø-ƺ…]`, as llama.cpp lists them.
const DEEPSEEK_LETTERS: Class = Class {
    ranges: &[
        (0x41, 0x5A),
        (0x61, 0x7A),
        (0xB5, 0xB5),
        (0xC0, 0xD6),
        (0xD8, 0xF6),
        (0xF8, 0x1BA),
        (0x1BC, 0x1BF),
        (0x1C4, 0x293),
        (0x295, 0x2AF),
        (0x370, 0x373),
        (0x376, 0x377),
        (0x37B, 0x37D),
        (0x37F, 0x37F),
        (0x386, 0x386),
        (0x388, 0x38A),
        (0x38C, 0x38C),
        (0x38E, 0x3A1),
        (0x3A3, 0x3F5),
        (0x3F7, 0x481),
        (0x48A, 0x52F),
        (0x531, 0x556),
        (0x10A0, 0x10C5),
        (0x13A0, 0x13F5),
        (0x13F8, 0x13FD),
        (0x1C90, 0x1CBA),
        (0x1CBD, 0x1CBF),
        (0x1D00, 0x1D2B),
        (0x1D6B, 0x1D77),
        (0x1D79, 0x1D9A),
        (0x1E00, 0x1F15),
        (0x1F18, 0x1F1D),
        (0x1F20, 0x1F45),
        (0x1F48, 0x1F4D),
        (0x1F50, 0x1F57),
        (0x1F59, 0x1F59),
        (0x1F5B, 0x1F5B),
        (0x1F5D, 0x1F5D),
        (0x1F5F, 0x1F7D),
        (0x1F80, 0x1FB4),
        (0x1FB6, 0x1FBC),
        (0x1FBE, 0x1FBE),
        (0x1FC2, 0x1FC4),
        (0x1FC6, 0x1FCC),
        (0x1FD0, 0x1FD3),
        (0x1FD6, 0x1FDB),
        (0x1FE0, 0x1FEC),
        (0x1FF2, 0x1FF4),
        (0x1FF6, 0x1FFC),
        (0x2102, 0x2102),
        (0x2107, 0x2107),
        (0x210A, 0x2113),
        (0x2115, 0x2115),
        (0x2119, 0x211D),
        (0x2124, 0x2124),
        (0x2126, 0x2126),
        (0x2128, 0x2128),
        (0x212A, 0x212D),
        (0x212F, 0x2134),
        (0x2139, 0x2139),
        (0x213C, 0x213F),
        (0x2145, 0x2149),
        (0x214E, 0x214E),
        (0x2183, 0x2184),
        (0x2C00, 0x2C7B),
        (0x2C7E, 0x2CE4),
        (0x2CEB, 0x2CEE),
        (0x2CF2, 0x2CF3),
        (0xA640, 0xA66D),
        (0xA680, 0xA69B),
        (0xA722, 0xA76F),
        (0xA771, 0xA787),
        (0xA78B, 0xA78E),
        (0xAB70, 0xABBF),
        (0xFB00, 0xFB06),
        (0xFB13, 0xFB17),
        (0xFF21, 0xFF3A),
        (0xFF41, 0xFF5A),
        (0x10400, 0x1044F),
        (0x104B0, 0x104D3),
        (0x104D8, 0x104FB),
        (0x10C80, 0x10CB2),
        (0x10CC0, 0x10CF2),
        (0x118A0, 0x118DF),
        (0x1E900, 0x1E943),
    ],
    ..Class::NONE
};

/// DeepSeek LLM's regexes after `[\r\n]`.
static DEEPSEEK_LLM_WORDS: Pattern =
    Pattern { items: &[item(SPACE, 0, 1), item(DEEPSEEK_LETTERS, 1, MANY)], at_end: false };
static DEEPSEEK_LLM_PUNCT: Pattern = Pattern {
    items: &[
        item(SPACE, 0, 1),
        item(
            Class {
                ranges: &[
                    (0x21, 0x2F),
                    (0x3A, 0x7E),
                    (0xFF01, 0xFF0F),
                    (0xFF1A, 0xFF5E),
                    (0x2018, 0x201F),
                    (0x3000, 0x3002),
                ],
                ..Class::NONE
            },
            1,
            MANY,
        ),
    ],
    at_end: false,
};
static TRAILING_SPACE: Pattern = Pattern { items: &[item(SPACE, 1, MANY)], at_end: true };
static NUMBER_RUN: Pattern = Pattern { items: &[item(NUMBER, 1, MANY)], at_end: false };

/// DeepSeek Coder's: `\s?\p{L}+`, `\s?\p{P}+`, `\p{N}`.
static SPACED_LETTERS: Pattern =
    Pattern { items: &[item(SPACE, 0, 1), item(Class { letter: true, ..Class::NONE }, 1, MANY)], at_end: false };
static SPACED_PUNCT: Pattern =
    Pattern { items: &[item(SPACE, 0, 1), item(Class { punctuation: true, ..Class::NONE }, 1, MANY)], at_end: false };
static ONE_NUMBER: Pattern = Pattern { items: &[item(NUMBER, 1, 1)], at_end: false };

/// Falcon's: `[\p{P}\$\+<=>\^~\|`]+` and `[0-9][0-9][0-9]`.
static FALCON_PUNCT: Pattern = Pattern {
    items: &[item(
        Class {
            punctuation: true,
            ranges: &[(0x24, 0x24), (0x2B, 0x2B), (0x3C, 0x3E), (0x5E, 0x5E), (0x7E, 0x7E), (0x7C, 0x7C), (0x60, 0x60)],
            ..Class::NONE
        },
        1,
        MANY,
    )],
    at_end: false,
};
static THREE_DIGITS: Pattern =
    Pattern { items: &[item(Class { ranges: &[(0x30, 0x39)], ..Class::NONE }, 3, 3)], at_end: false };

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
        names: &["falcon"],
        splits: &[Split::Pattern(&FALCON_PUNCT), Split::Words(GPT2), Split::Pattern(&THREE_DIGITS)],
        clean_spaces: true,
        ignore_merges: false,
        add_bos: false,
    },
    PreType {
        names: &["deepseek-llm"],
        splits: &[
            Split::Pattern(&ONE_NEWLINE),
            Split::Pattern(&DEEPSEEK_LLM_WORDS),
            Split::Pattern(&DEEPSEEK_LLM_PUNCT),
            Split::Pattern(&TRAILING_SPACE),
            Split::Pattern(&CJK_RUN),
            Split::Pattern(&NUMBER_RUN),
        ],
        clean_spaces: false,
        ignore_merges: false,
        add_bos: false,
    },
    PreType {
        names: &["deepseek-coder"],
        splits: &[
            Split::Pattern(&ONE_NEWLINE),
            Split::Pattern(&SPACED_LETTERS),
            Split::Pattern(&SPACED_PUNCT),
            Split::Pattern(&CJK_RUN),
            Split::Pattern(&ONE_NUMBER),
        ],
        clean_spaces: false,
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
                Split::Pattern(pattern) => split_pattern(pattern, &cps, &info, piece, &mut next),
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

/// Splits `piece` at every match of `pattern`, keeping the text between matches, as
/// llama.cpp's `unicode_regex_split_stl` does.
fn split_pattern(pattern: &Pattern, cps: &[char], info: &[CharInfo], piece: Range<usize>, out: &mut Vec<Range<usize>>) {
    let class = |i: usize, c: &Class| c.matches(cps[i], info[i]);
    // `X+$` alone: the run of X that ends the piece, found directly (a search from every
    // position of a long run that does not reach the end would be quadratic).
    if let ([only], true) = (pattern.items, pattern.at_end) {
        let mut start = piece.end;
        while start > piece.start && class(start - 1, &only.class) {
            start -= 1;
        }
        let len = (piece.end - start).min(only.max);
        let start = piece.end - len;
        if len >= only.min.max(1) {
            if piece.start < start {
                out.push(piece.start..start);
            }
            out.push(start..piece.end);
        } else {
            out.push(piece);
        }
        return;
    }
    // The match of items[k..] at `at`, as its end, trying the longest run first.
    fn match_from(
        items: &[Item],
        at_end: bool,
        at: usize,
        end: usize,
        class: &dyn Fn(usize, &Class) -> bool,
    ) -> Option<usize> {
        let Some((first, rest)) = items.split_first() else {
            return (!at_end || at == end).then_some(at);
        };
        let mut run = 0;
        while run < first.max && at + run < end && class(at + run, &first.class) {
            run += 1;
        }
        (first.min..=run).rev().find_map(|k| match_from(rest, at_end, at + k, end, class))
    }
    let mut gap = piece.start;
    let mut at = piece.start;
    while at < piece.end {
        match match_from(pattern.items, pattern.at_end, at, piece.end, &class).filter(|&e| e > at) {
            Some(e) => {
                if gap < at {
                    out.push(gap..at);
                }
                out.push(at..e);
                gap = e;
                at = e;
            }
            None => at += 1,
        }
    }
    if gap < piece.end {
        out.push(gap..piece.end);
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

    fn pre(name: &str) -> &'static [Split] {
        pre_type(name).unwrap().splits
    }

    /// The regex passes, worked out by hand from llama.cpp's regexes (the vocabulary suite,
    /// `tests/llama_vocab_suite.rs`, checks them against llama.cpp's own output).
    #[test]
    fn regex_passes_split_as_std_regex_does() {
        // `[\r\n]`, `\s?\p{L}+`, `\s?\p{P}+`, CJK runs, `\p{N}` one by one.
        assert_eq!(words("Hi, 世界 42\n", pre("deepseek-coder")), ["Hi", ",", " ", "世界", " ", "4", "2", "\n"]);
        // Punctuation and ASCII symbols first, GPT-2's words, then digits in threes.
        assert_eq!(words("a+b=1234!!", pre("falcon")), ["a", "+", "b", "=", "123", "4", "!!"]);
        // U+3000 is white space, so it reads as U+000B: the CJK pass (ࠀ-一 spans U+3000 as a
        // number) takes 。 without it.
        assert_eq!(words("x\u{3000}。", pre("deepseek-llm")), ["x", "\u{3000}", "。"]);
        // `\s+$` takes the spaces that end a piece, whatever comes before them.
        assert_eq!(words("Hi  \n", pre("deepseek-llm")), ["Hi", "  ", "\n"]);
        assert_eq!(words("42  ", &[Split::Pattern(&TRAILING_SPACE)]), ["42", "  "]);
        assert_eq!(words("  42", &[Split::Pattern(&TRAILING_SPACE)]), ["  42"]);
        // A long run of spaces that does not end the piece is no match (and not slow).
        let text = format!("{}x", " ".repeat(100_000));
        assert_eq!(words(&text, &[Split::Pattern(&TRAILING_SPACE)]).len(), 1);
    }

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
