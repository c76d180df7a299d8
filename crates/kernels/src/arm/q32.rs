//! ARM64 kernels of the 32-element formats (Q4_0, Q4_1, Q5_0, Q8_0): tiles of 2 rows
//! × 4 tokens, each block's quants unpacked once per tile into two 16-byte vectors
//! (elements 0..16 and 16..32), which are exactly lanes 0..4 and 4..8 of ggml's 8.
//!
//! ggml's order (`quant::order`): per block and lane `acc = fma(d_w·d_y, Σ4, acc)`,
//! `hsum8` at the end (Q4_1 adds its `m·s` chain). Repacked Q4_0 (llama.cpp's order
//! for matrices of 8k rows, `q4_0::vec_dot_repacked`): one chain of whole-block sums,
//! which `smmla` forms for 2 rows × 2 tokens at once at the i8mm level.

use std::arch::aarch64::*;
use std::ops::Range;

use super::{entries, f16_at, hsum8, smmla, store_2x2, zip_halves, Dot, Sdot};
use crate::matmul::{Acts, Out, QMatrix};
use crate::quant::{BlockQ8_0, BlockQ8_1};
use crate::tiles::{drive_tiles, each_token};

/// Row tile (threads split rows in multiples of it).
pub(super) const ROWS: usize = 2;

/// An activation block of the 32-element formats.
trait ActBlock: Sized {
    /// The blocks `acts` holds (the layout this format's kernels were selected with).
    fn of<'a>(acts: &'a Acts<'_>) -> &'a [Self];
    /// The scale.
    fn d(&self) -> f32;
    /// `d·Σq` (Q8_1 only).
    fn s(&self) -> f32;
    /// The 32 quants as two vectors.
    unsafe fn quants(&self) -> (int8x16_t, int8x16_t);
}

impl ActBlock for BlockQ8_0 {
    fn of<'a>(acts: &'a Acts<'_>) -> &'a [Self] {
        let Acts::Q8_0(a) = acts else { unreachable!("an ARM64 kernel given the wrong activation layout") };
        a
    }
    #[inline(always)]
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn s(&self) -> f32 {
        unreachable!("Q8_0 has no sum")
    }
    #[inline(always)]
    unsafe fn quants(&self) -> (int8x16_t, int8x16_t) {
        (vld1q_s8(self.qs.as_ptr()), vld1q_s8(self.qs.as_ptr().add(16)))
    }
}

impl ActBlock for BlockQ8_1 {
    fn of<'a>(acts: &'a Acts<'_>) -> &'a [Self] {
        let Acts::Q8_1(a) = acts else { unreachable!("an ARM64 kernel given the wrong activation layout") };
        a
    }
    #[inline(always)]
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    #[inline(always)]
    fn s(&self) -> f32 {
        self.s.to_f32()
    }
    #[inline(always)]
    unsafe fn quants(&self) -> (int8x16_t, int8x16_t) {
        (vld1q_s8(self.qs.as_ptr()), vld1q_s8(self.qs.as_ptr().add(16)))
    }
}

/// A 32-element weight format as these kernels see it.
trait Legacy {
    /// Its activation blocks.
    type Act: ActBlock;
    /// Bytes per block.
    const BYTES: usize;
    /// There is a minimum `m` after `d`, added as `m·s` (Q4_1).
    const MIN: bool;
    /// The 32 quants of the block at `p` in element order, as two vectors.
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t);
}

/// The 32 nibbles of the 16 bytes at `p`: low nibbles (elements 0..16), high ones.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    let b = vld1q_u8(p);
    (vandq_u8(b, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(b))
}

struct Q4_0;
impl Legacy for Q4_0 {
    type Act = BlockQ8_0;
    const BYTES: usize = 18;
    const MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t) {
        let (lo, hi) = nibbles(p.add(2));
        let eight = vdupq_n_s8(8);
        (vsubq_s8(vreinterpretq_s8_u8(lo), eight), vsubq_s8(vreinterpretq_s8_u8(hi), eight))
    }
}

struct Q4_1;
impl Legacy for Q4_1 {
    type Act = BlockQ8_1;
    const BYTES: usize = 20;
    const MIN: bool = true;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t) {
        let (lo, hi) = nibbles(p.add(4));
        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
    }
}

struct Q5_0;
impl Legacy for Q5_0 {
    type Act = BlockQ8_0;
    const BYTES: usize = 22;
    const MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t) {
        let qh = p.add(2).cast::<u32>().read_unaligned();
        let (lo, hi) = nibbles(p.add(6));
        // 0x10 in byte `j` of a half where bit `j` of its 16 bits of `qh` is set.
        let bit: uint8x16_t = vld1q_u8([1u8, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128].as_ptr());
        let fifth = |bits: u32| {
            let spread = vcombine_u8(vdup_n_u8(bits as u8), vdup_n_u8((bits >> 8) as u8));
            vandq_u8(vtstq_u8(spread, bit), vdupq_n_u8(0x10))
        };
        let sixteen = vdupq_n_s8(16);
        let q = |n: uint8x16_t, h: uint8x16_t| vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(n, h)), sixteen);
        (q(lo, fifth(qh)), q(hi, fifth(qh >> 16)))
    }
}

struct Q8_0;
impl Legacy for Q8_0 {
    type Act = BlockQ8_0;
    const BYTES: usize = 34;
    const MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> (int8x16_t, int8x16_t) {
        (vld1q_s8(p.add(2).cast()), vld1q_s8(p.add(18).cast()))
    }
}

