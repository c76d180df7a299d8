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
        let Scratch { symbols, heap } = scratch;
        symbols.clear();
        heap.clear();
        symbols.extend(word.iter().enumerate().map(|(i, &b)| Symbol {
            start: i,
            len: 1,
            prev: i.checked_sub(1),
            next: if i + 1 < word.len() { Some(i + 1) } else { None },
            piece: self.byte_piece[usize::from(b)],
        }));
        for i in 1..symbols.len() {
            self.push_pair(symbols, heap, i - 1, i);
        }
        while let Some(Reverse(key)) = heap.pop() {
            let (rank, left) = ((key >> 64) as u32, key as u64 as usize);
            // The pair queued at `left` is still there only if the rule for `left` and its
            // current right neighbour has the queued rank (a rank names one pair of pieces).
            let Some(&l) = symbols.get(left).filter(|l| l.len > 0) else { continue };
            let Some(right) = l.next else { continue };
            let r = symbols[right];
            let Some(&(rule_rank, merged)) = self.rule(l.piece, r.piece) else { continue };
            if rule_rank != rank {
                continue;
            }
            symbols[right].len = 0;
            let new = &mut symbols[left];
            new.len += r.len;
            new.piece = Some(merged);
            new.next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(left);
                self.push_pair(symbols, heap, left, n);
            }
            if let Some(p) = l.prev {
                self.push_pair(symbols, heap, p, left);
            }
        }
        for s in symbols.iter().filter(|s| s.len > 0) {
            let token = match s.piece {
                Some(p) => self.piece_token.get(p as usize).copied().flatten(),
                None => word.get(s.start).and_then(|&b| self.byte_token[usize::from(b)]),
            };
            match token {
                Some(t) => out.push(t),
                None => {
                    let bytes = word.get(s.start..s.start + s.len).unwrap_or_default();
                    out.extend(bytes.iter().filter_map(|&b| self.ascii_token.get(usize::from(b)).copied().flatten()));
                }
            }
        }
    }

    fn rule(&self, left: Option<u32>, right: Option<u32>) -> Option<&(u32, u32)> {
        self.rules.get(&pair(left?, right?))
    }

    /// Queues the pair at `left` if a rule merges it, keyed so that the heap yields the
    /// lowest rank first and, among equal ranks, the leftmost pair.
    fn push_pair(&self, symbols: &[Symbol], heap: &mut BinaryHeap<Reverse<u128>>, left: usize, right: usize) {
        if let Some(&(rank, _)) = self.rule(symbols[left].piece, symbols[right].piece) {
            heap.push(Reverse(u128::from(rank) << 64 | left as u128));
        }
    }
}

/// The rules' key for a pair of pieces.
fn pair(left: u32, right: u32) -> u64 {
    u64::from(left) << 32 | u64::from(right)
}

/// Buffers reused across the words of one call.
#[derive(Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    /// Queued pairs: `rank << 64 | left`.
    heap: BinaryHeap<Reverse<u128>>,
}

/// A run of bytes of the word; merged-away symbols have `len == 0`.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
    /// The piece this symbol spells, if any rule names it.
    piece: Option<u32>,
}
