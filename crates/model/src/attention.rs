//! Causal multi-head attention over the paged KV cache, shared by every
//! architecture (grouped-query heads, optional sliding window).
//!
//! Each row's arithmetic is `kernels::attention`'s and follows the choice
//! llama.cpp makes, taken per sequence run so a sequence's numbers never depend on
//! what else is in the batch:
//! - decode steps and prompt runs shorter than [`TILED_MIN_RUN`] use the one-row
//!   kernel, run for the query heads of one key/value head at once (the same bits,
//!   each key and value converted once for the group) and split over the pool by
//!   (token, key/value head) pairs;
//! - longer prompt runs use the tiled kernel on blocks of up to 64 rows × the query
//!   heads of one key/value head, so each key tile is unpacked once per block;
//!   blocks write a scratch laid out `(n_head_kv, n_rows, group, head_dim_v)` and
//!   are copied into place afterwards.
//!
//! Rows read their sequence's keys block by block through its block table, so
//! tokens of different sequences attend only to their own past.

use std::cell::RefCell;
use std::ops::Range;

use kernels::attention::{attend_block_tiled, attend_group_online, GroupScratch, TiledScratch, TILE};
use kernels::ThreadPool;

use crate::batch::SeqBatch;
use crate::kv_cache::KvCache;

/// The attention shape of one layer.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Width of a query/key head.
    pub head_dim: usize,
    /// Width of a value head.
    pub head_dim_v: usize,
    /// Multiplier of q·k (usually `1/sqrt(head_dim)`).
    pub scale: f32,
    /// Attend only to the last `window` positions (sliding-window layers).
    pub window: Option<usize>,
}

/// Prompt runs at least this long use the tiled kernel.
pub const TILED_MIN_RUN: usize = TILE;

/// Where one row of the batch sits: which sequence (index into the block tables)
/// and at which position, and which kernel computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowPos {
    /// Index of the row's sequence in the batch.
    pub seq: usize,
    /// The row's position in its sequence.
    pub pos: usize,
    /// Whether the row belongs to a run of at least [`TILED_MIN_RUN`] tokens.
    pub tiled: bool,
}

/// Buffers of [`attend`] kept across calls (part of the model's workspace).
#[derive(Default)]
pub struct AttnScratch {
    /// Output of the tiled blocks, `(n_head_kv, n_rows, group, head_dim_v)`.
    tiled_out: Vec<f32>,
    /// The tiled blocks: (first row, rows, kv head).
    blocks: Vec<(usize, usize, usize)>,
    /// Where each block writes in `tiled_out`.
    ranges: Vec<Range<usize>>,
    /// Positions of all rows (the block kernel reads a block's slice).
    positions: Vec<usize>,
}

/// Per-thread scratch of the row kernels.
struct Scratch {
    group: GroupScratch,
    tiled: TiledScratch,
}

thread_local! {
    /// Reused across calls: no allocation once warm.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch { group: GroupScratch::default(), tiled: TiledScratch::default() });
}

