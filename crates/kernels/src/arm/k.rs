//! ARM64 kernels of the K-quants (Q4_K, Q5_K, Q6_K) on Q8_K activations: each row's
//! super-block unpacked once per tile into 8 sub-blocks of two 16-byte vectors
//! (elements 0..16 and 16..32 of the sub-block: lanes 0..4 and 4..8 of ggml's 8),
//! then dotted with 4 tokens.
//!
//! ggml's order (`quant::q4_k::vec_dot` and its siblings): per lane the sub-blocks'
//! sums times their integer scales, summed exactly, then one FMA per super-block;
//! the minimums and offsets as each format's scalar reference adds them. Repacked
//! Q4_K (`q4_k::vec_dot_repacked`): one chain of whole super-block sums, which
//! `smmla` forms for 2 rows × 2 tokens at once at the i8mm level.

use std::arch::aarch64::*;
use std::ops::Range;

use super::{entries, f16_at, hsum8, smmla, store_2x2, zip_halves, Dot, Sdot};
use crate::matmul::{Acts, Out, QMatrix};
use crate::quant::q4_k::unpack_scales;
use crate::quant::BlockQ8K;
use crate::tiles::{drive_tiles, each_token};

/// Row tile (threads split rows in multiples of it).
pub(super) const ROWS: usize = 2;

/// One row's super-block, unpacked.
#[derive(Clone, Copy)]
struct Unpacked {
    /// Sub-block `j`'s quants (signed bytes), elements 0..16 and 16..32.
    q: [[int8x16_t; 2]; 8],
    /// Per sub-block (Q4_K, Q5_K) or per group of 16 (Q6_K, both halves) scales.
    sc: [i32; 16],
    /// Per sub-block minimums (Q4_K, Q5_K).
    m: [i32; 8],
    /// `d`, and `dmin` (Q4_K, Q5_K).
    d: f32,
    dmin: f32,
}

/// A K-quant as these kernels see it.
trait KFormat {
    /// Bytes per super-block.
    const BYTES: usize;
    /// How its minimums are added.
    const MINS: Mins;
    /// The super-block at `p`.
    unsafe fn unpack(p: *const u8) -> Unpacked;
    /// Lane sums of one token's super-block, scaled by the sub-block scales, with
    /// this format's offset (Q6_K): `(lanes 0..4, lanes 4..8)`.
    #[inline(always)]
    unsafe fn sumi<D: Dot>(u: &Unpacked, y: &BlockQ8K) -> (int32x4_t, int32x4_t) {
        let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
        for j in 0..8 {
            let (y0, y1) = y_sub(y, j);
            lo = vmlaq_n_s32(lo, D::dot(u.q[j][0], y0), u.sc[j]);
            hi = vmlaq_n_s32(hi, D::dot(u.q[j][1], y1), u.sc[j]);
        }
        (lo, hi)
    }
}

/// Sub-block `j`'s 32 activations as two vectors.
#[inline(always)]
unsafe fn y_sub(y: &BlockQ8K, j: usize) -> (int8x16_t, int8x16_t) {
    let p = y.qs.as_ptr().add(32 * j);
    (vld1q_s8(p), vld1q_s8(p.add(16)))
}

/// The 6-bit scales and minimums of Q4_K and Q5_K at `p`, with `d` and `dmin` before them.
#[inline(always)]
unsafe fn scales_mins(p: *const u8) -> ([i32; 16], [i32; 8], f32, f32) {
    let (sc, m) = unpack_scales(&*p.add(4).cast::<[u8; 12]>());
    let mut scales = [0i32; 16];
    for j in 0..8 {
        scales[j] = i32::from(sc[j]);
    }
    (scales, m.map(i32::from), f16_at(p), f16_at(p.add(2)))
}

/// `m_j·(sum of sub-block j's activations)` summed over pairs of sub-blocks: lane `k`
/// of ggml's minimum products (`q4_k::min_products`).
#[inline(always)]
fn min_products(m: &[i32; 8], y: &BlockQ8K) -> [i32; 4] {
    let s = |j: usize| m[j] * (i32::from(y.bsums[2 * j]) + i32::from(y.bsums[2 * j + 1]));
    std::array::from_fn(|k| s(2 * k) + s(2 * k + 1))
}

