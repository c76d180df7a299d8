//! Q5_K: super-blocks of 256 weights in 8 sub-blocks of 32, `x = d·sc_j·q − dmin·m_j`
//! with 5-bit quants and the 6-bit scales and minimums of Q4_K (same 12-byte packing,
//! see [`super::q4_k`]).
//!
//! The low 4 bits of each quant are stored as in Q4_K: each 32 bytes of `qs` hold
//! sub-block `2i` in the low nibbles and sub-block `2i + 1` in the high nibbles. The
//! fifth bit of element `l` of sub-block `j` is bit `j` of `qh[l]`.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::QK_K;

use super::order::{fma8, hsum8};
use super::q4_k::{k_scales, requantize_k, KScales};
use super::q4_k::{pack_scales, unpack_scales};
use super::search::Qkx2;
use super::BlockQ8K;

/// A Q5_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Scale of the sub-block scales.
    pub d: f16,
    /// Scale of the sub-block minimums.
    pub dmin: f16,
    /// Packed 6-bit scales and minimums (Q4_K's layout).
    pub scales: [u8; 12],
    /// Fifth bits: bit `j` of byte `l` belongs to element `l` of sub-block `j`.
    pub qh: [u8; QK_K / 8],
    /// Low nibbles.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

impl Default for BlockQ5K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// The 256 quants of `b` in element order (each in `0..32`).
#[inline]
fn quants(b: &BlockQ5K) -> [i32; QK_K] {
    std::array::from_fn(|e| {
        let (j, l) = (e / 32, e % 32);
        let byte = b.qs[32 * (j / 2) + l];
        let low = if j % 2 == 0 { byte & 0x0F } else { byte >> 4 };
        let high = (b.qh[l] >> j) & 1;
        i32::from(low | (high << 4))
    })
}

/// Dequantizes Q5_K super-blocks into `y` (`y.len()` = 256 × blocks).
pub fn dequantize_row(x: &[BlockQ5K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        let (sc, m) = unpack_scales(&b.scales);
        let q = quants(b);
        for (j, (q, out)) in q.chunks_exact(32).zip(out.chunks_exact_mut(32)).enumerate() {
            let (dj, mj) = (d * f32::from(sc[j]), dmin * f32::from(m[j]));
            for (o, &qi) in out.iter_mut().zip(q) {
                *o = dj * qi as f32 - mj;
            }
        }
    }
}

/// Quantizes `x` into Q5_K super-blocks as ggml's reference quantizer does: as
/// Q4_K ([`super::q4_k::quantize_row`]) with 5-bit quants and 16 trial scales.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ5K]) {
    assert_eq!(x.len(), y.len() * QK_K);
    let search = Qkx2 { nmax: 31, rmin: -0.5, rdelta: 0.1, nstep: 15, mad: false };
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let KScales { sc, m, max_scale, max_min, quants: mut l } = k_scales(block, search);
        out.d = f16::from_f32(max_scale / 63.0);
        out.dmin = f16::from_f32(max_min / 63.0);
        out.scales = pack_scales(&sc, &m);
        requantize_k(block, out.d, out.dmin, &sc, &m, 31, &mut l);
        out.qh = [0; QK_K / 8];
        for i in 0..4 {
            for j in 0..32 {
                let (lo, hi) = (l[64 * i + j], l[64 * i + 32 + j]);
                out.qs[32 * i + j] = (lo & 0x0F) | ((hi & 0x0F) << 4);
                out.qh[j] |= ((lo >> 4) << (2 * i)) | ((hi >> 4) << (2 * i + 1));
            }
        }
    }
}

/// Scalar reference dot product of Q5_K weights with Q8_K activations, in the order
/// of ggml's x86 `ggml_vec_dot_q5_K_q8_K`: the scaled quants in 8 lanes (lane `l`
/// holds elements `4l..4l+3` of every 32, times their sub-block's scale), one fused
/// multiply-add per lane and super-block; the minimums summed exactly per super-block
/// into one scalar chain (one fused multiply-add each), added at the end.
pub fn vec_dot(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let (sc, m) = unpack_scales(&bx.scales);
        let q = quants(bx);
        let sumi: [i32; 8] = std::array::from_fn(|l| {
            (0..8)
                .map(|j| {
                    let s: i32 = (0..4).map(|e| q[32 * j + 4 * l + e] * i32::from(by.qs[32 * j + 4 * l + e])).sum();
                    i32::from(sc[j]) * s
                })
                .sum()
        });
        let mins: i32 =
            (0..8).map(|j| i32::from(m[j]) * (i32::from(by.bsums[2 * j]) + i32::from(by.bsums[2 * j + 1]))).sum();
        let dmin = -by.d * bx.dmin.to_f32();
        summs = dmin.mul_add(mins as f32, summs);
        fma8(&mut acc, by.d * bx.d.to_f32(), &sumi);
    }
    hsum8(&acc) + summs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quants_round_trip_through_the_bit_layout() {
        let mut b = BlockQ5K::default();
        let want: [u8; QK_K] = std::array::from_fn(|e| ((e * 7 + e / 32) % 32) as u8);
        for (e, &q) in want.iter().enumerate() {
            let (j, l) = (e / 32, e % 32);
            b.qs[32 * (j / 2) + l] |= if j % 2 == 0 { q & 0x0F } else { (q & 0x0F) << 4 };
            b.qh[l] |= (q >> 4) << j;
        }
        let got = quants(&b);
        for e in 0..QK_K {
            assert_eq!(got[e], i32::from(want[e]), "element {e}");
        }
    }
}
