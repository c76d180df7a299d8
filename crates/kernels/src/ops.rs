//! Element-wise and row-wise operations of the forward pass: RMSNorm, RoPE,
//! softmax and the activation functions.
//!
//! These are cheap next to the matrix products (a few thousand flops per token
//! per layer), so they are written as plain loops the compiler vectorises. Where
//! ggml's arithmetic order affects results (RMSNorm's f64 sum, RoPE's running
//! theta, its vector `exp`, its f16 GELU table), it is followed, to keep our
//! numbers identical to llama.cpp's.

use half::f16;

use crate::cpu::{active_width, Width};
use crate::pool::ThreadPool;

#[cfg(target_arch = "x86_64")]
#[path = "ops_avx2.rs"]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
#[path = "ops_avx512.rs"]
pub(crate) mod avx512;

/// `out = x / rms(x) * weight`, with the mean square summed in f64 as ggml does.
/// Shapes: `x`, `weight`, `out` all `(n,)`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert_eq!(x.len(), weight.len());
    debug_assert_eq!(x.len(), out.len());
    let scale = rms_scale(x, eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// In-place RMSNorm with a weight: `x = x / rms(x) * weight`.
pub fn rms_norm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    debug_assert_eq!(x.len(), weight.len());
    let scale = rms_scale(x, eps);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = *v * scale * w;
    }
}

/// `1 / sqrt(mean(x²) + eps)`.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len().max(1) as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// How RoPE pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])` (ggml's "normal" mode; Llama GGUFs).
    Interleaved,
    /// Halves `(x[i], x[i + n_rot/2])` (GPT-NeoX mode; Gemma, Qwen).
    Neox,
}

/// The cosines and sines of one position for the first `n_rot` dimensions:
/// `cos`, `sin` have shape `(n_rot / 2,)`. Theta advances by repeated f32
/// multiplication, as ggml's rope cache does.
pub fn rope_cos_sin(pos: usize, n_rot: usize, freq_base: f32, freq_scale: f32, cos: &mut [f32], sin: &mut [f32]) {
    debug_assert!(cos.len() >= n_rot / 2 && sin.len() >= n_rot / 2);
    let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for i in 0..n_rot / 2 {
        let t = theta * freq_scale;
        cos[i] = t.cos();
        sin[i] = t.sin();
        theta *= theta_scale;
    }
}

/// Rotates every head of `x` (shape `(n_head, head_dim)`) in place by the angles
/// in `cos`/`sin` (shape `(n_rot / 2,)`); dimensions past `n_rot` are left alone.
/// Each rotated value is one fused multiply-add, as ggml's compiled rotation
/// computes it: `x0·cos − x1·sin` and `x0·sin + x1·cos`, the second product
/// rounded first in both. (The order is visible: one ulp here moves Gemma 3's
/// log-probs by up to 0.1 nats a few dozen tokens later.)
pub fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], style: RopeStyle) {
    #[cfg(target_arch = "x86_64")]
    if active_width() >= Width::W256 {
        // SAFETY: every level from AVX2 on has FMA (`Isa::is_available`).
        unsafe { rope_fma(x, head_dim, cos, sin, style) };
        return;
    }
    rope_body(x, head_dim, cos, sin, style);
}

/// [`rope`] compiled with FMA, so each `mul_add` is one instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn rope_fma(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], style: RopeStyle) {
    rope_body(x, head_dim, cos, sin, style);
}

#[inline(always)]
fn rope_body(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = cos.len();
    for head in x.chunks_exact_mut(head_dim) {
        match style {
            RopeStyle::Interleaved => {
                for i in 0..half {
                    let (a, b) = (head[2 * i], head[2 * i + 1]);
                    head[2 * i] = a.mul_add(cos[i], -(b * sin[i]));
                    head[2 * i + 1] = a.mul_add(sin[i], b * cos[i]);
                }
            }
            RopeStyle::Neox => {
                for i in 0..half {
                    let (a, b) = (head[i], head[i + half]);
                    head[i] = a.mul_add(cos[i], -(b * sin[i]));
                    head[i + half] = a.mul_add(sin[i], b * cos[i]);
                }
            }
        }
    }
}

