//! Attention of one query row over f16 keys and values, with ggml's arithmetic.
//!
//! A small model's outputs hinge on the exact rounding of every value that is later
//! quantized to 8 bits, so Seed reproduces the order of operations of llama.cpp's
//! two CPU flash-attention kernels, not just their mathematics:
//! - [`attend_row_online`] follows the one-row kernel (decode steps and short
//!   prompts): the query rounded to f16, an online softmax with `expf`, and the
//!   value accumulator kept in f16 and rounded after every step;
//! - [`attend_block_tiled`] follows the tiled kernel (prompt runs of 64 rows or
//!   more): an f32 query, 64-position tiles, a vectorised `exp` whose sums are kept
//!   in f64, and an f32 accumulator; it serves a block of rows at once so each key
//!   tile is unpacked once.
//!
//! [`attend_group_online`] runs the one-row kernel for all the query heads of one
//! key/value head at once, with the same bits and less work (see `decode`).
//!
//! Both take the keys and values of positions `0..n` through `key(j)` and
//! `value(j)`, so the caller can page them.

use half::f16;

use crate::cpu::{active_width, Width};
use crate::ops::reduce16;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod decode;
mod tiled;

pub use decode::{attend_group_online, GroupScratch};
pub use tiled::{attend_block_tiled, TiledScratch};

/// The primitives of the row kernels at one register width (the active level's,
/// [`crate::cpu::active_width`]). Every width gives the same bits.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the x86-64 kernels only
#[derive(Clone, Copy)]
struct Prims {
    width: Width,
}

/// Calls `$avx512::$f(args)` or `$avx2::$f(args)` as the width says, else runs
/// the scalar block.
macro_rules! by_width {
    ($self:ident, $f:ident($($arg:expr),*), $scalar:block) => {{
        #[cfg(target_arch = "x86_64")]
        match $self.width {
            // SAFETY: the width is the active level's (or one tests checked this CPU
            // runs), so the CPU has AVX-512F and FMA.
            Width::W512 => return unsafe { avx512::$f($($arg),*) },
            // SAFETY: as above, AVX2, FMA and F16C.
            Width::W256 => return unsafe { avx2::$f($($arg),*) },
            Width::Scalar => {}
        }
        $scalar
    }};
}

impl Prims {
    fn active() -> Prims {
        Prims { width: active_width() }
    }

    #[inline(always)]
    fn dot_f16(self, q16: &[f32], k: &[f16]) -> f32 {
        by_width!(self, dot_f16(q16, k), { dot_f16(q16, k) })
    }

    #[inline(always)]
    fn mad_f16(self, acc: &mut [f16], v: &[f16], s: f32) {
        by_width!(self, mad_f16(acc, v, s), {
            for (a, &x) in acc.iter_mut().zip(v) {
                *a = f16::from_f32(x.to_f32().mul_add(s, a.to_f32()));
            }
        })
    }

    #[inline(always)]
    fn scale_f16(self, acc: &mut [f16], s: f32) {
        by_width!(self, scale_f16(acc, s), {
            for a in acc.iter_mut() {
                *a = f16::from_f32(a.to_f32() * s);
            }
        })
    }

    #[inline(always)]
    fn tile_scores(self, q: &[f32], kt: &[f32], scores: &mut [f32; TILE]) {
        by_width!(self, tile_scores(q, kt, scores), { tiled::tile_scores(q, kt, scores) })
    }

    /// [`Self::tile_scores`] of four queries against one tile.
    #[inline(always)]
    fn tile_scores4(self, q: [&[f32]; tiled::QUAD], kt: &[f32], scores: &mut [[f32; TILE]; tiled::QUAD]) {
        #[cfg(target_arch = "x86_64")]
        if self.width == Width::W512 {
            // SAFETY: the width is the active level's, so the CPU has AVX-512F and FMA.
            return unsafe { avx512::tile_scores4(q, kt, scores) };
        }
        for (q, s) in q.iter().zip(scores.iter_mut()) {
            self.tile_scores(q, kt, s);
        }
    }

