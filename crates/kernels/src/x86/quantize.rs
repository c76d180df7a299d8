//! SIMD quantizers of activations, bit-identical to the scalar ones in `act`.

use std::arch::x86_64::*;

use half::f16;

use crate::act::TokenOut;
use crate::quant::{BlockQ8K, QK};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;
    use crate::quant::q8_k::quantize_row_q8_k;

    #[test]
    fn avx512_q8_k_is_the_scalar_quantizer() {
        if !Isa::Avx512.is_available() {
            println!("note: no AVX-512 here; the SIMD Q8_K quantizer is not tested");
            return;
        }
        let mut x: Vec<f32> = (0..4 * QK_K).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.013).collect();
        x[300] = 9.0; // a positive maximum
        x[600] = -9.5; // a negative one
        x[700] = 9.5; // a tie after it: the first one wins
        x[768..].fill(0.0); // an all-zero block
        let mut want = vec![BlockQ8K::default(); 4];
        let mut got = vec![BlockQ8K::default(); 4];
        quantize_row_q8_k(&x, &mut want);
        // SAFETY: AVX-512 is available (checked above).
        unsafe { q8k_row_avx512(&x, &mut got) };
        assert_eq!(got, want);
    }
}