/// In-place softmax of `x`.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `x * sigmoid(x)`, with libm's `expf` (ggml's scalar `ggml_silu_f32`).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `e^x` computed exactly as ggml's AVX-512 `ggml_v_expf` computes each lane
/// (a range reduction and a degree-5 polynomial, at most ~1.5 ulp from `expf`).
/// ggml uses it for SiLU and softmax; reproducing its bits keeps our activations
/// identical to llama.cpp's before they are quantized.
#[inline(always)]
pub fn ggml_expf(x: f32) -> f32 {
    const R: f32 = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), R); // log2(e)
    let n = z - R;
    let b = (-n).mul_add(f32::from_bits(0x35bf_be8e), (-n).mul_add(f32::from_bits(0x3f31_7200), x));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let p1 = f32::from_bits(0x3c07_2010).mul_add(b, f32::from_bits(0x3d2b_9f17));
    let p2 = f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb));
    let p3 = f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0);
    let j = p1.mul_add(u, p2).mul_add(u, p3);
    // scalef(j, n) = j · 2^n, rounded once (2^n is exact in f64 for |n| <= 192).
    let pow2 = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (f64::from(j) * pow2) as f32
}

/// Sum of 16 lanes in the order of `_mm512_reduce_add_ps` (as GCC expands it).
#[inline]
pub fn reduce16(v: &[f32]) -> f32 {
    let mut t = [0.0f32; 8];
    for i in 0..8 {
        t[i] = v[8 + i] + v[i];
    }
    let mut u = [0.0f32; 4];
    for i in 0..4 {
        u[i] = t[4 + i] + t[i];
    }
    (u[0] + u[2]) + (u[1] + u[3])
}

/// GELU with the tanh approximation (as Gemma's `gelu_pytorch_tanh`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// SwiGLU in place: `gate = silu(gate) * up`, shapes `(n,)`, with ggml's
/// arithmetic: groups of 16 use [`ggml_expf`], the tail libm's `expf`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    swiglu_at(active_width(), gate, up);
}

/// [`swiglu`] with the kernels of `width` (which this CPU must run).
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn swiglu_at(width: Width, gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if width > Width::Scalar {
        let done = if width == Width::W512 {
            // SAFETY: the width's level is one this CPU runs, so it has AVX-512F and FMA.
            unsafe { avx512::swiglu(gate, up) }
        } else {
            // SAFETY: the width's level is one this CPU runs, so it has AVX2 and FMA.
            unsafe { avx2::swiglu(gate, up) }
        };
        for (g, &u) in gate[done..].iter_mut().zip(&up[done..]) {
            *g = silu(*g) * u;
        }
        return;
    }
    let full = gate.len() / 16 * 16;
    for (g, &u) in gate[..full].iter_mut().zip(&up[..full]) {
        *g = (*g / (1.0 + ggml_expf(0.0 - *g))) * u;
    }
    for (g, &u) in gate[full..].iter_mut().zip(&up[full..]) {
        *g = silu(*g) * u;
    }
}

/// A gated activation (`swiglu`, `geglu`) over `(rows, row_len)` buffers: `act`
/// on each thread's share of whole rows when the buffers are big enough for a
/// parallel region to pay (a prompt or a batch of sequences: otherwise one
/// thread does all of it while the others wait), on the calling thread else.
/// Every element's arithmetic is its own, so the split does not change a bit:
/// the vector kernels cover whole 16-element groups, which a row of a multiple
/// of 16 elements keeps; other row lengths stay on one thread.
pub fn glu_rows(pool: &ThreadPool, gate: &mut [f32], up: &[f32], row_len: usize, act: fn(&mut [f32], &[f32])) {
    /// Elements from which the rows are split over the threads.
    const PARALLEL_FROM: usize = 8192;
    debug_assert_eq!(gate.len(), up.len());
    if gate.len() < PARALLEL_FROM || row_len == 0 || !row_len.is_multiple_of(16) {
        act(gate, up);
        return;
    }
    pool.split_mut(gate, row_len, &|rows, g| act(g, &up[rows.start * row_len..rows.end * row_len]));
}

