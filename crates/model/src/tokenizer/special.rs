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
//! Aho-Corasick pass first finds which tokens occur at all and where the first and
//! last occurrence start; only those tokens are then searched for, within that span
//! of the uncut fragments. The cuts are those llama.cpp makes.

use std::collections::BTreeMap;
use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};

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
        Ok(SpecialTokens { tokens, matcher })
    }

    /// Cuts the special tokens out of `text`; fragments come in text order.
    pub fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let Some(matcher) = &self.matcher else {
            return vec![Fragment::Text(0..text.len())];
        };
        let bytes = text.as_bytes();
        // Which tokens occur, and where their first and last occurrence start.
        let mut spans: Vec<Option<(usize, usize)>> = Vec::new();
        // Overlapping search cannot fail for a `MatchKind::Standard` automaton.
        let Ok(matches) = matcher.try_find_overlapping_iter(bytes) else {
            return vec![Fragment::Text(0..text.len())];
        };
        for m in matches {
            let p = m.pattern().as_usize();
            if !parse_special && !self.tokens.get(p).is_some_and(|t| t.always) {
                continue;
            }
            if spans.len() <= p {
                spans.resize(p + 1, None);
            }
            let span = spans[p].get_or_insert((m.start(), m.start()));
            span.0 = span.0.min(m.start());
            span.1 = span.1.max(m.start());
        }
        // Uncut fragments, start → end.
        let mut uncut = BTreeMap::from([(0, bytes.len())]);
        let mut cuts: Vec<(usize, u32)> = Vec::new();
        let mut in_span = Vec::new();
        for (p, span) in spans.iter().enumerate() {
            let (Some((first, last)), Some(token)) = (*span, self.tokens.get(p)) else { continue };
            let needle = token.text.as_bytes();
            let finder = memchr::memmem::Finder::new(needle);
            let span_end = last + needle.len();
            // Fragments that overlap [first, span_end): the one holding `first`, and any after it.
            in_span.clear();
            let before = uncut.range(..=first).next_back().map(|(&s, &e)| (s, e));
            in_span.extend(before.filter(|&(_, e)| e > first));
            in_span.extend(uncut.range(first + 1..span_end).map(|(&s, &e)| (s, e)));
            for &(start, end) in &in_span {
                let (lo, hi) = (start.max(first), end.min(span_end));
                let mut at = lo;
                let mut pieces_start = start;
                let mut cut_any = false;
                while at + needle.len() <= hi {
                    let Some(found) = finder.find(&bytes[at..hi]) else { break };
                    let hit = at + found;
                    if !cut_any {
                        uncut.remove(&start);
                        cut_any = true;
                    }
                    if pieces_start < hit {
                        uncut.insert(pieces_start, hit);
                    }
                    cuts.push((hit, token.id));
                    at = hit + needle.len();
                    pieces_start = at;
                }
                if cut_any && pieces_start < end {
                    uncut.insert(pieces_start, end);
                }
            }
        }
        cuts.sort_unstable();
        let mut out = Vec::with_capacity(uncut.len() + cuts.len());
        let mut texts = uncut.into_iter().peekable();
        for (at, id) in cuts {
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
