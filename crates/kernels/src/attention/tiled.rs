//! ggml's tiled attention kernel, for a block of query rows that share one
//! key/value head (up to 64 consecutive positions of one sequence, all the query
//! heads of the group).
//!
//! Each 64-position tile of keys is unpacked once into an f32 transposed tile
//! `(head_dim, 64)` and reused by every row and head of the block; the scores of a
//! row are 64 fused-multiply-add chains over the head dimension (one per
//! position, so they vectorise across positions), the softmax uses ggml's vector
//! `exp` with sums in f64, and values accumulate with one FMA per position. The
//! per-row arithmetic is exactly [`super::attend_row_tiled`]'s; only the loop
//! order and the sharing differ.

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::TILE;
use crate::ops::{ggml_expf, reduce16};

/// Scratch of [`attend_block_tiled`], reused across calls.
#[derive(Default)]
pub struct TiledScratch {
    /// Transposed key tile `(head_dim, TILE)`.
    kt: Vec<f32>,
    /// Value tile `(TILE, head_dim_v)` in f32, for the kernels that take it unpacked.
    vt: Vec<f32>,
    /// Running max and sum per (row, head).
    state: Vec<(f32, f32)>,
    /// The (row, head) pairs a tile reaches.
    pairs: Vec<(usize, usize)>,
    /// One key row in f32.
    row: Vec<f32>,
}

