//! The KV block manager: who holds which block of the paged cache, and the prefix
//! cache that lets sequences share the blocks of a common prompt prefix.
//!
//! Every block has a reference count. A *full* block whose keys and values have
//! been computed is registered under the hash of its tokens, chained with the
//! hash of the block before it (and, for the first block, salted per tenant, so
//! two tenants never share cache entries even for equal prompts). When the last
//! sequence holding a registered block lets go, the block keeps its contents and
//! its registration and waits in an LRU list: a later prompt with the same
//! prefix picks it up again; a sequence needing fresh blocks takes free ones
//! first and evicts the least recently used cached ones only when none are left.
//! Shared blocks are always full, and a sequence only ever writes into its own
//! last, partial block, so no block is written while shared.
//!
//! Reuse is not limited to whole blocks: a prompt that agrees with a cached
//! block for only its first few positions (two questions after one system
//! prompt, a chat turn re-sent with a different ending) takes those positions
//! by copying the block into a fresh one of its own ([`BlockManager::take_partial`]),
//! as a radix-tree cache would share them, so the computed prefix is used to
//! the token. Each registered block remembers its tokens and the hash of the
//! block before it for this.

use std::collections::{HashMap, VecDeque};

/// A block's hash: tokens of the block chained with the previous block's hash.
pub type BlockHash = u64;

/// Reference counts, the free list and the prefix cache of one KV pool.
#[derive(Debug)]
pub struct BlockManager {
    block_size: usize,
    /// Sequences holding each block.
    refs: Vec<u32>,
    /// The hash each block is registered under, if any.
    hash_of: Vec<Option<BlockHash>>,
    /// Registered blocks by hash.
    by_hash: HashMap<BlockHash, u32>,
    /// Unreferenced, never-registered blocks.
    free: Vec<u32>,
    /// Unreferenced registered blocks, least recently used first (may hold stale
    /// entries for blocks picked up again; see `evict`).
    lru: VecDeque<u32>,
    /// Blocks currently held (refcount > 0).
    in_use: usize,
    /// Lookups and hits of `match_prefix`, in blocks.
    queried: u64,
    hit: u64,
    /// The tokens of each registered block, `block_size` per block.
    tokens: Vec<u32>,
    /// The hash each registered block follows (its parent).
    parent_of: Vec<BlockHash>,
    /// Registered blocks by the hash they follow: the candidates for a partial match.
    children: HashMap<BlockHash, Vec<u32>>,
}

/// A partial match taken by [`BlockManager::take_partial`]: copy block `src` into
/// block `dst`, then release `src`; the first `len` positions of `dst` are then
/// the prompt's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialHit {
    /// The cached block (held until the copy is made).
    pub src: u32,
    /// The sequence's fresh block.
    pub dst: u32,
    /// Positions of `src` that agree with the prompt (1 ≤ len < block size).
    pub len: usize,
}

impl BlockManager {
    /// A manager for `n_blocks` blocks of `block_size` positions.
    pub fn new(n_blocks: usize, block_size: usize) -> Self {
        BlockManager {
            block_size,
            refs: vec![0; n_blocks],
            hash_of: vec![None; n_blocks],
            by_hash: HashMap::new(),
            free: (0..n_blocks as u32).rev().collect(),
            lru: VecDeque::new(),
            in_use: 0,
            queried: 0,
            hit: 0,
            tokens: vec![0; n_blocks * block_size],
            parent_of: vec![0; n_blocks],
            children: HashMap::new(),
        }
    }

    /// Positions per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool.
    pub fn n_total(&self) -> usize {
        self.refs.len()
    }

    /// Blocks held by at least one sequence.
    pub fn n_in_use(&self) -> usize {
        self.in_use
    }

    /// Blocks that a new allocation could take (free or evictable).
    pub fn n_available(&self) -> usize {
        self.refs.len() - self.in_use
    }

    /// Prefix-cache lookups and hits so far, in blocks.
    pub fn prefix_stats(&self) -> (u64, u64) {
        (self.queried, self.hit)
    }

