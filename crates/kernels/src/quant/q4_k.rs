//! Q4_K: super-blocks of 256 weights in 8 sub-blocks of 32, `x = d·sc_j·q − dmin·m_j`
//! with 4-bit quants and a 6-bit scale `sc_j` and minimum `m_j` per sub-block.
//!
//! The 16 six-bit values live in 12 bytes: bytes 0..4 hold `sc_0..3` in their low 6
//! bits, bytes 4..8 `m_0..3`; bytes 8..12 hold the low nibbles of `sc_4..7` (low) and
//! `m_4..7` (high), whose top 2 bits sit in the top bits of bytes 0..4 (scales) and
//! 4..8 (minimums). Each 32 bytes of `qs` hold sub-block `2i` in the low nibbles and
//! sub-block `2i + 1` in the high nibbles.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::QK_K;

use super::order::{fma8, hsum8};
use super::search::{make_qkx2_quants, nearest_int, rms_plus_abs_weights, Qkx2};
use super::BlockQ8K;

/// A Q4_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Scale of the sub-block scales.
    pub d: f16,
    /// Scale of the sub-block minimums.
    pub dmin: f16,
    /// Packed 6-bit scales and minimums (see the module docs).
    pub scales: [u8; 12],
    /// Nibbles.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

impl Default for BlockQ4K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Unpacks the 8 scales and 8 minimums of a super-block.
#[inline]
pub fn unpack_scales(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let word = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (a, b, c) = (word(0), word(4), word(8));
    let sc_lo = a & 0x3F3F_3F3F;
    let m_lo = b & 0x3F3F_3F3F;
    let sc_hi = (c & 0x0F0F_0F0F) | (((a >> 6) & 0x0303_0303) << 4);
    let m_hi = ((c >> 4) & 0x0F0F_0F0F) | (((b >> 6) & 0x0303_0303) << 4);
    let join = |lo: u32, hi: u32| {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&lo.to_le_bytes());
        out[4..].copy_from_slice(&hi.to_le_bytes());
        out
    };
    (join(sc_lo, sc_hi), join(m_lo, m_hi))
}

/// Packs 8 scales and 8 minimums (each `< 64`) into the 12-byte layout.
pub fn pack_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
    s
}

/// Dequantizes Q4_K super-blocks into `y` (`y.len()` = 256 × blocks).
pub fn dequantize_row(x: &[BlockQ4K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        let (sc, m) = unpack_scales(&b.scales);
        for (i, (q, out)) in b.qs.chunks_exact(32).zip(out.chunks_exact_mut(64)).enumerate() {
            let (d1, m1) = (d * f32::from(sc[2 * i]), dmin * f32::from(m[2 * i]));
            let (d2, m2) = (d * f32::from(sc[2 * i + 1]), dmin * f32::from(m[2 * i + 1]));
            for l in 0..32 {
                out[l] = d1 * f32::from(q[l] & 0x0F) - m1;
                out[l + 32] = d2 * f32::from(q[l] >> 4) - m2;
            }
        }
    }
}

/// Quantizes `x` into Q4_K super-blocks as ggml's reference quantizer does (what
/// `llama-quantize` writes without an importance matrix): each sub-block's scale
/// and minimum from [`make_qkx2_quants`] (21 trial scales, weights `rms + |x|`),
/// both rounded to 6 bits against the largest of each, then every weight
/// requantized with the rounded values.
pub fn quantize_row(x: &[f32], y: &mut [BlockQ4K]) {
    assert_eq!(x.len(), y.len() * QK_K);
    let search = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, mad: false };
    for (block, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let KScales { sc, m, max_scale, max_min, quants: mut l } = k_scales(block, search);
        out.d = f16::from_f32(max_scale / 63.0);
        out.dmin = f16::from_f32(max_min / 63.0);
        out.scales = pack_scales(&sc, &m);
        requantize_k(block, out.d, out.dmin, &sc, &m, 15, &mut l);
        for i in 0..4 {
            for j in 0..32 {
                out.qs[32 * i + j] = l[64 * i + j] | (l[64 * i + 32 + j] << 4);
            }
        }
    }
}

/// What the first steps of the Q4_K and Q5_K quantizers find for a super-block.
pub(super) struct KScales {
    /// The 6-bit sub-block scales.
    pub sc: [u8; 8],
    /// The 6-bit sub-block minimums.
    pub m: [u8; 8],
    /// The largest sub-block scale (63 steps of `d`).
    pub max_scale: f32,
    /// The largest sub-block minimum (63 steps of `dmin`).
    pub max_min: f32,
    /// The quants of the search.
    pub quants: [u8; QK_K],
}

