//! IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-linear table of 16 values
//! ([`VALUES`]). IQ4_NL: blocks of 32 with an f16 scale. IQ4_XS: super-blocks of
//! 256 with an f16 scale and a 6-bit signed scale per 32 (low nibbles in
//! `scales_l`, the top 2 bits of block `i` at bits `2i` of `scales_h`). Both pack
//! 32 values in 16 bytes as Q4_0 does (element `j` low, `j + 16` high).
//!
//! Seed reads, writes and computes with them in the scalar kernel; there are no
//! SIMD kernels for them yet.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::QK_K;

use super::search::{nearest_int, GROUP_MAX_EPS};
use super::{signed_max, BlockQ8K, BlockQ8_0, QK};

/// The 16 values an index stands for (ggml's `kvalues_iq4nl`).
pub const VALUES: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// An IQ4_NL block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockIq4Nl {
    /// Scale.
    pub d: f16,
    /// Indices: element `j` low, element `j + 16` high.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockIq4Nl>() == 18);

/// An IQ4_XS super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIq4Xs {
    /// Scale of the block scales.
    pub d: f16,
    /// Top 2 bits of each block's scale.
    pub scales_h: u16,
    /// Low 4 bits of each block's scale, two per byte.
    pub scales_l: [u8; QK_K / 64],
    /// Indices, 16 bytes per block of 32.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockIq4Xs>() == 136);

impl Default for BlockIq4Xs {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// The 32 table values of 16 bytes of indices, in element order.
fn values32(qs: &[u8]) -> [i32; 32] {
    std::array::from_fn(|k| {
        let byte = qs[k % 16];
        i32::from(VALUES[usize::from(if k < 16 { byte & 0x0F } else { byte >> 4 })])
    })
}

/// The 8 block scales of an IQ4_XS super-block, each `−32..32`.
fn xs_scales(b: &BlockIq4Xs) -> [i32; 8] {
    std::array::from_fn(|i| {
        let low = (b.scales_l[i / 2] >> (4 * (i % 2))) & 0x0F;
        let high = ((b.scales_h >> (2 * i)) & 3) as u8;
        i32::from(low | (high << 4)) - 32
    })
}

/// Dequantizes IQ4_NL blocks into `y` (`y.len()` = 32 × blocks).
pub fn dequantize_row_nl(x: &[BlockIq4Nl], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, v) in out.iter_mut().zip(values32(&b.qs)) {
            *o = d * v as f32;
        }
    }
}

/// Dequantizes IQ4_XS super-blocks into `y` (`y.len()` = 256 × blocks).
pub fn dequantize_row_xs(x: &[BlockIq4Xs], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K);
    for (b, out) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ((sc, qs), out) in xs_scales(b).iter().zip(b.qs.chunks_exact(16)).zip(out.chunks_exact_mut(32)) {
            let dl = d * *sc as f32;
            for (o, v) in out.iter_mut().zip(values32(qs)) {
                *o = dl * v as f32;
            }
        }
    }
}

/// The index of the table value nearest to `x` (the upper one on a tie), by
/// ggml's bisection.
fn best_index(x: f32) -> u8 {
    let v = |i: usize| f32::from(VALUES[i]);
    if x <= v(0) {
        return 0;
    }
    if x >= v(15) {
        return 15;
    }
    let (mut lo, mut hi) = (0usize, 15usize);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if x < v(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    if x - v(hi - 1) < v(hi) - x {
        (hi - 1) as u8
    } else {
        hi as u8
    }
}

/// Trial scales on each side of the first guess (what `llama-quantize` uses).
const NTRY: i32 = 7;

/// One block of 32: its scale from the search over `2·NTRY + 1` trial scales
/// (weights `x²`), and the indices of the first guess in `l`.
fn block_scale(x: &[f32; 32], l: &mut [u8; 32]) -> f32 {
    let max = signed_max(x);
    let amax = max.abs();
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let w = x.map(|v| v * v);
    let sums = |id: f32, l: Option<&mut [u8; 32]>| {
        let mut l = l;
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        for i in 0..32 {
            let k = best_index(id * x[i]);
            if let Some(l) = l.as_deref_mut() {
                l[i] = k;
            }
            let q = f32::from(VALUES[usize::from(k)]);
            sumqx += w[i] * q * x[i];
            sumq2 += w[i] * q * q;
        }
        (sumqx, sumq2)
    };
    let d = -max / f32::from(VALUES[0]);
    let (sumqx, sumq2) = sums(1.0 / d, Some(l));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        let id = (itry + i32::from(VALUES[0])) as f32 / max;
        let (sumqx, sumq2) = sums(id, None);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Packs 32 indices as 16 bytes.
fn pack(l: &[u8; 32], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = l[j] | (l[j + 16] << 4);
    }
}

/// Quantizes `x` into IQ4_NL blocks as `llama-quantize` does (ggml's
/// `quantize_iq4_nl` without an importance matrix).
pub fn quantize_row_nl(x: &[f32], y: &mut [BlockIq4Nl]) {
    assert_eq!(x.len(), y.len() * QK);
    for (block, out) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let block: &[f32; 32] = block.try_into().expect("32 values");
        let mut l = [0u8; 32];
        let d = block_scale(block, &mut l);
        out.d = f16::from_f32(d);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (q, &v) in l.iter_mut().zip(block) {
            *q = best_index(id * v);
        }
        pack(&l, &mut out.qs);
    }
}

