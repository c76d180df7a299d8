//! AVX-512 twins of the attention primitives in `attention.rs`, bit-identical to
//! them: the same lanes, the same fused multiply-adds, the same rounding to f16.

use core::arch::x86_64::*;

use half::f16;

use crate::ops::avx512::v_expf;
use crate::ops::reduce16;

/// [`super::dot_f16`]: four 16-lane accumulators over steps of 64, the same
/// pairwise reduction, leftovers in f64.
///
/// # Safety
/// The CPU must support AVX-512F (an AVX-512 level is active).
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
/// The CPU must support AVX-512F (an AVX-512 level is active).
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
/// The CPU must support AVX-512F (an AVX-512 level is active).
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
/// The CPU must support AVX-512F (an AVX-512 level is active).
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
/// The CPU must support AVX-512F (an AVX-512 level is active); `kt` holds `q.len() * 64` values.
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

/// [`tile_scores`] of four queries: each key row of the tile is loaded once for the four, and
/// their sixteen chains run side by side; each score is the same FMA chain over `d`.
///
/// # Safety
/// The CPU must support AVX-512F (an AVX-512 level is active).
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn tile_scores4(q: [&[f32]; 4], kt: &[f32], scores: &mut [[f32; 64]; 4]) {
    let hd = q[0].len();
    assert!(q.iter().all(|x| x.len() == hd) && kt.len() >= hd * 64);
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    let kp = kt.as_ptr();
    for d in 0..hd {
        // SAFETY: d * 64 + 64 <= hd * 64 <= kt.len().
        let k = unsafe { [0, 1, 2, 3].map(|v| _mm512_loadu_ps(kp.add(d * 64 + 16 * v))) };
        for (a, qi) in acc.iter_mut().zip(&q) {
            let qv = _mm512_set1_ps(qi[d]);
            for (a, k) in a.iter_mut().zip(&k) {
                *a = _mm512_fmadd_ps(qv, *k, *a);
            }
        }
    }
    for (a, s) in acc.iter().zip(scores.iter_mut()) {
        for (v, a) in a.iter().enumerate() {
            // SAFETY: 16 v + 16 <= 64.
            unsafe { _mm512_storeu_ps(s.as_mut_ptr().add(16 * v), *a) };
        }
    }
}

/// `scores *= scale` and their largest (exact in any order).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scale_max(scores: &mut [f32; 64], scale: f32) -> f32 {
    let sv = _mm512_set1_ps(scale);
    let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
    for v in 0..4 {
        // SAFETY: 16 v + 16 <= 64.
        unsafe {
            let x = _mm512_mul_ps(_mm512_loadu_ps(scores.as_ptr().add(16 * v)), sv);
            _mm512_storeu_ps(scores.as_mut_ptr().add(16 * v), x);
            m = _mm512_max_ps(m, x);
        }
    }
    _mm512_reduce_max_ps(m)
}

