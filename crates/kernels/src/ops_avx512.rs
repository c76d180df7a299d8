//! AVX-512 twins of `ops.rs` functions, bit-identical to them.

use core::arch::x86_64::*;

/// One lane of ggml's AVX-512 `ggml_v_expf`, sixteen at a time (see
/// `crate::ops::ggml_expf`, which this equals bit for bit).
///
/// # Safety
/// The CPU must support AVX-512F (an AVX-512 level is active).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn v_expf(x: __m512) -> __m512 {
    let c = |bits: u32| _mm512_set1_ps(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = _mm512_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm512_sub_ps(z, r);
    let b = _mm512_fnmadd_ps(n, c(0x35bf_be8e), _mm512_fnmadd_ps(n, c(0x3f31_7200), x));
    let d = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(n), _mm512_set1_ps(192.0));
    let u = _mm512_mul_ps(b, b);
    let j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(
            _mm512_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            _mm512_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        _mm512_fmadd_ps(c(0x3f7f_fff6), b, _mm512_set1_ps(1.0)),
    );
    let res = _mm512_scalef_ps(j, n);
    if d == 0 {
        return res;
    }
    let zero = _mm512_setzero_ps();
    let alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, zero), _mm512_set1_ps(f32::INFINITY), zero);
    _mm512_mask_blend_ps(d, res, alt)
}

/// `gate = silu(gate) · up` for the whole 16-lane groups (ggml's
/// `ggml_vec_swiglu_f32` with `ggml_v_silu`); returns how many were done.
///
/// # Safety
/// The CPU must support AVX-512F (an AVX-512 level is active).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) -> usize {
    let n = gate.len().min(up.len()) / 16 * 16;
    let (gp, upp) = (gate.as_mut_ptr(), up.as_ptr());
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i < n {
        // SAFETY: i + 16 <= n <= both lengths.
        unsafe {
            let x = _mm512_loadu_ps(gp.add(i));
            let e = v_expf(_mm512_sub_ps(_mm512_setzero_ps(), x));
            let silu = _mm512_div_ps(x, _mm512_add_ps(one, e));
            _mm512_storeu_ps(gp.add(i), _mm512_mul_ps(silu, _mm512_loadu_ps(upp.add(i))));
        }
        i += 16;
    }
    n
}
