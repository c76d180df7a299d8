//! SIMD quantizers of activations, bit-identical to the scalar ones in `act`.

use std::arch::x86_64::*;

use half::f16;

use crate::act::TokenOut;
use crate::quant::{BlockQ8K, QK};
use crate::x86::avx2::hsum_i32;
use crate::QK_K;

/// AVX-512 version of `act::quantize_row_scalar`.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL. Slices as in `quantize_row_scalar`:
/// `out.q.len() >= x.len()`, `out.d.len() == out.s.len() >= x.len() / 32`,
/// `out.g.len() >= x.len() / 4`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn q8_row_avx512(x: &[f32], out: TokenOut<'_>, shift: u32) {
    let nb = x.len() / QK;
    assert!(out.q.len() >= nb * QK && out.d.len() >= nb && out.s.len() == out.d.len() && out.g.len() >= 8 * nb);
    out.q.fill(0);
    out.g.fill(0);
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    let count = _mm_cvtsi32_si128(shift as i32);
    for b in 0..nb {
        // SAFETY: `b < nb`, so the 32 floats at `32·b` are inside `x`.
        let (v0, v1) =
            unsafe { (_mm512_loadu_ps(x.as_ptr().add(QK * b)), _mm512_loadu_ps(x.as_ptr().add(QK * b + 16))) };
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        let scale = amax / 127.0;
        let id = _mm512_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        let i0 = _mm512_cvt_roundps_epi32::<RNE>(_mm512_mul_ps(v0, id));
        let i1 = _mm512_cvt_roundps_epi32::<RNE>(_mm512_mul_ps(v1, id));
        let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
        let q = _mm256_set_m128i(_mm512_cvtsepi32_epi8(i1), _mm512_cvtsepi32_epi8(i0));
        // Sums of each 4 quants (exact: `vpmaddubsw` of 1·q cannot saturate).
        let groups = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
        let corr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_sll_epi32(groups, count));
        // SAFETY: `b < nb`: 32 bytes at `32·b` of `q`, 8 i32 at `8·b` of `g` (asserted above).
        unsafe {
            _mm256_storeu_si256(out.q.as_mut_ptr().add(QK * b).cast(), q);
            _mm256_storeu_si256(out.g.as_mut_ptr().add(8 * b).cast(), corr);
        }
        out.d[b] = f16::from_f32(scale).to_f32();
        out.s[b] = f16::from_f32(scale * sum as f32).to_f32();
    }
    out.d[nb..].fill(0.0);
    out.s[nb..].fill(0.0);
}

/// AVX-512 version of [`crate::quant::q8_k::quantize_row_q8_k`], bit for bit.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn q8k_row_avx512(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(x.len(), y.len() * QK_K);
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        // SAFETY: `block` has 256 floats: 16 loads of 16.
        let v: [__m512; 16] = std::array::from_fn(|g| unsafe { _mm512_loadu_ps(block.as_ptr().add(16 * g)) });
        let amax = _mm512_reduce_max_ps(v.iter().fold(_mm512_setzero_ps(), |m, &x| _mm512_max_ps(m, _mm512_abs_ps(x))));
        if amax == 0.0 {
            *out = BlockQ8K::default();
            continue;
        }
        // The first element of largest magnitude, with its sign (ggml's `max`).
        let mut max = amax;
        for (g, &x) in v.iter().enumerate() {
            let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_abs_ps(x), _mm512_set1_ps(amax));
            if hit != 0 {
                max = block[16 * g + hit.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let vs = _mm512_set1_ps(iscale);
        const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        for (g, &x) in v.iter().enumerate() {
            let q = _mm512_min_epi32(_mm512_cvt_roundps_epi32::<RNE>(_mm512_mul_ps(vs, x)), _mm512_set1_epi32(127));
            out.bsums[g] = _mm512_reduce_add_epi32(q) as i16;
            // SAFETY: 16 bytes at `16·g` of the 256-byte `qs`.
            unsafe { _mm_storeu_si128(out.qs.as_mut_ptr().add(16 * g).cast(), _mm512_cvtsepi32_epi8(q)) };
        }
        out.d = 1.0 / iscale;
    }
}

