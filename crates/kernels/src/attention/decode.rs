//! ggml's one-row kernel ([`super::attend_row_online`]) for all the query heads
//! of one key/value head at once: the same bits for every head, less work.
//!
//! The one-row kernel walks the positions once per head: a dot product, an online
//! softmax step, and a multiply-add into an f16 accumulator that lives in memory.
//! Its three parts depend on each other only through numbers that can be kept, so
//! this kernel runs them as three passes over the group:
//! 1. scores: each key is converted from f16 once and serves every head;
//! 2. the online softmax, scalar as ggml's (`expf`, the running max and sum),
//!    which records each position's rescale factor and weight;
//! 3. values: each value row is converted once and serves every head; the f16
//!    accumulators stay in registers (rounded to f16 after every step, as ggml
//!    rounds them), and are rescaled where the running max moved.
//!
//! Rescaling by 1 is exact, so skipping it changes no bit.

use half::f16;

/// Widest key/value head the vector path takes (Gemma 3's 256).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the x86-64 kernels only
pub(crate) const MAX_HEAD_DIM: usize = 256;

/// Scratch of [`attend_group_online`], reused across calls.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the x86-64 kernels only
#[derive(Default)]
pub struct GroupScratch {
    /// The queries rounded to f16, `(group, hd)`.
    pub(crate) q16: Vec<f32>,
    /// Scores, then rescale factors and weights: `(3, group, n)`.
    pub(crate) steps: Vec<f32>,
    /// Each head's `1/sum`.
    pub(crate) inv: Vec<f32>,
    /// The one-row kernel's buffers (the scalar path).
    acc16: Vec<f16>,
}

/// [`super::attend_row_online`] for the `group` query heads of one key/value
/// head: `q` is `(group, hd)`, `out` `(group, hdv)`; positions `0..n` are read
/// through `key` and `value`. Each head's output has the bits the one-row kernel
/// gives it.
#[allow(clippy::too_many_arguments)]
pub fn attend_group_online<'a>(
    group: usize,
    hd: usize,
    hdv: usize,
    q: &[f32],
    n: usize,
    scale: f32,
    key: impl Fn(usize) -> &'a [f16] + Copy,
    value: impl Fn(usize) -> &'a [f16] + Copy,
    scratch: &mut GroupScratch,
    out: &mut [f32],
) {
    assert!(q.len() >= group * hd && out.len() >= group * hdv, "attend_group_online: buffers too short");
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::active_width() == crate::cpu::Width::W512
        && hd.is_multiple_of(64)
        && hdv.is_multiple_of(16)
        && hd <= MAX_HEAD_DIM
        && n > 0
    {
        // SAFETY: the active level is an AVX-512 one, so the CPU has AVX-512F, FMA and F16C;
        // the shapes were checked above.
        unsafe { super::avx512::attend_group_online(group, hd, hdv, q, n, scale, key, value, scratch, out) };
        return;
    }
    scratch.q16.resize(hd, 0.0);
    scratch.acc16.resize(hdv, f16::ZERO);
    for h in 0..group {
        super::attend_row_online(
            &q[h * hd..(h + 1) * hd],
            n,
            scale,
            key,
            value,
            &mut scratch.q16,
            &mut scratch.acc16,
            &mut out[h * hdv..(h + 1) * hdv],
        );
    }
}

/// Pass 2 for one head: ggml's online softmax over `scores`, scalar. Leaves each
/// position's rescale factor in `ms` and weight in `vs`; returns `1/sum` (0 for
/// an empty or all-zero sum).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the x86-64 kernels only
pub(crate) fn online_steps(scores: &[f32], ms: &mut [f32], vs: &mut [f32]) -> f32 {
    let mut m = f32::NEG_INFINITY;
    let mut sum = 0.0f32;
    for ((&s, a), b) in scores.iter().zip(ms.iter_mut()).zip(vs.iter_mut()) {
        if s > m {
            *a = (m - s).exp();
            *b = 1.0;
            m = s;
        } else {
            *a = 1.0;
            *b = (s - m).exp();
        }
        sum = sum.mul_add(*a, *b);
    }
    if sum == 0.0 {
        0.0
    } else {
        1.0 / sum
    }
}
