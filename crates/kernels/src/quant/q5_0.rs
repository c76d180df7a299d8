//! Q5_0: 32 weights as 5-bit values around 16 and one f16 scale, `x = d·(q − 16)`.
//! The low 4 bits are packed like Q4_0; bit `j` of the little-endian `qh` word is
//! bit 4 of element `j`.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::order::{fma8, group_dots, hsum8};
use super::{signed_max, BlockQ8_0, QK};

/// A Q5_0 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits, element `j` at bit `j` of the little-endian word.
    pub qh: [u8; 4],
    /// Low nibbles: element `j` low, element `j + 16` high.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// The 32 quants of `b`, each in `0..32`.
#[inline]
fn quants(b: &BlockQ5_0) -> [i32; QK] {
    let qh = u32::from_le_bytes(b.qh);
    let mut q = [0i32; QK];
    for (j, &byte) in b.qs.iter().enumerate() {
        q[j] = i32::from(byte & 0x0F) | (((qh >> j) & 1) << 4) as i32;
        q[j + QK / 2] = i32::from(byte >> 4) | (((qh >> (j + QK / 2)) & 1) << 4) as i32;
    }
    q
}

/// Dequantizes Q5_0 blocks into `y` (`y.len()` = 32 × blocks).
pub fn dequantize_row(x: &[BlockQ5_0], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, q) in out.iter_mut().zip(quants(b)) {
            *o = (q - 16) as f32 * d;
        }
    }
}

/// Quantizes `x` into Q5_0 blocks as ggml's reference quantizer does: the value of
/// largest magnitude maps to −16, the others to `trunc(x/d + 16.5)` capped at 31.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ5_0]) {
    assert_eq!(x.len(), y.len() * QK);
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let d = signed_max(block) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| u32::from(((v * id + 16.5) as i8).min(31) as u8);
        let mut qh = 0u32;
        out.d = f16::from_f32(d);
        for j in 0..QK / 2 {
            let (lo, hi) = (q(block[j]), q(block[j + QK / 2]));
            out.qs[j] = ((lo & 0x0F) | ((hi & 0x0F) << 4)) as u8;
            qh |= ((lo >> 4) << j) | ((hi >> 4) << (j + QK / 2));
        }
        out.qh = qh.to_le_bytes();
    }
}

/// Scalar reference dot product of Q5_0 weights with Q8_0 activations, in the
/// order of ggml's x86 `ggml_vec_dot_q5_0_q8_0` (8 lanes, see [`super::order`]).
pub fn vec_dot(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    for (bx, by) in x.iter().zip(y) {
        let q = quants(bx).map(|q| q - 16);
        fma8(&mut acc, bx.d.to_f32() * by.d.to_f32(), &group_dots(&q, &by.qs));
    }
    hsum8(&acc)
}

/// The same dot product as the kernels of the 16-row interleaved layout compute
/// it for generated tokens: one f32 chain, block by block `acc = fma(d_x·d_y,
/// Σ q_x q_y, acc)`, the integer sum exact (see `q4_1::vec_dot_chain`).
pub fn vec_dot_chain(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let isum: i32 = quants(bx).iter().zip(&by.qs).map(|(&q, &a)| (q - 16) * i32::from(a)).sum();
        acc = (bx.d.to_f32() * by.d.to_f32()).mul_add(isum as f32, acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_0_high_bits_follow_element_order() {
        let mut b = BlockQ5_0 { d: f16::from_f32(1.0), qh: 0u32.to_le_bytes(), qs: [0x88; 16] };
        b.qh = ((1u32 << 0) | (1 << 17) | (1 << 31)).to_le_bytes();
        let mut y = [0.0f32; 32];
        dequantize_row(&[b], &mut y);
        assert_eq!(y[0], (8 + 16 - 16) as f32);
        assert_eq!(y[1], (8 - 16) as f32);
        assert_eq!(y[17], 8.0);
        assert_eq!(y[31], 8.0);
        assert_eq!(y[16], -8.0);
    }
}
