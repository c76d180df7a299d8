//! Q5_1: 32 weights as 5-bit values with an f16 scale and minimum, `x = d·q + m`.
//! The low 4 bits are packed like Q4_1; bit `j` of the little-endian `qh` word is
//! bit 4 of element `j` (as Q5_0). Activations are Q8_1, as for Q4_1.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::order::{fma8, group_dots, hsum8};
use super::{BlockQ8_1, QK};

/// A Q5_1 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (the value of quant 0).
    pub m: f16,
    /// Fifth bits, element `j` at bit `j` of the little-endian word.
    pub qh: [u8; 4],
    /// Low nibbles: element `j` low, element `j + 16` high.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// The 32 quants of `b`, each in `0..32`.
#[inline]
fn quants(b: &BlockQ5_1) -> [u32; QK] {
    let qh = u32::from_le_bytes(b.qh);
    let mut q = [0u32; QK];
    for (j, &byte) in b.qs.iter().enumerate() {
        q[j] = u32::from(byte & 0x0F) | (((qh >> j) & 1) << 4);
        q[j + QK / 2] = u32::from(byte >> 4) | (((qh >> (j + QK / 2)) & 1) << 4);
    }
    q
}

/// Dequantizes Q5_1 blocks into `y` (`y.len()` = 32 × blocks).
pub fn dequantize_row(x: &[BlockQ5_1], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (o, q) in out.iter_mut().zip(quants(b)) {
            *o = q as f32 * d + m;
        }
    }
}

/// Quantizes `x` into Q5_1 blocks as ggml's reference quantizer does: minimum to
/// maximum in 31 steps, quants `trunc((x − min)/d + 0.5)`.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ5_1]) {
    assert_eq!(x.len(), y.len() * QK);
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (min, max) = super::min_max(block);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| u32::from(((v - min) * id + 0.5) as u8);
        let mut qh = 0u32;
        out.d = f16::from_f32(d);
        out.m = f16::from_f32(min);
        for j in 0..QK / 2 {
            let (lo, hi) = (q(block[j]), q(block[j + QK / 2]));
            out.qs[j] = ((lo & 0x0F) | ((hi & 0x0F) << 4)) as u8;
            qh |= (((lo >> 4) & 1) << j) | (((hi >> 4) & 1) << (j + QK / 2));
        }
        out.qh = qh.to_le_bytes();
    }
}

/// Scalar reference dot product of Q5_1 weights with Q8_1 activations, in the
/// order of ggml's x86 `ggml_vec_dot_q5_1_q8_1` (that of Q4_1: the `d·Σq` terms in
/// 8 lanes, see [`super::order`]; the `m·s` terms in one fused multiply-add chain
/// added last).
pub fn vec_dot(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let q = quants(bx).map(|q| q as i32);
        summs = bx.m.to_f32().mul_add(by.s.to_f32(), summs);
        fma8(&mut acc, bx.d.to_f32() * by.d.to_f32(), &group_dots(&q, &by.qs));
    }
    hsum8(&acc) + summs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_1_block_by_hand() {
        let mut b = BlockQ5_1 { d: f16::from_f32(0.25), m: f16::from_f32(-1.0), qh: [0; 4], qs: [0; 16] };
        b.qs[0] = 0x3F; // element 0 low bits 15, element 16 low bits 3
        b.qh = (1u32 << 16).to_le_bytes(); // element 16 gets bit 4: 3 + 16 = 19
        let mut y = [0.0f32; 32];
        dequantize_row(&[b], &mut y);
        assert_eq!(y[0], 15.0 * 0.25 - 1.0);
        assert_eq!(y[16], 19.0 * 0.25 - 1.0);
        assert_eq!(y[1], -1.0);
    }
}
