//! AVX-512 kernel of Q4_0 in the order of llama.cpp's repacked Q4_0 kernels (used
//! for matrices whose row count is a multiple of 8, see `quant::order`): per output,
//! one f32 chain, one fused multiply-add of each block's whole integer sum.
//!
//! The integer work is that of the 8-lane kernel (`avx512`): one vector per block of
//! two rows and one token, 8 partial sums per row. A reduction tree then turns the
//! eight vectors of a 4 × 4 tile into one whose lane `4i + c` is the block sum of
//! row `i`, token `c`, so that one conversion and one FMA advance all 16 chains.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::avx512::{dot, pick, scales4, Format, Q4_0, SPREAD_D};
use crate::x86::{drive_tiles, prefetch_ahead};

/// The sums of the two 8-lane halves of each of `p[0..8]`: lane `4m + n` holds half
/// `m % 2` of `p[n + 4·(m / 2)]`.
#[inline(always)]
unsafe fn half_sums(p: &[__m512i; 8]) -> __m512i {
    let pairs = |x: __m512i, y: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y));
    let quads = |x: __m512i, y: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
    // Lane j (128 bits) of `low`: the sums of lane j of p[0], p[1], p[2], p[3].
    let low = quads(pairs(p[0], p[1]), pairs(p[2], p[3]));
    let high = quads(pairs(p[4], p[5]), pairs(p[6], p[7]));
    let even = _mm512_shuffle_i32x4::<0b10_00_10_00>(low, high);
    let odd = _mm512_shuffle_i32x4::<0b11_01_11_01>(low, high);
    _mm512_add_epi32(even, odd)
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C` (`R, C <= 4`).
#[inline(always)]
unsafe fn tile<const VNNI: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    const BYTES: usize = Q4_0::BYTES;
    let pairs = R.div_ceil(2);
    let nb = w.cols() / 32;
    // Rows past `R` repeat the last one (read, never written).
    let rows: [*const u8; 4] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i.min(R - 1)) * w.row_size()));
    let mut acc = _mm512_setzero_ps();
    for b in 0..nb {
        prefetch_ahead(rows[0], b * R * BYTES, R * BYTES);
        let at: [*const u8; 4] = rows.map(|r| r.add(b * BYTES));
        let mut wq = [_mm512_setzero_si512(); 2];
        for p in 0..pairs {
            wq[p] = Q4_0::pair(at[2 * p], at[2 * p + 1]);
        }
        let mut prods = [_mm512_setzero_si512(); 8];
        for c in 0..C {
            let t = t0 + c;
            let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(a.qs.as_ptr().add(t * a.qs_stride + b * 32).cast()));
            let init = _mm512_broadcast_i64x4(_mm256_loadu_si256(a.g.as_ptr().add(t * a.d_stride + 8 * b).cast()));
            for p in 0..pairs {
                prods[4 * p + c] = dot::<VNNI>(init, wq[p], y);
            }
        }
        let da = _mm512_broadcast_f32x4(_mm_loadu_ps(a.dt.as_ptr().add(b * a.t_stride + t0)));
        let dd = _mm512_mul_ps(pick(scales4(at), &SPREAD_D), da);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(half_sums(&prods)), dd, acc);
    }
    let mut lanes = [0.0f32; 16];
    _mm512_storeu_ps(lanes.as_mut_ptr(), acc);
    for i in 0..R {
        for c in 0..C {
            out.set(t0 + c, r0 + i, lanes[4 * i + c]);
        }
    }
}

macro_rules! entry {
    ($name:ident, $features:literal, $vnni:tt) => {
        /// AVX-512 kernel of Q4_0 in the repacked order (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 4, tile[$vnni](w, a, out));
        }
    };
}

entry!(q4_0_plain, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_0_vnni, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