    /// The hash the first block of a sequence salted by `salt` follows.
    pub fn root(salt: u64) -> BlockHash {
        salt ^ 0x9e37_79b9_7f4a_7c15
    }

    /// The chained hashes of the full blocks of `tokens` (salted by `salt`).
    pub fn block_hashes(&self, salt: u64, tokens: &[u32]) -> Vec<BlockHash> {
        let mut prev = Self::root(salt);
        tokens
            .chunks_exact(self.block_size)
            .map(|chunk| {
                prev = hash_block(prev, chunk);
                prev
            })
            .collect()
    }

    /// Takes the registered blocks matching the first hashes of `hashes`, in
    /// order, stopping at the first miss; each taken block's count goes up.
    pub fn match_prefix(&mut self, hashes: &[BlockHash]) -> Vec<u32> {
        let mut taken = Vec::new();
        for h in hashes {
            self.queried += 1;
            match self.by_hash.get(h) {
                Some(&b) => {
                    self.hit += 1;
                    self.retain(b);
                    taken.push(b);
                }
                None => break,
            }
        }
        taken
    }

    /// The registered block after `parent` whose tokens agree longest with the
    /// start of `next` (at least one token, fewer than a block, at most
    /// `next.len()`): holds it, allocates a fresh block for the copy, and
    /// returns both. `None` when no block agrees on a token or no block is free
    /// for the copy. The caller copies `src` into `dst` and then releases `src`.
    pub fn take_partial(&mut self, parent: BlockHash, next: &[u32]) -> Option<PartialHit> {
        let bs = self.block_size;
        let limit = next.len().min(bs - 1);
        let (src, len) = self
            .children
            .get(&parent)?
            .iter()
            .map(|&b| {
                let t = &self.tokens[b as usize * bs..][..limit];
                (b, t.iter().zip(next).take_while(|(a, b)| a == b).count())
            })
            .max_by_key(|&(b, len)| (len, std::cmp::Reverse(b)))?;
        if len == 0 {
            return None;
        }
        // Hold the source first, so allocating the copy cannot evict it.
        self.retain(src);
        match self.allocate() {
            Some(dst) => Some(PartialHit { src, dst, len }),
            None => {
                self.release(src);
                None
            }
        }
    }

    /// A fresh block (count 1), evicting the least recently used cached block if
    /// no free one is left; `None` when every block is held.
    pub fn allocate(&mut self) -> Option<u32> {
        let b = match self.free.pop() {
            Some(b) => b,
            None => self.evict()?,
        };
        debug_assert_eq!(self.refs[b as usize], 0);
        self.refs[b as usize] = 1;
        self.in_use += 1;
        Some(b)
    }

    fn evict(&mut self) -> Option<u32> {
        while let Some(b) = self.lru.pop_front() {
            // Skip stale entries: blocks held again since they were queued, or
            // already evicted (then unregistered, and free or held).
            if self.refs[b as usize] == 0 {
                if let Some(h) = self.hash_of[b as usize].take() {
                    self.by_hash.remove(&h);
                    self.unlink(b);
                    return Some(b);
                }
            }
        }
        None
    }

    fn retain(&mut self, b: u32) {
        let r = &mut self.refs[b as usize];
        if *r == 0 {
            self.in_use += 1;
        }
        *r += 1;
    }

    /// Drops one reference to `b`; an unreferenced block goes back to the free
    /// list, or to the LRU list if it is registered.
    pub fn release(&mut self, b: u32) {
        let r = &mut self.refs[b as usize];
        debug_assert!(*r > 0, "block {b} released more often than held");
        *r = r.saturating_sub(1);
        if *r == 0 {
            self.in_use -= 1;
            if self.hash_of[b as usize].is_some() {
                self.lru.push_back(b);
            } else {
                self.free.push(b);
            }
        }
    }

    /// Releases every block of `table`, last block first (so a prefix's blocks
    /// are evicted after its tail), and empties it.
    pub fn release_all(&mut self, table: &mut Vec<u32>) {
        while let Some(b) = table.pop() {
            self.release(b);
        }
    }

