//! AVX-512 kernel of Q4_K in the order of llama.cpp's repacked Q4_K kernels (used
//! for matrices whose row count is a multiple of 8, see `quant::order`): per output,
//! one f32 chain of scaled sums and one of minimum products, each advanced once per
//! super-block (llama.cpp's gemv order, which Seed uses for every token).
//!
//! Each 512-bit step covers 16 elements of each of the four sub-block pairs (128-bit
//! lane `j` for pair `j`), so after four steps lane `j` of a row's integer vector
//! holds only pair `j`'s partial sums. A reduction tree over four rows leaves lane
//! `4j + i` = the scaled sum of pair `j` of row `i`, the layout in which the minimum
//! products are computed too; then one 4-lane FMA per super-block advances the
//! chains of the four rows.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::matmul::{Acts, Out, QMatrix};
use crate::quant::q4_k::unpack_scales;
use crate::quant::BlockQ8K;
use crate::x86::{drive_tiles, prefetch_ahead};

/// Bytes per super-block.
const BYTES: usize = 144;

/// `acc + Σ a·b` over i16 pairs.
#[inline(always)]
unsafe fn dot16<const VNNI: bool>(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    if VNNI {
        _mm512_dpwssd_epi32(acc, a, b)
    } else {
        _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
    }
}

/// `v[idx]` for a constant index array.
#[inline(always)]
unsafe fn pick32(v: __m512i, idx: &[i32; 16]) -> __m512i {
    _mm512_permutexvar_epi32(_mm512_loadu_si512(idx.as_ptr().cast()), v)
}

/// Lane `4j + l` (128-bit lane `j`, element `l`) of the result: the sums of 128-bit
/// lane `j` of `v[l]`, for `l` in `0..4`.
#[inline(always)]
unsafe fn lane_sums(v: &[__m512i; 4]) -> __m512i {
    let pairs = |x: __m512i, y: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y));
    let quads = |x: __m512i, y: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
    quads(pairs(v[0], v[1]), pairs(v[2], v[3]))
}

/// One row's weights of a super-block: step `s` holds, in 128-bit lane `j`, the 16
/// quants `64j + 16s ..` (low nibbles for `s < 2`), and the scales: `sc[2j]` (for
/// steps 0, 1) and `sc[2j + 1]` (steps 2, 3) in lane `j`, as i16.
struct RowBlock {
    q: [__m512i; 4],
    sc: [__m512i; 2],
}

#[inline(always)]
unsafe fn row_block(p: *const u8, sc8: [u8; 8]) -> RowBlock {
    let low = _mm512_set1_epi8(0x0F);
    let q0 = _mm512_loadu_si512(p.add(16).cast());
    let q1 = _mm512_loadu_si512(p.add(80).cast());
    // Lane j: bytes 32j .. 32j + 16 (`even`) and 32j + 16 .. 32j + 32 (`odd`) of `qs`.
    let even = _mm512_shuffle_i64x2::<0b10_00_10_00>(q0, q1);
    let odd = _mm512_shuffle_i64x2::<0b11_01_11_01>(q0, q1);
    let q = [
        _mm512_and_si512(even, low),
        _mm512_and_si512(odd, low),
        _mm512_and_si512(_mm512_srli_epi16::<4>(even), low),
        _mm512_and_si512(_mm512_srli_epi16::<4>(odd), low),
    ];
    let sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(sc8))));
    const EVEN: [i16; 32] = spread_words(0);
    const ODD: [i16; 32] = spread_words(1);
    let sc = [
        _mm512_permutexvar_epi16(_mm512_loadu_si512(EVEN.as_ptr().cast()), sc16),
        _mm512_permutexvar_epi16(_mm512_loadu_si512(ODD.as_ptr().cast()), sc16),
    ];
    RowBlock { q, sc }
}

/// Word `w` (of 32) picks `2·(w / 8) + first`.
const fn spread_words(first: i16) -> [i16; 32] {
    let mut out = [0i16; 32];
    let mut w = 0;
    while w < 32 {
        out[w] = 2 * (w / 8) as i16 + first;
        w += 1;
    }
    out
}