/// GeGLU in place: `gate = gelu(gate) * up`, shapes `(n,)`, as ggml computes it:
/// the gate is rounded to f16 and looked up in a table of f16 GELU values
/// (inputs at or beyond ±10 pass through or vanish).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    let table = gelu_f16_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = if *g <= -10.0 {
            0.0
        } else if *g >= 10.0 {
            *g * u
        } else {
            f16::from_bits(table[usize::from(f16::from_f32(*g).to_bits())]).to_f32() * u
        };
    }
}

/// GELU (tanh form) of every f16 value, rounded to f16: ggml's `ggml_table_gelu_f16`.
fn gelu_f16_table() -> &'static [u16] {
    static TABLE: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| {
                let x = f16::from_bits(bits).to_f32();
                // 0.5·x·(1 + tanh(√(2/π)·x·(1 + a·x²))), with the fused multiply-add the
                // C compiler forms for `1 + a·x·x`.
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                const COEF_A: f32 = 0.044_715;
                let inner = (COEF_A * x).mul_add(x, 1.0);
                let y = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * inner).tanh());
                f16::from_f32(y).to_bits()
            })
            .collect()
    })
}

/// `acc += x`, element-wise.
pub fn add_inplace(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// `x *= s`, element-wise.
pub fn scale_inplace(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

/// Dot product of two f32 slices, accumulated in eight lanes (vectorises well).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut tail = 0.0;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a * x`, element-wise.
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (v, &u) in y.iter_mut().zip(x) {
        *v += a * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glu_rows_gives_the_bits_of_one_thread_whatever_the_split() {
        let pool = ThreadPool::new(2);
        for (rows, row_len) in [(1, 1536), (9, 1536), (16, 2048), (201, 48), (20, 1000)] {
            let n = rows * row_len;
            let gate: Vec<f32> = (0..n).map(|i| ((i * 7919 % 2003) as f32 - 1001.0) * 0.013).collect();
            let up: Vec<f32> = (0..n).map(|i| ((i * 104_729 % 997) as f32 - 498.0) * 0.01).collect();
            for act in [swiglu as fn(&mut [f32], &[f32]), geglu] {
                let mut one = gate.clone();
                act(&mut one, &up);
                let mut split = gate.clone();
                glu_rows(&pool, &mut split, &up, row_len, act);
                assert!(one.iter().zip(&split).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} rows of {row_len}");
            }
        }
    }

    #[test]
    fn rms_norm_of_constant_vector_is_the_weight() {
        let x = vec![3.0f32; 16];
        let w: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let mut out = vec![0.0; 16];
        rms_norm(&x, &w, 0.0, &mut out);
        for (o, w) in out.iter().zip(&w) {
            assert!((o - w).abs() < 1e-6);
        }
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm_elsewhere() {
        let n_rot = 8;
        let (mut c, mut s) = (vec![0.0; 4], vec![0.0; 4]);
        rope_cos_sin(0, n_rot, 10000.0, 1.0, &mut c, &mut s);
        let orig: Vec<f32> = (0..16).map(|i| i as f32 * 0.1 - 0.7).collect();
        for style in [RopeStyle::Interleaved, RopeStyle::Neox] {
            let mut x = orig.clone();
            rope(&mut x, 8, &c, &s, style);
            assert_eq!(x, orig);
        }
        rope_cos_sin(17, n_rot, 10000.0, 1.0, &mut c, &mut s);
        for style in [RopeStyle::Interleaved, RopeStyle::Neox] {
            let mut x = orig.clone();
            rope(&mut x, 8, &c, &s, style);
            let n0: f32 = orig.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-4);
            assert_ne!(x, orig);
        }
    }

    #[test]
    fn rope_rotates_the_right_pairs() {
        // pos 1, one pair per head with theta = 1 rad.
        let (mut c, mut s) = (vec![0.0; 1], vec![0.0; 1]);
        rope_cos_sin(1, 2, 10000.0, 1.0, &mut c, &mut s);
        let mut x = [1.0, 0.0, 5.0];
        rope(&mut x[..2], 2, &c, &s, RopeStyle::Interleaved);
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
        let (mut c, mut s) = (vec![0.0; 2], vec![0.0; 2]);
        rope_cos_sin(1, 4, 10000.0, 1.0, &mut c, &mut s);
        let mut y = vec![1.0, 0.0, 0.0, 0.0];
        rope(&mut y, 4, &c, &s, RopeStyle::Neox);
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(y[1], 0.0);
    }

    #[test]
    fn softmax_sums_to_one_and_handles_masked_entries() {
        let mut x = vec![1.0, 2.0, f32::NEG_INFINITY, 3.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(x[2], 0.0);
        assert!(x[3] > x[1] && x[1] > x[0]);
    }

    #[test]
    fn activations_match_their_definitions() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(2.0) - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!(gelu_tanh(-10.0).abs() < 1e-6);
    }

    #[test]
    fn ggml_expf_is_close_to_libm_and_saturates() {
        for i in -1700..1700 {
            let x = i as f32 * 0.05;
            let (a, b) = (ggml_expf(x), x.exp());
            assert!((a - b).abs() <= b * 4e-7 + f32::MIN_POSITIVE, "x={x}: {a} vs {b}");
        }
        assert_eq!(ggml_expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(ggml_expf(-200.0), 0.0);
        assert_eq!(ggml_expf(200.0), f32::INFINITY);
        assert_eq!(ggml_expf(0.0), 1.0);
    }

    #[test]
    fn simd_swiglu_equals_the_scalar_emulation_at_every_width() {
        let g: Vec<f32> = (0..101).map(|i| (i as f32 * 0.731).sin() * 12.0).collect();
        let u: Vec<f32> = (0..101).map(|i| (i as f32 * 0.37).cos()).collect();
        let scalar: Vec<f32> = g
            .iter()
            .zip(&u)
            .enumerate()
            .map(|(i, (&x, &y))| if i < 96 { (x / (1.0 + ggml_expf(0.0 - x))) * y } else { silu(x) * y })
            .collect();
        for width in crate::cpu::available_widths() {
            let mut fast = g.clone();
            swiglu_at(width, &mut fast, &u);
            assert_eq!(fast, scalar, "{width:?}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_exp_is_the_scalar_one_bit_for_bit() {
        use crate::cpu::Isa;
        let mut xs: Vec<f32> = (-2100..2100).map(|i| i as f32 * 0.0513).collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 88.7, 88.73, -87.4, -103.9, -104.0, -150.0, 200.0, -200.0]);
        xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN]);
        xs.resize(xs.len().next_multiple_of(16), 0.5);
        let want: Vec<u32> = xs.iter().map(|&x| ggml_expf(x).to_bits()).collect();
        if Isa::Avx2.is_available() {
            let mut got = vec![0.0f32; xs.len()];
            for (x, g) in xs.chunks_exact(8).zip(got.chunks_exact_mut(8)) {
                // SAFETY: AVX2 and FMA are available (checked above); 8 floats each.
                unsafe {
                    use core::arch::x86_64::*;
                    _mm256_storeu_ps(g.as_mut_ptr(), avx2::v_expf(_mm256_loadu_ps(x.as_ptr())));
                }
            }
            assert_eq!(got.iter().map(|g| g.to_bits()).collect::<Vec<_>>(), want, "AVX2");
        }
        if Isa::Avx512.is_available() {
            let mut got = vec![0.0f32; xs.len()];
            for (x, g) in xs.chunks_exact(16).zip(got.chunks_exact_mut(16)) {
                // SAFETY: AVX-512F and FMA are available (checked above); 16 floats each.
                unsafe {
                    use core::arch::x86_64::*;
                    _mm512_storeu_ps(g.as_mut_ptr(), avx512::v_expf(_mm512_loadu_ps(x.as_ptr())));
                }
            }
            assert_eq!(got.iter().map(|g| g.to_bits()).collect::<Vec<_>>(), want, "AVX-512");
        }
    }

    #[test]
    fn reduce16_adds_all_lanes() {
        let v: Vec<f32> = (1..=16).map(|i| i as f32).collect();
        assert_eq!(reduce16(&v), 136.0);
    }

    #[test]
    fn dot_f32_matches_naive_sum_on_odd_lengths() {
        for n in [0usize, 1, 7, 8, 9, 31, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot_f32(&a, &b) - naive).abs() < 1e-4, "n={n}");
        }
    }
}
