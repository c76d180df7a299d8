//! AVX2 kernels of the 32-element formats (Q4_0, Q4_1, Q5_0, Q8_0), one block per
//! 256-bit vector, for x86-64 CPUs without AVX-512 (and for Q8_0 on AVX-512 CPUs
//! without VNNI). Activations are signed Q8 values; signed×signed products use the
//! `|w|`, `sign(y, w)` trick so that `vpmaddubsw` can take them.
//!
//! The arithmetic is ggml's own (see `quant::order`): the 8 i32 lanes of a block's
//! dot product are lane `l` of ggml's, each scaled and added with one FMA per block.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::{drive_tiles, prefetch_ahead};

/// Row tile (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 4;

/// A 32-element weight format as the AVX2 kernels see it.
trait Legacy {
    /// Bytes per block.
    const BYTES: usize;
    /// Quants are unsigned and there is a minimum `m` next to `d` (Q4_1).
    const UNSIGNED: bool;
    /// The 32 quants of the block at `p`, in element order (signed unless `UNSIGNED`).
    unsafe fn quants(p: *const u8) -> __m256i;
}

/// The 32 nibbles of the 16 bytes at `p`, in element order.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let b = _mm_loadu_si128(p.cast());
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(b), b);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// 0xFF in byte `j` where bit `j` of `bits` is set.
#[inline(always)]
unsafe fn bytes_from_bits(bits: u32) -> __m256i {
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
}

struct Q4_0;
impl Legacy for Q4_0 {
    const BYTES: usize = 18;
    const UNSIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8))
    }
}

struct Q4_1;
impl Legacy for Q4_1 {
    const BYTES: usize = 20;
    const UNSIGNED: bool = true;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        nibbles(p.add(4))
    }
}

struct Q5_0;
impl Legacy for Q5_0 {
    const BYTES: usize = 22;
    const UNSIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        let high = bytes_from_bits(p.add(2).cast::<u32>().read_unaligned());
        // (nibble | bit·16) − 16 = nibble − 16 where the bit is clear.
        _mm256_sub_epi8(nibbles(p.add(6)), _mm256_andnot_si256(high, _mm256_set1_epi8(16)))
    }
}

struct Q8_0;
impl Legacy for Q8_0 {
    const BYTES: usize = 34;
    const UNSIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p.add(2).cast())
    }
}

/// The f16 at `p` as f32.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(p.cast::<u16>().read_unaligned()))))
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile<F: Legacy, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / 32;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut mins = [[0.0f32; C]; R];
    for b in 0..nb {
        prefetch_ahead(rows[0], b * R * F::BYTES, R * F::BYTES);
        let mut wq = [_mm256_setzero_si256(); R];
        let mut dw = [_mm256_setzero_ps(); R];
        for i in 0..R {
            let p = rows[i].add(b * F::BYTES);
            wq[i] = F::quants(p);
            dw[i] = _mm256_set1_ps(f16_at(p));
            if F::UNSIGNED {
                let m = f16_at(p.add(2));
                for c in 0..C {
                    mins[i][c] = m.mul_add(*a.s.get_unchecked((t0 + c) * a.d_stride + b), mins[i][c]);
                }
            }
        }
        for c in 0..C {
            let y = _mm256_loadu_si256(a.qs.as_ptr().add((t0 + c) * a.qs_stride + b * 32).cast());
            let da = _mm256_set1_ps(*a.d.get_unchecked((t0 + c) * a.d_stride + b));
            for i in 0..R {
                let p16 = if F::UNSIGNED {
                    _mm256_maddubs_epi16(wq[i], y)
                } else {
                    _mm256_maddubs_epi16(_mm256_sign_epi8(wq[i], wq[i]), _mm256_sign_epi8(y, wq[i]))
                };
                let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                acc[i][c] = _mm256_fmadd_ps(_mm256_mul_ps(dw[i], da), p, acc[i][c]);
            }
        }
    }
    for i in 0..R {
        for c in 0..C {
            out.set(t0 + c, r0 + i, hsum(acc[i][c]) + mins[i][c]);
        }
    }
}

/// Q4_0 tile in the order of llama.cpp's repacked kernels (see `quant::order`): one
/// f32 chain per output, one FMA of each block's whole integer sum.
#[inline(always)]
unsafe fn tile_repacked<const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / 32;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[0.0f32; C]; R];
    for b in 0..nb {
        prefetch_ahead(rows[0], b * R * Q4_0::BYTES, R * Q4_0::BYTES);
        let mut wq = [_mm256_setzero_si256(); R];
        let mut dw = [0.0f32; R];
        for i in 0..R {
            let p = rows[i].add(b * Q4_0::BYTES);
            wq[i] = Q4_0::quants(p);
            dw[i] = f16_at(p);
        }
        for c in 0..C {
            let y = _mm256_loadu_si256(a.qs.as_ptr().add((t0 + c) * a.qs_stride + b * 32).cast());
            let da = *a.d.get_unchecked((t0 + c) * a.d_stride + b);
            for i in 0..R {
                let p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(wq[i], wq[i]), _mm256_sign_epi8(y, wq[i]));
                let sum = hsum_i32(_mm256_madd_epi16(p16, ones));
                acc[i][c] = (sum as f32).mul_add(dw[i] * da, acc[i][c]);
            }
        }
    }
    for i in 0..R {
        for c in 0..C {
            out.set(t0 + c, r0 + i, acc[i][c]);
        }
    }
}

/// Sum of the 8 i32 lanes (exact).
#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s)))
}

/// Sum of the 8 lanes, paired as ggml's `hsum_float_8` (see `quant::order::hsum8`).
#[inline(always)]
pub(crate) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

macro_rules! entry {
    ($name:ident, $fmt:ty) => {
        /// AVX2 kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX2 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 2, tile[$fmt](w, a, out));
        }
    };
}

entry!(gemm_q4_0, Q4_0);

/// AVX2 kernel of Q4_0 in the repacked order.
///
/// # Safety
/// See [`crate::matmul::GemmFn`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemm_q4_0_repacked(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8(a) = acts else { unreachable!("AVX2 kernel given the wrong activation layout") };
    drive_tiles!(rows, out.n_tokens, 4, 2, tile_repacked[](w, a, out));
}
entry!(gemm_q4_1, Q4_1);
entry!(gemm_q5_0, Q5_0);
entry!(gemm_q8_0, Q8_0);
