//! Q2_K: super-blocks of 256 weights in 16 groups of 16, `x = d·sc_j·q − dmin·m_j`
//! with 2-bit quants and a 4-bit scale `sc_j` (low nibble) and minimum `m_j` (high
//! nibble) per group. Each 32 bytes of `qs` hold 128 weights: byte `l` has weights
//! `l`, `l + 32`, `l + 64`, `l + 96` of that half in bits 0-1, 2-3, 4-5, 6-7.
//!
//! Seed reads, writes and computes with it in the scalar kernel; there are no SIMD
//! kernels for it yet.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::QK_K;

use super::search::{make_qkx2_quants, nearest_int, Qkx2};
use super::BlockQ8K;

/// A Q2_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Scales (low nibble) and minimums (high nibble) of the 16 groups.
    pub scales: [u8; QK_K / 16],
    /// Quants, 4 per byte.
    pub qs: [u8; QK_K / 4],
    /// Scale of the group scales.
    pub d: f16,
    /// Scale of the group minimums.
    pub dmin: f16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

impl Default for BlockQ2K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// The 256 quants of `b` (each `0..4`) in element order.
fn quants(b: &BlockQ2K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (half, qs) in b.qs.chunks_exact(32).enumerate() {
        for (l, &byte) in qs.iter().enumerate() {
            for k in 0..4 {
                q[128 * half + 32 * k + l] = (byte >> (2 * k)) & 3;
            }
        }
    }
    q
}

/// Dequantizes Q2_K super-blocks into `y` (`y.len()` = 256 × blocks).
pub fn dequantize_row(x: &[BlockQ2K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        for (j, (q, o)) in quants(b).chunks_exact(16).zip(out.chunks_exact_mut(16)).enumerate() {
            let sc = b.scales[j];
            let (dl, ml) = (d * f32::from(sc & 0x0F), dmin * f32::from(sc >> 4));
            for (o, &q) in o.iter_mut().zip(q) {
                *o = dl * f32::from(q) - ml;
            }
        }
    }
}

/// Quantizes `x` into Q2_K super-blocks as ggml's reference quantizer does: each
/// group's scale and minimum from [`make_qkx2_quants`] (absolute errors weighted
/// by `|x|`, 16 trial scales), both rounded to 4 bits against the largest of each,
/// then every weight requantized with the rounded values.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ2K]) {
    assert_eq!(x.len(), y.len() * QK_K);
    let search = Qkx2 { nmax: 3, rmin: -0.5, rdelta: 0.1, nstep: 15, mad: true };
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0u8; QK_K];
        let mut aux = [0u8; 16];
        let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for (j, sub) in block.chunks_exact(16).enumerate() {
            let sub: &[f32; 16] = sub.try_into().expect("16 values");
            let w = sub.map(f32::abs);
            let q: &mut [u8; 16] = (&mut l[16 * j..16 * j + 16]).try_into().expect("16 quants");
            (scales[j], mins[j]) = make_qkx2_quants(search, sub, &w, q, &mut aux);
            max_scale = if scales[j] > max_scale { scales[j] } else { max_scale };
            max_min = if mins[j] > max_min { mins[j] } else { max_min };
        }
        out.scales = [0; 16];
        out.d = f16::ZERO;
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for (s, &v) in out.scales.iter_mut().zip(&scales) {
                *s = nearest_int(iscale * v) as u8;
            }
            out.d = f16::from_f32(max_scale / 15.0);
        }
        out.dmin = f16::ZERO;
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for (s, &v) in out.scales.iter_mut().zip(&mins) {
                *s |= (nearest_int(iscale * v) << 4) as u8;
            }
            out.dmin = f16::from_f32(max_min / 15.0);
        }
        for (j, sub) in block.chunks_exact(16).enumerate() {
            let d = out.d.to_f32() * f32::from(out.scales[j] & 0x0F);
            if d == 0.0 {
                continue;
            }
            let dm = out.dmin.to_f32() * f32::from(out.scales[j] >> 4);
            for (q, &v) in l[16 * j..16 * j + 16].iter_mut().zip(sub) {
                *q = nearest_int((v + dm) / d).clamp(0, 3) as u8;
            }
        }
        for half in 0..2 {
            let l = &l[128 * half..128 * half + 128];
            for j in 0..32 {
                out.qs[32 * half + j] = l[j] | (l[j + 32] << 2) | (l[j + 64] << 4) | (l[j + 96] << 6);
            }
        }
    }
}

/// Scalar reference dot product of Q2_K weights with Q8_K activations, in the
/// order of ggml's portable `ggml_vec_dot_q2_K_q8_K`: exact integer sums per
/// super-block, then `sum += d·Σ sc·Σqy − dmin·Σ m·bsum` in one f32 chain.
pub fn vec_dot(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut sum = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let summs: i32 = (0..16).map(|j| i32::from(by.bsums[j]) * i32::from(bx.scales[j] >> 4)).sum();
        let q = quants(bx);
        let isum: i32 = (0..16)
            .map(|j| {
                let dot: i32 = (16 * j..16 * j + 16).map(|k| i32::from(q[k]) * i32::from(by.qs[k])).sum();
                i32::from(bx.scales[j] & 0x0F) * dot
            })
            .sum();
        let dall = by.d * bx.d.to_f32();
        let dmin = by.d * bx.dmin.to_f32();
        sum += dall * isum as f32 - dmin * summs as f32;
    }
    sum
}
