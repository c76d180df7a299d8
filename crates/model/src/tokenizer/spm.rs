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
    // Symbol offsets are u32; a text of 4 GiB or more (which would need tens of
    // gigabytes of symbols) is taken in pieces of less than 4 GiB.
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(NIL as usize - 1);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        encode_chunk(chunk, vocab, bytes, scratch, out);
        rest = tail;
    }
}

fn encode_chunk(text: &str, vocab: &Vocab, bytes: &ByteFallback, scratch: &mut Scratch, out: &mut Vec<u32>) {
    let Scratch { symbols, heap } = scratch;
    symbols.clear();
    let n = text.chars().count() as u32; // < NIL
    symbols.extend(text.char_indices().zip(0..n).map(|((start, c), i)| Symbol {
        start: start as u32,
        len: c.len_utf8() as u32,
        prev: if i == 0 { NIL } else { i - 1 },
        next: if i + 1 < n { i + 1 } else { NIL },
    }));
    let mut keys = std::mem::take(heap).into_vec();
    keys.clear();
    keys.extend((1..n).filter_map(|i| key(text, vocab, symbols, i - 1, i)));
    *heap = BinaryHeap::from(keys);
    while let Some(k) = heap.pop() {
        let (left, len) = (NIL - (k >> 32) as u32, k as u32);
        let Some(&l) = symbols.get(left as usize).filter(|l| l.len > 0) else { continue };
        let Some(&r) = symbols.get(l.next as usize) else { continue };
        // Symbols only grow, so a changed total length means a merge since this pair was queued.
        if l.len + r.len != len {
            continue;
        }
        symbols[l.next as usize].len = 0;
        let new = &mut symbols[left as usize];
        new.len = len;
        new.next = r.next;
        if let Some(next) = symbols.get_mut(r.next as usize) {
            next.prev = left;
        }
        heap.extend(key(text, vocab, symbols, left, r.next));
        heap.extend(key(text, vocab, symbols, l.prev, left));
    }
    for s in symbols.iter().filter(|s| s.len > 0) {
        let piece = text.get(s.start as usize..(s.start + s.len) as usize).unwrap_or_default();
        match vocab.id(piece) {
            Some(t) => out.push(t),
            None => out.extend(piece.bytes().filter_map(|b| bytes.tokens[usize::from(b)])),
        }
    }
}

/// The heap key of the pair at `left` if its concatenation is a token.
fn key(text: &str, vocab: &Vocab, symbols: &[Symbol], left: u32, right: u32) -> Option<u128> {
    let (l, r) = (symbols.get(left as usize)?, symbols.get(right as usize)?);
    let len = l.len + r.len;
    // Neighbours are contiguous in `text`.
    let token = vocab.id(text.get(l.start as usize..(l.start + len) as usize)?)?;
    Some(candidate(vocab.score(token), left, len))
}

/// "No symbol".
const NIL: u32 = u32::MAX;

/// The heap key of a pair: score, then position, then length, so that the max-heap
/// yields the highest score first and, among equal scores, the leftmost pair (the
/// length only tells a queued pair from the one there now).
fn candidate(score: f32, left: u32, len: u32) -> u128 {
    // Maps f32 order onto u32 order (scores are never NaN, and -0 was read as 0).
    let bits = score.to_bits();
    let ordered = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
    u128::from(ordered) << 64 | u128::from(NIL - left) << 32 | u128::from(len)
}

/// A run of characters of the text; merged-away symbols have `len == 0`; links are
/// [`NIL`] when absent.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
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
