//! AVX-512 twins of the attention primitives in `attention.rs`, bit-identical to
//! them: the same lanes, the same fused multiply-adds, the same rounding to f16.

use core::arch::x86_64::*;

use half::f16;

use crate::ops::avx512::v_expf;
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

/// [`super::tiled`]'s scores: an FMA chain over the head dimension for each of
/// the 64 positions of a transposed key tile.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); `kt` holds `q.len() * 64` values.
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn tile_scores(q: &[f32], kt: &[f32], scores: &mut [f32; 64]) {
    assert!(kt.len() >= q.len() * 64);
    let mut acc = [_mm512_setzero_ps(); 4];
    let kp = kt.as_ptr();
    for (d, &qd) in q.iter().enumerate() {
        let qv = _mm512_set1_ps(qd);
        for (v, a) in acc.iter_mut().enumerate() {
            // SAFETY: d * 64 + 16 v + 16 <= q.len() * 64 <= kt.len().
            *a = _mm512_fmadd_ps(qv, unsafe { _mm512_loadu_ps(kp.add(d * 64 + 16 * v)) }, *a);
        }
    }
    for (v, a) in acc.iter().enumerate() {
        // SAFETY: 16 v + 16 <= 64.
        unsafe { _mm512_storeu_ps(scores.as_mut_ptr().add(16 * v), *a) };
    }
}

/// `scores = exp(scores - max)` with ggml's vector `exp`; returns the sum, per 16
/// lanes in `_mm512_reduce_add_ps` order, added in f64.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn exp_tile(scores: &mut [f32; 64], max: f32) -> f64 {
    let mv = _mm512_set1_ps(max);
    let mut total = 0.0f64;
    for group in scores.chunks_exact_mut(16) {
        // SAFETY: `group` holds 16 floats.
        unsafe {
            let e = v_expf(_mm512_sub_ps(_mm512_loadu_ps(group.as_ptr()), mv));
            _mm512_storeu_ps(group.as_mut_ptr(), e);
        }
        total += f64::from(reduce16(group));
    }
    total
}

/// `out = fma(scores[t], value(t), out)` for `t` in `ts` in order (the tiled
/// kernel's value accumulation), keeping 64 outputs in registers across positions.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); every `value(t)` holds at least
/// `out.len()` values.
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn accumulate_values<'a>(
    out: &mut [f32],
    scores: &[f32],
    ts: std::ops::Range<usize>,
    value: impl Fn(usize) -> &'a [f16],
) {
    let n = out.len();
    let op = out.as_mut_ptr();
    let mut c = 0;
    while c + 64 <= n {
        // SAFETY: c + 64 <= n = out.len() <= value(t).len().
        unsafe {
            let mut acc = [
                _mm512_loadu_ps(op.add(c)),
                _mm512_loadu_ps(op.add(c + 16)),
                _mm512_loadu_ps(op.add(c + 32)),
                _mm512_loadu_ps(op.add(c + 48)),
            ];
            for t in ts.clone() {
                let p = _mm512_set1_ps(scores[t]);
                let vp = value(t).as_ptr().cast::<u16>().add(c);
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(p, _mm512_cvtph_ps(_mm256_loadu_si256(vp.add(16 * i).cast())), *a);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(op.add(c + 16 * i), *a);
            }
        }
        c += 64;
    }
    if c < n {
        for t in ts {
            // SAFETY: AVX-512F was detected by the caller.
            unsafe { axpy_f16(&mut out[c..], scores[t], &value(t)[c..]) };
        }
    }
}
