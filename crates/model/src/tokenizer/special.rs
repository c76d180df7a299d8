//! Special-token partitioning: cutting the texts of control, user-defined and unknown
//! tokens out of the input before the text between them is tokenized.
//!
//! llama.cpp takes the special tokens longest first and, for each, cuts every
//! occurrence (leftmost first, not overlapping) out of the text fragments still
//! uncut. A shorter token therefore never splits a longer one, even when it occurs
//! further left. Tokens of equal length are taken in id order here (llama.cpp's
//! order among them is whatever its unstable sort leaves; it matters only when two
//! distinct tokens of one length overlap in the text). User-defined tokens are cut
//! even without `parse_special`; control and unknown ones only with it.
//!
//! To avoid scanning the text once per special token (Gemma 3 has 6,414), one
//! overlapping Aho-Corasick pass first finds which tokens occur at all: a token seen
//! a few times is then cut at exactly those places (where still uncut), a token seen
//! often is searched for again within the span from its first to its last
//! occurrence. The middle of a long run of one byte (a megabyte of spaces) is not
//! searched in that pass, so it stays linear. The cuts are those llama.cpp makes; a
//! randomized test checks them against llama.cpp's procedure run literally.

use std::collections::BTreeMap;
use std::ops::Range;

use aho_corasick::{AhoCorasick, Input, MatchKind};
use memchr::memmem::Finder;

use super::vocab::{Attr, Vocab};
use super::TokenizerError;

/// A piece of the input after partitioning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Text to tokenize normally (a non-empty byte range of the input).
    Text(Range<usize>),
    /// A special token cut out of the input.
    Token(u32),
}

/// One special token, in priority order.
struct Special {
    id: u32,
    text: String,
    /// Cut even when `parse_special` is false.
    always: bool,
}

/// The special tokens of a vocabulary, ready for matching.
pub(crate) struct SpecialTokens {
    /// Priority order: longest first, then lowest id. Pattern `i` of `matcher` is `tokens[i]`.
    tokens: Vec<Special>,
    /// `None` when the vocabulary has no special tokens.
    matcher: Option<AhoCorasick>,
    /// Byte length of the longest special token.
    max_len: usize,
}

impl SpecialTokens {
    /// The control, user-defined and unknown tokens of `vocab`.
    pub fn new(vocab: &Vocab) -> Result<SpecialTokens, TokenizerError> {
        let special = Attr::CONTROL.or(Attr::USER_DEFINED).or(Attr::UNKNOWN);
        let mut tokens: Vec<Special> = vocab
            .iter()
            .filter(|&(_, _, attr)| attr.has(special))
            .map(|(id, text, attr)| Special {
                id,
                text: text.to_owned(),
                always: !attr.has(Attr::CONTROL.or(Attr::UNKNOWN)),
            })
            .collect();
        tokens.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        let matcher = if tokens.is_empty() {
            None
        } else {
            let built = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(tokens.iter().map(|t| t.text.as_bytes()))
                .map_err(|e| TokenizerError::SpecialTokens { n: tokens.len(), reason: e.to_string() })?;
            Some(built)
        };
        let max_len = tokens.first().map_or(0, |t| t.text.len());
        Ok(SpecialTokens { tokens, matcher, max_len })
    }

    /// Cuts the special tokens out of `text`; fragments come in text order.
    pub fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let bytes = text.as_bytes();
        let mut cutter = Cutter { uncut: BTreeMap::from([(0, bytes.len())]), cuts: Vec::new() };
        for (p, seen) in self.occurrences(bytes, parse_special) {
            let Some(token) = self.tokens.get(p) else { continue };
            let len = token.text.len();
            if seen.complete {
                for &at in &seen.starts {
                    cutter.cut(at, len, token.id);
                }
            } else {
                let finder = memchr::memmem::Finder::new(token.text.as_bytes());
                cutter.scan(bytes, &finder, seen.first..seen.last + len, token.id);
            }
        }
        cutter.into_fragments()
    }

    /// Which special tokens occur in `bytes` (pattern index, ascending = priority order),
    /// with their first and last start and, for tokens seen a few times, every start.
    ///
    /// Inside a run of one byte longer than `RUN_SKIP` times the longest special token,
    /// only the run's two ends are searched: what occurs in its middle is that byte
    /// repeated, which also occurs at its ends. Tokens made of such a byte are then
    /// marked incomplete.
    fn occurrences(&self, bytes: &[u8], parse_special: bool) -> BTreeMap<usize, Seen> {
        let mut seen: BTreeMap<usize, Seen> = BTreeMap::new();
        let Some(matcher) = &self.matcher else { return seen };
        let edge = self.max_len.max(1);
        let mut skipped = [false; 256];
        let mut segments = Vec::new();
        let (mut seg_start, mut i) = (0, 0);
        while i < bytes.len() {
            let c = bytes[i];
            let run_end = i + bytes[i..].iter().take_while(|&&b| b == c).count();
            if run_end - i > RUN_SKIP * edge {
                segments.push(seg_start..i + edge);
                seg_start = run_end - edge;
                skipped[usize::from(c)] = true;
            }
            i = run_end;
        }
        segments.push(seg_start..bytes.len());
        for segment in segments {
            // Overlapping search cannot fail for a `MatchKind::Standard` automaton.
            let Ok(matches) = matcher.try_find_overlapping_iter(Input::new(bytes).span(segment)) else { continue };
            for m in matches {
                let p = m.pattern().as_usize();
                if !parse_special && !self.tokens.get(p).is_some_and(|t| t.always) {
                    continue;
                }
                let at = m.start();
                let entry = seen.entry(p).or_insert(Seen { first: at, last: at, starts: Vec::new(), complete: true });
                entry.last = at;
                if entry.complete && entry.starts.len() < EXACT_STARTS {
                    entry.starts.push(at);
                } else {
                    entry.complete = false;
                    entry.starts = Vec::new();
                }
            }
        }
        for (p, entry) in seen.iter_mut() {
            let text = self.tokens.get(*p).map_or(&[][..], |t| t.text.as_bytes());
            if text.first().is_some_and(|&c| skipped[usize::from(c)] && text.iter().all(|&b| b == c)) {
                entry.complete = false;
            }
        }
        seen
    }
}