    /// `scores *= scale`; returns their largest (a tile with no masked position).
    #[inline(always)]
    fn scale_max(self, scores: &mut [f32; TILE], scale: f32) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if self.width == Width::W512 {
            // SAFETY: the width is the active level's, so the CPU has AVX-512F.
            return unsafe { avx512::scale_max(scores, scale) };
        }
        scores.iter_mut().for_each(|x| *x *= scale);
        tiled::max_of(scores)
    }

    /// Whether [`Self::accumulate4`] runs at this width (it takes the value tile unpacked
    /// to f32; the other widths read the f16 values one query at a time).
    #[inline(always)]
    fn takes_value_tiles(self) -> bool {
        cfg!(target_arch = "x86_64") && self.width == Width::W512
    }

    /// [`Self::accumulate_values`] of four queries with one visible range, over the unpacked
    /// value tile `vt` `(TILE, head_dim_v)`: `out[offsets[i]..][..head_dim_v]` is query `i`'s
    /// output; the offsets are distinct (asserted), so the four outputs do not overlap.
    #[inline(always)]
    fn accumulate4(
        self,
        out: &mut [f32],
        offsets: [usize; tiled::QUAD],
        scores: &[[f32; TILE]; tiled::QUAD],
        ts: std::ops::Range<usize>,
        vt: &[f32],
    ) {
        let hdv = vt.len() / TILE;
        for (i, &a) in offsets.iter().enumerate() {
            assert!(a + hdv <= out.len() && offsets[..i].iter().all(|&b| a.abs_diff(b) >= hdv), "overlapping outputs");
        }
        assert!(ts.end <= TILE);
        #[cfg(target_arch = "x86_64")]
        if self.width == Width::W512 {
            // SAFETY: AVX-512F and FMA as above; the outputs are in bounds and disjoint (asserted).
            return unsafe { avx512::accumulate4(out, offsets, scores, ts, vt, hdv) };
        }
        for (i, &a) in offsets.iter().enumerate() {
            for t in ts.clone() {
                for (o, &v) in out[a..a + hdv].iter_mut().zip(&vt[t * hdv..(t + 1) * hdv]) {
                    *o = scores[i][t].mul_add(v, *o);
                }
            }
        }
    }

    #[inline(always)]
    fn exp_tile(self, scores: &mut [f32; TILE], max: f32) -> f64 {
        by_width!(self, exp_tile(scores, max), { tiled::exp_tile(scores, max) })
    }

    #[inline(always)]
    fn accumulate_values<'a>(
        self,
        out: &mut [f32],
        scores: &[f32],
        ts: std::ops::Range<usize>,
        value: impl Fn(usize) -> &'a [f16],
    ) {
        by_width!(self, accumulate_values(out, scores, ts.clone(), &value), {
            for t in ts {
                self.axpy_f16(out, scores[t], value(t));
            }
        })
    }

    #[inline(always)]
    fn axpy_f16(self, out: &mut [f32], p: f32, v: &[f16]) {
        by_width!(self, axpy_f16(out, p, v), {
            for (o, &x) in out.iter_mut().zip(v) {
                *o = p.mul_add(x.to_f32(), *o);
            }
        })
    }
}

/// Rows of one tile in the tiled kernel.
pub const TILE: usize = 64;

/// Dot product of an f16-rounded query with an f16 key, summed the way ggml's
/// AVX-512 `ggml_vec_dot_f16` does: four 16-lane accumulators over steps of 64,
/// pairwise reduction, then the leftover elements in f64.
#[inline(always)]
pub fn dot_f16(q16: &[f32], k: &[f16]) -> f32 {
    let n = q16.len().min(k.len());
    let np = n & !63;
    let mut sum = [[0.0f32; 16]; 4];
    let mut i = 0;
    while i < np {
        for (j, acc) in sum.iter_mut().enumerate() {
            for (l, a) in acc.iter_mut().enumerate() {
                let idx = i + 16 * j + l;
                *a = q16[idx].mul_add(k[idx].to_f32(), *a);
            }
        }
        i += 64;
    }
    let mut s = [0.0f32; 16];
    for l in 0..16 {
        let s02 = sum[0][l] + sum[2][l];
        let s13 = sum[1][l] + sum[3][l];
        s[l] = s02 + s13;
    }
    let mut total = f64::from(reduce16(&s));
    for idx in np..n {
        total += f64::from(q16[idx] * k[idx].to_f32());
    }
    total as f32
}

/// One query row with ggml's one-row kernel. `q` shape `(head_dim,)`, `out` shape
/// `(head_dim_v,)`; positions `0..n` are read through `key` and `value`.
#[allow(clippy::too_many_arguments)]
pub fn attend_row_online<'a>(
    q: &[f32],
    n: usize,
    scale: f32,
    key: impl Fn(usize) -> &'a [f16],
    value: impl Fn(usize) -> &'a [f16],
    q16: &mut [f32],
    acc16: &mut [f16],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if active_width() >= Width::W256 {
        // SAFETY: every level from AVX2 on has FMA and F16C (`Isa::is_available`).
        unsafe { online_fma(q, n, scale, key, value, q16, acc16, out) };
        return;
    }
    online_body(q, n, scale, key, value, q16, acc16, out);
}

