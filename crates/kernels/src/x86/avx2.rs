//! AVX2 kernels of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), one block per
//! 256-bit vector, for x86-64 CPUs without AVX-512 (and for Q8_0 on AVX-512 CPUs
//! without VNNI). Activations are signed Q8 values; signed×signed products use the
//! `|w|`, `sign(y, w)` trick so that `vpmaddubsw` can take them.
//!
//! The arithmetic is ggml's own (see `quant::order`): the 8 i32 lanes of a block's
//! dot product are lane `l` of ggml's, each scaled and added with one FMA per block.
//!
//! Each kernel is also compiled for the AVX-VNNI level (`_vex`: AVX-VNNI's
//! `vpdpbusd`; `_evex`: the same instruction from AVX-512 VNNI + VL, for CPUs that
//! have that instead). `vpdpbusd` adds each group of four u8×i8 products into an
//! i32 lane, which is exactly what `vpmaddubsw` then `vpmaddwd` by ones gives here
//! (no pair of products reaches `vpmaddubsw`'s i16 saturation: |w| ≤ 128, |y| ≤ 127),
//! so every level gives the same bits.

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
    /// Quants are unsigned and there is a minimum `m` next to `d` (Q4_1, Q5_1).
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
pub(crate) unsafe fn bytes_from_bits(bits: u32) -> __m256i {
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

struct Q5_1;
impl Legacy for Q5_1 {
    const BYTES: usize = 24;
    const UNSIGNED: bool = true;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        let high = bytes_from_bits(p.add(4).cast::<u32>().read_unaligned());
        // nibble | bit·16: 0..32, so `vpmaddubsw`'s pair sums stay below 2·31·127.
        _mm256_or_si256(nibbles(p.add(8)), _mm256_and_si256(high, _mm256_set1_epi8(16)))
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

/// How the i32 lanes of u8×i8 products are formed: `vpmaddubsw` + `vpmaddwd` (AVX2),
/// or one `vpdpbusd` (VEX from AVX-VNNI, or EVEX from AVX-512 VNNI + VL).
pub(crate) const MADDUBS: u8 = 0;
pub(crate) const VNNI_VEX: u8 = 1;
pub(crate) const VNNI_EVEX: u8 = 2;

/// Per i32 lane `l`: the sum of the four products `u[4l+k] · s[4l+k]` (u unsigned, s
/// signed), formed as `V` says; the same value whichever `V` (see the module docs).
#[inline(always)]
pub(crate) unsafe fn dot_u8i8<const V: u8>(u: __m256i, s: __m256i) -> __m256i {
    match V {
        VNNI_VEX => _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s),
        VNNI_EVEX => _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s),
        _ => _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)),
    }
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile<F: Legacy, const V: u8, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / 32;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
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
                let p32 = if F::UNSIGNED {
                    dot_u8i8::<V>(wq[i], y)
                } else {
                    dot_u8i8::<V>(_mm256_sign_epi8(wq[i], wq[i]), _mm256_sign_epi8(y, wq[i]))
                };
                let p = _mm256_cvtepi32_ps(p32);
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
unsafe fn tile_repacked<const V: u8, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / 32;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
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
                let sum = hsum_i32(dot_u8i8::<V>(_mm256_sign_epi8(wq[i], wq[i]), _mm256_sign_epi8(y, wq[i])));
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
pub(crate) unsafe fn hsum_i32(v: __m256i) -> i32 {
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

/// The three entry points of one tile function: AVX2, AVX-VNNI (VEX) and AVX-512
/// VNNI on 256-bit registers (EVEX).
macro_rules! entries {
    ($tile:ident [$($g:ty),*], $plain:ident, $vex:ident, $evex:ident) => {
        /// AVX2 kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $plain(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX2 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 2, $tile[$($g,)* MADDUBS](w, a, out));
        }

        /// AVX-VNNI kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`]; the CPU must have AVX-VNNI.
        #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
        pub(crate) unsafe fn $vex(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX2 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 2, $tile[$($g,)* VNNI_VEX](w, a, out));
        }

        /// The AVX-VNNI kernel with AVX-512 VNNI's encoding (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`]; the CPU must have AVX-512 VNNI and VL.
        #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
        pub(crate) unsafe fn $evex(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX2 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 2, $tile[$($g,)* VNNI_EVEX](w, a, out));
        }
    };
}

entries!(tile[Q4_0], gemm_q4_0, gemm_q4_0_vex, gemm_q4_0_evex);
entries!(tile_repacked[], gemm_q4_0_repacked, gemm_q4_0_repacked_vex, gemm_q4_0_repacked_evex);
entries!(tile[Q4_1], gemm_q4_1, gemm_q4_1_vex, gemm_q4_1_evex);
entries!(tile[Q5_0], gemm_q5_0, gemm_q5_0_vex, gemm_q5_0_evex);
entries!(tile[Q5_1], gemm_q5_1, gemm_q5_1_vex, gemm_q5_1_evex);
entries!(tile[Q8_0], gemm_q8_0, gemm_q8_0_vex, gemm_q8_0_evex);