/// The first steps Q4_K and Q5_K share: per sub-block [`make_qkx2_quants`], then
/// the 6-bit scales and minimums.
pub(super) fn k_scales(block: &[f32], search: Qkx2) -> KScales {
    let mut l = [0u8; QK_K];
    let mut aux = [0u8; 32];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (j, sub) in block.chunks_exact(32).enumerate() {
        let sub: &[f32; 32] = sub.try_into().expect("32 values");
        let w = rms_plus_abs_weights(sub);
        let out: &mut [u8; 32] = (&mut l[32 * j..32 * j + 32]).try_into().expect("32 quants");
        let (s, m) = make_qkx2_quants(search, sub, &w, out, &mut aux);
        (scales[j], mins[j]) = (s, m);
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // ggml stores nearest_int's result in a u8 (wrapping) before capping it at 63.
    let six = |v: f32| (nearest_int(v) as u8).min(63);
    let sc = scales.map(|s| six(inv_scale * s));
    let m = mins.map(|v| six(inv_min * v));
    KScales { sc, m, max_scale, max_min, quants: l }
}

/// Requantizes each sub-block of `block` into `l` with its rounded scale and
/// minimum, as `nearest_int((x + dmin·m)/(d·sc))` in `0..=nmax`; a sub-block whose
/// scale rounded to 0 keeps the quants of the search.
pub(super) fn requantize_k(block: &[f32], d: f16, dmin: f16, sc: &[u8; 8], m: &[u8; 8], nmax: i32, l: &mut [u8; QK_K]) {
    for (j, sub) in block.chunks_exact(32).enumerate() {
        let dj = d.to_f32() * f32::from(sc[j]);
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m[j]);
        for (q, &v) in l[32 * j..32 * j + 32].iter_mut().zip(sub) {
            *q = nearest_int((v + dm) / dj).clamp(0, nmax) as u8;
        }
    }
}

/// The 256 quants of `b` in element order (each in `0..16`).
#[inline]
fn quants(b: &BlockQ4K) -> [i32; QK_K] {
    std::array::from_fn(|e| {
        let byte = b.qs[32 * (e / 64) + e % 32];
        i32::from(if e % 64 < 32 { byte & 0x0F } else { byte >> 4 })
    })
}

/// `m_j·(sum of the 32 activations of sub-block j)` for `j = 2k, 2k + 1`: lane `k` of
/// ggml's minimum products.
#[inline]
fn min_products(m: &[u8; 8], y: &BlockQ8K) -> [i32; 4] {
    let s = |j: usize| i32::from(m[j]) * (i32::from(y.bsums[2 * j]) + i32::from(y.bsums[2 * j + 1]));
    std::array::from_fn(|k| s(2 * k) + s(2 * k + 1))
}

/// Scalar reference dot product of Q4_K weights with Q8_K activations, in the order
/// of ggml's x86 `ggml_vec_dot_q4_K_q8_K`: the scaled quants in 8 lanes (lane `l`
/// holds elements `4l..4l+3` of every 32, times their sub-block's scale), the
/// minimums in 4 lanes, each chain one fused multiply-add per super-block.
pub fn vec_dot(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; 8];
    let mut acc_m = [0.0f32; 4];
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
        let dmin = -by.d * bx.dmin.to_f32();
        for (a, p) in acc_m.iter_mut().zip(min_products(&m, by)) {
            *a = dmin.mul_add(p as f32, *a);
        }
        fma8(&mut acc, by.d * bx.d.to_f32(), &sumi);
    }
    hsum8(&acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))
}

/// Scalar reference dot product in the order of llama.cpp's repacked Q4_K gemv kernel
/// (`ggml_gemv_q4_K_8x8_q8_K`), used on x86 for matrices whose row count is a multiple
/// of 8: each super-block's whole scaled integer sum and whole minimum sum are added to
/// two f32 chains, one fused multiply-add each; the result is the difference of the
/// chains. (llama.cpp's gemm kernel adds per pair of sub-blocks instead, for some of a
/// batch's tokens; Seed uses this order for every token: see `quant::order`.)
pub fn vec_dot_repacked(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut acc = 0.0f32;
    let mut acc_m = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let (sc, m) = unpack_scales(&bx.scales);
        let q = quants(bx);
        let d = bx.d.to_f32() * by.d;
        let dmin = bx.dmin.to_f32() * by.d;
        // Scaled sums of sub-blocks 2k and 2k + 1, and their minimum products.
        let sums: [i32; 4] = std::array::from_fn(|k| {
            (2 * k..2 * k + 2)
                .map(|j| {
                    let s: i32 = (32 * j..32 * j + 32).map(|e| q[e] * i32::from(by.qs[e])).sum();
                    i32::from(sc[j]) * s
                })
                .sum()
        });
        let mins = min_products(&m, by);
        acc = (sums.iter().sum::<i32>() as f32).mul_add(d, acc);
        acc_m = (mins.iter().sum::<i32>() as f32).mul_add(dmin, acc_m);
    }
    acc - acc_m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_pack_and_unpack() {
        let sc = [0, 63, 17, 32, 63, 1, 48, 15];
        let m = [5, 0, 63, 31, 16, 62, 0, 33];
        assert_eq!(unpack_scales(&pack_scales(&sc, &m)), (sc, m));
    }

    #[test]
    fn unpack_matches_the_per_index_definition() {
        let s: [u8; 12] = std::array::from_fn(|i| (i as u8).wrapping_mul(97).wrapping_add(13));
        let (sc, m) = unpack_scales(&s);
        for j in 0..8 {
            let (d, mm) = if j < 4 {
                (s[j] & 63, s[j + 4] & 63)
            } else {
                ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
            };
            assert_eq!((sc[j], m[j]), (d, mm), "j = {j}");
        }
    }
}
