//! F32, F16 and BF16 weights. Their activations are f32 rounded to the weight type
//! (round to nearest even, as ggml's conversions do), so the products match ggml's.

use half::{bf16, f16};

/// Converts f16 weights to f32.
pub fn dequantize_row_f16(x: &[f16], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    for (o, v) in y.iter_mut().zip(x) {
        *o = v.to_f32();
    }
}

/// Converts bf16 weights to f32.
pub fn dequantize_row_bf16(x: &[bf16], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    for (o, v) in y.iter_mut().zip(x) {
        *o = v.to_f32();
    }
}

/// Rounds f32 values to f16.
pub fn quantize_row_f16(x: &[f32], y: &mut [f16]) {
    assert_eq!(x.len(), y.len());
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f16::from_f32(v);
    }
}

/// Rounds f32 values to bf16.
pub fn quantize_row_bf16(x: &[f32], y: &mut [bf16]) {
    assert_eq!(x.len(), y.len());
    for (o, &v) in y.iter_mut().zip(x) {
        *o = bf16::from_f32(v);
    }
}

/// Scalar reference dot product of f32 rows (accumulated in f64, as ggml's scalar path).
pub fn vec_dot_f32(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len());
    x.iter().zip(y).map(|(&a, &b)| f64::from(a * b)).sum::<f64>() as f32
}

/// Scalar reference dot product of f16 rows.
pub fn vec_dot_f16(x: &[f16], y: &[f16]) -> f32 {
    assert_eq!(x.len(), y.len());
    x.iter().zip(y).map(|(a, b)| f64::from(a.to_f32() * b.to_f32())).sum::<f64>() as f32
}

/// Scalar reference dot product of bf16 rows.
pub fn vec_dot_bf16(x: &[bf16], y: &[bf16]) -> f32 {
    assert_eq!(x.len(), y.len());
    x.iter().zip(y).map(|(a, b)| f64::from(a.to_f32() * b.to_f32())).sum::<f64>() as f32
}
