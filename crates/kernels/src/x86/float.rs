//! AVX2 and AVX-512 kernels of the float weight types (F32, F16, BF16). The
//! activations arrive as f32 already rounded to the weight type, so a product of
//! two converted values is exactly ggml's; sums are in f32 vector lanes.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::matmul::{Acts, GemmFn, Out, QMatrix};
use crate::x86::avx2::hsum;
use crate::x86::{drive_tiles, prefetch_ahead};
use crate::GgmlType;

/// Row tile (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 4;

/// A float weight type as the kernels see it.
trait Float {
    /// Bytes per element.
    const BYTES: usize;
    /// 16 elements at `p` (those of `mask` only; zeros elsewhere) as f32.
    unsafe fn load16(p: *const u8, mask: __mmask16) -> __m512;
    /// 8 elements at `p` as f32.
    unsafe fn load8(p: *const u8) -> __m256;
    /// The element at `p` as f32.
    unsafe fn load1(p: *const u8) -> f32;
}

struct F32;
impl Float for F32 {
    const BYTES: usize = 4;
    #[inline(always)]
    unsafe fn load16(p: *const u8, mask: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(mask, p.cast())
    }
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_loadu_ps(p.cast())
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        p.cast::<f32>().read_unaligned()
    }
}

struct F16;
impl Float for F16 {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load16(p: *const u8, mask: __mmask16) -> __m512 {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.cast()))
    }
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(p.cast::<u16>().read_unaligned()))))
    }
}

struct BF16;
impl Float for BF16 {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load16(p: *const u8, mask: __mmask16) -> __m512 {
        let h = _mm256_maskz_loadu_epi16(mask, p.cast());
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        let h = _mm_loadu_si128(p.cast());
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        f32::from_bits(u32::from(p.cast::<u16>().read_unaligned()) << 16)
    }
}

/// AVX-512 tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile512<F: Float, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    x: &[f32],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let n = w.cols();
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let xs: [*const f32; C] = std::array::from_fn(|c| x.as_ptr().add((t0 + c) * n));
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut k = 0;
    while k < n {
        let mask: __mmask16 = if n - k >= 16 { 0xFFFF } else { (1u16 << (n - k)) - 1 };
        prefetch_ahead(rows[0], R * k * F::BYTES, R * 16 * F::BYTES);
        let wv: [__m512; R] = std::array::from_fn(|i| F::load16(rows[i].add(k * F::BYTES), mask));
        for c in 0..C {
            let xv = _mm512_maskz_loadu_ps(mask, xs[c].add(k));
            for i in 0..R {
                acc[i][c] = _mm512_fmadd_ps(wv[i], xv, acc[i][c]);
            }
        }
        k += 16;
    }
    for i in 0..R {
        for c in 0..C {
            out.set(t0 + c, r0 + i, _mm512_reduce_add_ps(acc[i][c]));
        }
    }
}

/// AVX2 tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile256<F: Float, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    x: &[f32],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let n = w.cols();
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let xs: [*const f32; C] = std::array::from_fn(|c| x.as_ptr().add((t0 + c) * n));
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut k = 0;
    while k + 8 <= n {
        prefetch_ahead(rows[0], R * k * F::BYTES, R * 8 * F::BYTES);
        let wv: [__m256; R] = std::array::from_fn(|i| F::load8(rows[i].add(k * F::BYTES)));
        for c in 0..C {
            let xv = _mm256_loadu_ps(xs[c].add(k));
            for i in 0..R {
                acc[i][c] = _mm256_fmadd_ps(wv[i], xv, acc[i][c]);
            }
        }
        k += 8;
    }
    for i in 0..R {
        for c in 0..C {
            let mut s = hsum(acc[i][c]);
            for j in k..n {
                s += F::load1(rows[i].add(j * F::BYTES)) * *xs[c].add(j);
            }
            out.set(t0 + c, r0 + i, s);
        }
    }
}

macro_rules! entry {
    ($name:ident, $fmt:ty, $tile:ident, $features:literal, $ct:literal) => {
        /// Float kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = $features)]
        unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::F32(x) = acts else { unreachable!("float kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, $ct, $tile[$fmt](w, x, out));
        }
    };
}

entry!(f32_avx512, F32, tile512, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", 4);
entry!(f16_avx512, F16, tile512, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", 4);
entry!(bf16_avx512, BF16, tile512, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", 4);
entry!(f32_avx2, F32, tile256, "avx2,fma,f16c", 2);
entry!(f16_avx2, F16, tile256, "avx2,fma,f16c", 2);
entry!(bf16_avx2, BF16, tile256, "avx2,fma,f16c", 2);

/// The AVX-512 kernel of a float type.
pub(crate) fn avx512_gemm(ty: GgmlType) -> GemmFn {
    match ty {
        GgmlType::F16 => f16_avx512,
        GgmlType::BF16 => bf16_avx512,
        _ => f32_avx512,
    }
}

/// The AVX2 kernel of a float type.
pub(crate) fn avx2_gemm(ty: GgmlType) -> GemmFn {
    match ty {
        GgmlType::F16 => f16_avx2,
        GgmlType::BF16 => bf16_avx2,
        _ => f32_avx2,
    }
}
