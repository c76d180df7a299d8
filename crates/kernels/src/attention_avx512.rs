//! AVX-512 twins of the attention primitives in `attention.rs`, bit-identical to
//! them: the same lanes, the same fused multiply-adds, the same rounding to f16.

use core::arch::x86_64::*;

use half::f16;

use crate::ops::reduce16;

/// Whether the CPU has what these kernels use (std caches the answer).
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
}

/// [`super::dot_f16`]: four 16-lane accumulators over steps of 64, the same
/// pairwise reduction, leftovers in f64.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn dot_f16(q16: &[f32], k: &[f16]) -> f32 {
    let n = q16.len().min(k.len());
    let np = n & !63;
    let mut acc = [_mm512_setzero_ps(); 4];
    let (qp, kp) = (q16.as_ptr(), k.as_ptr().cast::<u16>());
    let mut i = 0;
    while i < np {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16j + 16 <= np <= n, inside both slices.
            let qv = unsafe { _mm512_loadu_ps(qp.add(i + 16 * j)) };
            let kv = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(kp.add(i + 16 * j).cast())) };
            *a = _mm512_fmadd_ps(qv, kv, *a);
        }
        i += 64;
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
    let mut lanes = [0.0f32; 16];
    // SAFETY: `lanes` holds 16 floats.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), s) };
    let mut total = f64::from(reduce16(&lanes));
    for idx in np..n {
        total += f64::from(q16[idx] * k[idx].to_f32());
    }
    total as f32
}

/// `acc = f16(v · s + acc)` element-wise (ggml's `ggml_vec_mad_f16`), with a
/// scalar tail.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn mad_f16(acc: &mut [f16], v: &[f16], s: f32) {
    let n = acc.len().min(v.len());
    let sv = _mm512_set1_ps(s);
    let (ap, vp) = (acc.as_mut_ptr().cast::<u16>(), v.as_ptr().cast::<u16>());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, inside both slices.
        unsafe {
            let a = _mm512_cvtph_ps(_mm256_loadu_si256(ap.add(i).cast()));
            let x = _mm512_cvtph_ps(_mm256_loadu_si256(vp.add(i).cast()));
            let r = _mm512_fmadd_ps(x, sv, a);
            _mm256_storeu_si256(ap.add(i).cast(), _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r));
        }
        i += 16;
    }
    for j in i..n {
        acc[j] = f16::from_f32(v[j].to_f32().mul_add(s, acc[j].to_f32()));
    }
}

/// `acc = f16(acc · s)` element-wise (ggml's `ggml_vec_scale_f16`).
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn scale_f16(acc: &mut [f16], s: f32) {
    let n = acc.len();
    let sv = _mm512_set1_ps(s);
    let ap = acc.as_mut_ptr().cast::<u16>();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n.
        unsafe {
            let a = _mm512_cvtph_ps(_mm256_loadu_si256(ap.add(i).cast()));
            let r = _mm512_mul_ps(a, sv);
            _mm256_storeu_si256(ap.add(i).cast(), _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r));
        }
        i += 16;
    }
    for a in &mut acc[i..] {
        *a = f16::from_f32(a.to_f32() * s);
    }
}

/// `out = fma(p, v, out)` element-wise over f16 values `v` (one step of the tiled
/// kernel's value accumulation).
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn axpy_f16(out: &mut [f32], p: f32, v: &[f16]) {
    let n = out.len().min(v.len());
    let pv = _mm512_set1_ps(p);
    let (op, vp) = (out.as_mut_ptr(), v.as_ptr().cast::<u16>());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, inside both slices.
        unsafe {
            let x = _mm512_cvtph_ps(_mm256_loadu_si256(vp.add(i).cast()));
            let o = _mm512_loadu_ps(op.add(i));
            _mm512_storeu_ps(op.add(i), _mm512_fmadd_ps(pv, x, o));
        }
        i += 16;
    }
    for j in i..n {
        out[j] = p.mul_add(v[j].to_f32(), out[j]);
    }
}