/// One token's activations of a super-block in the steps' layout (lane `j` of step
/// `s`: quants `64j + 16s ..`).
#[inline(always)]
unsafe fn token_steps(y: &BlockQ8K) -> [__m512i; 4] {
    let a: [__m512i; 4] = std::array::from_fn(|j| _mm512_loadu_si512(y.qs.as_ptr().add(64 * j).cast()));
    let t0 = _mm512_shuffle_i64x2::<0b01_00_01_00>(a[0], a[1]);
    let t1 = _mm512_shuffle_i64x2::<0b01_00_01_00>(a[2], a[3]);
    let t2 = _mm512_shuffle_i64x2::<0b11_10_11_10>(a[0], a[1]);
    let t3 = _mm512_shuffle_i64x2::<0b11_10_11_10>(a[2], a[3]);
    [
        _mm512_shuffle_i64x2::<0b10_00_10_00>(t0, t1),
        _mm512_shuffle_i64x2::<0b11_01_11_01>(t0, t1),
        _mm512_shuffle_i64x2::<0b10_00_10_00>(t2, t3),
        _mm512_shuffle_i64x2::<0b11_01_11_01>(t2, t3),
    ]
}

/// The four 128-bit lanes of `v` added (exact).
#[inline(always)]
unsafe fn lanes_total(v: __m512i) -> __m128i {
    let h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C` (`R <= 4`).
#[inline(always)]
unsafe fn tile<const VNNI: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &[BlockQ8K],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    // i32 lane 4i + j of [row 0 | row 1 | row 2 | row 3] to lane 4j + i.
    const TRANSPOSE: [i32; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
    const PAIR_OF_LANE: [i32; 16] = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
    let nb = w.cols() / 256;
    // Rows past `R` repeat the last one (read, never written).
    let rows: [*const u8; 4] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i.min(R - 1)) * w.row_size()));
    let mut acc = [_mm_setzero_ps(); C];
    let mut acc_m = [_mm_setzero_ps(); C];
    for s in 0..nb {
        prefetch_ahead(rows[0], s * R * BYTES, R * BYTES);
        let ys: [&BlockQ8K; C] = std::array::from_fn(|c| a.get_unchecked((t0 + c) * nb + s));
        let steps: [[__m512i; 4]; C] = std::array::from_fn(|c| token_steps(ys[c]));
        let mut sums = [[_mm512_setzero_si512(); 4]; C];
        let mut mins = _mm512_setzero_si512();
        let mut d = [0u16; 8];
        for i in 0..4 {
            let p = rows[i].add(s * BYTES);
            let (sc8, m8) = unpack_scales(&*p.add(4).cast::<[u8; 12]>());
            d[i] = p.cast::<u16>().read_unaligned();
            d[4 + i] = p.add(2).cast::<u16>().read_unaligned();
            let m16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(m8))));
            mins = _mm512_mask_expand_epi32(mins, 0xF << (4 * i), m16);
            if i < R {
                let rb = row_block(p, sc8);
                for c in 0..C {
                    let mut v = _mm512_setzero_si512();
                    for k in 0..4 {
                        v = dot16::<VNNI>(v, _mm512_maddubs_epi16(rb.q[k], steps[c][k]), rb.sc[k / 2]);
                    }
                    sums[c][i] = v;
                }
            }
        }
        // [d0..d3, dmin0..dmin3] as f32.
        let scales = _mm256_cvtph_ps(_mm_loadu_si128(d.as_ptr().cast()));
        let mins = pick32(mins, &TRANSPOSE);
        for c in 0..C {
            let da = _mm_set1_ps(ys[c].d);
            let dd = _mm_mul_ps(_mm256_castps256_ps128(scales), da);
            let dm = _mm_mul_ps(_mm256_extractf128_ps::<1>(scales), da);
            let b = ys[c].bsums.as_ptr();
            let s8 = _mm_hadd_epi16(_mm_loadu_si128(b.cast()), _mm_loadu_si128(b.add(8).cast()));
            let imin = _mm512_madd_epi16(mins, pick32(_mm512_castsi128_si512(s8), &PAIR_OF_LANE));
            let isum = lane_sums(&sums[c]);
            acc[c] = _mm_fmadd_ps(_mm_cvtepi32_ps(lanes_total(isum)), dd, acc[c]);
            acc_m[c] = _mm_fmadd_ps(_mm_cvtepi32_ps(lanes_total(imin)), dm, acc_m[c]);
        }
    }
    for c in 0..C {
        let mut v = [0.0f32; 4];
        _mm_storeu_ps(v.as_mut_ptr(), _mm_sub_ps(acc[c], acc_m[c]));
        for (i, &y) in v.iter().enumerate().take(R) {
            out.set(t0 + c, r0 + i, y);
        }
    }
}

macro_rules! entry {
    ($name:ident, $features:literal, $vnni:tt) => {
        /// AVX-512 kernel of Q4_K in the repacked order (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8K(a) = acts else { unreachable!("K-quant kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 2, tile[$vnni](w, a, out));
        }
    };
}

entry!(q4_k_plain, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_k_vnni, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
