//! AVX2 kernels of the K-quants (Q4_K, Q5_K, Q6_K) against Q8_K activations: 32 quants
//! per vector, `vpmaddubsw` into i16 pairs, `vpmaddwd` with the group scales. The
//! integer lanes and float steps are ggml's (see `quant::order` and the scalar
//! `vec_dot`s): 8 lanes per super-block, Q4_K's minimums in 4 more, and for
//! repacked Q4_K matrices the whole-block sums of llama.cpp's gemv kernel.
//! (The AVX-512 levels use these kernels for Q4_K matrices that llama.cpp would
//! not repack.)

use std::arch::x86_64::*;
use std::ops::Range;

use crate::matmul::{Acts, Out, QMatrix};
use crate::quant::q4_k::unpack_scales;
use crate::quant::BlockQ8K;
use crate::x86::avx2::hsum;
use crate::x86::{drive_tiles, prefetch_ahead};

/// Row tile (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 4;

/// The f16 at `p` as f32.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(p.cast::<u16>().read_unaligned()))))
}

/// The minimum products of one super-block: lane `k` is `m_2k·S_2k + m_2k+1·S_2k+1`,
/// `S_j` the sum of the 32 activations of sub-block `j` (from `bsums`).
#[inline(always)]
pub(crate) unsafe fn min_products(m8: [u8; 8], y: &BlockQ8K) -> __m128i {
    let b = y.bsums.as_ptr();
    let sums = _mm_hadd_epi16(_mm_loadu_si128(b.cast()), _mm_loadu_si128(b.add(8).cast()));
    _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(m8))), sums)
}

/// Sum of the 4 i32 lanes (exact).
#[inline(always)]
pub(crate) unsafe fn hsum_i32x4(v: __m128i) -> i32 {
    let s = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s)))
}

/// Q4_K tile: rows `r0..r0+R` × tokens `t0..t0+C`, in the order of ggml's
/// `ggml_vec_dot_q4_K_q8_K` (`REPACKED == false`: 8 lanes of scaled sums, 4 lanes of
/// minimum products) or of llama.cpp's repacked kernels (see `quant::order`).
#[inline(always)]
unsafe fn tile_q4_k<const REPACKED: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &[BlockQ8K],
    out: &Out,
    r0: usize,
    t0: usize,
) {
    const BYTES: usize = 144;
    let nb = w.cols() / 256;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut acc_m = [[_mm_setzero_ps(); C]; R];
    // The two chains of the repacked order.
    let mut chain = [[0.0f32; C]; R];
    let mut chain_m = [[0.0f32; C]; R];
    let low = _mm256_set1_epi8(0x0F);
    for s in 0..nb {
        prefetch_ahead(rows[0], s * R * BYTES, R * BYTES);
        let ys: [&BlockQ8K; C] = std::array::from_fn(|c| a.get_unchecked((t0 + c) * nb + s));
        let mut sc = [[0i16; 8]; R];
        let mut d = [0.0f32; R];
        let mut dmin = [0.0f32; R];
        let mut mins = [[_mm_setzero_si128(); C]; R];
        for i in 0..R {
            let p = rows[i].add(s * BYTES);
            let (s8, m8) = unpack_scales(&*p.add(4).cast::<[u8; 12]>());
            sc[i] = s8.map(i16::from);
            d[i] = f16_at(p);
            dmin[i] = f16_at(p.add(2));
            for c in 0..C {
                mins[i][c] = min_products(m8, ys[c]);
            }
        }
        let mut isum = [[_mm256_setzero_si256(); C]; R];
        for j in 0..4 {
            let mut lo = [_mm256_setzero_si256(); R];
            let mut hi = [_mm256_setzero_si256(); R];
            for i in 0..R {
                let q = _mm256_loadu_si256(rows[i].add(s * BYTES + 16 + 32 * j).cast());
                lo[i] = _mm256_and_si256(q, low);
                hi[i] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low);
            }
            for c in 0..C {
                let y0 = _mm256_loadu_si256(ys[c].qs.as_ptr().add(64 * j).cast());
                let y1 = _mm256_loadu_si256(ys[c].qs.as_ptr().add(64 * j + 32).cast());
                for i in 0..R {
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[i], y0), _mm256_set1_epi16(sc[i][2 * j]));
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[i], y1), _mm256_set1_epi16(sc[i][2 * j + 1]));
                    isum[i][c] = _mm256_add_epi32(isum[i][c], _mm256_add_epi32(p0, p1));
                }
            }
        }
        for i in 0..R {
            for c in 0..C {
                if !REPACKED {
                    let f = _mm256_set1_ps(ys[c].d * d[i]);
                    acc[i][c] = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(isum[i][c]), acc[i][c]);
                    let fm = _mm_set1_ps(-ys[c].d * dmin[i]);
                    acc_m[i][c] = _mm_fmadd_ps(fm, _mm_cvtepi32_ps(mins[i][c]), acc_m[i][c]);
                } else {
                    let v = isum[i][c];
                    let sum = hsum_i32x4(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)));
                    chain[i][c] = (sum as f32).mul_add(d[i] * ys[c].d, chain[i][c]);
                    let m = hsum_i32x4(mins[i][c]);
                    chain_m[i][c] = (m as f32).mul_add(dmin[i] * ys[c].d, chain_m[i][c]);
                }
            }
        }
    }
    for i in 0..R {
        for c in 0..C {
            let y = if REPACKED {
                chain[i][c] - chain_m[i][c]
            } else {
                let m = acc_m[i][c];
                let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
                hsum(acc[i][c]) + _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)))
            };
            out.set(t0 + c, r0 + i, y);
        }
    }
}

