//! The paged key/value cache: one pool of fixed-size blocks, allocated once.
//!
//! A sequence owns a *block table* (the ids of its blocks, in order); position
//! `p` of the sequence lives in block `table[p / block_size]`, slot
//! `p % block_size`. Blocks need not be contiguous, so sequences grow and shrink
//! without copying, and (later) full blocks can be shared between sequences that
//! start with the same tokens. Who owns which block is the caller's business
//! ([`BlockAllocator`] is the simple free list; the engine adds sharing); the
//! cache only stores the numbers.
//!
//! Layout, per layer and block, head-major so that one head's keys in a block are
//! contiguous for the attention loop:
//! `k: (n_layer, n_blocks, n_head_kv, block_size, head_dim)`,
//! `v: (n_layer, n_blocks, n_head_kv, block_size, head_dim_v)`, f16 (as llama.cpp's
//! default cache: half the memory and bandwidth of f32, and the same rounding).

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::error::ModelError;
use crate::hparams::HParams;

/// Storage for keys and values of every layer, in blocks.
pub struct KvCache {
    n_layer: usize,
    n_head_kv: usize,
    head_dim: usize,
    head_dim_v: usize,
    block_size: usize,
    n_blocks: usize,
    /// (n_layer, n_blocks, n_head_kv, block_size, head_dim)
    k: Vec<f16>,
    /// (n_layer, n_blocks, n_head_kv, block_size, head_dim_v)
    v: Vec<f16>,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("n_blocks", &self.n_blocks)
            .field("block_size", &self.block_size)
            .finish_non_exhaustive()
    }
}

impl KvCache {
    /// A cache of `n_blocks` blocks of `block_size` positions for a model of shape `hp`.
    pub fn new(hp: &HParams, block_size: usize, n_blocks: usize) -> Result<KvCache, ModelError> {
        let per_pos = hp.n_layer * hp.n_head_kv * (hp.head_dim + hp.head_dim_v);
        let total = block_size
            .checked_mul(n_blocks)
            .and_then(|n| n.checked_mul(per_pos))
            .filter(|_| block_size > 0 && n_blocks > 0)
            .ok_or_else(|| {
                ModelError::Request(format!(
                    "KV cache of {n_blocks} blocks × {block_size} positions is not a usable size"
                ))
            })?;
        let k_len = total / (hp.head_dim + hp.head_dim_v) * hp.head_dim;
        Ok(KvCache {
            n_layer: hp.n_layer,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
            head_dim_v: hp.head_dim_v,
            block_size,
            n_blocks,
            k: vec![f16::ZERO; k_len],
            v: vec![f16::ZERO; total - k_len],
        })
    }

    /// Bytes one position takes across all layers (keys and values).
    pub fn bytes_per_position(hp: &HParams) -> usize {
        hp.n_layer * hp.n_head_kv * (hp.head_dim + hp.head_dim_v) * std::mem::size_of::<f16>()
    }

    /// Positions per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool.
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    fn k_offset(&self, layer: usize, block: usize, head: usize) -> usize {
        (((layer * self.n_blocks + block) * self.n_head_kv + head) * self.block_size) * self.head_dim
    }

    fn v_offset(&self, layer: usize, block: usize, head: usize) -> usize {
        (((layer * self.n_blocks + block) * self.n_head_kv + head) * self.block_size) * self.head_dim_v
    }

    /// Keys of one head in one block: shape `(block_size, head_dim)`.
    pub fn k_block(&self, layer: usize, block: usize, head: usize) -> &[f16] {
        let o = self.k_offset(layer, block, head);
        &self.k[o..o + self.block_size * self.head_dim]
    }

    /// Values of one head in one block: shape `(block_size, head_dim_v)`.
    pub fn v_block(&self, layer: usize, block: usize, head: usize) -> &[f16] {
        let o = self.v_offset(layer, block, head);
        &self.v[o..o + self.block_size * self.head_dim_v]
    }

    /// Stores the keys and values of one position, rounded to f16: `k` shape
    /// `(n_head_kv, head_dim)`, `v` shape `(n_head_kv, head_dim_v)`.
    pub fn store(&mut self, layer: usize, block: usize, slot: usize, k: &[f32], v: &[f32]) {
        debug_assert!(layer < self.n_layer && block < self.n_blocks && slot < self.block_size);
        for h in 0..self.n_head_kv {
            // Slice conversions (F16C where the CPU has it, detected once per call), rounding
            // to nearest even as `f16::from_f32` does.
            let o = self.k_offset(layer, block, h) + slot * self.head_dim;
            self.k[o..o + self.head_dim].convert_from_f32_slice(&k[h * self.head_dim..(h + 1) * self.head_dim]);
            let o = self.v_offset(layer, block, h) + slot * self.head_dim_v;
            self.v[o..o + self.head_dim_v].convert_from_f32_slice(&v[h * self.head_dim_v..(h + 1) * self.head_dim_v]);
        }
    }