/// `out[t, h] = softmax(scale · q[t, h] · K[seq(t), ..=pos(t)]) · V[seq(t), ..=pos(t)]`.
///
/// Shapes: `q (n_rows, n_head, head_dim)`, `out (n_rows, n_head, head_dim_v)`;
/// `rows[t]` gives row `t`'s sequence, position and kernel; `batch[s].block_table`
/// is sequence `s`'s block table, which must already hold the keys and values of
/// positions `..=pos` for every row (the caller stores them first).
#[allow(clippy::too_many_arguments)]
pub fn attend(
    shape: &AttnShape,
    layer: usize,
    q: &[f32],
    out: &mut [f32],
    rows: &[RowPos],
    batch: &[SeqBatch],
    kv: &KvCache,
    scratch: &mut AttnScratch,
    pool: &ThreadPool,
) {
    let (hd, hdv) = (shape.head_dim, shape.head_dim_v);
    let group = shape.n_head / shape.n_head_kv;
    let bs = kv.block_size();
    let n_rows = rows.len();
    debug_assert_eq!(q.len(), n_rows * shape.n_head * hd);
    debug_assert_eq!(out.len(), n_rows * shape.n_head * hdv);
    // ggml takes the tiled kernel only for value heads of whole vectors.
    let tiled = |r: &RowPos| r.tiled && hdv % 16 == 0;
    if rows.iter().any(tiled) {
        plan_tiled_blocks(rows, shape, hdv, &tiled, scratch);
        let AttnScratch { tiled_out, blocks, ranges, positions } = scratch;
        if tiled_out.len() < n_rows * shape.n_head * hdv {
            tiled_out.resize(n_rows * shape.n_head * hdv, 0.0);
        }
        let (blocks, positions) = (&*blocks, &*positions);
        pool.split_mut_ranges(tiled_out, ranges, &|i, block_out| {
            let (r0, n, kvh) = blocks[i];
            let table = batch[rows[r0].seq].block_table;
            SCRATCH.with(|cell| {
                let scratch = &mut *cell.borrow_mut();
                attend_block_tiled(
                    group,
                    hd,
                    hdv,
                    |r| &q[((r0 + r) * shape.n_head + kvh * group) * hd..][..group * hd],
                    &positions[r0..r0 + n],
                    shape.window,
                    shape.scale,
                    |j| &kv.k_block(layer, table[j / bs] as usize, kvh)[(j % bs) * hd..][..hd],
                    |j| &kv.v_block(layer, table[j / bs] as usize, kvh)[(j % bs) * hdv..][..hdv],
                    &mut scratch.tiled,
                    block_out,
                );
            });
        });
        // Back into (n_rows, n_head, head_dim_v) order.
        for t in (0..n_rows).filter(|&t| tiled(&rows[t])) {
            for kvh in 0..shape.n_head_kv {
                let src = &tiled_out[((kvh * n_rows + t) * group) * hdv..][..group * hdv];
                out[(t * shape.n_head + kvh * group) * hdv..][..group * hdv].copy_from_slice(src);
            }
        }
    }

    if !rows.iter().all(tiled) {
        // One item per (row, key/value head): the group's heads are adjacent in `out`.
        pool.split_mut_dynamic(out, group * hdv, 1, &|items, out| {
            SCRATCH.with(|cell| {
                let scratch = &mut *cell.borrow_mut();
                for (item, o) in items.zip(out.chunks_exact_mut(group * hdv)) {
                    let (t, kvh) = (item / shape.n_head_kv, item % shape.n_head_kv);
                    if tiled(&rows[t]) {
                        continue;
                    }
                    let RowPos { seq, pos, .. } = rows[t];
                    let table = batch[seq].block_table;
                    let start = shape.window.map_or(0, |w| (pos + 1).saturating_sub(w));
                    let key = |j: usize| {
                        let j = start + j;
                        &kv.k_block(layer, table[j / bs] as usize, kvh)[(j % bs) * hd..][..hd]
                    };
                    let value = |j: usize| {
                        let j = start + j;
                        &kv.v_block(layer, table[j / bs] as usize, kvh)[(j % bs) * hdv..][..hdv]
                    };
                    attend_group_online(
                        group,
                        hd,
                        hdv,
                        &q[(t * shape.n_head + kvh * group) * hd..][..group * hd],
                        pos + 1 - start,
                        shape.scale,
                        key,
                        value,
                        &mut scratch.group,
                        o,
                    );
                }
            });
        });
    }
}

