//! Q4_0: 32 weights as 4-bit values around 8 and one f16 scale, `x = d·(q − 8)`.
//! Byte `j` of `qs` holds element `j` (low nibble) and element `j + 16` (high nibble).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::order::{fma8, group_dots, hsum8};
use super::{signed_max, BlockQ8_0, QK};

/// A Q4_0 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Nibbles: element `j` low, element `j + 16` high.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// Dequantizes Q4_0 blocks into `y` (`y.len()` = 32 × blocks).
pub fn dequantize_row(x: &[BlockQ4_0], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (j, &q) in b.qs.iter().enumerate() {
            out[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
            out[j + QK / 2] = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
}

/// Quantizes `x` into Q4_0 blocks as ggml's reference quantizer does (what
/// `llama-quantize` writes): the value of largest magnitude maps to −8, the others
/// to `trunc(x/d + 8.5)` capped at 15.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ4_0]) {
    assert_eq!(x.len(), y.len() * QK);
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let d = signed_max(block) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        out.d = f16::from_f32(d);
        for j in 0..QK / 2 {
            out.qs[j] = q(block[j]) | (q(block[j + QK / 2]) << 4);
        }
    }
}

/// The 32 quants of `b`, offset to `−8..8`.
#[inline]
fn quants(b: &BlockQ4_0) -> [i32; QK] {
    std::array::from_fn(|k| {
        let byte = b.qs[k % (QK / 2)];
        i32::from(if k < QK / 2 { byte & 0x0F } else { byte >> 4 }) - 8
    })
}

/// Scalar reference dot product of Q4_0 weights with Q8_0 activations, in the
/// order of ggml's x86 `ggml_vec_dot_q4_0_q8_0` (8 lanes, see [`super::order`]).
pub fn vec_dot(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    for (bx, by) in x.iter().zip(y) {
        fma8(&mut acc, bx.d.to_f32() * by.d.to_f32(), &group_dots(&quants(bx), &by.qs));
    }
    hsum8(&acc)
}

/// Scalar reference dot product in the order of llama.cpp's repacked Q4_0 kernels
/// (`ggml_gemv_q4_0_8x8_q8_0` and its gemm twin, used on x86 for matrices whose row
/// count is a multiple of 8): one f32 accumulator, one fused multiply-add of each
/// block's whole integer sum.
pub fn vec_dot_repacked(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let sumi: i32 = quants(bx).iter().zip(&by.qs).map(|(&q, &a)| q * i32::from(a)).sum();
        acc = (sumi as f32).mul_add(bx.d.to_f32() * by.d.to_f32(), acc);
    }
    acc
}