/// The 256 nibbles of Q4_K's and Q5_K's 128 bytes at `qs`, as 8 sub-blocks of two vectors:
/// each 32 bytes hold sub-block `2i` in the low nibbles and `2i + 1` in the high ones.
#[inline(always)]
unsafe fn k_nibbles(qs: *const u8) -> [[uint8x16_t; 2]; 8] {
    let low = vdupq_n_u8(0x0F);
    let mut q = [[vdupq_n_u8(0); 2]; 8];
    for pair in 0..4 {
        let (b0, b1) = (vld1q_u8(qs.add(32 * pair)), vld1q_u8(qs.add(32 * pair + 16)));
        q[2 * pair] = [vandq_u8(b0, low), vandq_u8(b1, low)];
        q[2 * pair + 1] = [vshrq_n_u8::<4>(b0), vshrq_n_u8::<4>(b1)];
    }
    q
}

struct Q4K;
impl KFormat for Q4K {
    const BYTES: usize = 144;
    const MINS: Mins = Mins::Lanes;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        let (sc, m, d, dmin) = scales_mins(p);
        let q = k_nibbles(p.add(16)).map(|s| s.map(|v| vreinterpretq_s8_u8(v)));
        Unpacked { q, sc, m, d, dmin }
    }
}

struct Q5K;
impl KFormat for Q5K {
    const BYTES: usize = 176;
    const MINS: Mins = Mins::Chain;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        let (sc, m, d, dmin) = scales_mins(p);
        let qh = p.add(16);
        let h = [vld1q_u8(qh), vld1q_u8(qh.add(16))];
        let nibbles = k_nibbles(p.add(48));
        let five = vdupq_n_u8(0x10);
        // Bit `j` of `qh[l]` is bit 4 of element `l` of sub-block `j`.
        let q = std::array::from_fn(|j| {
            let bit = vdupq_n_u8(1 << j);
            std::array::from_fn(|k| vreinterpretq_s8_u8(vorrq_u8(nibbles[j][k], vandq_u8(vtstq_u8(h[k], bit), five))))
        });
        Unpacked { q, sc, m, d, dmin }
    }
}

struct Q6K;
impl KFormat for Q6K {
    const BYTES: usize = 210;
    const MINS: Mins = Mins::None;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        let (ql, qh, scales) = (p, p.add(128), p.add(192).cast::<i8>());
        let (low, top) = (vdupq_n_u8(0x0F), vdupq_n_u8(0x30));
        let mut q = [[vdupq_n_s8(0); 2]; 8];
        for half in 0..2 {
            let l: [uint8x16_t; 4] = std::array::from_fn(|k| vld1q_u8(ql.add(64 * half + 16 * k)));
            let h: [uint8x16_t; 2] = std::array::from_fn(|k| vld1q_u8(qh.add(32 * half + 16 * k)));
            // Elements l, l + 32, l + 64, l + 96 of the half (see `quant::q6_k`): their
            // nibble, and bits 0–1, 2–3, 4–5, 6–7 of qh[l] moved to bits 4–5.
            let join = |n: uint8x16_t, hb: uint8x16_t| vreinterpretq_s8_u8(vorrq_u8(n, vandq_u8(hb, top)));
            for k in 0..2 {
                q[4 * half][k] = join(vandq_u8(l[k], low), vshlq_n_u8::<4>(h[k]));
                q[4 * half + 1][k] = join(vandq_u8(l[k + 2], low), vshlq_n_u8::<2>(h[k]));
                q[4 * half + 2][k] = join(vshrq_n_u8::<4>(l[k]), h[k]);
                q[4 * half + 3][k] = join(vshrq_n_u8::<4>(l[k + 2]), vshrq_n_u8::<2>(h[k]));
            }
        }
        let mut sc = [0i32; 16];
        for (g, s) in sc.iter_mut().enumerate() {
            *s = i32::from(*scales.add(g));
        }
        Unpacked { q, sc, m: [0; 8], d: f16_at(p.add(208)), dmin: 0.0 }
    }

    /// Lane `l` of sub-block `k` belongs to group `2k + l / 4`; then minus
    /// `32·(sc_2l·bsum_2l + sc_2l+1·bsum_2l+1)` per lane (`q6_k::vec_dot`).
    #[inline(always)]
    unsafe fn sumi<D: Dot>(u: &Unpacked, y: &BlockQ8K) -> (int32x4_t, int32x4_t) {
        let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
        for k in 0..8 {
            let (y0, y1) = y_sub(y, k);
            lo = vmlaq_n_s32(lo, D::dot(u.q[k][0], y0), u.sc[2 * k]);
            hi = vmlaq_n_s32(hi, D::dot(u.q[k][1], y1), u.sc[2 * k + 1]);
        }
        let offset: [i32; 8] = std::array::from_fn(|l| {
            u.sc[2 * l] * i32::from(y.bsums[2 * l]) + u.sc[2 * l + 1] * i32::from(y.bsums[2 * l + 1])
        });
        let off = |at: usize| vshlq_n_s32::<5>(vld1q_s32(offset.as_ptr().add(at)));
        (vsubq_s32(lo, off(0)), vsubq_s32(hi, off(4)))
    }
}