    /// Copies every layer's contents of block `src` into block `dst` (copy-on-write
    /// of a shared, partly filled block).
    pub fn copy_block(&mut self, src: usize, dst: usize) {
        for layer in 0..self.n_layer {
            let (s, d) = (self.k_offset(layer, src, 0), self.k_offset(layer, dst, 0));
            let n = self.n_head_kv * self.block_size * self.head_dim;
            self.k.copy_within(s..s + n, d);
            let (s, d) = (self.v_offset(layer, src, 0), self.v_offset(layer, dst, 0));
            let n = self.n_head_kv * self.block_size * self.head_dim_v;
            self.v.copy_within(s..s + n, d);
        }
    }
}

/// A free list of block ids: the simplest owner of a [`KvCache`]'s blocks.
#[derive(Debug, Clone)]
pub struct BlockAllocator {
    free: Vec<u32>,
    total: usize,
}

impl BlockAllocator {
    /// All `n_blocks` blocks free.
    pub fn new(n_blocks: usize) -> Self {
        BlockAllocator { free: (0..n_blocks as u32).rev().collect(), total: n_blocks }
    }

    /// Takes a free block.
    pub fn allocate(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// Returns a block to the pool.
    pub fn release(&mut self, block: u32) {
        debug_assert!(!self.free.contains(&block), "block {block} released twice");
        self.free.push(block);
    }

    /// Free blocks.
    pub fn n_free(&self) -> usize {
        self.free.len()
    }

    /// Blocks in the pool.
    pub fn n_total(&self) -> usize {
        self.total
    }

    /// Grows `table` until it covers `n_positions` positions; `false` (and no
    /// change beyond what was allocated) if the pool runs dry.
    pub fn reserve(&mut self, table: &mut Vec<u32>, n_positions: usize, block_size: usize) -> bool {
        while table.len() * block_size < n_positions {
            match self.allocate() {
                Some(b) => table.push(b),
                None => return false,
            }
        }
        true
    }

    /// Releases every block of `table` and empties it.
    pub fn release_all(&mut self, table: &mut Vec<u32>) {
        for b in table.drain(..) {
            self.release(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp() -> HParams {
        HParams {
            arch: "llama".into(),
            n_embd: 8,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 2,
            head_dim_v: 2,
            n_ff: 16,
            n_ctx_train: 64,
            n_vocab: 10,
            n_rot: 2,
            rope_freq_base: 10000.0,
            rope_freq_scale: 1.0,
            rms_eps: 1e-5,
            sliding_window: None,
        }
    }

    #[test]
    fn stored_positions_read_back_per_head_and_layer() {
        let mut kv = KvCache::new(&hp(), 4, 3).unwrap();
        kv.store(1, 2, 3, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]);
        let f = |s: &[f16]| s.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
        assert_eq!(f(&kv.k_block(1, 2, 0)[6..8]), [1.0, 2.0]);
        assert_eq!(f(&kv.k_block(1, 2, 1)[6..8]), [3.0, 4.0]);
        assert_eq!(f(&kv.v_block(1, 2, 1)[6..8]), [7.0, 8.0]);
        assert!(kv.k_block(0, 2, 0).iter().all(|&x| x == f16::ZERO));
        kv.copy_block(2, 0);
        assert_eq!(f(&kv.v_block(1, 0, 1)[6..8]), [7.0, 8.0]);
    }

    #[test]
    fn stores_round_as_f16_from_f32_rounds() {
        // Head width 16 takes the vector conversion; ties, subnormals and overflow included.
        let mut hp = hp();
        (hp.head_dim, hp.head_dim_v, hp.n_head_kv) = (16, 16, 1);
        let mut kv = KvCache::new(&hp, 2, 1).unwrap();
        let tie = 1.0 + f32::powi(2.0, -11); // halfway between two f16 values
        let special = [tie, -tie, 1.0 + 3.0 * f32::powi(2.0, -11), 3e-8, -6.1e-5, 65519.0, 65520.0, -1e6];
        let mut k: Vec<f32> = (0..16).map(|i| (i as f32 * 0.731).sin() * 13.7).collect();
        k[..special.len()].copy_from_slice(&special);
        let v: Vec<f32> = k.iter().map(|x| x * -0.37).collect();
        kv.store(1, 0, 1, &k, &v);
        let want = |x: &[f32]| x.iter().map(|&x| f16::from_f32(x).to_bits()).collect::<Vec<u16>>();
        let bits = |s: &[f16]| s.iter().map(|x| x.to_bits()).collect::<Vec<u16>>();
        assert_eq!(bits(&kv.k_block(1, 0, 0)[16..32]), want(&k));
        assert_eq!(bits(&kv.v_block(1, 0, 0)[16..32]), want(&v));
    }

    #[test]
    fn allocator_reserves_and_releases() {
        let mut a = BlockAllocator::new(3);
        let mut t = Vec::new();
        assert!(a.reserve(&mut t, 9, 4));
        assert_eq!(t.len(), 3);
        assert_eq!(a.n_free(), 0);
        let mut t2 = Vec::new();
        assert!(!a.reserve(&mut t2, 1, 4));
        a.release_all(&mut t);
        assert_eq!(a.n_free(), 3);
    }

    #[test]
    fn absurd_sizes_are_errors() {
        assert!(KvCache::new(&hp(), 0, 3).is_err());
        assert!(KvCache::new(&hp(), usize::MAX, 2).is_err());
    }
}