/// Cuts the tiled rows into blocks of at most [`TILE`] consecutive rows of one
/// sequence, one per key/value head, with their output ranges; costliest (latest
/// positions) first so the pool's threads finish together.
fn plan_tiled_blocks(
    rows: &[RowPos],
    shape: &AttnShape,
    hdv: usize,
    tiled: &impl Fn(&RowPos) -> bool,
    scratch: &mut AttnScratch,
) {
    let group = shape.n_head / shape.n_head_kv;
    let n_rows = rows.len();
    scratch.blocks.clear();
    scratch.ranges.clear();
    scratch.positions.clear();
    scratch.positions.extend(rows.iter().map(|r| r.pos));
    let mut t = 0;
    while t < n_rows {
        if !tiled(&rows[t]) {
            t += 1;
            continue;
        }
        let mut end = t + 1;
        while end < n_rows
            && end - t < TILE
            && tiled(&rows[end])
            && rows[end].seq == rows[t].seq
            && rows[end].pos == rows[end - 1].pos + 1
        {
            end += 1;
        }
        for kvh in 0..shape.n_head_kv {
            scratch.blocks.push((t, end - t, kvh));
        }
        t = end;
    }
    scratch.blocks.sort_by_key(|&(r0, n, _)| std::cmp::Reverse(rows[r0 + n - 1].pos));
    let unit = group * hdv;
    scratch.ranges.extend(scratch.blocks.iter().map(|&(r0, n, kvh)| {
        let start = (kvh * n_rows + r0) * unit;
        start..start + n * unit
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hparams::HParams;

    fn hp() -> HParams {
        HParams {
            arch: "test".into(),
            n_embd: 8,
            n_layer: 1,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 4,
            head_dim_v: 4,
            n_ff: 8,
            n_ctx_train: 32,
            n_vocab: 4,
            n_rot: 4,
            rope_freq_base: 1e4,
            rope_freq_scale: 1.0,
            rms_eps: 1e-5,
            sliding_window: None,
        }
    }

    /// Naive attention over explicit key/value lists (f16-rounded like the cache).
    fn naive(q: &[f32], keys: &[Vec<f32>], values: &[Vec<f32>], scale: f32) -> Vec<f32> {
        let r = |x: f32| half::f16::from_f32(x).to_f32();
        let mut s: Vec<f32> =
            keys.iter().map(|k| q.iter().zip(k).map(|(a, b)| a * r(*b)).sum::<f32>() * scale).collect();
        kernels::ops::softmax(&mut s);
        let mut o = vec![0.0; values[0].len()];
        for (p, v) in s.iter().zip(values) {
            for (x, y) in o.iter_mut().zip(v) {
                *x += p * r(*y);
            }
        }
        o
    }

    #[test]
    fn matches_naive_attention_across_scattered_blocks_and_windows() {
        let hp = hp();
        let mut kv = KvCache::new(&hp, 2, 8).unwrap();
        // Sequence 0 uses blocks 5, 1, 6 (positions 0..6); values are position-dependent.
        let table: Vec<u32> = vec![5, 1, 6];
        let key = |p: usize| (0..4).map(|d| ((p * 7 + d * 3) % 5) as f32 * 0.3 - 0.5).collect::<Vec<f32>>();
        let val = |p: usize| (0..4).map(|d| (p * 4 + d) as f32 * 0.1).collect::<Vec<f32>>();
        for p in 0..6 {
            kv.store(0, table[p / 2] as usize, p % 2, &key(p), &val(p));
        }
        let pool = ThreadPool::new(2);
        for window in [None, Some(3)] {
            let shape = AttnShape { n_head: 2, n_head_kv: 1, head_dim: 4, head_dim_v: 4, scale: 0.5, window };
            let rows = [RowPos { seq: 0, pos: 5, tiled: false }, RowPos { seq: 0, pos: 2, tiled: true }];
            let q: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut out = vec![0.0; 16];
            let batch = [SeqBatch {
                tokens: &[0],
                pos: 0,
                block_table: &table,
                logits: crate::batch::Logits::None,
                generated_from: usize::MAX,
            }];
            attend(&shape, 0, &q, &mut out, &rows, &batch, &kv, &mut AttnScratch::default(), &pool);
            for (t, row) in rows.iter().enumerate() {
                let start = window.map_or(0, |w| (row.pos + 1).saturating_sub(w));
                let keys: Vec<_> = (start..=row.pos).map(key).collect();
                let vals: Vec<_> = (start..=row.pos).map(val).collect();
                for h in 0..2 {
                    let want = naive(&q[(t * 2 + h) * 4..][..4], &keys, &vals, 0.5);
                    let got = &out[(t * 2 + h) * 4..][..4];
                    for (a, b) in got.iter().zip(&want) {
                        assert!((a - b).abs() < 2e-3, "window {window:?} row {t} head {h}: {got:?} vs {want:?}");
                    }
                }
            }
        }
    }
}