    /// Registers the full, computed block `b` holding `tokens`, which follows the
    /// block hashed `parent` ([`BlockManager::root`] for a first block), under
    /// `hash` so later sequences can share it. If another block already holds
    /// that hash, nothing changes.
    pub fn register(&mut self, b: u32, parent: BlockHash, hash: BlockHash, tokens: &[u32]) {
        debug_assert_eq!(tokens.len(), self.block_size);
        if self.hash_of[b as usize].is_some() || self.by_hash.contains_key(&hash) {
            return;
        }
        self.hash_of[b as usize] = Some(hash);
        self.by_hash.insert(hash, b);
        let bs = self.block_size;
        self.tokens[b as usize * bs..][..bs].copy_from_slice(tokens);
        self.parent_of[b as usize] = parent;
        self.children.entry(parent).or_default().push(b);
    }

    /// Takes the unregistered block `b` out of its parent's list of children.
    fn unlink(&mut self, b: u32) {
        let parent = self.parent_of[b as usize];
        if let Some(list) = self.children.get_mut(&parent) {
            list.retain(|&c| c != b);
            if list.is_empty() {
                self.children.remove(&parent);
            }
        }
    }

    /// Forgets every cache registration (blocks keep their counts).
    pub fn clear_cache(&mut self) {
        self.by_hash.clear();
        self.children.clear();
        for h in &mut self.hash_of {
            *h = None;
        }
        while let Some(b) = self.lru.pop_front() {
            if self.refs[b as usize] == 0 {
                self.free.push(b);
            }
        }
    }
}

