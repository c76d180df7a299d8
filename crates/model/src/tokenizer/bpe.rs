//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): merges by rank within one word.
//!
//! A word (one piece from the pre-tokenizer) starts as one symbol per byte, each byte
//! spelt as its character of the byte-level alphabet ([`byte_to_char`]). Adjacent
//! symbols whose pair is a merge rule are merged lowest rank first (ties: leftmost
//! first), with a heap of candidate pairs over a linked list of symbols, until no pair
//! of neighbours is a rule. Each final symbol is its token; a symbol that is not in the
//! vocabulary falls back to the single-character tokens of its ASCII bytes, as
//! llama.cpp does (other bytes are dropped).
//!
//! Rules work on strings, so merges may name pieces that are not tokens: every string
//! a rule names is interned as a piece id, and a rule maps a pair of piece ids to its
//! rank and the merged piece.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::hash::FastMap;
use super::unicode::byte_to_char;
use super::vocab::Vocab;
use super::TokenizerError;

/// The merge rules, compiled to piece ids.
pub(crate) struct Bpe {
    /// [`pair`]`(left piece, right piece)` → (rank, merged piece).
    rules: FastMap<u64, (u32, u32)>,
    /// (n_pieces) the token each piece is, if any.
    piece_token: Vec<Option<u32>>,
    /// The piece of each byte's character, if a rule names it.
    byte_piece: [Option<u32>; 256],
    /// The token of each byte's character, if any.
    byte_token: [Option<u32>; 256],
    /// The single-character token of each printable ASCII byte (`!`..=`~`, the bytes
    /// that spell themselves): the fallback for symbols that are not tokens.
    ascii_token: [Option<u32>; 128],
}

/// Interns piece strings.
#[derive(Default)]
struct Pieces {
    ids: FastMap<String, u32>,
    texts: Vec<String>,
}

impl Pieces {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.ids.insert(s.to_owned(), id);
        self.texts.push(s.to_owned());
        id
    }
}

impl Bpe {
    /// Compiles `merges` (`"left right"`, rank = index; the first of duplicate rules wins).
    pub fn new(merges: &[String], vocab: &Vocab) -> Result<Bpe, TokenizerError> {
        let mut pieces = Pieces::default();
        let mut rules = FastMap::with_capacity_and_hasher(merges.len(), Default::default());
        for (rank, line) in merges.iter().enumerate() {
            // The separator is the first space after the first byte, as in llama.cpp.
            let split = line.bytes().skip(1).position(|b| b == b' ').map(|i| i + 1);
            let (Some(at), Ok(rank)) = (split, u32::try_from(rank)) else {
                return Err(TokenizerError::BadMerge { index: rank, text: line.clone() });
            };
            let (left, right) = (&line[..at], &line[at + 1..]);
            let l = pieces.intern(left);
            let r = pieces.intern(right);
            let merged = pieces.intern(&[left, right].concat());
            rules.entry(pair(l, r)).or_insert((rank, merged));
        }
        let piece_token = pieces.texts.iter().map(|t| vocab.id(t)).collect();
        let mut byte_piece = [None; 256];
        let mut byte_token = [None; 256];
        for b in 0..=255u8 {
            let s = byte_to_char(b).to_string();
            byte_piece[usize::from(b)] = pieces.ids.get(&s).copied();
            byte_token[usize::from(b)] = vocab.id(&s);
        }
        let mut ascii_token = [None; 128];
        for b in 0x21..=0x7Eu8 {
            ascii_token[usize::from(b)] = vocab.id(char::from(b).encode_utf8(&mut [0; 4]));
        }
        Ok(Bpe { rules, piece_token, byte_piece, byte_token, ascii_token })
    }

    /// Appends the tokens of `word` (raw bytes, before the byte-level spelling).
    pub fn encode_word(&self, word: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        // Symbol links are u32; a word of 4 GiB or more (which would need hundreds of
        // gigabytes of symbols) is taken in 4 GiB pieces.
        for chunk in word.chunks(NIL as usize) {
            self.encode_chunk(chunk, scratch, out);
        }
    }

    fn encode_chunk(&self, word: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        let Scratch { symbols, heap } = scratch;
        symbols.clear();
        let n = word.len() as u32; // < NIL
        symbols.extend(word.iter().zip(0..n).map(|(&b, i)| Symbol {
            start: i,
            len: 1,
            prev: if i == 0 { NIL } else { i - 1 },
            next: if i + 1 < n { i + 1 } else { NIL },
            piece: self.byte_piece[usize::from(b)].unwrap_or(NIL),
        }));
        let mut keys = std::mem::take(heap).into_vec();
        keys.clear();
        keys.extend((1..n).filter_map(|i| self.key(symbols, i - 1, i)));
        *heap = BinaryHeap::from(keys);
        while let Some(Reverse(key)) = heap.pop() {
            let (rank, left) = ((key >> 32) as u32, key as u32);
            // The pair queued at `left` is still there only if the rule for `left` and its
            // current right neighbour has the queued rank (a rank names one pair of pieces).
            let Some(&l) = symbols.get(left as usize).filter(|l| l.len > 0) else { continue };
            let Some(&r) = symbols.get(l.next as usize) else { continue };
            match self.rule(l.piece, r.piece) {
                Some(&(rule_rank, merged)) if rule_rank == rank => {
                    symbols[l.next as usize].len = 0;
                    let new = &mut symbols[left as usize];
                    new.len += r.len;
                    new.piece = merged;
                    new.next = r.next;
                    if let Some(next) = symbols.get_mut(r.next as usize) {
                        next.prev = left;
                    }
                    heap.extend(self.key(symbols, left, r.next));
                    heap.extend(self.key(symbols, l.prev, left));
                }
                _ => continue,
            }
        }
        for s in symbols.iter().filter(|s| s.len > 0) {
            let bytes = word.get(s.start as usize..(s.start + s.len) as usize).unwrap_or_default();
            let token = match (s.piece, bytes) {
                (NIL, &[b]) => self.byte_token[usize::from(b)],
                (p, _) => self.piece_token.get(p as usize).copied().flatten(),
            };
            match token {
                Some(t) => out.push(t),
                None => {
                    out.extend(bytes.iter().filter_map(|&b| self.ascii_token.get(usize::from(b)).copied().flatten()))
                }
            }
        }
    }

    fn rule(&self, left: u32, right: u32) -> Option<&(u32, u32)> {
        if left == NIL || right == NIL {
            return None;
        }
        self.rules.get(&pair(left, right))
    }

    /// The heap key of the pair at `left` if a rule merges it: the heap (of `Reverse`
    /// keys) yields the lowest rank first and, among equal ranks, the leftmost pair.
    fn key(&self, symbols: &[Symbol], left: u32, right: u32) -> Option<Reverse<u64>> {
        let (l, r) = (symbols.get(left as usize)?, symbols.get(right as usize)?);
        let &(rank, _) = self.rule(l.piece, r.piece)?;
        Some(Reverse(u64::from(rank) << 32 | u64::from(left)))
    }
}

/// "No symbol" / "no piece".
const NIL: u32 = u32::MAX;

/// The rules' key for a pair of pieces.
fn pair(left: u32, right: u32) -> u64 {
    u64::from(left) << 32 | u64::from(right)
}

/// Buffers reused across the words of one call.
#[derive(Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    /// Queued pairs: `rank << 32 | left`.
    heap: BinaryHeap<Reverse<u64>>,
}

/// A run of bytes of the word; merged-away symbols have `len == 0`. Links and pieces
/// are [`NIL`] when absent.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
    /// The piece this symbol spells, if any rule names it.
    piece: u32,
}
