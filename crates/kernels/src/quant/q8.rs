//! Q8_0 and Q8_1: 32 signed bytes and an f16 scale (Q8_1 adds `s = d·Σq`).
//!
//! Q8_0 is both a weight format and the activation format of Q4_0, Q5_0 and Q8_0
//! weights; Q8_1 is the activation format of Q4_1. Activations are quantized the way
//! ggml's x86 code does it, which is what llama.cpp runs on the machines we compare
//! with: `d = amax / 127` (stored as f16), `q = round_half_even(x · (127 / amax))`,
//! and for Q8_1 `s = f16(d · Σq)` with the f32 `d`.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::order::{fma8, group_dots, hsum8};
use super::{amax, QK};

/// A Q8_0 block: `x[i] = d · qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// A Q8_1 block: `x[i] = d · qs[i]`, with `s = d · Σ qs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d` times the sum of the quants.
    pub s: f16,
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// The scale `d` (as f32, before rounding to f16) and the multiplier `127 / amax`
/// of one 32-element block, as ggml's x86 quantizer computes them.
#[inline]
pub(crate) fn q8_scale(block: &[f32]) -> (f32, f32) {
    let amax = amax(block);
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (d, id)
}

/// `round_half_even(v)` as a saturated i8.
#[inline]
pub(crate) fn round_i8(v: f32) -> i8 {
    v.round_ties_even() as i8
}

/// Quantizes `x` (a multiple of 32 elements) into Q8_0 blocks.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), y.len() * QK, "quantize_row_q8_0: {} elements into {} blocks", x.len(), y.len());
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, id) = q8_scale(block);
        out.d = f16::from_f32(d);
        for (q, &v) in out.qs.iter_mut().zip(block) {
            *q = round_i8(v * id);
        }
    }
}

/// Quantizes weights into Q8_0 blocks as ggml's reference quantizer does (what
/// `llama-quantize` writes): `d = amax/127` and `round(x · (1/d))` with ties away
/// from zero. Activations use [`quantize_row_q8_0`], which rounds as ggml's SIMD
/// code does (`x · 127/amax`, ties to even); the two differ in the last bit.
pub fn quantize_row_q8_0_ref(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), y.len() * QK, "quantize_row_q8_0_ref: {} elements into {} blocks", x.len(), y.len());
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let d = amax(block) / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.d = f16::from_f32(d);
        for (q, &v) in out.qs.iter_mut().zip(block) {
            *q = (v * id).round() as i8;
        }
    }
}

/// Quantizes `x` (a multiple of 32 elements) into Q8_1 blocks.
pub fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    assert_eq!(x.len(), y.len() * QK, "quantize_row_q8_1: {} elements into {} blocks", x.len(), y.len());
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, id) = q8_scale(block);
        let mut sum = 0i32;
        for (q, &v) in out.qs.iter_mut().zip(block) {
            *q = round_i8(v * id);
            sum += i32::from(*q);
        }
        out.d = f16::from_f32(d);
        out.s = f16::from_f32(d * sum as f32);
    }
}

/// Dequantizes Q8_0 blocks into `y` (`y.len()` = 32 × blocks).
pub fn dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = f32::from(q) * d;
        }
    }
}

/// Scalar reference dot product of Q8_0 weights with Q8_0 activations, in the
/// order of ggml's x86 `ggml_vec_dot_q8_0_q8_0` (8 lanes, see [`super::order`]).
pub fn vec_dot_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    for (bx, by) in x.iter().zip(y) {
        let q = bx.qs.map(i32::from);
        fma8(&mut acc, bx.d.to_f32() * by.d.to_f32(), &group_dots(&q, &by.qs));
    }
    hsum8(&acc)
}

/// The same dot product as the kernels of the 16-row interleaved layout compute
/// it for generated tokens: one f32 chain, block by block `acc = fma(d_x·d_y,
/// Σ q_x q_y, acc)`, the integer sum exact (see `q4_1::vec_dot_chain`).
pub fn vec_dot_q8_0_chain(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let isum: i32 = bx.qs.iter().zip(&by.qs).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
        acc = (bx.d.to_f32() * by.d.to_f32()).mul_add(isum as f32, acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block_by_hand() {
        // amax = 127 makes d = 1 and the multiplier 1, so the rounding is visible.
        let mut x = [0.0f32; 32];
        x[..5].copy_from_slice(&[127.0, -63.5, 0.5, 1.5, 2.5]);
        x[31] = -3.25;
        let mut b = [BlockQ8_0::default()];
        quantize_row_q8_0(&x, &mut b);
        assert_eq!(b[0].d, f16::from_f32(1.0));
        assert_eq!(&b[0].qs[..5], &[127, -64, 0, 2, 2]);
        assert_eq!(b[0].qs[31], -3);
        // Dequantize a hand-made block: d = 0.5.
        let mut h = BlockQ8_0 { d: f16::from_f32(0.5), qs: [0; 32] };
        h.qs[0] = -128;
        h.qs[1] = 3;
        h.qs[31] = 127;
        let mut y = [1.0f32; 32];
        dequantize_row_q8_0(&[h], &mut y);
        assert_eq!((y[0], y[1], y[2], y[31]), (-64.0, 1.5, 0.0, 63.5));
    }

    #[test]
    fn q8_1_sum_uses_the_unrounded_scale() {
        let x: Vec<f32> = (0..32).map(|i| i as f32 * 0.1 - 1.0).collect();
        let mut b = [BlockQ8_1::default()];
        quantize_row_q8_1(&x, &mut b);
        let (d, _) = q8_scale(&x);
        let sum: i32 = b[0].qs.iter().map(|&q| i32::from(q)).sum();
        assert_eq!(b[0].s, f16::from_f32(d * sum as f32));
        assert_eq!((b[0].qs[0], b[0].qs[31]), (-60, 127));
    }

    #[test]
    fn zero_block_quantizes_to_zero() {
        let mut b = [BlockQ8_0::default()];
        quantize_row_q8_0(&[0.0; 32], &mut b);
        assert_eq!(b[0].d.to_f32(), 0.0);
        assert!(b[0].qs.iter().all(|&q| q == 0));
    }
}
