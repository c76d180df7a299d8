//! Q6_K: super-blocks of 256 weights, `x = d·sc_g·(q − 32)` with 6-bit quants and a
//! signed 8-bit scale per group of 16.
//!
//! Each half of 128 elements uses 64 bytes of `ql` and 32 of `qh`. For `l < 32`:
//! element `l` is `ql[l]` low nibble with `qh[l]` bits 0–1 on top, element `l + 32`
//! is `ql[l + 32]` low nibble with bits 2–3, element `l + 64` is `ql[l]` high nibble
//! with bits 4–5, element `l + 96` is `ql[l + 32]` high nibble with bits 6–7.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::QK_K;

use super::order::{fma8, hsum8};
use super::search::{make_qx_quants, nearest_int, GROUP_MAX_EPS};
use super::{signed_max, BlockQ8K};

/// A Q6_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// Scale of each group of 16.
    pub scales: [i8; QK_K / 16],
    /// Scale of the scales.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

impl Default for BlockQ6K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// The 256 quants of `b`, each in `0..64` (not yet offset by −32).
#[inline]
pub fn unpack_quants(b: &BlockQ6K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for half in 0..2 {
        let ql = &b.ql[64 * half..64 * half + 64];
        let qh = &b.qh[32 * half..32 * half + 32];
        let out = &mut q[128 * half..128 * half + 128];
        for l in 0..32 {
            out[l] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
            out[l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
            out[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            out[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    q
}

/// Dequantizes Q6_K super-blocks into `y` (`y.len()` = 256 × blocks).
pub fn dequantize_row(x: &[BlockQ6K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for (i, q) in unpack_quants(b).iter().enumerate() {
            out[i] = d * f32::from(b.scales[i / 16]) * f32::from(*q as i8 - 32);
        }
    }
}

/// Quantizes `x` into Q6_K super-blocks as ggml's reference quantizer does: each
/// group of 16 gets its scale from [`make_qx_quants`], the scales are rounded to
/// 8 bits against the one of largest magnitude (which maps to −128), then every
/// weight is requantized with its rounded scale.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ6K]) {
    assert_eq!(x.len(), y.len() * QK_K);
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        for (g, sub) in block.chunks_exact(16).enumerate() {
            let sub: &[f32; 16] = sub.try_into().expect("16 values");
            let s = make_qx_quants(32, sub, (&mut l[16 * g..16 * g + 16]).try_into().expect("16 quants"));
            scales[g] = s;
        }
        let max_scale = signed_max(&scales);
        let max_abs_scale = max_scale.abs();
        if max_abs_scale < GROUP_MAX_EPS {
            *out = BlockQ6K::zeroed();
            continue;
        }
        let iscale = -128.0 / max_scale;
        out.d = f16::from_f32(1.0 / iscale);
        out.scales = scales.map(|s| nearest_int(iscale * s).min(127) as i8);
        for (g, sub) in block.chunks_exact(16).enumerate() {
            let d = out.d.to_f32() * f32::from(out.scales[g]);
            if d == 0.0 {
                continue;
            }
            for (q, &v) in l[16 * g..16 * g + 16].iter_mut().zip(sub) {
                *q = (nearest_int(v / d).clamp(-32, 31) + 32) as i8;
            }
        }
        let q = l.map(|v| v as u8);
        for half in 0..2 {
            let q = &q[128 * half..128 * half + 128];
            for j in 0..32 {
                out.ql[64 * half + j] = (q[j] & 0x0F) | ((q[j + 64] & 0x0F) << 4);
                out.ql[64 * half + j + 32] = (q[j + 32] & 0x0F) | ((q[j + 96] & 0x0F) << 4);
                out.qh[32 * half + j] =
                    (q[j] >> 4) | ((q[j + 32] >> 4) << 2) | ((q[j + 64] >> 4) << 4) | ((q[j + 96] >> 4) << 6);
            }
        }
    }
}

/// Scalar reference dot product of Q6_K weights with Q8_K activations, in the order
/// of ggml's x86 `ggml_vec_dot_q6_K_q8_K`: 8 lanes, one fused multiply-add per
/// super-block. Lane `l` holds elements `4l..4l+3` of every 32 (unsigned quants
/// times their group's scale) minus `32·Σ` of groups `2l` and `2l + 1` (the offset,
/// taken from `bsums`): a different split of the same integer, which is what makes
/// the rounding ggml's.
pub fn vec_dot(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    for (bx, by) in x.iter().zip(y) {
        let q = unpack_quants(bx);
        let sc = |g: usize| i32::from(bx.scales[g]);
        let sumi: [i32; 8] = std::array::from_fn(|l| {
            let scaled: i32 = (0..8)
                .map(|k| {
                    let at = 32 * k + 4 * l;
                    let s: i32 = (at..at + 4).map(|e| i32::from(q[e]) * i32::from(by.qs[e])).sum();
                    sc(at / 16) * s
                })
                .sum();
            let offset = sc(2 * l) * i32::from(by.bsums[2 * l]) + sc(2 * l + 1) * i32::from(by.bsums[2 * l + 1]);
            scaled - 32 * offset
        });
        fma8(&mut acc, by.d * bx.d.to_f32(), &sumi);
    }
    hsum8(&acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quants_round_trip_through_the_bit_layout() {
        let x: Vec<f32> = (0..QK_K).map(|i| ((i * 37 % 64) as f32 - 32.0) * 0.25).collect();
        let mut b = [BlockQ6K::default()];
        quantize_row(&x, &mut b);
        let mut y = vec![0.0f32; QK_K];
        dequantize_row(&b, &mut y);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= 0.126, "{a} vs {b}"); // half a step of 0.25
        }
    }
}
