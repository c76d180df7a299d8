//! AVX-512 kernels of the nibble formats (Q4_0, Q4_1, Q5_0): four blocks per step.
//!
//! A step gathers the 16 quant bytes of four blocks into one vector; its low nibbles
//! are the first 16 elements of each block, its high nibbles the last 16. The
//! activations are stored in the same order (per four blocks: the first halves,
//! then the second halves; see `act`), so two 8-bit dot products cover 128
//! weights and leave 4 i32 lanes per block. One permute spreads the blocks' scale
//! products to their lanes, then one conversion and one FMA per tile entry.
//!
//! Activations are signed for Q4_1 (its nibbles are the unsigned operand) and
//! stored as `q + 128` for Q4_0 and Q5_0, whose signed quants are the signed
//! operand; `128·Σw` is removed by starting the dot product at `−128·Σw`.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::avx512::dot;
use crate::x86::drive_tiles;

/// A nibble format as these kernels see it. A step reads the 4·`BYTES` bytes of
/// four blocks as two 64-byte vectors and picks 16-bit words out of them with
/// `vpermt2w` (every field of these blocks starts at an even offset).
pub(crate) trait Nibbles {
    /// Bytes per block.
    const BYTES: usize;
    /// Quants are unsigned and there is a minimum `m` next to `d` (Q4_1).
    const UNSIGNED: bool;
    /// Words of the four blocks' `qs`, in block order.
    const QS: [i16; 32];
    /// Words of `d` of the four blocks (then `m` for Q4_1).
    const SCALES: [i16; 32];
    /// Turns the raw nibbles (first halves, second halves) into quants (signed
    /// unless `UNSIGNED`); `a`, `b` are the step's two vectors.
    unsafe fn finish(lo: __m512i, hi: __m512i, a: __m512i, b: __m512i) -> (__m512i, __m512i);
}

/// `[f(0), …, f(31)]`, 0 past `n`.
const fn words(n: usize, f: [i16; 8], step: i16) -> [i16; 32] {
    let mut out = [0i16; 32];
    let mut k = 0;
    while k < n {
        let mut j = 0;
        while j < 8 {
            out[8 * k + j] = f[j] + step * k as i16;
            j += 1;
        }
        k += 1;
    }
    out
}

/// Q4_0: `q − 8`.
pub(crate) struct Q4_0;
impl Nibbles for Q4_0 {
    const BYTES: usize = 18;
    const UNSIGNED: bool = false;
    const QS: [i16; 32] = words(4, [1, 2, 3, 4, 5, 6, 7, 8], 9);
    const SCALES: [i16; 32] = words(1, [0, 9, 18, 27, 0, 0, 0, 0], 0);
    #[inline(always)]
    unsafe fn finish(lo: __m512i, hi: __m512i, _: __m512i, _: __m512i) -> (__m512i, __m512i) {
        let eight = _mm512_set1_epi8(8);
        (_mm512_sub_epi8(lo, eight), _mm512_sub_epi8(hi, eight))
    }
}

/// Q4_1: the nibbles as they are.
pub(crate) struct Q4_1;
impl Nibbles for Q4_1 {
    const BYTES: usize = 20;
    const UNSIGNED: bool = true;
    const QS: [i16; 32] = words(4, [2, 3, 4, 5, 6, 7, 8, 9], 10);
    const SCALES: [i16; 32] = words(1, [0, 10, 20, 30, 1, 11, 21, 31], 0);
    #[inline(always)]
    unsafe fn finish(lo: __m512i, hi: __m512i, _: __m512i, _: __m512i) -> (__m512i, __m512i) {
        (lo, hi)
    }
}

/// Q5_0: `(q | fifth bit·16) − 16`.
pub(crate) struct Q5_0;
impl Nibbles for Q5_0 {
    const BYTES: usize = 22;
    const UNSIGNED: bool = false;
    const QS: [i16; 32] = words(4, [3, 4, 5, 6, 7, 8, 9, 10], 11);
    const SCALES: [i16; 32] = words(1, [0, 11, 22, 33, 0, 0, 0, 0], 0);
    #[inline(always)]
    unsafe fn finish(lo: __m512i, hi: __m512i, a: __m512i, b: __m512i) -> (__m512i, __m512i) {
        // Bit j of block k's `qh` belongs to byte 16k + j of `lo` (j < 16) or of `hi`:
        // the low 16-bit halves of the four words, then the high halves.
        const QH: [i16; 32] = words(1, [1, 12, 23, 34, 2, 13, 24, 35], 0);
        let qh = _mm512_castsi512_si128(_mm512_permutex2var_epi16(a, _mm512_loadu_si512(QH.as_ptr().cast()), b));
        let mlo = _mm_cvtsi128_si64(qh) as u64;
        let mhi = _mm_extract_epi64::<1>(qh) as u64;
        let sixteen = _mm512_set1_epi8(16);
        (_mm512_mask_sub_epi8(lo, !mlo, lo, sixteen), _mm512_mask_sub_epi8(hi, !mhi, hi, sixteen))
    }
}