/// A run of one byte longer than this many times the longest special token is not
/// searched in its middle.
const RUN_SKIP: usize = 4;

/// Up to this many starts of a token are kept; a token seen more often is searched
/// for again, within its span, when it is cut.
const EXACT_STARTS: usize = 16;

/// Where one special token occurs.
struct Seen {
    /// First start.
    first: usize,
    /// Last start.
    last: usize,
    /// Every start, ascending, when `complete`.
    starts: Vec<usize>,
    /// `starts` holds every occurrence.
    complete: bool,
}

/// The state of the partition: the uncut text and the cuts made.
struct Cutter {
    /// Uncut fragments, start → end.
    uncut: BTreeMap<usize, usize>,
    /// (start, token) of each cut.
    cuts: Vec<(usize, u32)>,
}

impl Cutter {
    /// Cuts `token` at `at..at + len` if those bytes are all still uncut.
    fn cut(&mut self, at: usize, len: usize, token: u32) {
        let Some((&start, &end)) = self.uncut.range(..=at).next_back() else { return };
        if at + len > end {
            return;
        }
        self.uncut.remove(&start);
        if start < at {
            self.uncut.insert(start, at);
        }
        if at + len < end {
            self.uncut.insert(at + len, end);
        }
        self.cuts.push((at, token));
    }

    /// Cuts every occurrence of `finder`'s needle that starts in `span`, leftmost first
    /// within each uncut fragment, as llama.cpp does.
    fn scan(&mut self, bytes: &[u8], finder: &Finder<'_>, span: Range<usize>, token: u32) {
        let len = finder.needle().len();
        // The fragment holding span.start, and every fragment starting inside the span.
        let mut fragments: Vec<(usize, usize)> = Vec::new();
        let holder = self.uncut.range(..=span.start).next_back().map(|(&s, &e)| (s, e));
        fragments.extend(holder.filter(|&(_, e)| e > span.start));
        fragments.extend(self.uncut.range(span.start + 1..span.end).map(|(&s, &e)| (s, e)));
        for (start, end) in fragments {
            let (mut at, hi) = (start.max(span.start), end.min(span.end));
            while at + len <= hi {
                let Some(found) = bytes.get(at..hi).and_then(|h| finder.find(h)) else { break };
                self.cut(at + found, len, token);
                at += found + len;
            }
        }
    }

