//! AVX-512 kernels of the K-quants (Q4_K, Q6_K) against Q8_K activations.
//!
//! One vector holds 64 quants. `vpmaddubsw` multiplies the unsigned weight quants
//! with the signed activations into i16 pairs, and `vpmaddwd` (or VNNI's `vpdpwssd`,
//! which also accumulates) applies the per-group scales as it widens to i32; the
//! integer sums of a super-block are then scaled once in f32. Minimums (Q4_K) and
//! the −32 offset (Q6_K) come from the activations' `bsums`.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::matmul::{Acts, Out, QMatrix};
use crate::quant::BlockQ8K;
use crate::x86::avx2::hsum;
use crate::x86::{drive_tiles, prefetch_ahead};

/// Row tile (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 4;

/// `acc + Σ a·b` over i16 pairs.
#[inline(always)]
unsafe fn dot16<const VNNI: bool>(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    if VNNI {
        _mm512_dpwssd_epi32(acc, a, b)
    } else {
        _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
    }
}

/// The f16 at `p` as f32.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(p.cast::<u16>().read_unaligned()))))
}

/// Q6_K tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile_q6_k<const VNNI: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &[BlockQ8K],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    const BYTES: usize = 210;
    let nb = w.cols() / 256;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let low = _mm512_set1_epi8(0x0F);
    let three = _mm512_set1_epi8(3);
    let shift_lo = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    let shift_hi = _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6);
    // i16 lane L of a 64-quant chunk covers quants 2L, 2L+1: group L / 8.
    let lane_group = _mm512_srli_epi16::<3>(_mm512_setr_epi32(
        0x0001_0000,
        0x0003_0002,
        0x0005_0004,
        0x0007_0006,
        0x0009_0008,
        0x000B_000A,
        0x000D_000C,
        0x000F_000E,
        0x0011_0010,
        0x0013_0012,
        0x0015_0014,
        0x0017_0016,
        0x0019_0018,
        0x001B_001A,
        0x001D_001C,
        0x001F_001E,
    ));
    for s in 0..nb {
        prefetch_ahead(rows[0], s * R * BYTES, R * BYTES);
        let mut sc = [_mm512_setzero_si512(); R];
        let mut d = [0.0f32; R];
        let ys: [&BlockQ8K; C] = std::array::from_fn(|c| a.get_unchecked((t0 + c) * nb + s));
        let mut isum = [[_mm512_setzero_si512(); C]; R];
        for i in 0..R {
            let p = rows[i].add(s * BYTES);
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192).cast()));
            sc[i] = _mm512_castsi256_si512(sc16);
            d[i] = f16_at(p.add(208));
            let sc32 = _mm256_slli_epi16::<5>(sc16);
            for c in 0..C {
                let bs = _mm256_loadu_si256(ys[c].bsums.as_ptr().cast());
                let corr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(sc32, bs));
                isum[i][c] = _mm512_zextsi256_si512(corr);
            }
        }
        for h in 0..2 {
            let mut w0 = [_mm512_setzero_si512(); R];
            let mut w1 = [_mm512_setzero_si512(); R];
            let g0 = _mm512_add_epi16(lane_group, _mm512_set1_epi16(8 * h as i16));
            let g1 = _mm512_add_epi16(g0, _mm512_set1_epi16(4));
            let mut sc0 = [_mm512_setzero_si512(); R];
            let mut sc1 = [_mm512_setzero_si512(); R];
            for i in 0..R {
                let p = rows[i].add(s * BYTES);
                let ql = _mm512_loadu_si512(p.add(64 * h).cast());
                let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(p.add(128 + 32 * h).cast()));
                let h0 = _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srlv_epi64(qh, shift_lo), three));
                let h1 = _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srlv_epi64(qh, shift_hi), three));
                w0[i] = _mm512_or_si512(_mm512_and_si512(ql, low), h0);
                w1[i] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), low), h1);
                sc0[i] = _mm512_permutexvar_epi16(g0, sc[i]);
                sc1[i] = _mm512_permutexvar_epi16(g1, sc[i]);
            }
            for c in 0..C {
                let y0 = _mm512_loadu_si512(ys[c].qs.as_ptr().add(128 * h).cast());
                let y1 = _mm512_loadu_si512(ys[c].qs.as_ptr().add(128 * h + 64).cast());
                for i in 0..R {
                    isum[i][c] = dot16::<VNNI>(isum[i][c], _mm512_maddubs_epi16(w0[i], y0), sc0[i]);
                    isum[i][c] = dot16::<VNNI>(isum[i][c], _mm512_maddubs_epi16(w1[i], y1), sc1[i]);
                }
            }
        }
        for i in 0..R {
            for c in 0..C {
                // Lane L of a 64-quant chunk is lane L % 8 of ggml's 8 (exact integers).
                let v = isum[i][c];
                let lanes = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
                let f = _mm256_set1_ps(ys[c].d * d[i]);
                acc[i][c] = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(lanes), acc[i][c]);
            }
        }
    }
    for i in 0..R {
        for c in 0..C {
            out.set(t0 + c, r0 + i, hsum(acc[i][c]));
        }
    }
}

macro_rules! entry {
    ($name:ident, $tile:ident, $features:literal, $vnni:tt) => {
        /// AVX-512 K-quant kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = $features)]
        unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8K(a) = acts else { unreachable!("K-quant kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 2, $tile[$vnni](w, a, out));
        }
    };
}

entry!(q6_k_plain, tile_q6_k, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q6_k_vnni, tile_q6_k, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);

/// The Q6_K kernel, with or without VNNI.
pub(crate) unsafe fn gemm_q6_k<const VNNI: bool>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    if VNNI {
        q6_k_vnni(w, acts, rows, out)
    } else {
        q6_k_plain(w, acts, rows, out)
    }
}
