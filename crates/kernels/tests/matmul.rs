//! `matmul` at every instruction-set level against the scalar kernels and against a
//! naive f64 product of dequantized rows, on random data with awkward sizes.

mod common;

use common::*;
use kernels::cpu::Arch;
use kernels::matmul::{
    active_isa, dequantize_matrix_row, interleave_as, interleaved_layout, matmul, matmul_multi, matmul_with_isa,
    Layout, MatmulScratch, QMatrix,
};
use kernels::{GgmlType, Isa, ThreadPool, Width};

/// Block counts per row to try for `ty` (odd ones on purpose).
fn block_counts(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => &[1, 3, 5],
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => &[1, 7, 16, 17, 33, 100],
        _ => &[1, 3, 7, 16, 17, 33],
    }
}

#[test]
fn every_isa_matches_the_scalar_kernels() {
    let pool = ThreadPool::new(1);
    let mut scratch = MatmulScratch::default();
    let mut rng = rng(1);
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| *i > Isa::Scalar && i.is_available()).collect();
    if isas.is_empty() {
        println!("note: no SIMD level on this CPU; only the scalar kernels are tested");
    }
    for ty in TYPES {
        for &nb in block_counts(ty) {
            let cols = nb * ty.block_size();
            // 16 rows: Q4_0 and Q4_K matrices of 8k rows take llama.cpp's repacked order.
            for rows in [1usize, 5, 13, 16] {
                let data = random_weights(&mut rng, ty, rows, cols);
                let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
                let deq = dequantize(ty, data.bytes(), rows, cols);
                for n in [1usize, 2, 3, 5, 17] {
                    let x = random_acts(&mut rng, n * cols);
                    let mut want = vec![0.0f32; n * rows];
                    matmul_with_isa(Isa::Scalar, &w, &x, n, &mut want, &mut scratch, &pool);
                    let (_, bound) = reference(ty, &deq, rows, cols, &x, n);
                    for &isa in &isas {
                        let mut got = vec![f32::NAN; n * rows];
                        matmul_with_isa(isa, &w, &x, n, &mut got, &mut scratch, &pool);
                        if isa.arch() == Some(Arch::Aarch64) {
                            // The ARM64 kernels keep the scalar kernels' order of float operations.
                            assert_eq!(bits(&got), bits(&want), "{ty} {isa}: rows {rows} cols {cols} n {n}");
                        }
                        for (k, (g, e)) in got.iter().zip(&want).enumerate() {
                            // Same integers, only the order of f32 sums differs: far below the
                            // activation-quantization bound.
                            let tol = bound[k] * 1e-3 + 1e-5 * e.abs() + 1e-6;
                            assert!(
                                (g - e).abs() <= tol,
                                "{ty} {isa}: rows {rows} cols {cols} n {n} entry {k}: {g} vs scalar {e} (tol {tol})"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn scalar_kernels_are_within_the_activation_quantization_error() {
    let pool = ThreadPool::new(1);
    let mut scratch = MatmulScratch::default();
    let mut rng = rng(2);
    for ty in TYPES {
        for &nb in block_counts(ty) {
            let cols = nb * ty.block_size();
            let rows = 7;
            let data = random_weights(&mut rng, ty, rows, cols);
            let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
            let deq = dequantize(ty, data.bytes(), rows, cols);
            let n = 3;
            let x = random_acts(&mut rng, n * cols);
            let (want, bound) = reference(ty, &deq, rows, cols, &x, n);
            let mut got = vec![0.0f32; n * rows];
            matmul_with_isa(Isa::Scalar, &w, &x, n, &mut got, &mut scratch, &pool);
            for (k, ((g, e), b)) in got.iter().zip(&want).zip(&bound).enumerate() {
                assert!((g - e).abs() <= *b, "{ty} cols {cols} entry {k}: {g} vs f64 {e} (bound {b})");
            }
        }
    }
}

#[test]
fn thread_count_does_not_change_the_result() {
    let mut rng = rng(3);
    let pools: Vec<ThreadPool> = (1..=3).map(ThreadPool::new).collect();
    let mut scratch = MatmulScratch::default();
    for ty in TYPES {
        let cols = 3 * ty.block_size().max(32);
        for (rows, n) in [(1usize, 1usize), (9, 1), (30, 1), (13, 6), (67, 17)] {
            let data = random_weights(&mut rng, ty, rows, cols);
            let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
            let x = random_acts(&mut rng, n * cols);
            let deq = dequantize(ty, data.bytes(), rows, cols);
            let (want, bound) = reference(ty, &deq, rows, cols, &x, n);
            let mut first: Option<Vec<f32>> = None;
            for pool in &pools {
                let mut y = vec![f32::NAN; n * rows];
                matmul(&w, &x, n, &mut y, &mut scratch, pool);
                for (k, ((g, e), b)) in y.iter().zip(&want).zip(&bound).enumerate() {
                    assert!((g - e).abs() <= *b, "{ty} {} threads entry {k}: {g} vs {e}", pool.n_threads());
                }
                match &first {
                    None => first = Some(y),
                    Some(f) => assert_eq!(f, &y, "{ty}: {} threads changed the bits", pool.n_threads()),
                }
            }
        }
    }
}

#[test]
fn matmul_multi_gives_the_bits_of_one_matmul_per_matrix() {
    let pools: Vec<ThreadPool> = (1..=3).map(ThreadPool::new).collect();
    let mut scratch = MatmulScratch::default();
    let mut rng = rng(5);
    for ty in TYPES {
        let cols = 3 * ty.block_size().max(32);
        // Row counts of different tiles and repacking classes; n = 6 mixes tile edges.
        for (row_counts, n) in [(&[9usize, 3, 3][..], 1usize), (&[64, 16, 24][..], 6), (&[17, 40][..], 5)] {
            let data: Vec<_> = row_counts.iter().map(|&r| random_weights(&mut rng, ty, r, cols)).collect();
            let ws: Vec<QMatrix> = row_counts
                .iter()
                .zip(&data)
                .map(|(&r, d)| QMatrix::new(ty, r, cols, d.bytes()).expect("valid matrix"))
                .collect();
            let x = random_acts(&mut rng, n * cols);
            for pool in &pools {
                let want: Vec<Vec<f32>> = ws
                    .iter()
                    .map(|w| {
                        let mut y = vec![f32::NAN; n * w.rows()];
                        matmul(w, &x, n, &mut y, &mut scratch, pool);
                        y
                    })
                    .collect();
                let mut got: Vec<Vec<f32>> = ws.iter().map(|w| vec![f32::NAN; n * w.rows()]).collect();
                let mut outs: Vec<&mut [f32]> = got.iter_mut().map(|y| y.as_mut_slice()).collect();
                matmul_multi(&ws, &x, n, &mut outs, &mut scratch, pool);
                assert_eq!(got, want, "{ty} rows {row_counts:?} n {n}, {} threads", pool.n_threads());
            }
        }
    }
    // Matrices of different types take the fallback path and still agree.
    let pool = &pools[1];
    let (a, b) = (random_weights(&mut rng, GgmlType::Q4_1, 8, 64), random_weights(&mut rng, GgmlType::Q8_0, 5, 64));
    let ws = [
        QMatrix::new(GgmlType::Q4_1, 8, 64, a.bytes()).expect("valid"),
        QMatrix::new(GgmlType::Q8_0, 5, 64, b.bytes()).expect("valid"),
    ];
    let x = random_acts(&mut rng, 2 * 64);
    let (mut y0, mut y1) = (vec![0.0f32; 16], vec![0.0f32; 10]);
    matmul_multi(&ws, &x, 2, &mut [&mut y0, &mut y1], &mut scratch, pool);
    let (mut e0, mut e1) = (vec![0.0f32; 16], vec![0.0f32; 10]);
    matmul(&ws[0], &x, 2, &mut e0, &mut scratch, pool);
    matmul(&ws[1], &x, 2, &mut e1, &mut scratch, pool);
    assert_eq!((y0, y1), (e0, e1));
}

#[test]
fn the_layout_choice_follows_type_rows_and_cpu() {
    // The x86-64 levels repack; the scalar and ARM64 ones keep the rows.
    let isa = active_isa();
    let (x16, x4) = match isa.width() {
        Width::W512 => (true, true),
        Width::W256 => (true, false),
        Width::Scalar => (false, false),
    };
    let vnni = matches!(isa, Isa::AvxVnni | Isa::Avx512Vnni);
    let pick = |ty, rows| interleaved_layout(ty, rows);
    assert_eq!(pick(GgmlType::Q4_1, 32), x16.then_some(Layout::Interleaved16));
    assert_eq!(pick(GgmlType::Q8_0, 32), vnni.then_some(Layout::Interleaved16));
    assert_eq!(pick(GgmlType::Q8_0, 36), None);
    assert_eq!(pick(GgmlType::Q4_1, 36), x4.then_some(Layout::Interleaved4));
    assert_eq!(pick(GgmlType::Q5_0, 32), x16.then_some(Layout::Interleaved16));
    assert_eq!(pick(GgmlType::Q5_0, 36), x4.then_some(Layout::Interleaved4));
    assert_eq!(pick(GgmlType::Q4_1, 6), None);
    assert_eq!(pick(GgmlType::Q4_0, 32), None);
    let mut rng = rng(6);
    let data = random_weights(&mut rng, GgmlType::Q4_1, 8, 64);
    assert!(interleave_as(Layout::Interleaved16, GgmlType::Q4_1, 8, 64, data.bytes()).is_none(), "half a group");
    let q4_0 = random_weights(&mut rng, GgmlType::Q4_0, 16, 64);
    assert!(interleave_as(Layout::Interleaved16, GgmlType::Q4_0, 16, 64, q4_0.bytes()).is_none());
    let q4_0 = random_weights(&mut rng, GgmlType::Q4_0, 8, 64);
    assert!(QMatrix::interleaved(Layout::Interleaved4, GgmlType::Q4_0, 8, 64, q4_0.bytes()).is_err());
    assert!(QMatrix::interleaved(Layout::Interleaved16, GgmlType::Q4_1, 8, 64, data.bytes()).is_err());
}

#[test]
fn four_row_interleaving_gives_the_bits_of_the_row_major_matrix() {
    for ty in [GgmlType::Q4_1, GgmlType::Q5_0] {
        interleaved_matches(Layout::Interleaved4, ty, &[(4, 32), (8, 96), (36, 576), (64, 160)], true);
    }
}

#[test]
fn sixteen_row_layout_gives_the_bits_of_the_row_major_matrix_by_default() {
    for ty in [GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0] {
        interleaved_matches(Layout::Interleaved16, ty, &[(16, 32), (32, 96), (48, 576), (64, 160)], true);
    }
}

#[test]
fn fast_tokens_of_the_sixteen_row_layout_follow_their_chain_and_are_batch_invariant() {
    for ty in [GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0] {
        fast_tokens_follow_the_chain(ty);
    }
}

fn fast_tokens_follow_the_chain(ty: GgmlType) {
    let mut rng = rng(8);
    let pools: Vec<ThreadPool> = (1..=3).map(ThreadPool::new).collect();
    let mut scratch = MatmulScratch::default();
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    for (rows, cols) in [(16usize, 32usize), (48, 576), (64, 160)] {
        let data = random_weights(&mut rng, ty, rows, cols);
        let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
        let words = interleave_as(Layout::Interleaved16, ty, rows, cols, data.bytes()).expect("whole groups");
        let packed = &bytemuck::cast_slice::<u64, u8>(&words)[..data.bytes().len()];
        let wi = QMatrix::interleaved(Layout::Interleaved16, ty, rows, cols, packed).expect("valid");
        let deq = dequantize(ty, data.bytes(), rows, cols);
        for n in [1usize, 2, 9, 21] {
            let x = random_acts(&mut rng, n * cols);
            let fast: Vec<bool> = (0..n).map(|t| n == 1 || (t * 7 + n) % 3 != 0).collect();
            let mut rows_major = vec![f32::NAN; n * rows];
            matmul(&w, &x, n, &mut rows_major, &mut scratch, &pools[0]);
            scratch.set_fast_tokens(fast.iter().copied());
            let mut want = vec![f32::NAN; n * rows];
            matmul_with_isa(Isa::Scalar, &wi, &x, n, &mut want, &mut scratch, &pools[0]);
            let (exact, bound) = reference(ty, &deq, rows, cols, &x, n);
            for t in 0..n {
                let (got, ggml) = (&want[t * rows..(t + 1) * rows], &rows_major[t * rows..(t + 1) * rows]);
                if !fast[t] {
                    assert_eq!(got, ggml, "{rows}x{cols} token {t} of {n}: not flagged, so ggml's bits");
                    continue;
                }
                for (r, g) in got.iter().enumerate() {
                    let k = t * rows + r;
                    // Another order than ggml's, as near the f64 product as ggml's is.
                    assert!((g - exact[k]).abs() <= bound[k], "{rows}x{cols} entry {k}: {g} vs f64 {}", exact[k]);
                    assert!((g - ggml[r]).abs() <= bound[k], "{rows}x{cols} entry {k}: {g} vs ggml's {}", ggml[r]);
                }
            }
            for &isa in &isas {
                for pool in &pools {
                    let mut got = vec![f32::NAN; n * rows];
                    matmul_with_isa(isa, &wi, &x, n, &mut got, &mut scratch, pool);
                    assert_eq!(got, want, "{isa} {rows}x{cols}, {n} tokens, {} threads", pool.n_threads());
                }
                // Alone, a fast token gives the bits it gets in the batch.
                scratch.set_fast_tokens([true]);
                for t in (0..n).filter(|&t| fast[t]) {
                    let mut alone = vec![f32::NAN; rows];
                    matmul_with_isa(isa, &wi, &x[t * cols..(t + 1) * cols], 1, &mut alone, &mut scratch, &pools[1]);
                    assert_eq!(alone[..], want[t * rows..(t + 1) * rows], "{isa}: token {t} of {n} alone");
                }
                scratch.set_fast_tokens(fast.iter().copied());
            }
            // Flags of another length do not apply: a 1-token call after them is ggml's.
            let mut one = vec![f32::NAN; rows];
            if n > 1 {
                matmul(&wi, &x[..cols], 1, &mut one, &mut scratch, &pools[0]);
                assert_eq!(one[..], rows_major[..rows]);
            }
            scratch.clear_fast_tokens();
        }
    }
}

/// Repacks random matrices of `ty` into `layout` and checks that rows dequantize as
/// before, that every available level (the scalar one included) gives the bits
/// the scalar level gives for the row-major matrix (`same_as_rows`) or for the
/// interleaved one, alone and beside a row-major matrix, at every thread count;
/// that each token's outputs are those it gets alone (batch invariance); and that
/// the results are within the activation-quantization bound of the f64 product.
fn interleaved_matches(layout: Layout, ty: GgmlType, shapes: &[(usize, usize)], same_as_rows: bool) {
    let mut rng = rng(7);
    let pools: Vec<ThreadPool> = (1..=3).map(ThreadPool::new).collect();
    let mut scratch = MatmulScratch::default();
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    for &(rows, cols) in shapes {
        let data = random_weights(&mut rng, ty, rows, cols);
        let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
        let words = interleave_as(layout, ty, rows, cols, data.bytes()).expect("whole groups");
        let packed = &bytemuck::cast_slice::<u64, u8>(&words)[..data.bytes().len()];
        assert_ne!(packed, data.bytes(), "the layout must differ for this test to mean anything");
        let wi = QMatrix::interleaved(layout, ty, rows, cols, packed).expect("valid interleaved matrix");
        assert_eq!(wi.layout(), layout);
        for r in 0..rows {
            let (mut a, mut b) = (vec![0.0f32; cols], vec![1.0f32; cols]);
            dequantize_matrix_row(&w, r, &mut a);
            dequantize_matrix_row(&wi, r, &mut b);
            assert_eq!(a, b, "{ty} {layout:?} row {r}");
        }
        let deq = dequantize(ty, data.bytes(), rows, cols);
        for n in [1usize, 3, 8, 9, 21] {
            let x = random_acts(&mut rng, n * cols);
            let mut want = vec![f32::NAN; n * rows];
            let reference_matrix = if same_as_rows { &w } else { &wi };
            matmul_with_isa(Isa::Scalar, reference_matrix, &x, n, &mut want, &mut scratch, &pools[0]);
            let mut rows_want = vec![f32::NAN; n * rows];
            matmul(&w, &x, n, &mut rows_want, &mut scratch, &pools[0]);
            let (exact, bound) = reference(ty, &deq, rows, cols, &x, n);
            for (k, ((g, e), b)) in want.iter().zip(&exact).zip(&bound).enumerate() {
                assert!((g - e).abs() <= *b, "{ty} {layout:?} entry {k}: {g} vs f64 {e} (bound {b})");
            }
            for &isa in &isas {
                for pool in &pools {
                    let mut got = vec![f32::NAN; n * rows];
                    matmul_with_isa(isa, &wi, &x, n, &mut got, &mut scratch, pool);
                    let what = format!("{ty} {layout:?} {isa} {rows}x{cols}, {n} tokens, {} threads", pool.n_threads());
                    assert_eq!(got, want, "{what}");
                    if isa == active_isa() {
                        // Beside a row-major matrix in one region.
                        let (mut a, mut b) = (vec![f32::NAN; n * rows], vec![f32::NAN; n * rows]);
                        matmul_multi(&[wi, w], &x, n, &mut [&mut a, &mut b], &mut scratch, pool);
                        assert_eq!((&a, &b), (&want, &rows_want), "{what}, beside the row-major matrix");
                    }
                }
                // Each token alone gives the bits it gets in the batch.
                for t in [0, n / 2, n - 1] {
                    let mut alone = vec![f32::NAN; rows];
                    matmul_with_isa(isa, &wi, &x[t * cols..(t + 1) * cols], 1, &mut alone, &mut scratch, &pools[1]);
                    assert_eq!(
                        alone[..],
                        want[t * rows..(t + 1) * rows],
                        "{ty} {layout:?} {isa}: token {t} of {n} alone"
                    );
                }
            }
        }
    }
}

#[test]
fn scratch_is_reused_across_shapes() {
    // A large call, then a small one with the same scratch: stale data must not leak.
    let pool = ThreadPool::new(2);
    let mut scratch = MatmulScratch::default();
    let mut rng = rng(4);
    let ty = GgmlType::Q4_1;
    for (rows, cols, n) in [(40usize, 320usize, 9usize), (5, 64, 1), (8, 96, 2)] {
        let data = random_weights(&mut rng, ty, rows, cols);
        let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
        let x = random_acts(&mut rng, n * cols);
        let (want, bound) = reference(ty, &dequantize(ty, data.bytes(), rows, cols), rows, cols, &x, n);
        let mut y = vec![0.0f32; n * rows];
        matmul(&w, &x, n, &mut y, &mut scratch, &pool);
        for ((g, e), b) in y.iter().zip(&want).zip(&bound) {
            assert!((g - e).abs() <= *b);
        }
    }
}

#[test]
fn empty_shapes_are_fine() {
    let pool = ThreadPool::new(2);
    let mut scratch = MatmulScratch::default();
    let w = QMatrix::new(GgmlType::Q4_1, 3, 0, &[]).expect("zero-width matrix");
    let mut y = vec![f32::NAN; 6];
    matmul(&w, &[], 2, &mut y, &mut scratch, &pool);
    assert_eq!(y, vec![0.0; 6]);
    let w = QMatrix::new(GgmlType::Q8_0, 0, 32, &[]).expect("zero-row matrix");
    matmul(&w, &[0.5; 64], 2, &mut [], &mut scratch, &pool);
}

#[test]
fn the_avx_vnni_level_gives_the_avx2_bits() {
    // `vpdpbusd` forms the same i32 sums as `vpmaddubsw` + `vpmaddwd`, so the two
    // 256-bit levels may not differ in a single bit.
    if !Isa::AvxVnni.is_available() {
        println!("note: no AVX-VNNI (nor AVX-512 VNNI + VL) here; the AVX-VNNI kernels are not tested");
        return;
    }
    let pool = ThreadPool::new(2);
    let mut scratch = MatmulScratch::default();
    let mut rng = rng(11);
    for ty in TYPES {
        let cols = 7 * ty.block_size().max(32);
        for (rows, n) in [(1usize, 1usize), (13, 3), (64, 17)] {
            let data = random_weights(&mut rng, ty, rows, cols);
            let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
            let x = random_acts(&mut rng, n * cols);
            let (mut avx2, mut vnni) = (vec![0.0f32; n * rows], vec![0.0f32; n * rows]);
            matmul_with_isa(Isa::Avx2, &w, &x, n, &mut avx2, &mut scratch, &pool);
            matmul_with_isa(Isa::AvxVnni, &w, &x, n, &mut vnni, &mut scratch, &pool);
            assert_eq!(bits(&vnni), bits(&avx2), "{ty}: rows {rows} cols {cols} n {n}");
        }
    }
}