/// Q5_K tile: rows `r0..r0+R` × tokens `t0..t0+C`, in the order of ggml's
/// `ggml_vec_dot_q5_K_q8_K`: 8 lanes of scaled sums per super-block, the minimum
/// products summed exactly into one scalar chain.
#[inline(always)]
unsafe fn tile_q5_k<const R: usize, const C: usize>(w: &QMatrix<'_>, a: &[BlockQ8K], out: &Out, r0: usize, t0: usize) {
    const BYTES: usize = 176;
    let nb = w.cols() / 256;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut summs = [[0.0f32; C]; R];
    let low = _mm256_set1_epi8(0x0F);
    let sixteen = _mm256_set1_epi8(0x10);
    for s in 0..nb {
        let ys: [&BlockQ8K; C] = std::array::from_fn(|c| a.get_unchecked((t0 + c) * nb + s));
        let mut sc = [[0i16; 8]; R];
        let mut d = [0.0f32; R];
        let mut dmin = [0.0f32; R];
        let mut hbits = [_mm256_setzero_si256(); R];
        for i in 0..R {
            let p = rows[i].add(s * BYTES);
            let (s8, m8) = unpack_scales(&*p.add(4).cast::<[u8; 12]>());
            sc[i] = s8.map(i16::from);
            d[i] = f16_at(p);
            dmin[i] = f16_at(p.add(2));
            hbits[i] = _mm256_loadu_si256(p.add(16).cast());
            for c in 0..C {
                let m = hsum_i32x4(min_products(m8, ys[c]));
                summs[i][c] = (-ys[c].d * dmin[i]).mul_add(m as f32, summs[i][c]);
            }
        }
        let mut isum = [[_mm256_setzero_si256(); C]; R];
        for j in 0..4 {
            let mut lo = [_mm256_setzero_si256(); R];
            let mut hi = [_mm256_setzero_si256(); R];
            for i in 0..R {
                let q = _mm256_loadu_si256(rows[i].add(s * BYTES + 48 + 32 * j).cast());
                // Bit 2j (2j + 1) of each qh byte, moved to bit 4.
                let h = hbits[i];
                let h0 = _mm256_and_si256(
                    _mm256_slli_epi16::<4>(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * j as i32))),
                    sixteen,
                );
                let h1 = _mm256_and_si256(
                    _mm256_slli_epi16::<4>(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * j as i32 + 1))),
                    sixteen,
                );
                lo[i] = _mm256_or_si256(_mm256_and_si256(q, low), h0);
                hi[i] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(q), low), h1);
            }
            for c in 0..C {
                let y0 = _mm256_loadu_si256(ys[c].qs.as_ptr().add(64 * j).cast());
                let y1 = _mm256_loadu_si256(ys[c].qs.as_ptr().add(64 * j + 32).cast());
                for i in 0..R {
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[i], y0), _mm256_set1_epi16(sc[i][2 * j]));
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[i], y1), _mm256_set1_epi16(sc[i][2 * j + 1]));
                    isum[i][c] = _mm256_add_epi32(isum[i][c], _mm256_add_epi32(p0, p1));
                }
            }
        }
        for i in 0..R {
            for c in 0..C {
                let f = _mm256_set1_ps(ys[c].d * d[i]);
                acc[i][c] = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(isum[i][c]), acc[i][c]);
            }
        }
    }
    for i in 0..R {
        for c in 0..C {
            out.set(t0 + c, r0 + i, hsum(acc[i][c]) + summs[i][c]);
        }
    }
}