/// AVX2 version of `act::quantize_row_scalar`, bit for bit.
///
/// # Safety
/// The CPU must support AVX2 and F16C. Slices as in [`q8_row_avx512`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q8_row_avx2(x: &[f32], out: TokenOut<'_>, shift: u32) {
    let nb = x.len() / QK;
    assert!(out.q.len() >= nb * QK && out.d.len() >= nb && out.s.len() == out.d.len() && out.g.len() >= 8 * nb);
    out.q.fill(0);
    out.g.fill(0);
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    let count = _mm_cvtsi32_si128(shift as i32);
    let sign = _mm256_set1_ps(-0.0);
    for b in 0..nb {
        // SAFETY: `b < nb`, so the 32 floats at `32·b` are inside `x`.
        let v: [__m256; 4] = std::array::from_fn(|k| unsafe { _mm256_loadu_ps(x.as_ptr().add(QK * b + 8 * k)) });
        let m = v.iter().fold(_mm256_setzero_ps(), |m, &x| _mm256_max_ps(m, _mm256_andnot_ps(sign, x)));
        let amax = hmax8(m);
        let scale = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        // Round half to even (the default rounding mode), as `round_ties_even`.
        let i: [__m256i; 4] = std::array::from_fn(|k| _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id)));
        let sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3])));
        let q = pack_i8(i);
        // Sums of each 4 quants (exact: `vpmaddubsw` of 1·q cannot saturate).
        let groups = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
        let corr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_sll_epi32(groups, count));
        // SAFETY: `b < nb`: 32 bytes at `32·b` of `q`, 8 i32 at `8·b` of `g` (asserted above).
        unsafe {
            _mm256_storeu_si256(out.q.as_mut_ptr().add(QK * b).cast(), q);
            _mm256_storeu_si256(out.g.as_mut_ptr().add(8 * b).cast(), corr);
        }
        out.d[b] = f16::from_f32(scale).to_f32();
        out.s[b] = f16::from_f32(scale * sum as f32).to_f32();
    }
    out.d[nb..].fill(0.0);
    out.s[nb..].fill(0.0);
}

/// AVX2 version of [`crate::quant::q8_k::quantize_row_q8_k`], bit for bit.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q8k_row_avx2(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(x.len(), y.len() * QK_K);
    let sign = _mm256_set1_ps(-0.0);
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        // SAFETY: `block` has 256 floats: 32 loads of 8.
        let v: [__m256; 32] = std::array::from_fn(|g| unsafe { _mm256_loadu_ps(block.as_ptr().add(8 * g)) });
        let amax = hmax8(v.iter().fold(_mm256_setzero_ps(), |m, &x| _mm256_max_ps(m, _mm256_andnot_ps(sign, x))));
        if amax == 0.0 {
            *out = BlockQ8K::default();
            continue;
        }
        // The first element of largest magnitude, with its sign (ggml's `max`).
        let mut max = amax;
        for (g, &x) in v.iter().enumerate() {
            let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, x), _mm256_set1_ps(amax)));
            if hit != 0 {
                max = block[8 * g + hit.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let vs = _mm256_set1_ps(iscale);
        let top = _mm256_set1_epi32(127);
        for (g, quad) in v.chunks_exact(4).enumerate() {
            // 32 quants: groups 2g and 2g + 1 of 16.
            let i: [__m256i; 4] =
                std::array::from_fn(|k| _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vs, quad[k])), top));
            out.bsums[2 * g] = hsum_i32(_mm256_add_epi32(i[0], i[1])) as i16;
            out.bsums[2 * g + 1] = hsum_i32(_mm256_add_epi32(i[2], i[3])) as i16;
            // SAFETY: 32 bytes at `32·g` of the 256-byte `qs`.
            unsafe { _mm256_storeu_si256(out.qs.as_mut_ptr().add(32 * g).cast(), pack_i8(i)) };
        }
        out.d = 1.0 / iscale;
    }
}

/// The largest of the 8 lanes.
#[inline(always)]
unsafe fn hmax8(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// 32 i32 (four vectors, in order) as saturated i8, in order.
#[inline(always)]
unsafe fn pack_i8(i: [__m256i; 4]) -> __m256i {
    // The packs work within 128-bit halves; the permute puts the 4-byte groups back in order.
    let w = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;
    use crate::quant::q8_k::quantize_row_q8_k;

    #[test]
    fn simd_q8_k_is_the_scalar_quantizer() {
        let mut x: Vec<f32> = (0..4 * QK_K).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.013).collect();
        x[300] = 9.0; // a positive maximum
        x[600] = -9.5; // a negative one
        x[700] = 9.5; // a tie after it: the first one wins
        x[768..].fill(0.0); // an all-zero block
        let mut want = vec![BlockQ8K::default(); 4];
        quantize_row_q8_k(&x, &mut want);
        if Isa::Avx2.is_available() {
            let mut got = vec![BlockQ8K::default(); 4];
            // SAFETY: AVX2 is available (checked just above).
            unsafe { q8k_row_avx2(&x, &mut got) };
            assert_eq!(got, want, "AVX2");
        }
        if Isa::Avx512.is_available() {
            let mut got = vec![BlockQ8K::default(); 4];
            // SAFETY: AVX-512 is available (checked just above).
            unsafe { q8k_row_avx512(&x, &mut got) };
            assert_eq!(got, want, "AVX-512");
        }
    }
}
