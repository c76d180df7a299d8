//! Q8_K: the activation format of the K-quants. 256 signed bytes, an f32 scale and
//! the sums of each 16 quants (`bsums`), which the K-quant dot products use to apply
//! their minimums and offsets without touching the activations again.
//!
//! Quantized as ggml does: `iscale = −127 / max` where `max` is the element of
//! largest magnitude (sign kept), `q = min(127, round_half_even(iscale·x))`,
//! `d = 1 / iscale`. (With the sign kept, `d` is negative when `max` is positive.)

use bytemuck::{Pod, Zeroable};

use crate::QK_K;

use super::signed_max;

/// A Q8_K super-block: `x[i] = d · qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sum of each group of 16 quants.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

impl Default for BlockQ8K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Quantizes `x` (a multiple of 256 elements) into Q8_K super-blocks.
pub fn quantize_row_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(x.len(), y.len() * QK_K, "quantize_row_q8_k: {} elements into {} blocks", x.len(), y.len());
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let max = signed_max(block);
        if max == 0.0 {
            *out = BlockQ8K::zeroed();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in out.qs.iter_mut().zip(block) {
            // `as i32` saturates; values stay within ±127 except for the clamp's case.
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
        }
        for (s, group) in out.bsums.iter_mut().zip(out.qs.chunks_exact(16)) {
            *s = group.iter().map(|&q| i16::from(q)).sum();
        }
        out.d = 1.0 / iscale;
    }
}

/// Dequantizes Q8_K super-blocks into `y` (`y.len()` = 256 × blocks).
pub fn dequantize_row_q8_k(x: &[BlockQ8K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = b.d * f32::from(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_k_keeps_the_sign_of_the_largest_element_and_sums_groups() {
        let mut x = vec![0.0f32; QK_K];
        x[3] = 2.0;
        x[4] = -1.0;
        x[40] = 0.5;
        let mut b = [BlockQ8K::default()];
        quantize_row_q8_k(&x, &mut b);
        assert_eq!(b[0].d, 1.0 / (-127.0 / 2.0));
        assert_eq!((b[0].qs[3], b[0].qs[4], b[0].qs[40]), (-127, 64, -32)); // 63.5 rounds to even 64
        assert_eq!(b[0].bsums[0], -127 + 64);
        assert_eq!(b[0].bsums[2], -32);
        let mut y = vec![0.0f32; QK_K];
        dequantize_row_q8_k(&b, &mut y);
        assert!((y[3] - 2.0).abs() < 1e-6 && (y[4] + 1.0).abs() < 0.02);
    }
}
