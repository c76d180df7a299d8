//! Block formats: round trips, and what `QMatrix::new` / `dequantize_row` refuse.

mod common;

use common::*;
use kernels::matmul::QMatrix;
use kernels::quant::{dequantize_row, quantize_row};
use kernels::{GgmlType, KernelError};

/// Largest round-trip error allowed, relative to the largest |x| of the row
/// (x uniform in [-1, 1]; a 256-element super-block for the K-quants).
fn round_trip_tolerance(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => 1.0 / 2048.0,
        GgmlType::BF16 => 1.0 / 256.0,
        GgmlType::Q8_0 => 0.5 / 127.0 + 1.0 / 1024.0,
        // The largest magnitude maps to −16 (−8), so +amax is clipped to 15 (7) steps.
        GgmlType::Q5_0 => 1.0 / 16.0 + 1.0 / 512.0,
        GgmlType::Q4_0 => 1.0 / 8.0 + 1.0 / 256.0,
        // Min to max (up to 2) in 15 steps.
        GgmlType::Q4_1 => 1.0 / 15.0 + 1.0 / 256.0,
        // Min to max in 31 steps (half a step each way, plus f16 rounding of d and m).
        GgmlType::Q5_1 => 1.0 / 31.0 + 1.0 / 256.0,
        // 6-bit scales and minimums on top of the 4-bit steps.
        GgmlType::Q4_K => 0.09,
        GgmlType::Q5_K => 0.05,
        GgmlType::Q6_K => 0.5 / 31.0 + 0.02,
        // 4 levels per group of 16 (absolute errors minimised), 4-bit scales.
        GgmlType::Q2_K => 0.45,
        // 8 levels per group of 16, 6-bit scales.
        GgmlType::Q3_K => 0.25,
        // Half the widest gap of the table (24 of 127), the f16 scale; IQ4_XS also 6-bit scales.
        GgmlType::IQ4_NL => 0.12,
        GgmlType::IQ4_XS => 0.12,
        _ => unreachable!(),
    }
}

#[test]
fn dequantize_of_quantize_is_close() {
    let mut rng = rng(10);
    for ty in TYPES {
        let cols = 3 * ty.block_size().max(256);
        let x: Vec<f32> = random_acts(&mut rng, cols).iter().map(|v| v.clamp(-1.0, 1.0)).collect();
        let mut q = Aligned::zeroed(ty.row_size(cols).expect("whole blocks"));
        quantize_row(ty, &x, q.bytes_mut()).expect("quantize");
        let mut y = vec![0.0f32; cols];
        dequantize_row(ty, q.bytes(), &mut y).expect("dequantize");
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("{ty}: worst round-trip error {:.4} of amax", worst / amax);
        assert!(worst <= round_trip_tolerance(ty) * amax, "{ty}: worst error {worst} for amax {amax}");
    }
}

#[test]
fn qmatrix_checks_what_a_file_controls() {
    let data = Aligned::zeroed(4 * 20 + 8);
    let bytes = data.bytes();
    assert!(QMatrix::new(GgmlType::Q4_1, 4, 32, &bytes[..80]).is_ok());
    match QMatrix::new(GgmlType::Q4_1, 4, 32, &bytes[..79]) {
        Err(KernelError::WrongLength { expected: 80, actual: 79, .. }) => {}
        other => panic!("wrong length accepted: {other:?}"),
    }
    match QMatrix::new(GgmlType::Q4_1, 1, 48, &bytes[..40]) {
        Err(KernelError::PartialBlock { cols: 48, block_size: 32, .. }) => {}
        other => panic!("partial block accepted: {other:?}"),
    }
    match QMatrix::new(GgmlType::Q4_1, 4, 32, &bytes[1..81]) {
        Err(KernelError::Misaligned { align: 2, .. }) => {}
        other => panic!("misaligned data accepted: {other:?}"),
    }
    match QMatrix::new(GgmlType::F32, 1, 1, &bytes[2..6]) {
        Err(KernelError::Misaligned { align: 4, .. }) => {}
        other => panic!("misaligned f32 accepted: {other:?}"),
    }
    match QMatrix::new(GgmlType::IQ2_XXS, 1, 256, &bytes[..66]) {
        Err(e @ KernelError::UnsupportedType(GgmlType::IQ2_XXS)) => assert!(e.to_string().contains("IQ2_XXS")),
        other => panic!("unsupported type accepted: {other:?}"),
    }
    match QMatrix::new(GgmlType::Q8_0, usize::MAX / 2, 32, &bytes[..34]) {
        Err(KernelError::TooLarge { .. }) => {}
        other => panic!("overflowing shape accepted: {other:?}"),
    }
    let m = QMatrix::new(GgmlType::Q4_1, 4, 32, &bytes[..80]).expect("valid");
    assert_eq!((m.ty(), m.rows(), m.cols(), m.row(3).len()), (GgmlType::Q4_1, 4, 32, 20));
}

#[test]
fn dequantize_row_checks_its_arguments() {
    let data = Aligned::zeroed(64);
    let mut out = vec![0.0f32; 32];
    assert!(dequantize_row(GgmlType::Q8_0, &data.bytes()[..34], &mut out).is_ok());
    assert!(matches!(
        dequantize_row(GgmlType::Q8_0, &data.bytes()[..33], &mut out),
        Err(KernelError::WrongLength { expected: 34, actual: 33, .. })
    ));
    assert!(matches!(
        dequantize_row(GgmlType::Q4_K, &data.bytes()[..18], &mut out),
        Err(KernelError::PartialBlock { cols: 32, block_size: 256, .. })
    ));
    assert!(matches!(
        dequantize_row(GgmlType::IQ2_XXS, &data.bytes()[..18], &mut out),
        Err(KernelError::UnsupportedType(GgmlType::IQ2_XXS))
    ));
}