/// The largest of 64 scores (exact in any order; as `f32::max` would fold them, with no NaN),
/// in sixteen lanes so it vectorises.
pub(super) fn max_of(s: &[f32; TILE]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 16];
    for chunk in s.chunks_exact(16) {
        for (m, &x) in m.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    m.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Query vectors whose scores and values go through the kernels together: each key and value
/// of a tile is loaded once for all of them, and their independent chains keep the FMA units
/// busy. Each vector's arithmetic is the one-vector kernel's, in the same order.
pub const QUAD: usize = 4;

/// The tiled kernel for `rows` query rows × `group` heads sharing one kv head.
///
/// `q(r)` gives row `r`'s queries `(group, head_dim)`; `pos[r]` its position
/// (ascending); positions `start(r)..=pos[r]` are attended, where `start` honours
/// `window`. `out` has shape `(rows, group, head_dim_v)`.
#[allow(clippy::too_many_arguments)]
pub fn attend_block_tiled<'a, 'q>(
    group: usize,
    hd: usize,
    hdv: usize,
    q: impl Fn(usize) -> &'q [f32],
    pos: &[usize],
    window: Option<usize>,
    scale: f32,
    key: impl Fn(usize) -> &'a [f16],
    value: impl Fn(usize) -> &'a [f16],
    scratch: &mut TiledScratch,
    out: &mut [f32],
) {
    let rows = pos.len();
    if rows == 0 {
        return;
    }
    assert_eq!(out.len(), rows * group * hdv);
    let start = |r: usize| window.map_or(0, |w| (pos[r] + 1).saturating_sub(w));
    let last = pos[rows - 1];
    let prims = super::Prims::active();
    let unpack_values = prims.takes_value_tiles();
    scratch.kt.resize(hd * TILE, 0.0);
    scratch.vt.resize(if unpack_values { TILE * hdv } else { 0 }, 0.0);
    scratch.state.clear();
    scratch.state.resize(rows * group, (f32::NEG_INFINITY, 0.0));
    out.fill(0.0);

    let mut ts = start(0) / TILE * TILE;
    while ts <= last {
        let len = TILE.min(last + 1 - ts);
        scratch.row.resize(hd, 0.0);
        for t in 0..len {
            key(ts + t)[..hd].convert_to_f32_slice(&mut scratch.row);
            for (d, &k) in scratch.row.iter().enumerate() {
                scratch.kt[d * TILE + t] = k;
            }
            if unpack_values {
                value(ts + t)[..hdv].convert_to_f32_slice(&mut scratch.vt[t * hdv..(t + 1) * hdv]);
            }
        }
        scratch.pairs.clear();
        for (r, &p) in pos.iter().enumerate() {
            // A row whose whole range lies outside the tile is masked there.
            if p >= ts && start(r) < ts + TILE {
                scratch.pairs.extend((0..group).map(|h| (r, h)));
            }
        }
        for quad in scratch.pairs.chunks(QUAD) {
            let qs: [&[f32]; QUAD] = std::array::from_fn(|i| {
                let (r, h) = quad[i.min(quad.len() - 1)];
                &q(r)[h * hd..(h + 1) * hd]
            });
            let mut scores = [[0.0f32; TILE]; QUAD];
            prims.tile_scores4(qs, &scratch.kt, &mut scores);
            let mut visible: [std::ops::Range<usize>; QUAD] = Default::default();
            for (i, &(r, h)) in quad.iter().enumerate() {
                let (lo, hi) = (start(r), pos[r]);
                let s = &mut scores[i];
                // Scaled, and positions outside the row's range or past the tile's end masked;
                // a tile wholly inside the range (most of a long prompt's) needs no mask.
                let tile_max = if lo <= ts && ts + TILE <= hi + 1 && len == TILE {
                    prims.scale_max(s, scale)
                } else {
                    for (t, x) in s.iter_mut().enumerate() {
                        let p = ts + t;
                        *x = if t < len && p >= lo && p <= hi { *x * scale } else { f32::NEG_INFINITY };
                    }
                    max_of(s)
                };
                let o = &mut out[(r * group + h) * hdv..(r * group + h + 1) * hdv];
                let (m, sum) = &mut scratch.state[r * group + h];
                let m_new = m.max(tile_max);
                if m_new > *m {
                    let ms = (*m - m_new).exp();
                    for x in o.iter_mut() {
                        *x *= ms;
                    }
                    *sum *= ms;
                }
                *m = m_new;
                let tile_sum = prims.exp_tile(s, m_new);
                *sum = (f64::from(*sum) + tile_sum) as f32;
                visible[i] = (lo.max(ts) - ts)..(hi.min(ts + len - 1) - ts + 1);
            }
            let offsets: [usize; QUAD] = std::array::from_fn(|i| {
                let (r, h) = quad[i.min(quad.len() - 1)];
                (r * group + h) * hdv
            });
            if unpack_values && quad.len() == QUAD && visible.iter().all(|v| *v == visible[0]) {
                prims.accumulate4(out, offsets, &scores, visible[0].clone(), &scratch.vt);
            } else {
                for (i, range) in visible.iter().enumerate().take(quad.len()) {
                    let o = &mut out[offsets[i]..offsets[i] + hdv];
                    prims.accumulate_values(o, &scores[i], range.clone(), |t| &value(ts + t)[..hdv]);
                }
            }
        }
        ts += TILE;
    }
    for (o, &(_, sum)) in out.chunks_exact_mut(hdv).zip(&scratch.state) {
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        for x in o.iter_mut() {
            *x *= inv;
        }
    }
}

/// Scores of one query against a transposed tile: `scores[t] = Σ_d q[d]·kt[d][t]`
/// as an FMA chain over `d` for each position.
pub(super) fn tile_scores(q: &[f32], kt: &[f32], scores: &mut [f32; TILE]) {
    scores.fill(0.0);
    for (d, &qd) in q.iter().enumerate() {
        let row = &kt[d * TILE..(d + 1) * TILE];
        for (s, &k) in scores.iter_mut().zip(row) {
            *s = qd.mul_add(k, *s);
        }
    }
}

/// `scores = exp(scores - max)` with ggml's vector `exp`; returns their sum, taken
/// per 16 lanes and added in f64.
pub(super) fn exp_tile(scores: &mut [f32; TILE], max: f32) -> f64 {
    let mut total = 0.0f64;
    for group in scores.chunks_exact_mut(16) {
        for s in group.iter_mut() {
            *s = ggml_expf(*s - max);
        }
        total += f64::from(reduce16(group));
    }
    total
}