/// The two 64-byte vectors of the `n <= 4` blocks at `p` (zeros past them).
#[inline(always)]
unsafe fn step_bytes<F: Nibbles>(p: *const u8, n: usize) -> (__m512i, __m512i) {
    let len = n * F::BYTES;
    let mask = |bytes: usize| if bytes >= 64 { u64::MAX } else { (1u64 << bytes) - 1 };
    let a = _mm512_maskz_loadu_epi8(mask(len), p.cast());
    let b = _mm512_maskz_loadu_epi8(mask(len.saturating_sub(64)), p.add(64).cast());
    (a, b)
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile<F: Nibbles, const VNNI: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / 32;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let zero = _mm512_setzero_si512();
    let low = _mm512_set1_epi8(0x0F);
    let qs_idx = _mm512_loadu_si512(F::QS.as_ptr().cast());
    let sc_idx = _mm512_loadu_si512(F::SCALES.as_ptr().cast());
    // i32 lane L of a step belongs to block L / 4 of the step.
    let lane_block = _mm512_srli_epi32::<2>(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    let lane_min = _mm512_add_epi32(lane_block, _mm512_set1_epi32(4));
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut blk = 0;
    while blk < nb {
        let cnt = (nb - blk).min(4);
        let mut lo = [zero; R];
        let mut hi = [zero; R];
        let mut init = [zero; R];
        let mut dw = [_mm512_setzero_ps(); R];
        let mut mw = [_mm512_setzero_ps(); R];
        for i in 0..R {
            let (va, vb) = step_bytes::<F>(rows[i].add(blk * F::BYTES), cnt);
            let qs = _mm512_permutex2var_epi16(va, qs_idx, vb);
            let scales = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(va, sc_idx, vb)));
            dw[i] = _mm512_permutexvar_ps(lane_block, scales);
            if F::UNSIGNED {
                mw[i] = _mm512_permutexvar_ps(lane_min, scales);
            }
            (lo[i], hi[i]) =
                F::finish(_mm512_and_si512(qs, low), _mm512_and_si512(_mm512_srli_epi16::<4>(qs), low), va, vb);
            if !F::UNSIGNED {
                let ones = _mm512_set1_epi8(0x80u8 as i8);
                init[i] = _mm512_sub_epi32(zero, dot::<VNNI>(dot::<VNNI>(zero, ones, lo[i]), ones, hi[i]));
            }
        }
        for c in 0..C {
            let at = (t0 + c) * a.d_stride + blk;
            let da = _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(_mm_loadu_ps(a.d.as_ptr().add(at))));
            let s = if F::UNSIGNED {
                _mm512_maskz_permutexvar_ps(
                    0x1111,
                    lane_block,
                    _mm512_castps128_ps512(_mm_loadu_ps(a.s.as_ptr().add(at))),
                )
            } else {
                _mm512_setzero_ps()
            };
            let y = a.qs.as_ptr().add((t0 + c) * a.qs_stride + blk * 32);
            let ylo = _mm512_loadu_si512(y.cast());
            let yhi = _mm512_loadu_si512(y.add(64).cast());
            for i in 0..R {
                let p = if F::UNSIGNED {
                    dot::<VNNI>(dot::<VNNI>(zero, lo[i], ylo), hi[i], yhi)
                } else {
                    dot::<VNNI>(dot::<VNNI>(init[i], ylo, lo[i]), yhi, hi[i])
                };
                if F::UNSIGNED {
                    acc[i][c] = _mm512_fmadd_ps(mw[i], s, acc[i][c]);
                }
                acc[i][c] = _mm512_fmadd_ps(_mm512_mul_ps(dw[i], da), _mm512_cvtepi32_ps(p), acc[i][c]);
            }
        }
        blk += 4;
    }
    for (i, acc) in acc.iter().enumerate() {
        for (c, v) in acc.iter().enumerate() {
            out.set(t0 + c, r0 + i, _mm512_reduce_add_ps(*v));
        }
    }
}

macro_rules! entry {
    ($name:ident, $fmt:ty, $features:literal, $vnni:tt) => {
        /// AVX-512 nibble-format kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = $features)]
        unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 3, tile[$fmt, $vnni](w, a, out));
        }
    };
}

entry!(q4_0_plain, Q4_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_1_plain, Q4_1, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q5_0_plain, Q5_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_0_vnni, Q4_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q4_1_vnni, Q4_1, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q5_0_vnni, Q5_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);

/// The Q4_0 kernel, with or without VNNI.
pub(crate) unsafe fn gemm_q4_0<const VNNI: bool>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    if VNNI {
        q4_0_vnni(w, acts, rows, out)
    } else {
        q4_0_plain(w, acts, rows, out)
    }
}

/// The Q4_1 kernel, with or without VNNI.
pub(crate) unsafe fn gemm_q4_1<const VNNI: bool>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    if VNNI {
        q4_1_vnni(w, acts, rows, out)
    } else {
        q4_1_plain(w, acts, rows, out)
    }
}

/// The Q5_0 kernel, with or without VNNI.
pub(crate) unsafe fn gemm_q5_0<const VNNI: bool>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    if VNNI {
        q5_0_vnni(w, acts, rows, out)
    } else {
        q5_0_plain(w, acts, rows, out)
    }
}
