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

use std::collections::BinaryHeap;

use super::vocab::Vocab;

/// Buffers reused across the fragments of one call.
#[derive(Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    /// Queued pairs: see [`candidate`].
    heap: BinaryHeap<u128>,
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
    while let Some(key) = heap.pop() {
        let (left, len) = (usize::MAX - (key >> 32) as u64 as usize, key as u32 as usize);
        let Some(&l) = symbols.get(left).filter(|l| l.len > 0) else { continue };
        let Some(right) = l.next else { continue };
        let r = symbols[right];
        // Symbols only grow, so a changed total length means a merge since this pair was queued.
        if l.len + r.len != len {
            continue;
        }
        symbols[right].len = 0;
        let new = &mut symbols[left];
        new.len = len;
        new.next = r.next;
        if let Some(next) = r.next {
            symbols[next].prev = Some(left);
            push_pair(text, vocab, symbols, heap, left, next);
        }
        if let Some(p) = l.prev {
            push_pair(text, vocab, symbols, heap, p, left);
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

fn push_pair(text: &str, vocab: &Vocab, symbols: &[Symbol], heap: &mut BinaryHeap<u128>, left: usize, right: usize) {
    let (l, r) = (symbols[left], symbols[right]);
    let len = l.len + r.len;
    // Neighbours are contiguous in `text`.
    let Some(token) = text.get(l.start..l.start + len).and_then(|s| vocab.id(s)) else {
        return;
    };
    if let Ok(len) = u32::try_from(len) {
        heap.push(candidate(vocab.score(token), left, len));
    }
}

/// The heap key of a pair: score, then position, then length, so that the max-heap
/// yields the highest score first and, among equal scores, the leftmost pair (the
/// length only tells a queued pair from the one there now).
fn candidate(score: f32, left: usize, len: u32) -> u128 {
    // Maps f32 order onto u32 order (scores are never NaN, and -0 was read as 0).
    let bits = score.to_bits();
    let ordered = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
    u128::from(ordered) << 96 | u128::from(u64::MAX - left as u64) << 32 | u128::from(len)
}

/// A run of characters of the text; merged-away symbols have `len == 0`.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::candidate;

    #[test]
    fn candidates_order_by_score_then_leftmost() {
        assert!(candidate(-1.0, 5, 2) > candidate(-2.0, 0, 2));
        assert!(candidate(0.0, 5, 2) > candidate(-0.5, 0, 2));
        assert!(candidate(3.0, 5, 2) > candidate(0.0, 0, 2));
        assert!(candidate(-1.0, 0, 2) > candidate(-1.0, 1, 2));
        assert!(candidate(f32::NEG_INFINITY, 0, 2) < candidate(-1e30, 9, 2));
    }
}