/// Four queries' `out_i = fma(scores[i][t], vt[t], out_i)` for `t` in `ts` in order (the tiled
/// kernel's value accumulation): per 64 output columns, sixteen accumulators stay in
/// registers across positions, and each value row is loaded once for the four.
///
/// # Safety
/// The CPU must support AVX-512F; `out[offsets[i]..][..hdv]` are in bounds and disjoint, and
/// `vt` holds `ts.end` rows of `hdv`.
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn accumulate4(
    out: &mut [f32],
    offsets: [usize; 4],
    scores: &[[f32; 64]; 4],
    ts: std::ops::Range<usize>,
    vt: &[f32],
    hdv: usize,
) {
    debug_assert!(vt.len() >= ts.end * hdv);
    let op = out.as_mut_ptr();
    let vp = vt.as_ptr();
    let mut c = 0;
    while c + 64 <= hdv {
        // SAFETY: offsets[i] + c + 64 <= offsets[i] + hdv <= out.len(); t * hdv + c + 64 <= vt.len().
        unsafe {
            let mut acc = offsets.map(|o| [0, 1, 2, 3].map(|v| _mm512_loadu_ps(op.add(o + c + 16 * v))));
            for t in ts.clone() {
                let v = [0, 1, 2, 3].map(|j| _mm512_loadu_ps(vp.add(t * hdv + c + 16 * j)));
                for (a, s) in acc.iter_mut().zip(scores) {
                    let p = _mm512_set1_ps(s[t]);
                    for (a, v) in a.iter_mut().zip(&v) {
                        *a = _mm512_fmadd_ps(p, *v, *a);
                    }
                }
            }
            for (a, &o) in acc.iter().zip(&offsets) {
                for (j, a) in a.iter().enumerate() {
                    _mm512_storeu_ps(op.add(o + c + 16 * j), *a);
                }
            }
        }
        c += 64;
    }
    for (s, &o) in scores.iter().zip(&offsets) {
        for t in ts.clone() {
            for j in c..hdv {
                // SAFETY: o + j < o + hdv <= out.len(); t * hdv + j < vt.len().
                unsafe { *op.add(o + j) = s[t].mul_add(*vp.add(t * hdv + j), *op.add(o + j)) };
            }
        }
    }
}

/// `scores = exp(scores - max)` with ggml's vector `exp`; returns the sum, per 16
/// lanes in `_mm512_reduce_add_ps` order, added in f64.
///
/// # Safety
/// The CPU must support AVX-512F (an AVX-512 level is active).
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
/// The CPU must support AVX-512F (an AVX-512 level is active); every `value(t)` holds at least
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

/// The 16 lanes of `v` summed in [`reduce16`] order.
#[inline(always)]
unsafe fn hsum16(v: __m512) -> f32 {
    let t =
        _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
    let u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
    // (u0 + u2) + (u1 + u3)
    let x = _mm_add_ps(u, _mm_movehl_ps(u, u));
    _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps::<0b01>(x, x)))
}

/// Positions ahead whose key or value row is prefetched: rows of one sequence
/// are scattered over KV blocks, so the hardware prefetcher loses the thread at
/// every block boundary.
const AHEAD: usize = 6;

/// Prefetches the `len` f16 values at `p` into L1.
#[inline(always)]
unsafe fn prefetch_row(p: *const f16, len: usize) {
    let mut off = 0;
    while off < 2 * len {
        // A prefetch never faults.
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>().wrapping_add(off));
        off += 64;
    }
}

