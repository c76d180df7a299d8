//! `quant::quantize_row` against ggml's reference quantizers: the same f32 rows
//! give the same bytes, for every type `seed quantize` writes (test vectors and how
//! they were made: `tests/data/ggml_quant/README.md`).

use kernels::quant::{dequantize_row, quantize_row};
use kernels::GgmlType;

const ROWS: usize = 8;
const COLS: usize = 512;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/ggml_quant/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn input() -> Vec<f32> {
    let bytes = data("input.f32");
    assert_eq!(bytes.len(), ROWS * COLS * 4);
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
}

/// Quantizes every row into a buffer aligned for the type's blocks.
fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let row = ty.row_size(COLS).expect("whole blocks");
    let mut words = vec![0u32; (ROWS * row).div_ceil(4)];
    let out = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..ROWS * row];
    for (src, dst) in x.chunks_exact(COLS).zip(out.chunks_exact_mut(row)) {
        quantize_row(ty, src, dst).unwrap_or_else(|e| panic!("{ty}: {e}"));
    }
    out.to_vec()
}

#[test]
fn every_written_type_matches_ggml_byte_for_byte() {
    let x = input();
    let types = [
        (GgmlType::Q4_0, "q4_0"),
        (GgmlType::Q4_1, "q4_1"),
        (GgmlType::Q5_0, "q5_0"),
        (GgmlType::Q5_1, "q5_1"),
        (GgmlType::Q8_0, "q8_0"),
        (GgmlType::Q4_K, "q4_k"),
        (GgmlType::Q5_K, "q5_k"),
        (GgmlType::Q6_K, "q6_k"),
        (GgmlType::Q2_K, "q2_k"),
        (GgmlType::Q3_K, "q3_k"),
        (GgmlType::IQ4_NL, "iq4_nl"),
        (GgmlType::IQ4_XS, "iq4_xs"),
        (GgmlType::F16, "f16"),
        (GgmlType::BF16, "bf16"),
    ];
    let mut failures = Vec::new();
    for (ty, name) in types {
        let ours = quantize(ty, &x);
        let theirs = data(&format!("{name}.bin"));
        assert_eq!(ours.len(), theirs.len(), "{ty}: size");
        let row = ty.row_size(COLS).expect("whole blocks");
        for r in 0..ROWS {
            let (a, b) = (&ours[r * row..(r + 1) * row], &theirs[r * row..(r + 1) * row]);
            if let Some(at) = a.iter().zip(b).position(|(p, q)| p != q) {
                failures.push(format!("{ty} row {r}: first difference at byte {at} ({} vs ggml {})", a[at], b[at]));
            }
        }
    }
    assert!(failures.is_empty(), "differences from ggml:\n{}", failures.join("\n"));
}

#[test]
fn q5_1_dequantizes_what_it_quantized() {
    let x = input();
    let q = quantize(GgmlType::Q5_1, &x[..COLS]);
    let mut y = vec![0.0f32; COLS];
    dequantize_row(GgmlType::Q5_1, &q[..GgmlType::Q5_1.row_size(COLS).expect("blocks")], &mut y).expect("dequantize");
    for (block, got) in x[..COLS].chunks_exact(32).zip(y.chunks_exact(32)) {
        let (lo, hi) = block.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let step = (hi - lo) / 31.0;
        for (a, b) in block.iter().zip(got) {
            // Half a step, plus the f16 rounding of the scale (31 steps) and minimum.
            assert!((a - b).abs() <= 0.5 * step + 31.0 * step / 1024.0 + lo.abs() / 1024.0 + 1e-6, "{a} vs {b}");
        }
    }
}
