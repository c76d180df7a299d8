//! Q3_K: super-blocks of 256 weights in 16 groups of 16, `x = d·(sc_j − 32)·(q − 4)`
//! with 3-bit quants (the low 2 bits in `qs` packed as Q2_K's, the third bit in
//! `hmask`: bit `k` of byte `l` for weight `32k + l`) and a 6-bit signed scale per
//! group: the low nibbles of groups 0-7 and 8-15 in `scales[0..8]` (low, high), the
//! top 2 bits of group `j` at bits `2·(j/4)` of `scales[8 + j%4]`.
//!
//! Seed reads, writes and computes with it in the scalar kernel; there are no SIMD
//! kernels for it yet.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::QK_K;

use super::search::{make_q3_quants, nearest_int};
use super::{signed_max, BlockQ8K};

/// A Q3_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3K {
    /// Third bits.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits, 4 per byte.
    pub qs: [u8; QK_K / 4],
    /// Packed 6-bit group scales (see the module docs).
    pub scales: [u8; 12],
    /// Scale of the group scales.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

impl Default for BlockQ3K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// The 16 group scales of `s`, each `−32..32`.
pub fn unpack_scales(s: &[u8; 12]) -> [i32; 16] {
    std::array::from_fn(|j| {
        let low = if j < 8 { s[j] & 0x0F } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        i32::from(low | (high << 4)) - 32
    })
}

/// The 256 quants of `b` (each `−4..4`) in element order.
fn quants(b: &BlockQ3K) -> [i32; QK_K] {
    let mut q = [0i32; QK_K];
    for (half, qs) in b.qs.chunks_exact(32).enumerate() {
        for (l, &byte) in qs.iter().enumerate() {
            for k in 0..4 {
                let i = 128 * half + 32 * k + l;
                let high = (b.hmask[l] >> (4 * half + k)) & 1;
                q[i] = i32::from((byte >> (2 * k)) & 3) - if high == 1 { 0 } else { 4 };
            }
        }
    }
    q
}

/// Dequantizes Q3_K super-blocks into `y` (`y.len()` = 256 × blocks).
pub fn dequantize_row(x: &[BlockQ3K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let sc = unpack_scales(&b.scales);
        for (j, (q, o)) in quants(b).chunks_exact(16).zip(out.chunks_exact_mut(16)).enumerate() {
            let dl = d * sc[j] as f32;
            for (o, &q) in o.iter_mut().zip(q) {
                *o = dl * q as f32;
            }
        }
    }
}

/// Quantizes `x` into Q3_K super-blocks as ggml's reference quantizer does: each
/// group's scale from [`make_q3_quants`], the scales rounded to 6 bits against the
/// one of largest magnitude (which maps to −32), then every weight requantized.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ3K]) {
    assert_eq!(x.len(), y.len() * QK_K);
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; 16];
        for (j, sub) in block.chunks_exact(16).enumerate() {
            let sub: &[f32; 16] = sub.try_into().expect("16 values");
            let q: &mut [i8; 16] = (&mut l[16 * j..16 * j + 16]).try_into().expect("16 quants");
            scales[j] = make_q3_quants(4, sub, q);
        }
        let max_scale = signed_max(&scales);
        out.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                // ggml stores nearest_int's result in an i8 before clamping it.
                let q = i32::from(nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
                if j < 8 {
                    out.scales[j] = (q & 0x0F) as u8;
                } else {
                    out.scales[j - 8] |= ((q & 0x0F) << 4) as u8;
                }
                out.scales[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
            }
            out.d = f16::from_f32(1.0 / iscale);
        } else {
            out.d = f16::ZERO;
        }
        let sc = unpack_scales(&out.scales);
        for (j, sub) in block.chunks_exact(16).enumerate() {
            let d = out.d.to_f32() * sc[j] as f32;
            if d == 0.0 {
                continue;
            }
            for (q, &v) in l[16 * j..16 * j + 16].iter_mut().zip(sub) {
                *q = (nearest_int(v / d).clamp(-4, 3) + 4) as i8;
            }
        }
        out.hmask = [0; QK_K / 8];
        for (j, q) in l.iter_mut().enumerate() {
            if *q > 3 {
                out.hmask[j % 32] |= 1 << (j / 32);
                *q -= 4;
            }
        }
        for half in 0..2 {
            let l = &l[128 * half..128 * half + 128];
            for j in 0..32 {
                out.qs[32 * half + j] = (l[j] | (l[j + 32] << 2) | (l[j + 64] << 4) | (l[j + 96] << 6)) as u8;
            }
        }
    }
}

/// Scalar reference dot product of Q3_K weights with Q8_K activations: exact
/// integer sums per group, `sum += d·Σ sc·Σqy` per super-block in one f32 chain.
pub fn vec_dot(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut sum = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let q = quants(bx);
        let sc = unpack_scales(&bx.scales);
        let isum: i32 =
            (0..16).map(|j| sc[j] * (16 * j..16 * j + 16).map(|k| q[k] * i32::from(by.qs[k])).sum::<i32>()).sum();
        sum += bx.d.to_f32() * by.d * isum as f32;
    }
    sum
}
