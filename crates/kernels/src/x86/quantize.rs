//! SIMD quantizers of activations, bit-identical to the scalar ones in `act`.

use std::arch::x86_64::*;

use half::f16;

use crate::act::halves;
use crate::quant::QK;

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
