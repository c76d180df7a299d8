//! AVX2 twins of `ops.rs` functions, bit-identical to them (and so to the AVX-512
//! ones): every lane does the scalar lane's operations in the scalar order.

use core::arch::x86_64::*;

/// [`crate::ops::ggml_expf`] on eight lanes, bit for bit: the same range reduction
/// and polynomial, and `j · 2^n` rounded once, done in f64 as the scalar twin does
/// (AVX2 has no `scalef`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn v_expf(x: __m256) -> __m256 {
    let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let saturated = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        _mm256_fmadd_ps(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0)),
    );
    // j · 2^n in f64, four lanes at a time: 2^n is built from its exponent bits
    // (exact for |n| <= 192; other lanes are replaced below).
    let ni = _mm256_cvtps_epi32(n);
    let scale = |j4: __m128, n4: __m128i| -> __m128 {
        let e = _mm256_slli_epi64::<52>(_mm256_add_epi64(_mm256_cvtepi32_epi64(n4), _mm256_set1_epi64x(1023)));
        _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(j4), _mm256_castsi256_pd(e)))
    };
    let lo = scale(_mm256_castps256_ps128(j), _mm256_castsi256_si128(ni));
    let hi = scale(_mm256_extractf128_ps::<1>(j), _mm256_extracti128_si256::<1>(ni));
    let res = _mm256_set_m128(hi, lo);
    if _mm256_movemask_ps(saturated) == 0 {
        return res;
    }
    let zero = _mm256_setzero_ps();
    let alt = _mm256_blendv_ps(_mm256_set1_ps(f32::INFINITY), zero, _mm256_cmp_ps::<_CMP_LE_OQ>(n, zero));
    _mm256_blendv_ps(res, alt, saturated)
}

/// `gate = silu(gate) · up` for the whole 16-lane groups, as two halves of eight
/// (ggml's `ggml_vec_swiglu_f32` with `ggml_v_silu`); returns how many were done.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) -> usize {
    let n = gate.len().min(up.len()) / 16 * 16;
    let (gp, upp) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i < n {
        // SAFETY: i + 8 <= n <= both lengths.
        unsafe {
            let x = _mm256_loadu_ps(gp.add(i));
            let e = v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
            let silu = _mm256_div_ps(x, _mm256_add_ps(one, e));
            _mm256_storeu_ps(gp.add(i), _mm256_mul_ps(silu, _mm256_loadu_ps(upp.add(i))));
        }
        i += 8;
    }
    n
}
