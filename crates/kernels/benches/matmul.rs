//! `matmul` per weight format: decode (1 token, reported as GB/s of weights read)
//! and prompt processing (64 tokens, reported as elements/s = FLOP/s: 2 per
//! multiply-add), on 1 and 2 threads, at the level `SEED_KERNELS` allows.
//!
//! Shapes are those of the models we run: SmolLM2's FFN (1536×576) for the
//! 32-element and float formats, Gemma 3's FFN-down (640×2048) for the K-quants,
//! and, for decode from memory, SmolLM2's output matrix (49152×576, Q8_0) and a
//! Q4_1 matrix bigger than the caches (131072×576, 47 MB); and a 512-token prompt
//! through SmolLM2's FFN up (1536×576) and down (576×1536).
//!
//! `matmul16` runs the 16-row layout the model loads Q4_1, Q5_0 and Q8_0 into
//! (where this CPU has AVX-512): 16 tokens in the fast order of generated tokens (a
//! 16-sequence decode step) and in ggml's order (given text), as FLOP/s.
#![allow(missing_docs)] // `criterion_group!` generates an undocumented public function.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use kernels::matmul::{active_isa, interleave_as, interleaved_layout, matmul, Layout, MatmulScratch, QMatrix};
use kernels::{GgmlType, ThreadPool};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random row bytes of `ty` with sane f16 scales (like the tests' generator).
fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let len = ty.row_size(cols).expect("whole blocks") * rows;
    let mut words = vec![0u64; len.div_ceil(8)];
    let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len];
    rng.fill(bytes);
    let small = |rng: &mut ChaCha8Rng| f16::from_f32(rng.gen_range(0.001f32..0.01)).to_le_bytes();
    match ty {
        GgmlType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                c.copy_from_slice(&rng.gen_range(-1.0f32..1.0).to_le_bytes());
            }
        }
        GgmlType::F16 | GgmlType::BF16 => {
            for c in bytes.chunks_exact_mut(2) {
                c.copy_from_slice(&small(&mut rng));
            }
        }
        _ => {
            for b in bytes.chunks_exact_mut(ty.type_size()) {
                let at = if ty == GgmlType::Q6_K { 208 } else { 0 };
                b[at..at + 2].copy_from_slice(&small(&mut rng));
                if matches!(ty, GgmlType::Q4_1 | GgmlType::Q4_K) {
                    b[2..4].copy_from_slice(&small(&mut rng));
                }
            }
        }
    }
    words
}

fn bench(c: &mut Criterion) {
    let formats = [
        (GgmlType::Q4_0, 1536, 576),
        (GgmlType::Q4_1, 1536, 576),
        (GgmlType::Q5_0, 1536, 576),
        (GgmlType::Q8_0, 1536, 576),
        (GgmlType::Q4_K, 640, 2048),
        (GgmlType::Q6_K, 640, 2048),
        (GgmlType::F16, 1536, 576),
        (GgmlType::BF16, 1536, 576),
        (GgmlType::F32, 1536, 576),
    ];
    let isa = active_isa();
    for threads in [1usize, 2] {
        let pool = ThreadPool::new(threads);
        let mut group = c.benchmark_group(format!("matmul/{isa}/{threads}t"));
        group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        let mut cases: Vec<(GgmlType, usize, usize, usize)> = Vec::new();
        for (ty, rows, cols) in formats {
            cases.push((ty, rows, cols, 1));
            cases.push((ty, rows, cols, 64));
        }
        cases.push((GgmlType::Q8_0, 49152, 576, 1));
        cases.push((GgmlType::Q4_1, 131072, 576, 1));
        cases.push((GgmlType::Q4_1, 1536, 576, 512));
        cases.push((GgmlType::Q4_1, 576, 1536, 512));
        for (ty, rows, cols, n) in cases {
            let words = weights(ty, rows, cols);
            let len = ty.row_size(cols).expect("whole blocks") * rows;
            let data = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
            let w = QMatrix::new(ty, rows, cols, data).expect("valid matrix");
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let mut y = vec![0.0f32; n * rows];
            let mut scratch = MatmulScratch::default();
            group.throughput(if n == 1 {
                Throughput::Bytes(len as u64)
            } else {
                Throughput::Elements((2 * rows * cols * n) as u64)
            });
            let id = BenchmarkId::new(format!("{ty}/{rows}x{cols}"), format!("n{n}"));
            group.bench_function(id, |b| {
                b.iter(|| matmul(&w, black_box(&x), n, &mut y, &mut scratch, &pool));
            });
        }
        group.finish();
    }
}

fn bench16(c: &mut Criterion) {
    let isa = active_isa();
    let pool = ThreadPool::new(1);
    let mut group = c.benchmark_group(format!("matmul16/{isa}/1t"));
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for (ty, rows, cols) in [(GgmlType::Q4_1, 1536, 576), (GgmlType::Q5_0, 1536, 576), (GgmlType::Q8_0, 1536, 576)] {
        if interleaved_layout(ty, rows) != Some(Layout::Interleaved16) {
            continue; // this CPU keeps the rows as they are
        }
        let words = weights(ty, rows, cols);
        let len = ty.row_size(cols).expect("whole blocks") * rows;
        let data = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
        let packed = interleave_as(Layout::Interleaved16, ty, rows, cols, data).expect("a 16-row layout");
        let w = QMatrix::interleaved(
            Layout::Interleaved16,
            ty,
            rows,
            cols,
            &bytemuck::cast_slice::<u64, u8>(&packed)[..len],
        )
        .expect("valid matrix");
        let n = 16;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..n * cols).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let mut y = vec![0.0f32; n * rows];
        for (order, fast) in [("fast", true), ("ggml", false)] {
            let mut scratch = MatmulScratch::default();
            scratch.set_fast_tokens(std::iter::repeat_n(fast, n));
            group.throughput(Throughput::Elements((2 * rows * cols * n) as u64));
            let id = BenchmarkId::new(format!("{ty}/{rows}x{cols}"), format!("n{n}-{order}"));
            group.bench_function(id, |b| {
                b.iter(|| matmul(&w, black_box(&x), n, &mut y, &mut scratch, &pool));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, bench16);
criterion_main!(benches);