/// [`attend_row_online`] compiled with FMA and F16C, so `mul_add` is one instruction.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "fma,f16c")]
unsafe fn online_fma<'a>(
    q: &[f32],
    n: usize,
    scale: f32,
    key: impl Fn(usize) -> &'a [f16],
    value: impl Fn(usize) -> &'a [f16],
    q16: &mut [f32],
    acc16: &mut [f16],
    out: &mut [f32],
) {
    online_body(q, n, scale, key, value, q16, acc16, out);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn online_body<'a>(
    q: &[f32],
    n: usize,
    scale: f32,
    key: impl Fn(usize) -> &'a [f16],
    value: impl Fn(usize) -> &'a [f16],
    q16: &mut [f32],
    acc16: &mut [f16],
    out: &mut [f32],
) {
    let prims = Prims::active();
    for (d, &s) in q16.iter_mut().zip(q) {
        *d = f16::from_f32(s).to_f32();
    }
    acc16.fill(f16::ZERO);
    let mut m = f32::NEG_INFINITY;
    let mut sum = 0.0f32;
    for j in 0..n {
        let s = prims.dot_f16(q16, key(j)) * scale;
        let (ms, vs);
        if s > m {
            ms = (m - s).exp();
            vs = 1.0;
            m = s;
            prims.scale_f16(acc16, ms);
        } else {
            ms = 1.0;
            vs = (s - m).exp();
        }
        prims.mad_f16(acc16, value(j), vs);
        sum = sum.mul_add(ms, vs);
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, a) in out.iter_mut().zip(acc16.iter()) {
        *o = a.to_f32() * inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(q: &[f32], keys: &[Vec<f16>], values: &[Vec<f16>], scale: f32) -> Vec<f32> {
        let mut s: Vec<f64> = keys
            .iter()
            .map(|k| {
                q.iter().zip(k).map(|(a, b)| f64::from(*a) * f64::from(b.to_f32())).sum::<f64>() * f64::from(scale)
            })
            .collect();
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = s
            .iter_mut()
            .map(|x| {
                *x = (*x - max).exp();
                *x
            })
            .sum();
        let mut o = vec![0.0f64; values[0].len()];
        for (p, v) in s.iter().zip(values) {
            for (x, y) in o.iter_mut().zip(v) {
                *x += p / total * f64::from(y.to_f32());
            }
        }
        o.into_iter().map(|x| x as f32).collect()
    }

    #[test]
    fn both_kernels_approximate_exact_attention() {
        for (n, hd) in [(1usize, 64usize), (5, 64), (70, 64), (130, 256), (3, 72)] {
            let keys: Vec<Vec<f16>> = (0..n)
                .map(|j| (0..hd).map(|d| f16::from_f32(((j * 31 + d * 7) % 17) as f32 * 0.1 - 0.8)).collect())
                .collect();
            let values: Vec<Vec<f16>> = (0..n)
                .map(|j| (0..hd).map(|d| f16::from_f32(((j * 13 + d * 5) % 11) as f32 * 0.2 - 1.0)).collect())
                .collect();
            let q: Vec<f32> = (0..hd).map(|d| (d as f32 * 0.37).sin()).collect();
            let want = naive(&q, &keys, &values, 0.125);
            let mut out = vec![0.0; hd];
            let (mut q16, mut acc) = (vec![0.0; hd], vec![f16::ZERO; hd]);
            attend_row_online(&q, n, 0.125, |j| &keys[j], |j| &values[j], &mut q16, &mut acc, &mut out);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 2e-2, "online n={n}: {a} vs {b}");
            }
            let mut scratch = TiledScratch::default();
            attend_block_tiled(
                1,
                hd,
                hd,
                |_| &q,
                &[n - 1],
                None,
                0.125,
                |j| &keys[j],
                |j| &values[j],
                &mut scratch,
                &mut out,
            );
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "tiled n={n}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn simd_primitives_equal_the_scalar_ones_bit_for_bit() {
        let scalar = Prims { width: Width::Scalar };
        for width in crate::cpu::available_widths().into_iter().filter(|w| *w > Width::Scalar) {
            let simd = Prims { width };
            for n in [1usize, 7, 8, 9, 15, 16, 17, 63, 64, 65, 130, 256, 300] {
                let q: Vec<f32> = (0..n).map(|i| f16::from_f32((i as f32 * 0.37).sin()).to_f32()).collect();
                let k: Vec<f16> = (0..n).map(|i| f16::from_f32((i as f32 * 0.11).cos() * 3.0)).collect();
                assert_eq!(simd.dot_f16(&q, &k).to_bits(), scalar.dot_f16(&q, &k).to_bits(), "{width:?} dot n={n}");
                let (mut a, mut b) = (k.clone(), k.clone());
                simd.mad_f16(&mut a, &k, 0.37);
                scalar.mad_f16(&mut b, &k, 0.37);
                assert_eq!(a, b, "{width:?} mad n={n}");
                simd.scale_f16(&mut a, 0.61);
                scalar.scale_f16(&mut b, 0.61);
                assert_eq!(a, b, "{width:?} scale n={n}");
                let (mut x, mut y) = (q.clone(), q.clone());
                simd.axpy_f16(&mut x, 1.7, &k);
                scalar.axpy_f16(&mut y, 1.7, &k);
                assert_eq!(x, y, "{width:?} axpy n={n}");
                let scores: Vec<f32> = (0..5).map(|t| t as f32 * 0.3 - 0.2).collect();
                let vals: Vec<Vec<f16>> =
                    (0..5).map(|t| k.iter().map(|v| f16::from_f32(v.to_f32() + t as f32)).collect()).collect();
                simd.accumulate_values(&mut x, &scores, 1..5, |t| &vals[t]);
                scalar.accumulate_values(&mut y, &scores, 1..5, |t| &vals[t]);
                assert_eq!(x, y, "{width:?} accumulate n={n}");
            }
            // The tiled kernel's score and exp steps.
            let hd = 40;
            let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.29).sin()).collect();
            let kt: Vec<f32> = (0..hd * TILE).map(|i| (i as f32 * 0.013).cos() * 2.0).collect();
            let (mut s1, mut s2) = ([0.0f32; TILE], [0.0f32; TILE]);
            simd.tile_scores(&q, &kt, &mut s1);
            scalar.tile_scores(&q, &kt, &mut s2);
            assert_eq!(s1, s2, "{width:?} tile scores");
            s1[5] = f32::NEG_INFINITY;
            s2[5] = f32::NEG_INFINITY;
            let max = s1.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(simd.exp_tile(&mut s1, max).to_bits(), scalar.exp_tile(&mut s2, max).to_bits());
            assert_eq!(s1, s2, "{width:?} exp tile");
            let (mut m1, mut m2) = (s1, s2);
            m1[9] = f32::NEG_INFINITY;
            m2[9] = f32::NEG_INFINITY;
            assert_eq!(simd.scale_max(&mut m1, 0.3).to_bits(), scalar.scale_max(&mut m2, 0.3).to_bits());
            assert_eq!(m1, m2, "{width:?} scale and max");
            // Four queries at once: each gets the one-query kernel's bits.
            let qs: Vec<Vec<f32>> = (0..4).map(|j| q.iter().map(|x| x * (j as f32 + 0.5)).collect()).collect();
            let quad = [&qs[0][..], &qs[1][..], &qs[2][..], &qs[3][..]];
            let mut four = [[0.0f32; TILE]; 4];
            simd.tile_scores4(quad, &kt, &mut four);
            for (j, s) in four.iter().enumerate() {
                let mut one = [0.0f32; TILE];
                scalar.tile_scores(&qs[j], &kt, &mut one);
                assert_eq!(*s, one, "{width:?} tile scores of query {j} of four");
            }
            for hdv in [64usize, 80, 256] {
                let vals: Vec<Vec<f16>> = (0..TILE)
                    .map(|t| (0..hdv).map(|c| f16::from_f32(((t * 7 + c) % 13) as f32 * 0.3 - 1.7)).collect())
                    .collect();
                let vt: Vec<f32> = vals.iter().flatten().map(|v| v.to_f32()).collect();
                let init: Vec<f32> = (0..5 * hdv).map(|i| (i as f32 * 0.07).sin()).collect();
                let offsets = [3 * hdv, 0, 4 * hdv, hdv];
                let mut x = init.clone();
                simd.accumulate4(&mut x, offsets, &four, 2..61, &vt);
                let mut y = init.clone();
                for (j, &o) in offsets.iter().enumerate() {
                    scalar.accumulate_values(&mut y[o..o + hdv], &four[j], 2..61, |t| &vals[t]);
                }
                assert_eq!(x, y, "{width:?} accumulate4 hdv={hdv}");
            }
        }
    }

    #[test]
    fn a_block_of_rows_equals_the_rows_one_by_one_bit_for_bit() {
        let (group, hd) = (3usize, 64usize);
        let n = 200;
        let keys: Vec<Vec<f16>> = (0..n)
            .map(|j| (0..hd).map(|d| f16::from_f32(((j * 31 + d * 7) % 17) as f32 * 0.1 - 0.8)).collect())
            .collect();
        let values: Vec<Vec<f16>> = (0..n)
            .map(|j| (0..hd).map(|d| f16::from_f32(((j * 13 + d * 5) % 11) as f32 * 0.2 - 1.0)).collect())
            .collect();
        let mut scratch = TiledScratch::default();
        for (first, rows, window) in [(0usize, 64usize, None), (100, 50, None), (130, 64, Some(40)), (5, 3, Some(8))] {
            let pos: Vec<usize> = (first..first + rows).collect();
            let q: Vec<Vec<f32>> =
                pos.iter().map(|&p| (0..group * hd).map(|i| ((p * 7 + i) as f32 * 0.013).sin()).collect()).collect();
            let mut out = vec![0.0; rows * group * hd];
            let (k, v) = (|j: usize| &keys[j][..], |j: usize| &values[j][..]);
            attend_block_tiled(group, hd, hd, |r| &q[r], &pos, window, 0.125, k, v, &mut scratch, &mut out);
            for (r, &p) in pos.iter().enumerate() {
                let mut one = vec![0.0; group * hd];
                attend_block_tiled(group, hd, hd, |_| &q[r], &[p], window, 0.125, k, v, &mut scratch, &mut one);
                assert_eq!(&out[r * group * hd..(r + 1) * group * hd], &one[..], "row {r} (position {p})");
            }
        }
    }

    #[test]
    fn the_group_kernel_gives_each_head_the_one_row_kernels_bits() {
        for (n, hd, hdv, group) in [
            (1usize, 64usize, 64usize, 3usize),
            (15, 64, 64, 3),
            (17, 64, 64, 1),
            (70, 64, 48, 5),
            (130, 256, 256, 4),
            (3, 72, 72, 2),
        ] {
            let keys: Vec<Vec<f16>> = (0..n)
                .map(|j| (0..hd).map(|d| f16::from_f32(((j * 31 + d * 7) % 17) as f32 * 0.1 - 0.8)).collect())
                .collect();
            // Values that grow with the position move the running max more than once.
            let values: Vec<Vec<f16>> = (0..n)
                .map(|j| (0..hdv).map(|d| f16::from_f32(((j * 13 + d * 5) % 11) as f32 * 0.2 - 1.0)).collect())
                .collect();
            let q: Vec<f32> = (0..group * hd).map(|d| (d as f32 * 0.37).sin() * (1.0 + d as f32 * 0.01)).collect();
            let mut out = vec![f32::NAN; group * hdv];
            let mut scratch = GroupScratch::default();
            attend_group_online(group, hd, hdv, &q, n, 0.125, |j| &keys[j], |j| &values[j], &mut scratch, &mut out);
            for h in 0..group {
                let mut one = vec![f32::NAN; hdv];
                let (mut q16, mut acc) = (vec![0.0; hd], vec![f16::ZERO; hdv]);
                attend_row_online(
                    &q[h * hd..(h + 1) * hd],
                    n,
                    0.125,
                    |j| &keys[j],
                    |j| &values[j],
                    &mut q16,
                    &mut acc,
                    &mut one,
                );
                assert_eq!(out[h * hdv..(h + 1) * hdv], one[..], "n={n} hd={hd} hdv={hdv} head {h} of {group}");
            }
        }
    }

    #[test]
    fn dot_f16_sums_steps_and_leftovers() {
        let q: Vec<f32> = (0..70).map(|i| i as f32 * 0.5).collect();
        let k: Vec<f16> = (0..70).map(|i| f16::from_f32((i % 3) as f32)).collect();
        let want: f32 = q.iter().zip(&k).map(|(a, b)| a * b.to_f32()).sum();
        assert!((dot_f16(&q, &k) - want).abs() < 1e-3);
    }
}