/// Row `r`'s block `b`: its quants, `d` and (Q4_1) `m`.
#[inline(always)]
unsafe fn block<F: Legacy>(w: &QMatrix, r: usize, b: usize) -> ((int8x16_t, int8x16_t), f32, f32) {
    let p = w.data().as_ptr().add(r * w.row_size() + b * F::BYTES);
    (F::quants(p), f16_at(p), if F::MIN { f16_at(p.add(2)) } else { 0.0 })
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C`, in ggml's order, or with `REPACKED`
/// (Q4_0) in the repacked one: per row and token one chain of whole-block sums.
#[inline(always)]
unsafe fn tile<F: Legacy, D: Dot, const REPACKED: bool, const R: usize, const C: usize>(
    w: &QMatrix,
    a: &[F::Act],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / 32;
    let zero = vdupq_n_f32(0.0);
    let (mut lo, mut hi) = ([[zero; C]; R], [[zero; C]; R]);
    // Q4_1's `m·s` chain in ggml's order; the only chain in the repacked one.
    let mut chain = [[0.0f32; C]; R];
    for b in 0..nb {
        let blocks: [_; R] = std::array::from_fn(|i| block::<F>(w, r0 + i, b));
        each_token!(c in 0..C => {
            let y = &a[(t0 + c) * nb + b];
            let (y0, y1) = y.quants();
            let dy = y.d();
            for i in 0..R {
                let ((q0, q1), d, m) = blocks[i];
                let (p0, p1) = (D::dot(q0, y0), D::dot(q1, y1));
                if REPACKED {
                    let sum = vaddvq_s32(vaddq_s32(p0, p1));
                    chain[i][c] = (sum as f32).mul_add(d * dy, chain[i][c]);
                } else {
                    let s = d * dy;
                    lo[i][c] = vfmaq_n_f32(lo[i][c], vcvtq_f32_s32(p0), s);
                    hi[i][c] = vfmaq_n_f32(hi[i][c], vcvtq_f32_s32(p1), s);
                    if F::MIN {
                        chain[i][c] = m.mul_add(y.s(), chain[i][c]);
                    }
                }
            }
        });
    }
    for i in 0..R {
        for c in 0..C {
            let v = match (REPACKED, F::MIN) {
                (true, _) => chain[i][c],
                (false, true) => hsum8(lo[i][c], hi[i][c]) + chain[i][c],
                (false, false) => hsum8(lo[i][c], hi[i][c]),
            };
            out.set(t0 + c, r0 + i, v);
        }
    }
}

/// A kernel in ggml's order.
#[inline(always)]
unsafe fn ggml<F: Legacy, D: Dot>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let a = F::Act::of(acts);
    drive_tiles!(rows, out.n_tokens, 2, 4, tile[F, D, false](w, a, out));
}

/// A kernel in the repacked order.
#[inline(always)]
unsafe fn repacked<F: Legacy, D: Dot>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let a = F::Act::of(acts);
    drive_tiles!(rows, out.n_tokens, 2, 4, tile[F, D, true](w, a, out));
}

/// One tile in the repacked order with `smmla`: 2 rows × 2 tokens per instruction,
/// 4 instructions per block; other shapes (the edges) as [`tile`] does them.
#[inline(always)]
unsafe fn tile_repacked_mmla<F: Legacy, const R: usize, const C: usize>(
    w: &QMatrix,
    a: &[F::Act],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    if R != 2 || !C.is_multiple_of(2) {
        return tile::<F, Sdot, true, R, C>(w, a, out, r0, t0);
    }
    let nb = w.cols() / 32;
    // Per pair of tokens, lanes [r0·t, r0·t+1, r1·t, r1·t+1].
    let mut acc = [vdupq_n_f32(0.0); 4];
    for b in 0..nb {
        let ((q00, q01), d0, _) = block::<F>(w, r0, b);
        let ((q10, q11), d1, _) = block::<F>(w, r0 + 1, b);
        let (wa, wb) = zip_halves(q00, q10);
        let (wc, wd) = zip_halves(q01, q11);
        let dw = vcombine_f32(vdup_n_f32(d0), vdup_n_f32(d1));
        for p in 0..C / 2 {
            let (ya, yb) = (&a[(t0 + 2 * p) * nb + b], &a[(t0 + 2 * p + 1) * nb + b]);
            let ((a0, a1), (b0, b1)) = (ya.quants(), yb.quants());
            let (xa, xb) = zip_halves(a0, b0);
            let (xc, xd) = zip_halves(a1, b1);
            let mut sum = smmla(vdupq_n_s32(0), wa, xa);
            sum = smmla(sum, wb, xb);
            sum = smmla(sum, wc, xc);
            sum = smmla(sum, wd, xd);
            let (da, db) = (ya.d(), yb.d());
            let dy = vcombine_f32(vset_lane_f32::<1>(db, vdup_n_f32(da)), vset_lane_f32::<1>(db, vdup_n_f32(da)));
            acc[p] = vfmaq_f32(acc[p], vcvtq_f32_s32(sum), vmulq_f32(dw, dy));
        }
    }
    for p in 0..C / 2 {
        store_2x2(out, acc[p], r0, t0 + 2 * p);
    }
}

/// A kernel in the repacked order with `smmla`.
#[inline(always)]
unsafe fn repacked_mmla<F: Legacy>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let a = F::Act::of(acts);
    drive_tiles!(rows, out.n_tokens, 2, 4, tile_repacked_mmla[F](w, a, out));
}

entries!(q4_0_neon, q4_0_dotprod, ggml[Q4_0]);
entries!(q4_0r_neon, q4_0r_dotprod, repacked[Q4_0]; q4_0r_i8mm, repacked_mmla[Q4_0]);
entries!(q4_1_neon, q4_1_dotprod, ggml[Q4_1]);
entries!(q5_0_neon, q5_0_dotprod, ggml[Q5_0]);
entries!(q8_0_neon, q8_0_dotprod, ggml[Q8_0]);
