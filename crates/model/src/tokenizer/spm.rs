//! SentencePiece-style BPE (`tokenizer.ggml.model = "llama"`): score-driven bigram merging.
//!
//! The text (spaces already replaced by `▁`, U+2581) starts as one symbol per
//! character. Any two neighbours whose concatenation is a token are a candidate,
//! scored by that token's score; the best candidate (highest score, then leftmost)
//! is merged, and the merged symbol's new neighbour pairs become candidates, until
//! none is left. A heap of candidates over a linked list of symbols keeps this
//! O(n log n), with no word splitting to bound n. Each final symbol is its token, or
//! else one byte token (`<0xNN>`) per byte; a byte with no byte token falls back to a
//! token spelt as that single byte, then to the unknown token (llama.cpp aborts there).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;

/// Buffers reused across the fragments of one call.
#[derive(Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Candidate>,
}

/// How single bytes are tokenized when no merge covers them.
pub(crate) struct ByteFallback {
    /// (256) the token for each byte: its `<0xNN>` token, else a token spelt as that
    /// byte alone (ASCII only), else the unknown token.
    pub tokens: [Option<u32>; 256],
}

/// Appends the tokens of `text` (already escaped).
pub(crate) fn encode(text: &str, vocab: &Vocab, bytes: &ByteFallback, scratch: &mut Scratch, out: &mut Vec<u32>) {
    let Scratch { symbols, heap } = scratch;
    symbols.clear();
    heap.clear();
    let n = text.chars().count();
    symbols.extend(text.char_indices().enumerate().map(|(i, (start, c))| Symbol {
        start,
        len: c.len_utf8(),
        prev: i.checked_sub(1),
        next: if i + 1 < n { Some(i + 1) } else { None },
    }));
    for i in 1..symbols.len() {
        push_pair(text, vocab, symbols, heap, i - 1, i);
    }
    while let Some(cand) = heap.pop() {
        let (l, r) = (symbols[cand.left], symbols[cand.right]);
        // Symbols only grow, so a changed total length means a merge since this pair was queued.
        if l.len == 0 || r.len == 0 || l.len + r.len != cand.len {
            continue;
        }
        symbols[cand.right].len = 0;
        let left = &mut symbols[cand.left];
        left.len = cand.len;
        left.next = r.next;
        let prev = left.prev;
        if let Some(next) = r.next {
            symbols[next].prev = Some(cand.left);
        }
        if let Some(p) = prev {
            push_pair(text, vocab, symbols, heap, p, cand.left);
        }
        if let Some(next) = r.next {
            push_pair(text, vocab, symbols, heap, cand.left, next);
        }
    }
    for s in symbols.iter().filter(|s| s.len > 0) {
        let piece = text.get(s.start..s.start + s.len).unwrap_or_default();
        match vocab.id(piece) {
            Some(t) => out.push(t),
            None => out.extend(piece.bytes().filter_map(|b| bytes.tokens[usize::from(b)])),
        }
    }
}

fn push_pair(
    text: &str,
    vocab: &Vocab,
    symbols: &[Symbol],
    heap: &mut BinaryHeap<Candidate>,
    left: usize,
    right: usize,
) {
    let (l, r) = (symbols[left], symbols[right]);
    let len = l.len + r.len;
    // Neighbours are contiguous in `text`.
    let Some(token) = text.get(l.start..l.start + len).and_then(|s| vocab.id(s)) else {
        return;
    };
    heap.push(Candidate { score: vocab.score(token), left, right, len });
}

/// A run of characters of the text; merged-away symbols have `len == 0`.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Two neighbours whose concatenation is a token.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the concatenation when queued.
    len: usize,
}

impl Ord for Candidate {
    /// Higher score first, then the leftmost pair (scores compare totally, so NaN
    /// scores from a broken file give some order rather than a panic).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}