/// One tile in ggml's order: rows `r0..r0+R` × tokens `t0..t0+C`. `finish` turns a
/// row's and token's lane accumulators and minimum chains into the result.
#[inline(always)]
unsafe fn tile<F: KFormat, D: Dot, const R: usize, const C: usize>(
    w: &QMatrix,
    a: &[BlockQ8K],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / crate::QK_K;
    let zero = vdupq_n_f32(0.0);
    let (mut lo, mut hi) = ([[zero; C]; R], [[zero; C]; R]);
    // Q4_K's 4 minimum lanes; Q5_K uses lane 0 as its one chain.
    let mut mins = [[[0.0f32; 4]; C]; R];
    for b in 0..nb {
        let units: [Unpacked; R] =
            std::array::from_fn(|i| F::unpack(w.data().as_ptr().add((r0 + i) * w.row_size() + b * F::BYTES)));
        each_token!(c in 0..C => {
            let y = &a[(t0 + c) * nb + b];
            for i in 0..R {
                let u = &units[i];
                let (s0, s1) = F::sumi::<D>(u, y);
                let d = y.d * u.d;
                lo[i][c] = vfmaq_n_f32(lo[i][c], vcvtq_f32_s32(s0), d);
                hi[i][c] = vfmaq_n_f32(hi[i][c], vcvtq_f32_s32(s1), d);
                let dmin = -y.d * u.dmin;
                match F::MINS {
                    Mins::Lanes => {
                        let p = min_products(&u.m, y);
                        for k in 0..4 {
                            mins[i][c][k] = dmin.mul_add(p[k] as f32, mins[i][c][k]);
                        }
                    }
                    Mins::Chain => {
                        let total: i32 = min_products(&u.m, y).iter().sum();
                        mins[i][c][0] = dmin.mul_add(total as f32, mins[i][c][0]);
                    }
                    Mins::None => {}
                }
            }
        });
    }
    for i in 0..R {
        for c in 0..C {
            let v = hsum8(lo[i][c], hi[i][c]);
            let m = &mins[i][c];
            let v = match F::MINS {
                Mins::Lanes => v + ((m[0] + m[2]) + (m[1] + m[3])),
                Mins::Chain => v + m[0],
                Mins::None => v,
            };
            out.set(t0 + c, r0 + i, v);
        }
    }
}

/// How a format's minimums are added (see each format's scalar `vec_dot`).
#[derive(Clone, Copy)]
enum Mins {
    /// In 4 lanes of pairs of sub-blocks, added pairwise at the end (Q4_K).
    Lanes,
    /// Summed exactly per super-block into one chain (Q5_K).
    Chain,
    /// None (Q6_K's offset is in its lanes).
    None,
}

/// A kernel in ggml's order.
#[inline(always)]
unsafe fn ggml<F: KFormat, D: Dot>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8K(a) = acts else { unreachable!("an ARM64 kernel given the wrong activation layout") };
    drive_tiles!(rows, out.n_tokens, 1, 4, tile[F, D](w, a, out));
}

/// Row `r`'s super-block `b` of a Q4_K matrix, unpacked.
#[inline(always)]
unsafe fn q4k_at(w: &QMatrix, r: usize, b: usize) -> Unpacked {
    Q4K::unpack(w.data().as_ptr().add(r * w.row_size() + b * Q4K::BYTES))
}

/// One tile of Q4_K in the repacked order: per row and token one chain of whole
/// super-block sums and one of minimums, `acc − acc_m` at the end.
#[inline(always)]
unsafe fn tile_repacked<D: Dot, const R: usize, const C: usize>(
    w: &QMatrix,
    a: &[BlockQ8K],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / crate::QK_K;
    let (mut acc, mut acc_m) = ([[0.0f32; C]; R], [[0.0f32; C]; R]);
    for b in 0..nb {
        let units: [Unpacked; R] = std::array::from_fn(|i| q4k_at(w, r0 + i, b));
        each_token!(c in 0..C => {
            let y = &a[(t0 + c) * nb + b];
            for i in 0..R {
                let u = &units[i];
                let (s0, s1) = Q4K::sumi::<D>(u, y);
                let sum = vaddvq_s32(vaddq_s32(s0, s1));
                let mins: i32 = min_products(&u.m, y).iter().sum();
                acc[i][c] = (sum as f32).mul_add(u.d * y.d, acc[i][c]);
                acc_m[i][c] = (mins as f32).mul_add(u.dmin * y.d, acc_m[i][c]);
            }
        });
    }
    for i in 0..R {
        for c in 0..C {
            out.set(t0 + c, r0 + i, acc[i][c] - acc_m[i][c]);
        }
    }
}

