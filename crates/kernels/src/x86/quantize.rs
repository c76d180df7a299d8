//! SIMD quantizers of activations, bit-identical to the scalar ones in `act`.

use std::arch::x86_64::*;

use half::f16;

use crate::act::halves;
use crate::quant::{BlockQ8K, QK};
use crate::QK_K;

/// AVX-512 version of `act::quantize_row_scalar`.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL. Slices as in `quantize_row_scalar`:
/// `q.len() >= x.len()`, `d.len() == s.len() >= x.len() / 32`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn q8_row_avx512(x: &[f32], q: &mut [u8], d: &mut [f32], s: &mut [f32], offset: bool, quad: bool) {
    let nb = x.len() / QK;
    assert!(q.len() >= nb.div_ceil(4) * 128 && d.len() >= nb && s.len() == d.len());
    let pad = if offset { 0x80u8 } else { 0 };
    q.fill(pad);
    let flip = _mm_set1_epi8(pad as i8);
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
        let (first, second) = halves(b, quad);
        // SAFETY: both halves end within the first `ceil(nb / 4)·128` bytes (asserted above).
        unsafe {
            _mm_storeu_si128(q.as_mut_ptr().add(first).cast(), _mm_xor_si128(_mm512_cvtsepi32_epi8(i0), flip));
            _mm_storeu_si128(q.as_mut_ptr().add(second).cast(), _mm_xor_si128(_mm512_cvtsepi32_epi8(i1), flip));
        }
        d[b] = f16::from_f32(scale).to_f32();
        s[b] = f16::from_f32(scale * sum as f32).to_f32();
    }
    d[nb..].fill(0.0);
    s[nb..].fill(0.0);
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
