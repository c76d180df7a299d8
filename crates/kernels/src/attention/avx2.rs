//! AVX2 twins of the attention primitives in `mod.rs` and `tiled.rs`, bit-identical
//! to them (and so to the AVX-512 ones): a 16-lane accumulator of the scalar
//! arithmetic is a pair of 256-bit registers here, with the same fused
//! multiply-adds, the same pairwise sums and the same rounding to f16.

use core::arch::x86_64::*;

use half::f16;

use crate::ops::avx2::v_expf;
use crate::ops::reduce16;

/// Eight f16 at `p` as f32.
#[inline(always)]
unsafe fn load_f16(p: *const u16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
}

/// Eight f32 rounded to f16 (to nearest, ties to even, as `f16::from_f32`), stored at `p`.
#[inline(always)]
unsafe fn store_f16(p: *mut u16, x: __m256) {
    _mm_storeu_si128(p.cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x));
}

/// [`super::dot_f16`]: four 16-lane accumulators (eight registers) over steps of
/// 64, the same pairwise reduction, leftovers in f64.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f16(q16: &[f32], k: &[f16]) -> f32 {
    let n = q16.len().min(k.len());
    let np = n & !63;
    // acc[j][h]: lanes 8h..8h+8 of the scalar kernel's accumulator j.
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    let (qp, kp) = (q16.as_ptr(), k.as_ptr().cast::<u16>());
    let mut i = 0;
    while i < np {
        for (j, a) in acc.iter_mut().enumerate() {
            for (h, x) in a.iter_mut().enumerate() {
                let at = i + 16 * j + 8 * h;
                // SAFETY: at + 8 <= np <= n, inside both slices.
                let (qv, kv) = unsafe { (_mm256_loadu_ps(qp.add(at)), load_f16(kp.add(at))) };
                *x = _mm256_fmadd_ps(qv, kv, *x);
            }
        }
        i += 64;
    }
    let mut lanes = [0.0f32; 16];
    for (h, half) in lanes.chunks_exact_mut(8).enumerate() {
        let s = _mm256_add_ps(_mm256_add_ps(acc[0][h], acc[2][h]), _mm256_add_ps(acc[1][h], acc[3][h]));
        // SAFETY: `half` holds 8 floats.
        unsafe { _mm256_storeu_ps(half.as_mut_ptr(), s) };
    }
    let mut total = f64::from(reduce16(&lanes));
    for idx in np..n {
        total += f64::from(q16[idx] * k[idx].to_f32());
    }
    total as f32
}

/// `acc = f16(v · s + acc)` element-wise (ggml's `ggml_vec_mad_f16`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn mad_f16(acc: &mut [f16], v: &[f16], s: f32) {
    let n = acc.len().min(v.len());
    let sv = _mm256_set1_ps(s);
    let (ap, vp) = (acc.as_mut_ptr().cast::<u16>(), v.as_ptr().cast::<u16>());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, inside both slices.
        unsafe { store_f16(ap.add(i), _mm256_fmadd_ps(load_f16(vp.add(i)), sv, load_f16(ap.add(i)))) };
        i += 8;
    }
    for j in i..n {
        acc[j] = f16::from_f32(v[j].to_f32().mul_add(s, acc[j].to_f32()));
    }
}

/// `acc = f16(acc · s)` element-wise (ggml's `ggml_vec_scale_f16`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn scale_f16(acc: &mut [f16], s: f32) {
    let n = acc.len();
    let sv = _mm256_set1_ps(s);
    let ap = acc.as_mut_ptr().cast::<u16>();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe { store_f16(ap.add(i), _mm256_mul_ps(load_f16(ap.add(i)), sv)) };
        i += 8;
    }
    for a in &mut acc[i..] {
        *a = f16::from_f32(a.to_f32() * s);
    }
}

/// `out = fma(p, v, out)` element-wise over f16 values `v`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_f16(out: &mut [f32], p: f32, v: &[f16]) {
    let n = out.len().min(v.len());
    let pv = _mm256_set1_ps(p);
    let (op, vp) = (out.as_mut_ptr(), v.as_ptr().cast::<u16>());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, inside both slices.
        unsafe { _mm256_storeu_ps(op.add(i), _mm256_fmadd_ps(pv, load_f16(vp.add(i)), _mm256_loadu_ps(op.add(i)))) };
        i += 8;
    }
    for j in i..n {
        out[j] = p.mul_add(v[j].to_f32(), out[j]);
    }
}

/// `tiled`'s scores: an FMA chain over the head dimension for each of the 64
/// positions of a transposed key tile.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `kt` holds `q.len() * 64` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tile_scores(q: &[f32], kt: &[f32], scores: &mut [f32; 64]) {
    assert!(kt.len() >= q.len() * 64);
    let mut acc = [_mm256_setzero_ps(); 8];
    let kp = kt.as_ptr();
    for (d, &qd) in q.iter().enumerate() {
        let qv = _mm256_set1_ps(qd);
        for (v, a) in acc.iter_mut().enumerate() {
            // SAFETY: d * 64 + 8 v + 8 <= q.len() * 64 <= kt.len().
            *a = _mm256_fmadd_ps(qv, unsafe { _mm256_loadu_ps(kp.add(d * 64 + 8 * v)) }, *a);
        }
    }
    for (v, a) in acc.iter().enumerate() {
        // SAFETY: 8 v + 8 <= 64.
        unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(8 * v), *a) };
    }
}

/// `scores = exp(scores - max)` with ggml's vector `exp`; returns the sum, per 16
/// lanes in [`reduce16`] order, added in f64.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_tile(scores: &mut [f32; 64], max: f32) -> f64 {
    let mv = _mm256_set1_ps(max);
    let mut total = 0.0f64;
    for group in scores.chunks_exact_mut(16) {
        for half in group.chunks_exact_mut(8) {
            // SAFETY: `half` holds 8 floats.
            unsafe {
                let e = v_expf(_mm256_sub_ps(_mm256_loadu_ps(half.as_ptr()), mv));
                _mm256_storeu_ps(half.as_mut_ptr(), e);
            }
        }
        total += f64::from(reduce16(group));
    }
    total
}

/// `out = fma(scores[t], value(t), out)` for `t` in `ts` in order, keeping 64
/// outputs in registers across positions.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; every `value(t)` holds at least
/// `out.len()` values.
#[target_feature(enable = "avx2,fma,f16c")]
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
            let mut acc: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(op.add(c + 8 * i)));
            for t in ts.clone() {
                let p = _mm256_set1_ps(scores[t]);
                let vp = value(t).as_ptr().cast::<u16>().add(c);
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(p, load_f16(vp.add(8 * i)), *a);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(op.add(c + 8 * i), *a);
            }
        }
        c += 64;
    }
    if c < n {
        for t in ts {
            // SAFETY: the caller's CPU has AVX2, FMA and F16C.
            unsafe { axpy_f16(&mut out[c..], scores[t], &value(t)[c..]) };
        }
    }
}