/// Q4_K in the repacked order.
#[inline(always)]
unsafe fn repacked<D: Dot>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8K(a) = acts else { unreachable!("an ARM64 kernel given the wrong activation layout") };
    drive_tiles!(rows, out.n_tokens, 1, 4, tile_repacked[D](w, a, out));
}

/// One tile of Q4_K in the repacked order with `smmla`: 2 rows × 2 tokens per
/// instruction; other shapes (the edges) as [`tile_repacked`] does them.
#[inline(always)]
unsafe fn tile_repacked_mmla<const R: usize, const C: usize>(
    w: &QMatrix,
    a: &[BlockQ8K],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    if R != 2 || !C.is_multiple_of(2) {
        return tile_repacked::<Sdot, R, C>(w, a, out, r0, t0);
    }
    let nb = w.cols() / crate::QK_K;
    // Per pair of tokens, lanes [r0·t, r0·t+1, r1·t, r1·t+1].
    let (mut acc, mut acc_m) = ([vdupq_n_f32(0.0); 4], [vdupq_n_f32(0.0); 4]);
    for b in 0..nb {
        let (u0, u1) = (q4k_at(w, r0, b), q4k_at(w, r0 + 1, b));
        let dw = vcombine_f32(vdup_n_f32(u0.d), vdup_n_f32(u1.d));
        let mw = vcombine_f32(vdup_n_f32(u0.dmin), vdup_n_f32(u1.dmin));
        for p in 0..C / 2 {
            let (ya, yb) = (&a[(t0 + 2 * p) * nb + b], &a[(t0 + 2 * p + 1) * nb + b]);
            let mut sum = vdupq_n_s32(0);
            for j in 0..8 {
                let (w0, w1) = zip_halves(u0.q[j][0], u1.q[j][0]);
                let (w2, w3) = zip_halves(u0.q[j][1], u1.q[j][1]);
                let ((a0, a1), (b0, b1)) = (y_sub(ya, j), y_sub(yb, j));
                let (x0, x1) = zip_halves(a0, b0);
                let (x2, x3) = zip_halves(a1, b1);
                let mut s = smmla(vdupq_n_s32(0), w0, x0);
                s = smmla(s, w1, x1);
                s = smmla(s, w2, x2);
                s = smmla(s, w3, x3);
                let scale = vcombine_s32(vdup_n_s32(u0.sc[j]), vdup_n_s32(u1.sc[j]));
                sum = vmlaq_s32(sum, s, scale);
            }
            let mins = |u: &Unpacked, y: &BlockQ8K| min_products(&u.m, y).iter().sum::<i32>();
            let m = [mins(&u0, ya), mins(&u0, yb), mins(&u1, ya), mins(&u1, yb)];
            let dy =
                vcombine_f32(vset_lane_f32::<1>(yb.d, vdup_n_f32(ya.d)), vset_lane_f32::<1>(yb.d, vdup_n_f32(ya.d)));
            acc[p] = vfmaq_f32(acc[p], vcvtq_f32_s32(sum), vmulq_f32(dw, dy));
            acc_m[p] = vfmaq_f32(acc_m[p], vcvtq_f32_s32(vld1q_s32(m.as_ptr())), vmulq_f32(mw, dy));
        }
    }
    for p in 0..C / 2 {
        store_2x2(out, vsubq_f32(acc[p], acc_m[p]), r0, t0 + 2 * p);
    }
}

/// Q4_K in the repacked order with `smmla`.
#[inline(always)]
unsafe fn repacked_mmla(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8K(a) = acts else { unreachable!("an ARM64 kernel given the wrong activation layout") };
    drive_tiles!(rows, out.n_tokens, 2, 4, tile_repacked_mmla[](w, a, out));
}

entries!(q4_k_neon, q4_k_dotprod, ggml[Q4K]);
entries!(q4_kr_neon, q4_kr_dotprod, repacked[]; q4_kr_i8mm, repacked_mmla[]);
entries!(q5_k_neon, q5_k_dotprod, ggml[Q5K]);
entries!(q6_k_neon, q6_k_dotprod, ggml[Q6K]);
