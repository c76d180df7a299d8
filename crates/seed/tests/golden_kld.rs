//! The fidelity rule of `testdata/golden/README.md`, measured as llama.cpp measures a
//! quantization: each built-in model's weights dequantized to F32 (`seed quantize
//! … F32`) are the reference; its base log-probabilities over `ppl_text.txt` (ctx
//! 512) go to a file in llama-perplexity's format; the quantized model is scored
//! against that file. Its mean KL divergence may exceed llama.cpp's by at most 1.5
//! standard errors, and its same-top-token rate fall short by at most as much
//! (llama.cpp's own AVX2 and AVX-512 builds differ by up to 1.1 on these files).

mod common;

use std::io::BufWriter;

use common::{shared_model, testdata};
use model::{GivenTextOrder, LoadedModel};
use seed::perplexity::kld::Summary;
use seed::perplexity::logits_file::Reader;
use seed::perplexity::{kl_divergence, perplexity};
use seed::quantize::{quantize, FileType, Options};

/// llama.cpp's figures (README): (mean KLD, its standard error, same-top rate, its standard error).
struct Theirs {
    kld: f64,
    kld_err: f64,
    same_top: f64,
    same_top_err: f64,
}

fn kld_of(name: &str) -> Summary {
    let (quantized, pool) = shared_model(name);
    let source = seed::catalogue::ensure_model(name).expect("model");
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = dir.path().join("f32.gguf");
    let opts = Options { ftype: FileType::F32, threads: pool.n_threads(), allow_requantize: false };
    quantize(&source, &reference, &opts, &mut |_, _, _| {}).expect("dequantize to F32");
    let text = std::fs::read_to_string(testdata().join("golden/ppl_text.txt")).expect("ppl_text.txt");
    let base = dir.path().join("base.bin");
    {
        let f32_model = LoadedModel::open(&reference).expect("the F32 reference");
        let mut out = BufWriter::new(std::fs::File::create(&base).expect("base file"));
        perplexity(&f32_model, pool, &text, 512, GivenTextOrder::Fast, Some(&mut out), |_, _| {})
            .expect("reference run");
    }
    let mut reader = Reader::open(&base).expect("base");
    kl_divergence(quantized, pool, &mut reader, GivenTextOrder::Fast, |_, _| {}).expect("kld")
}

fn check(name: &str, theirs: Theirs) {
    let s = kld_of(name);
    eprintln!(
        "{name}: mean KLD {:.6} ± {:.6} (llama.cpp {:.6}), same top {:.3} ± {:.3} % (llama.cpp {:.3} %), PPL {:.4} vs F32 {:.4}",
        s.kld,
        s.kld_err,
        theirs.kld,
        100.0 * s.same_top,
        100.0 * s.same_top_err,
        100.0 * theirs.same_top,
        s.ppl,
        s.ppl_base
    );
    assert!(s.count > 2000, "{} positions", s.count);
    assert!(s.kld <= theirs.kld + 1.5 * theirs.kld_err, "mean KLD {} vs llama.cpp's {}", s.kld, theirs.kld);
    assert!(
        s.same_top >= theirs.same_top - 1.5 * theirs.same_top_err,
        "same top {} vs llama.cpp's {}",
        s.same_top,
        theirs.same_top
    );
}

#[test]
fn smollm2_kl_divergence_from_f32_within_llama_cpp() {
    check(
        "smollm2-135m-instruct",
        Theirs { kld: 0.002749, kld_err: 0.000051, same_top: 0.97108, same_top_err: 0.00371 },
    );
}

#[test]
fn gemma3_kl_divergence_from_f32_within_llama_cpp() {
    check("gemma3-270m", Theirs { kld: 0.004803, kld_err: 0.000098, same_top: 0.96176, same_top_err: 0.00425 });
}
