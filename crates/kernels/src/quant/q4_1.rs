//! Q4_1: 32 weights as 4-bit values with an f16 scale and minimum, `x = d·q + m`.
//! Byte `j` of `qs` holds element `j` (low nibble) and element `j + 16` (high nibble).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::order::{fma8, group_dots, hsum8};
use super::{BlockQ8_1, QK};

/// A Q4_1 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (the value of quant 0).
    pub m: f16,
    /// Nibbles: element `j` low, element `j + 16` high.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// Dequantizes Q4_1 blocks into `y` (`y.len()` = 32 × blocks).
pub fn dequantize_row(x: &[BlockQ4_1], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (j, &q) in b.qs.iter().enumerate() {
            out[j] = f32::from(q & 0x0F) * d + m;
            out[j + QK / 2] = f32::from(q >> 4) * d + m;
        }
    }
}

/// Quantizes `x` into Q4_1 blocks as ggml's reference quantizer does: minimum to
/// maximum in 15 steps, quants `trunc((x − min)/d + 0.5)` capped at 15.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ4_1]) {
    assert_eq!(x.len(), y.len() * QK);
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (min, max) = super::min_max(block);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
        out.d = f16::from_f32(d);
        out.m = f16::from_f32(min);
        for j in 0..QK / 2 {
            out.qs[j] = q(block[j]) | (q(block[j + QK / 2]) << 4);
        }
    }
}

/// Scalar reference dot product of Q4_1 weights with Q8_1 activations,
/// `Σ d_x·d_y·Σ q_x q_y + m_x·s_y` over blocks, in the order of ggml's x86
/// `ggml_vec_dot_q4_1_q8_1`: the first terms in 8 lanes (see [`super::order`]), the
/// `m·s` terms in one fused multiply-add chain added last.
pub fn vec_dot(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let q: [i32; QK] = std::array::from_fn(|k| {
            let byte = bx.qs[k % (QK / 2)];
            i32::from(if k < QK / 2 { byte & 0x0F } else { byte >> 4 })
        });
        summs = bx.m.to_f32().mul_add(by.s.to_f32(), summs);
        fma8(&mut acc, bx.d.to_f32() * by.d.to_f32(), &group_dots(&q, &by.qs));
    }
    hsum8(&acc) + summs
}

/// Scalar reference of the same dot product as the kernels of the 16-row
/// interleaved layout (`matmul::Layout::Interleaved16`) compute it for generated
/// tokens: one f32 chain, block by block `acc = fma(d_x·d_y, Σ q_x q_y, acc)` then
/// `acc = fma(m_x, s_y, acc)`, the integer sum exact. It depends on nothing but
/// the two rows, so a token's result is the same in any batch.
pub fn vec_dot_chain(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let isum: i32 = (0..QK)
            .map(|k| {
                let byte = bx.qs[k % (QK / 2)];
                i32::from(if k < QK / 2 { byte & 0x0F } else { byte >> 4 }) * i32::from(by.qs[k])
            })
            .sum();
        acc = (bx.d.to_f32() * by.d.to_f32()).mul_add(isum as f32, acc);
        acc = bx.m.to_f32().mul_add(by.s.to_f32(), acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_by_hand() {
        let mut b = BlockQ4_1 { d: f16::from_f32(0.5), m: f16::from_f32(-2.0), qs: [0; 16] };
        b.qs[0] = 0x3F; // element 0 = 15, element 16 = 3
        b.qs[15] = 0xA1; // element 15 = 1, element 31 = 10
        let mut y = [0.0f32; 32];
        dequantize_row(&[b], &mut y);
        assert_eq!(y[0], 15.0 * 0.5 - 2.0);
        assert_eq!(y[16], 3.0 * 0.5 - 2.0);
        assert_eq!(y[15], 0.5 - 2.0);
        assert_eq!(y[31], 10.0 * 0.5 - 2.0);
        assert_eq!(y[1], -2.0);
    }
}