/// [`super::decode::attend_group_online`]'s vector path: each head's bits are
/// [`super::attend_row_online`]'s.
///
/// # Safety
/// The CPU must support AVX-512F, FMA and F16C; `hd` is a multiple of 64 and at
/// most `MAX_HEAD_DIM`, `hdv` a multiple of 16, `n > 0`; every `key(j)` holds `hd`
/// values and every `value(j)` `hdv`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,fma,f16c")]
pub(crate) unsafe fn attend_group_online<'a>(
    group: usize,
    hd: usize,
    hdv: usize,
    q: &[f32],
    n: usize,
    scale: f32,
    key: impl Fn(usize) -> &'a [f16],
    value: impl Fn(usize) -> &'a [f16],
    scratch: &mut super::decode::GroupScratch,
    out: &mut [f32],
) {
    use super::decode::{online_steps, MAX_HEAD_DIM};
    assert!(
        hd <= MAX_HEAD_DIM
            && hd.is_multiple_of(64)
            && hdv.is_multiple_of(16)
            && q.len() >= group * hd
            && out.len() >= group * hdv
    );
    let q16 = &mut scratch.q16;
    q16.clear();
    q16.extend(q[..group * hd].iter().map(|&x| f16::from_f32(x).to_f32()));
    scratch.steps.clear();
    scratch.steps.resize(3 * group * n, 0.0);
    let (scores, rest) = scratch.steps.split_at_mut(group * n);
    let (ms, vs) = rest.split_at_mut(group * n);

    // 1. Scores: `super::dot_f16` (four accumulators over steps of 64, pairwise,
    //    `reduce16`) times `scale`, each key converted once for the group.
    let mut kc = [_mm512_setzero_ps(); MAX_HEAD_DIM / 16];
    for j in 0..n {
        if j + AHEAD < n {
            prefetch_row(key(j + AHEAD).as_ptr(), hd);
        }
        let k = &key(j)[..hd];
        for (c, v) in kc[..hd / 16].iter_mut().enumerate() {
            // SAFETY: 16 c + 16 <= hd = k.len().
            *v = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(k.as_ptr().add(16 * c).cast())) };
        }
        for h in 0..group {
            let qh = &q16[h * hd..(h + 1) * hd];
            let mut acc = [_mm512_setzero_ps(); 4];
            for (step, kv) in kc[..hd / 16].chunks_exact(4).enumerate() {
                for (i, a) in acc.iter_mut().enumerate() {
                    // SAFETY: 64 step + 16 i + 16 <= hd = qh.len().
                    let x = unsafe { _mm512_loadu_ps(qh.as_ptr().add(64 * step + 16 * i)) };
                    *a = _mm512_fmadd_ps(x, kv[i], *a);
                }
            }
            let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
            // SAFETY: AVX-512F is enabled here.
            scores[h * n + j] = unsafe { hsum16(s) } * scale;
        }
    }

    // 2. The online softmax, per head.
    let inv = &mut scratch.inv;
    inv.clear();
    inv.resize(group, 0.0);
    for (h, i) in inv.iter_mut().enumerate() {
        let r = h * n..(h + 1) * n;
        *i = online_steps(&scores[r.clone()], &mut ms[r.clone()], &mut vs[r]);
    }

    // 3. Values: f16 accumulators in registers, 64 outputs × up to 4 heads at a time.
    let round = |x: __m512| _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x));
    for h0 in (0..group).step_by(4) {
        let hn = (group - h0).min(4);
        for c0 in (0..hdv).step_by(64) {
            let cn = ((hdv - c0) / 16).min(4);
            let mut acc = [[_mm512_setzero_ps(); 4]; 4];
            for j in 0..n {
                if j + AHEAD < n {
                    prefetch_row(value(j + AHEAD)[c0..].as_ptr(), 16 * cn);
                }
                let v = &value(j)[c0..hdv];
                let mut vc = [_mm512_setzero_ps(); 4];
                for (i, x) in vc.iter_mut().enumerate() {
                    if i < cn {
                        // SAFETY: 16 i + 16 <= 16 cn <= hdv - c0 = v.len().
                        *x = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(16 * i).cast())) };
                    }
                }
                for (hh, a) in acc.iter_mut().enumerate() {
                    if hh >= hn {
                        break;
                    }
                    let k = (h0 + hh) * n + j;
                    let (m, w) = (ms[k], vs[k]);
                    if m != 1.0 {
                        let mv = _mm512_set1_ps(m);
                        for x in a.iter_mut() {
                            *x = round(_mm512_mul_ps(*x, mv));
                        }
                    }
                    let wv = _mm512_set1_ps(w);
                    for (i, x) in a.iter_mut().enumerate() {
                        if i < cn {
                            *x = round(_mm512_fmadd_ps(vc[i], wv, *x));
                        }
                    }
                }
            }
            for (hh, a) in acc.iter().enumerate().take(hn) {
                let h = h0 + hh;
                let iv = _mm512_set1_ps(inv[h]);
                for (i, x) in a.iter().enumerate().take(cn) {
                    let o = &mut out[h * hdv + c0 + 16 * i..][..16];
                    // SAFETY: `o` holds 16 floats.
                    unsafe { _mm512_storeu_ps(o.as_mut_ptr(), _mm512_mul_ps(*x, iv)) };
                }
            }
        }
    }
}