/// Quantizes `x` into IQ4_XS super-blocks as `llama-quantize` does (ggml's
/// `quantize_iq4_xs` without an importance matrix).
pub fn quantize_row_xs(x: &[f32], y: &mut [BlockIq4Xs]) {
    assert_eq!(x.len(), y.len() * QK_K);
    for (sb, out) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut l = [0u8; 32];
        let mut scales = [0.0f32; 8];
        for (i, block) in sb.chunks_exact(32).enumerate() {
            scales[i] = block_scale(block.try_into().expect("32 values"), &mut l);
        }
        let d = -signed_max(&scales) / 32.0;
        out.d = f16::from_f32(d);
        out.scales_h = 0;
        out.scales_l = [0; QK_K / 64];
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (i, block) in sb.chunks_exact(32).enumerate() {
            let ls = nearest_int(id * scales[i]).clamp(-32, 31);
            let dl = d * ls as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            for (q, &v) in l.iter_mut().zip(block) {
                *q = best_index(idl * v);
            }
            pack(&l, &mut out.qs[16 * i..16 * i + 16]);
            let ls = (ls + 32) as u8;
            out.scales_l[i / 2] |= (ls & 0x0F) << (4 * (i % 2));
            out.scales_h |= u16::from(ls >> 4) << (2 * i);
        }
    }
}

/// Scalar reference dot product of IQ4_NL weights with Q8_0 activations:
/// `sum += d_x·d_y·Σ v·q` per block in one f32 chain.
pub fn vec_dot_nl(x: &[BlockIq4Nl], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut sum = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let isum: i32 = values32(&bx.qs).iter().zip(&by.qs).map(|(&v, &q)| v * i32::from(q)).sum();
        sum += by.d.to_f32() * bx.d.to_f32() * isum as f32;
    }
    sum
}

/// Scalar reference dot product of IQ4_XS weights with Q8_K activations:
/// `sum += d_x·d_y·(sc − 32)·Σ v·q` per block of 32 in one f32 chain.
pub fn vec_dot_xs(x: &[BlockIq4Xs], y: &[BlockQ8K]) -> f32 {
    assert_eq!(x.len(), y.len());
    let mut sum = 0.0f32;
    for (bx, by) in x.iter().zip(y) {
        let d4d8 = bx.d.to_f32() * by.d;
        for (i, sc) in xs_scales(bx).into_iter().enumerate() {
            let v = values32(&bx.qs[16 * i..16 * i + 16]);
            let isum: i32 = v.iter().zip(&by.qs[32 * i..32 * i + 32]).map(|(&v, &q)| v * i32::from(q)).sum();
            sum += d4d8 * sc as f32 * isum as f32;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_index_picks_the_nearest_value() {
        assert_eq!(best_index(-200.0), 0);
        assert_eq!(best_index(0.0), 8); // 1 is nearer than −10
        assert_eq!(best_index(-5.0), 7);
        assert_eq!(best_index(200.0), 15);
        assert_eq!(best_index(101.0), 15); // 89 and 113 are 12 away: the upper one, as ggml
    }
}