/// Q6_K tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile_q6_k<const R: usize, const C: usize>(w: &QMatrix<'_>, a: &[BlockQ8K], out: &Out, r0: usize, t0: usize) {
    const BYTES: usize = 210;
    let nb = w.cols() / 256;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let low = _mm256_set1_epi8(0x0F);
    let three = _mm256_set1_epi8(3);
    for s in 0..nb {
        prefetch_ahead(rows[0], s * R * BYTES, R * BYTES);
        let ys: [&BlockQ8K; C] = std::array::from_fn(|c| a.get_unchecked((t0 + c) * nb + s));
        let mut sc = [[0i8; 16]; R];
        let mut d = [0.0f32; R];
        let mut isum = [[_mm256_setzero_si256(); C]; R];
        for i in 0..R {
            let p = rows[i].add(s * BYTES);
            sc[i] = p.add(192).cast::<[i8; 16]>().read_unaligned();
            d[i] = f16_at(p.add(208));
            let sc32 = _mm256_slli_epi16::<5>(_mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192).cast())));
            for c in 0..C {
                let bs = _mm256_loadu_si256(ys[c].bsums.as_ptr().cast());
                isum[i][c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(sc32, bs));
            }
        }
        for h in 0..2 {
            // Quarter `k` of this half: quants 128h + 32k .. +32, groups 8h + 2k, 8h + 2k + 1.
            let mut wq = [[_mm256_setzero_si256(); 4]; R];
            for i in 0..R {
                let p = rows[i].add(s * BYTES);
                let ql0 = _mm256_loadu_si256(p.add(64 * h).cast());
                let ql1 = _mm256_loadu_si256(p.add(64 * h + 32).cast());
                let qh = _mm256_loadu_si256(p.add(128 + 32 * h).cast());
                let top = |shift: __m256i| _mm256_slli_epi16::<4>(_mm256_and_si256(shift, three));
                wq[i][0] = _mm256_or_si256(_mm256_and_si256(ql0, low), top(qh));
                wq[i][1] = _mm256_or_si256(_mm256_and_si256(ql1, low), top(_mm256_srli_epi16::<2>(qh)));
                wq[i][2] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low),
                    top(_mm256_srli_epi16::<4>(qh)),
                );
                wq[i][3] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low),
                    top(_mm256_srli_epi16::<6>(qh)),
                );
            }
            for k in 0..4 {
                for c in 0..C {
                    let y = _mm256_loadu_si256(ys[c].qs.as_ptr().add(128 * h + 32 * k).cast());
                    for i in 0..R {
                        let g = 8 * h + 2 * k;
                        let scale = _mm256_set_m128i(
                            _mm_set1_epi16(i16::from(sc[i][g + 1])),
                            _mm_set1_epi16(i16::from(sc[i][g])),
                        );
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wq[i][k], y), scale);
                        isum[i][c] = _mm256_add_epi32(isum[i][c], p);
                    }
                }
            }
        }
        for i in 0..R {
            for c in 0..C {
                let f = _mm256_set1_ps(d[i] * ys[c].d);
                acc[i][c] = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(isum[i][c]), acc[i][c]);
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
    ($name:ident, $tile:ident [$($g:tt),*]) => {
        /// AVX2 K-quant kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8K(a) = acts else { unreachable!("K-quant kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 2, 2, $tile [$($g),*] (w, a, out));
        }
    };
}

entry!(gemm_q4_k, tile_q4_k[false]);
entry!(gemm_q4_k_repacked, tile_q4_k[true]);
entry!(gemm_q5_k, tile_q5_k[]);
entry!(gemm_q6_k, tile_q6_k[]);