    /// The fragments in text order.
    fn into_fragments(mut self) -> Vec<Fragment> {
        self.cuts.sort_unstable();
        let mut out = Vec::with_capacity(self.uncut.len() + self.cuts.len());
        let mut texts = self.uncut.into_iter().peekable();
        for (at, id) in self.cuts {
            while let Some((s, e)) = texts.next_if(|&(s, _)| s < at) {
                out.push(Fragment::Text(s..e));
            }
            out.push(Fragment::Token(id));
        }
        out.extend(texts.map(|(s, e)| Fragment::Text(s..e)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(entries: &[(&str, i32)]) -> Vocab {
        let texts: Vec<String> = entries.iter().map(|(t, _)| t.to_string()).collect();
        let types: Vec<i32> = entries.iter().map(|&(_, ty)| ty).collect();
        Vocab::new(&texts, None, Some(&types)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn show(text: &str, frags: &[Fragment]) -> Vec<String> {
        frags
            .iter()
            .map(|f| match f {
                Fragment::Text(r) => format!("'{}'", &text[r.clone()]),
                Fragment::Token(id) => format!("#{id}"),
            })
            .collect()
    }

    #[test]
    fn longest_token_wins_even_when_a_shorter_one_starts_further_left() {
        // 0: "xab" (3), 1: "abcd" (4): llama.cpp cuts "abcd" first, so "xab" never matches.
        let v = vocab(&[("xab", 3), ("abcd", 3), ("a", 1)]);
        let s = SpecialTokens::new(&v).unwrap_or_else(|e| panic!("{e}"));
        let text = "xabcd xab";
        assert_eq!(show(text, &s.partition(text, true)), ["'x'", "#1", "' '", "#0"]);
    }

    #[test]
    fn runs_are_cut_greedily_longest_token_first() {
        let v = vocab(&[("  ", 4), ("   ", 4), ("a", 1)]);
        let s = SpecialTokens::new(&v).unwrap_or_else(|e| panic!("{e}"));
        let text = "a        a"; // 8 spaces: 3 + 3 + 2
        assert_eq!(show(text, &s.partition(text, false)), ["'a'", "#1", "#1", "#0", "'a'"]);
    }

    #[test]
    fn control_tokens_need_parse_special_user_defined_do_not() {
        let v = vocab(&[("<s>", 3), ("<b>", 4), ("<unk>", 2), ("x", 1)]);
        let s = SpecialTokens::new(&v).unwrap_or_else(|e| panic!("{e}"));
        let text = "<s>x<b>x<unk>";
        assert_eq!(show(text, &s.partition(text, true)), ["#0", "'x'", "#1", "'x'", "#2"]);
        assert_eq!(show(text, &s.partition(text, false)), ["'<s>x'", "#1", "'x<unk>'"]);
        assert!(s.partition("", true).is_empty());
    }

    /// llama.cpp's procedure, literally: for each token in priority order, for each
    /// text fragment, cut every leftmost occurrence.
    fn reference(tokens: &[(String, u32, bool)], text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut order: Vec<&(String, u32, bool)> = tokens.iter().collect();
        order.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let mut frags = if text.is_empty() { vec![] } else { vec![Fragment::Text(0..text.len())] };
        for (needle, id, always) in order {
            if !parse_special && !always {
                continue;
            }
            let mut next = Vec::new();
            for f in frags {
                let Fragment::Text(mut r) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(i) = text[r.clone()].find(needle.as_str()) {
                    if i > 0 {
                        next.push(Fragment::Text(r.start..r.start + i));
                    }
                    next.push(Fragment::Token(*id));
                    r.start += i + needle.len();
                }
                if !r.is_empty() {
                    next.push(Fragment::Text(r));
                }
            }
            frags = next;
        }
        frags
    }

    #[test]
    fn agrees_with_llama_cpp_procedure_on_random_texts() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let alphabet = ['a', 'b', ' ', '\n', '<', '>', 'é'];
        for round in 0..300 {
            // Random special tokens over the alphabet, some runs of one character.
            let mut entries: Vec<(String, i32)> = Vec::new();
            for k in 0..rng.gen_range(1..8) {
                let t: String = if k % 3 == 0 {
                    alphabet[rng.gen_range(0..alphabet.len())].to_string().repeat(rng.gen_range(1..5))
                } else {
                    (0..rng.gen_range(1..5)).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect()
                };
                if !entries.iter().any(|(e, _)| *e == t) {
                    entries.push((t, if rng.gen_bool(0.5) { 3 } else { 4 }));
                }
            }
            let refs: Vec<(&str, i32)> = entries.iter().map(|(t, ty)| (t.as_str(), *ty)).collect();
            let v = vocab(&refs);
            let s = SpecialTokens::new(&v).unwrap_or_else(|e| panic!("{e}"));
            let tokens: Vec<(String, u32, bool)> =
                entries.iter().enumerate().map(|(i, (t, ty))| (t.clone(), i as u32, *ty == 4)).collect();
            // Texts with long runs, so the run skipping and the span search are exercised.
            let mut text = String::new();
            for _ in 0..rng.gen_range(0..12) {
                let c = alphabet[rng.gen_range(0..alphabet.len())];
                let n = if rng.gen_bool(0.3) { rng.gen_range(10..80) } else { rng.gen_range(1..4) };
                text.push_str(&c.to_string().repeat(n));
            }
            for parse in [true, false] {
                assert_eq!(
                    s.partition(&text, parse),
                    reference(&tokens, &text, parse),
                    "round {round}: {entries:?} {text:?}"
                );
            }
        }
    }

    #[test]
    fn adjacent_and_repeated_tokens() {
        let v = vocab(&[("<|a|>", 3), ("<|b|>", 3), ("z", 1)]);
        let s = SpecialTokens::new(&v).unwrap_or_else(|e| panic!("{e}"));
        let text = "<|a|><|b|><|a|>z<|a|>";
        assert_eq!(show(text, &s.partition(text, true)), ["#0", "#1", "#0", "'z'", "#0"]);
        let text = "<|a|<|a|>|>";
        assert_eq!(show(text, &s.partition(text, true)), ["'<|a|'", "#0", "'|>'"]);
    }
}