/// FNV-1a over the previous hash and the block's tokens, then a final mix.
fn hash_block(prev: BlockHash, tokens: &[u32]) -> BlockHash {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ prev;
    for &t in tokens {
        for byte in t.to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // splitmix64 finaliser: spreads FNV's weak low bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_and_release_balance() {
        let mut m = BlockManager::new(3, 4);
        let a = m.allocate().unwrap();
        let b = m.allocate().unwrap();
        let c = m.allocate().unwrap();
        assert_eq!(m.allocate(), None);
        assert_eq!(m.n_in_use(), 3);
        m.release(b);
        assert_eq!(m.n_available(), 1);
        assert_eq!(m.allocate(), Some(b));
        let mut t = vec![a, b, c];
        m.release_all(&mut t);
        assert_eq!(m.n_in_use(), 0);
        assert!(t.is_empty());
    }

    #[test]
    fn hashes_chain_and_are_salted() {
        let m = BlockManager::new(4, 2);
        let h = m.block_hashes(0, &[1, 2, 3, 4, 5]);
        assert_eq!(h.len(), 2);
        let h2 = m.block_hashes(0, &[9, 9, 3, 4]);
        assert_ne!(h[1], h2[1], "same block after a different prefix must differ");
        assert_ne!(h[0], m.block_hashes(1, &[1, 2])[0], "tenants must not share");
        assert_eq!(h, m.block_hashes(0, &[1, 2, 3, 4]));
    }

    #[test]
    fn a_released_registered_block_is_shared_until_evicted() {
        let mut m = BlockManager::new(2, 2);
        let hashes = m.block_hashes(7, &[1, 2]);
        let b = m.allocate().unwrap();
        m.register(b, BlockManager::root(7), hashes[0], &[1, 2]);
        m.release(b);
        assert_eq!(m.n_in_use(), 0);
        // Picked up again by a matching prompt.
        assert_eq!(m.match_prefix(&hashes), vec![b]);
        assert_eq!(m.n_in_use(), 1);
        m.release(b);
        // Free blocks go first, then the cached one is evicted.
        let x = m.allocate().unwrap();
        assert_ne!(x, b);
        let y = m.allocate().unwrap();
        assert_eq!(y, b);
        assert!(m.match_prefix(&hashes).is_empty(), "evicted block must be unregistered");
    }

    #[test]
    fn a_block_queued_twice_is_never_handed_out_twice() {
        let mut m = BlockManager::new(2, 2);
        let hashes = m.block_hashes(0, &[5, 6]);
        let b = m.allocate().unwrap();
        m.register(b, BlockManager::root(0), hashes[0], &[5, 6]);
        m.release(b); // LRU: [b]
        assert_eq!(m.match_prefix(&hashes), vec![b]);
        m.release(b); // LRU: [b, b]
        let x = m.allocate().unwrap(); // the free block
        let y = m.allocate().unwrap(); // evicts b
        assert_eq!((x == b, y == b), (false, true));
        m.release(y); // unregistered now: back to the free list
        let z = m.allocate().unwrap();
        assert_eq!(z, b);
        assert_eq!(m.allocate(), None, "the stale LRU entry must not hand b out again");
    }

    #[test]
    fn stale_lru_entries_are_skipped() {
        let mut m = BlockManager::new(1, 2);
        let hashes = m.block_hashes(0, &[5, 6]);
        let b = m.allocate().unwrap();
        m.register(b, BlockManager::root(0), hashes[0], &[5, 6]);
        m.release(b); // queued in the LRU
        assert_eq!(m.match_prefix(&hashes), vec![b]); // held again
        assert_eq!(m.allocate(), None, "a held block must not be evicted");
    }

    /// A manager of 4-position blocks holding, after the root of `salt`, one
    /// released block for each of `prompts` (4 tokens each).
    fn cached(n_blocks: usize, salt: u64, prompts: &[[u32; 4]]) -> (BlockManager, Vec<u32>) {
        let mut m = BlockManager::new(n_blocks, 4);
        let blocks = prompts
            .iter()
            .map(|p| {
                let b = m.allocate().unwrap();
                m.register(b, BlockManager::root(salt), m.block_hashes(salt, p)[0], p);
                m.release(b);
                b
            })
            .collect();
        (m, blocks)
    }

    #[test]
    fn a_partial_match_takes_the_longest_agreeing_block_and_a_fresh_one_for_the_copy() {
        let (mut m, b) = cached(4, 3, &[[1, 2, 9, 9], [1, 2, 3, 9], [7, 7, 7, 7]]);
        let root = BlockManager::root(3);
        let hit = m.take_partial(root, &[1, 2, 3, 4, 5]).expect("a partial hit");
        assert_eq!((hit.src, hit.len), (b[1], 3));
        assert!(!b.contains(&hit.dst), "the copy goes to a block of its own");
        // Both are held: the source until the copy is made.
        assert_eq!(m.n_in_use(), 2);
        m.release(hit.src);
        assert_eq!(m.n_in_use(), 1);
        // Never a whole block (that is a full match), never past the prompt.
        assert_eq!(m.take_partial(root, &[7, 7]).map(|h| h.len), Some(2));
        assert_eq!(m.take_partial(root, &[8, 7, 7]), None, "no first token in common");
    }

    #[test]
    fn partial_matches_stay_within_their_parent_and_tenant() {
        let (mut m, _) = cached(4, 1, &[[1, 2, 3, 4]]);
        assert_eq!(m.take_partial(BlockManager::root(2), &[1, 2, 3]), None, "another tenant's block");
        let after_first = m.block_hashes(1, &[1, 2, 3, 4])[0];
        assert_eq!(m.take_partial(after_first, &[1, 2, 3]), None, "a block at another place");
        assert!(m.take_partial(BlockManager::root(1), &[1, 2, 3]).is_some());
    }

    #[test]
    fn an_evicted_block_is_no_longer_a_partial_match() {
        let (mut m, b) = cached(1, 0, &[[1, 2, 3, 4]]);
        let x = m.allocate().unwrap(); // evicts the only block
        assert_eq!(x, b[0]);
        m.release(x);
        assert_eq!(m.take_partial(BlockManager::root(0), &[1, 2, 3]), None);
    }

    #[test]
    fn a_partial_match_never_evicts_its_own_source() {
        // One block in the pool, cached and unreferenced: the copy would need a
        // second, so there is no hit and the source stays cached.
        let (mut m, b) = cached(1, 0, &[[1, 2, 3, 4]]);
        assert_eq!(m.take_partial(BlockManager::root(0), &[1, 2, 3]), None);
        assert_eq!(m.n_in_use(), 0);
        assert_eq!(m.match_prefix(&m.block_hashes(0, &[1, 2, 3, 4])), vec![b[0]]);
    }
}
