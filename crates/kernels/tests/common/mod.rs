//! Helpers shared by the kernel tests: random valid weights and activations, and
//! the naive reference product.

#![allow(dead_code)]

use half::{bf16, f16};
use kernels::{dequantize_row, GgmlType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every weight type the kernels support.
pub const TYPES: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Bytes with the alignment of any block type (u64 storage).
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    pub fn zeroed(len: usize) -> Self {
        Aligned { words: vec![0; len.div_ceil(8)], len }
    }
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

/// A random f16 scale: magnitude in [lo, hi), random sign if `signed`.
fn scale(rng: &mut ChaCha8Rng, lo: f32, hi: f32, signed: bool) -> [u8; 2] {
    let mut v = rng.gen_range(lo..hi);
    if signed && rng.gen_bool(0.5) {
        v = -v;
    }
    f16::from_f32(v).to_le_bytes()
}

/// `rows` random rows of `cols` elements of `ty`: random quant bits (every pattern a
/// file may hold, e.g. −128 in Q8_0) with sane f16 scales.
pub fn random_weights(rng: &mut ChaCha8Rng, ty: GgmlType, rows: usize, cols: usize) -> Aligned {
    let row_size = ty.row_size(cols).expect("whole blocks");
    let mut data = Aligned::zeroed(rows * row_size);
    let bytes = data.bytes_mut();
    match ty {
        GgmlType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                c.copy_from_slice(&rng.gen_range(-1.0f32..1.0).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in bytes.chunks_exact_mut(2) {
                c.copy_from_slice(&f16::from_f32(rng.gen_range(-1.0f32..1.0)).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for c in bytes.chunks_exact_mut(2) {
                c.copy_from_slice(&bf16::from_f32(rng.gen_range(-1.0f32..1.0)).to_le_bytes());
            }
        }
        _ => {
            rng.fill(bytes);
            for b in bytes.chunks_exact_mut(ty.type_size()) {
                match ty {
                    GgmlType::Q4_1 | GgmlType::Q5_1 => {
                        b[0..2].copy_from_slice(&scale(rng, 0.001, 0.05, false));
                        b[2..4].copy_from_slice(&scale(rng, 0.0, 0.4, true));
                    }
                    GgmlType::Q4_K | GgmlType::Q5_K => {
                        b[0..2].copy_from_slice(&scale(rng, 0.0001, 0.002, false));
                        b[2..4].copy_from_slice(&scale(rng, 0.0001, 0.002, false));
                    }
                    GgmlType::Q6_K => b[208..210].copy_from_slice(&scale(rng, 0.0001, 0.001, true)),
                    GgmlType::Q2_K => {
                        b[80..82].copy_from_slice(&scale(rng, 0.0001, 0.002, false));
                        b[82..84].copy_from_slice(&scale(rng, 0.0001, 0.002, false));
                    }
                    GgmlType::Q3_K => b[108..110].copy_from_slice(&scale(rng, 0.0001, 0.001, true)),
                    GgmlType::IQ4_NL | GgmlType::IQ4_XS => b[0..2].copy_from_slice(&scale(rng, 0.0001, 0.0005, true)),
                    _ => b[0..2].copy_from_slice(&scale(rng, 0.001, 0.05, true)),
                }
            }
        }
    }
    data
}

/// Random activations: mostly in [-1, 1], with an occasional large value (as real
/// hidden states have) so that block scales vary.
pub fn random_acts(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| if rng.gen_bool(0.02) { rng.gen_range(-20.0f32..20.0) } else { rng.gen_range(-1.0f32..1.0) })
        .collect()
}

/// Dequantized rows, `(rows, cols)`.
pub fn dequantize(ty: GgmlType, data: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let rs = ty.row_size(cols).expect("whole blocks");
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        dequantize_row(ty, &data[r * rs..(r + 1) * rs], &mut out[r * cols..(r + 1) * cols]).expect("valid row");
    }
    out
}

/// Naive `y = x·Wᵀ` in f64 over dequantized weights, and the bound on what
/// quantizing the activations to `ty`'s dot type may change in each output.
pub fn reference(ty: GgmlType, w: &[f32], rows: usize, cols: usize, x: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
    let err = act_error(ty, x, cols);
    let mut y = vec![0.0f32; n * rows];
    let mut bound = vec![0.0f32; n * rows];
    for t in 0..n {
        for r in 0..rows {
            let wr = &w[r * cols..(r + 1) * cols];
            let xr = &x[t * cols..(t + 1) * cols];
            let er = &err[t * cols..(t + 1) * cols];
            y[t * rows + r] = wr.iter().zip(xr).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>() as f32;
            let e: f64 = wr.iter().zip(er).map(|(&a, &b)| f64::from(a.abs()) * f64::from(b)).sum();
            let mag: f64 = wr.iter().zip(xr).map(|(&a, &b)| f64::from((a * b).abs())).sum();
            bound[t * rows + r] = (1.001 * e + 1e-5 * mag + 1e-6) as f32;
        }
    }
    (y, bound)
}

/// Largest change quantizing each activation to `ty`'s dot type can make to it.
fn act_error(ty: GgmlType, x: &[f32], cols: usize) -> Vec<f32> {
    let block = match ty {
        GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => 256,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
        _ => 32,
    };
    let mut e = vec![0.0f32; x.len()];
    for (xr, er) in x.chunks_exact(cols).zip(e.chunks_exact_mut(cols)) {
        for (xb, eb) in xr.chunks(block).zip(er.chunks_mut(block)) {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (v, o) in xb.iter().zip(eb.iter_mut()) {
                *o = match ty {
                    GgmlType::F32 => 0.0,
                    GgmlType::F16 => v.abs() / 2048.0,
                    GgmlType::BF16 => v.abs() / 256.0,
                    // Half a step of the quantizer, plus the f16 rounding of its scale.
                    _ => amax / 254.0 + amax / 1024.0,
                };
            }
        }
    }
    e
}

/// The bit patterns of `v`, to compare results exactly (NaN included).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
