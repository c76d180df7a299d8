//! Tokenizer speed on 1 MiB inputs, for both real vocabularies: a run of one
//! character (the worst case for naive BPE merging), English-like prose, and
//! Chinese. Reported as bytes per second; the hardening issue asks that 1 MiB
//! take under a second in release mode.
#![allow(missing_docs)] // `criterion_group!` generates an undocumented public function.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use model::LoadedModel;

const MIB: usize = 1 << 20;

fn inputs() -> Vec<(&'static str, String)> {
    let fill = |unit: &str| unit.repeat(MIB / unit.len() + 1)[..MIB].to_string();
    let prose = "The quick brown fox jumps over the lazy dog, and 42 others didn't. ";
    // A whole number of 3-byte characters, so the cut stays on a boundary.
    let chinese: String = "中国的首都是北京。".repeat(MIB / 27 + 1).chars().take(MIB / 3).collect();
    vec![("run-a", "a".repeat(MIB)), ("run-space", " ".repeat(MIB)), ("prose", fill(prose)), ("chinese", chinese)]
}

fn bench(c: &mut Criterion) {
    for name in ["smollm2-135m-instruct", "gemma3-270m"] {
        let path = seed::catalogue::ensure_model(name).expect("model");
        let m = LoadedModel::open(&path).expect("loads");
        let mut group = c.benchmark_group(format!("tokenize/{name}"));
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
        for (what, text) in inputs() {
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter(what), &text, |b, text| {
                b.iter(|| m.tokenizer.encode(text, false, false));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
