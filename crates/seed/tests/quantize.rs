//! `seed quantize`: the per-tensor types, metadata and values of what it writes,
//! the errors it gives, that a failed run leaves nothing behind, and — where the
//! synthetic fixtures of `../shared/` are beside the repository — that its files
//! are byte for byte those llama-quantize wrote (the fixtures' sha256 sums).
//!
//! The first tests build their small input files themselves: no download.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::synthetic::{generator, regenerate, sha256, shared};
use kernels::quant::dequantize_row;
use kernels::GgmlType;
use model::gguf::{GgufBuilder, GgufFile, Value};
use seed::quantize::{quantize, FileType, Options, QuantizeError};

/// A tiny two-layer "qwen3" in F32 with deterministic values: rows of 256 so that
/// the K-quants apply, an untied output.
fn tiny_f32(extra: &[(&str, Value)]) -> Vec<u8> {
    let mut b = GgufBuilder::new();
    b.add_kv("general.architecture", Value::String("qwen3".into()))
        .add_kv("general.name", Value::String("tiny".into()))
        .add_kv("general.file_type", Value::U32(0))
        .add_kv("qwen3.block_count", Value::U32(2))
        .add_kv("qwen3.attention.head_count", Value::U32(4))
        .add_kv("qwen3.attention.head_count_kv", Value::U32(1));
    for (k, v) in extra {
        b.add_kv(k, v.clone());
    }
    let mut seed = 1u64;
    let mut values = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let u = (seed >> 40) as f32 / (1u64 << 24) as f32;
                (2.0 * u - 1.0).to_le_bytes()
            })
            .collect()
    };
    b.add_tensor("token_embd.weight", GgmlType::F32, &[256, 64], values(256 * 64));
    b.add_tensor("output_norm.weight", GgmlType::F32, &[256], values(256));
    for l in 0..2 {
        for (name, dims) in [
            ("attn_norm", vec![256]),
            ("attn_q", vec![256, 256]),
            ("attn_k", vec![256, 64]),
            ("attn_v", vec![256, 64]),
            ("attn_output", vec![256, 256]),
            ("ffn_down", vec![512, 256]),
            ("ffn_up", vec![256, 512]),
        ] {
            let n: usize = dims.iter().product();
            b.add_tensor(&format!("blk.{l}.{name}.weight"), GgmlType::F32, &dims, values(n));
        }
    }
    b.add_tensor("output.weight", GgmlType::F32, &[256, 64], values(256 * 64));
    b.build()
}

fn opts(ftype: FileType) -> Options {
    Options { ftype, threads: 2, allow_requantize: false }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write input");
    path
}

fn run(input: &Path, output: &Path, o: &Options) -> Result<Vec<seed::quantize::TensorPlan>, QuantizeError> {
    quantize(input, output, o, &mut |_, _, _| {})
}

/// The f32 values of a tensor.
fn values(file: &GgufFile, name: &str) -> Vec<f32> {
    let t = file.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
    let cols = t.dims[0];
    let row = t.ty.row_size(cols).expect("whole blocks");
    let data = file.tensor_data(t);
    let mut out = vec![0.0f32; t.n_elements()];
    for (src, dst) in data.chunks_exact(row).zip(out.chunks_exact_mut(cols)) {
        dequantize_row(t.ty, src, dst).expect("dequantize");
    }
    out
}

/// Files left in `dir` (a failed run must leave none but the input).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn q4_k_m_types_metadata_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.gguf", &tiny_f32(&[]));
    let output = dir.path().join("out.gguf");
    let plans = run(&input, &output, &opts(FileType::Q4KM)).expect("quantize");
    let out = GgufFile::open(&output).expect("a valid GGUF");

    // llama-quantize's order: tensors outside layers first, then by layer, by name.
    let names: Vec<&str> = out.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(&names[..3], ["output.weight", "output_norm.weight", "token_embd.weight"]);
    assert_eq!(names[3], "blk.0.attn_k.weight");
    assert_eq!(plans.len(), names.len());

    let ty = |n: &str| out.tensor(n).expect("tensor").ty;
    assert_eq!(ty("output.weight"), GgmlType::Q6_K);
    assert_eq!(ty("token_embd.weight"), GgmlType::Q4_K, "an untied embedding keeps the default type");
    assert_eq!(ty("output_norm.weight"), GgmlType::F32, "norms are not quantized");
    assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::Q4_K);
    // use_more_bits(i, 2): layer 1 of 2 gets Q6_K for attn_v and ffn_down.
    assert_eq!(ty("blk.0.attn_v.weight"), GgmlType::Q4_K);
    assert_eq!(ty("blk.1.attn_v.weight"), GgmlType::Q6_K);
    assert_eq!(ty("blk.1.ffn_down.weight"), GgmlType::Q6_K);

    // Metadata: the input's in order, file type and quantization version last.
    let keys: Vec<&str> = out.metadata().map(|(k, _)| k).collect();
    assert_eq!(keys.first(), Some(&"general.architecture"));
    assert_eq!(&keys[keys.len() - 2..], ["general.quantization_version", "general.file_type"]);
    assert_eq!(out.get_u32("general.file_type").expect("file type"), 15);
    assert_eq!(keys.iter().filter(|k| **k == "general.file_type").count(), 1);

    // Values: close to the input (15 four-bit steps span [-1, 1]: half a step is 0.067).
    let inp = GgufFile::open(&input).expect("input");
    for name in ["blk.0.attn_q.weight", "output.weight"] {
        let (a, b) = (values(&inp, name), values(&out, name));
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 0.15, "{name}: worst error {worst}");
    }
}

#[test]
fn back_to_f32_is_the_dequantized_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.gguf", &tiny_f32(&[]));
    let q8 = dir.path().join("q8.gguf");
    run(&input, &q8, &opts(FileType::Q8_0)).expect("quantize");
    let f32_path = dir.path().join("f32.gguf");
    run(&q8, &f32_path, &opts(FileType::F32)).expect("dequantizing needs no --allow-requantize");
    let (q8, back) = (GgufFile::open(&q8).expect("q8"), GgufFile::open(&f32_path).expect("f32"));
    assert_eq!(back.get_u32("general.file_type").expect("file type"), 0);
    for t in q8.tensors() {
        assert_eq!(back.tensor(&t.name).expect("tensor").ty, GgmlType::F32, "{}", t.name);
        assert_eq!(values(&q8, &t.name), values(&back, &t.name), "{}", t.name);
    }
}

#[test]
fn requantizing_needs_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.gguf", &tiny_f32(&[]));
    let q8 = dir.path().join("q8.gguf");
    run(&input, &q8, &opts(FileType::Q8_0)).expect("quantize");
    let out = dir.path().join("q4.gguf");
    match run(&q8, &out, &opts(FileType::Q4_0)) {
        Err(e @ QuantizeError::Requantize { .. }) => assert!(e.to_string().contains("--allow-requantize"), "{e}"),
        other => panic!("requantized without the flag: {other:?}"),
    }
    assert!(!out.exists());
    let o = Options { allow_requantize: true, ..opts(FileType::Q4_0) };
    run(&q8, &out, &o).expect("with the flag");
    assert_eq!(GgufFile::open(&out).expect("q4").tensor("blk.0.attn_q.weight").expect("t").ty, GgmlType::Q4_0);
}

#[test]
fn bad_inputs_fail_clearly_and_leave_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("out.gguf");
    let o = opts(FileType::Q4KM);

    let garbage = write(dir.path(), "garbage.gguf", b"this is not a model file at all");
    let e = run(&garbage, &output, &o).expect_err("garbage");
    assert!(matches!(e, QuantizeError::Input { .. }), "{e}");
    assert!(e.to_string().contains("garbage.gguf"), "{e}");

    let mut truncated = tiny_f32(&[]);
    truncated.truncate(truncated.len() - 1000);
    let truncated = write(dir.path(), "truncated.gguf", &truncated);
    assert!(matches!(run(&truncated, &output, &o), Err(QuantizeError::Input { .. })));

    let part = write(dir.path(), "part.gguf", &tiny_f32(&[("split.count", Value::U16(3))]));
    let e = run(&part, &output, &o).expect_err("split part");
    assert!(matches!(e, QuantizeError::SplitPart { count: 3, .. }), "{e}");

    let mut b = GgufBuilder::new();
    b.add_kv("general.name", Value::String("no arch".into()));
    let no_arch = write(dir.path(), "noarch.gguf", &b.build());
    assert!(matches!(run(&no_arch, &output, &o), Err(QuantizeError::NotAModel { .. })));

    // A NaN in the weights: refused, and the partial output is removed.
    let mut bytes = tiny_f32(&[]);
    let file = GgufFile::from_bytes(bytes.clone()).expect("valid");
    let at = file.tensor("blk.1.attn_q.weight").expect("t").offset + 4 * 300;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = write(dir.path(), "nan.gguf", &bytes);
    let e = run(&nan, &output, &o).expect_err("NaN");
    assert!(matches!(e, QuantizeError::NotFinite { row: 1, .. }), "{e}");

    let input = write(dir.path(), "in.gguf", &tiny_f32(&[]));
    assert!(matches!(run(&input, &input, &o), Err(QuantizeError::SamePath(_))));
    let e = run(&input, &dir.path().join("missing/out.gguf"), &o).expect_err("no such directory");
    assert!(matches!(e, QuantizeError::Write { .. }), "{e}");

    assert_eq!(
        entries(dir.path()),
        ["garbage.gguf", "in.gguf", "nan.gguf", "noarch.gguf", "part.gguf", "truncated.gguf"],
        "a failed run left a file behind"
    );
}

#[test]
fn the_command_names_the_types_it_writes() {
    let out = Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(["quantize", "in.gguf", "out.gguf", "IQ2_XXS"])
        .output()
        .expect("run seed");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown type") && err.contains("Q4_K_M"), "{err}");
}

// ---- byte identity with llama-quantize, on the synthetic fixtures ----

#[test]
fn synthetic_models_are_byte_identical_to_llama_quantize() {
    let sums = shared().join("golden/synthetic/SHA256SUMS");
    let Some(script) = generator().filter(|_| sums.is_file()) else {
        eprintln!("SKIPPED: the synthetic fixtures are not at {} (see the golden README)", shared().display());
        return;
    };
    let sums = std::fs::read_to_string(&sums).expect("SHA256SUMS");
    let expected = |file: &str| -> String {
        match sums.lines().find_map(|l| l.strip_suffix(file).map(|h| h.trim().to_string())) {
            Some(h) => h,
            // Not shipped: the fixtures' README gives their sums.
            None => match file {
                "qwen3-tiny-q5_1.gguf" => "a32178cc8307bb7e98ca8c0502b0b07f8b2ec832b49dab01416fc621db3deed3".into(),
                "qwen3-tiny-q2_k.gguf" => "cadd20cfa0f644b9a99341a45a75f26c540469035f68bbe22ec1e7bf5263a96a".into(),
                "qwen3-tiny-iq4_nl.gguf" => "2dcbae7ce679de65a6c66eee316c272b3bb85ebf13a2f9de1fad1222e8785ad4".into(),
                other => panic!("no sum for {other}"),
            },
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for arch in ["qwen3", "qwen3moe"] {
        regenerate(&script, arch, dir.path());
    }
    // The regenerated F32 originals are the fixtures' (their README gives the sums).
    assert_eq!(
        sha256(&dir.path().join("qwen3-tiny-f32.gguf")),
        "8d54a0d4d54a7e53f8c48b792b58f99de4de11f091e630a00cb3b709c37da808"
    );
    for (arch, ftype, name) in [
        ("qwen3", FileType::Q8_0, "q8_0"),
        ("qwen3", FileType::Q4KM, "q4_k_m"),
        ("qwen3", FileType::Q5_1, "q5_1"),
        ("qwen3", FileType::Q2K, "q2_k"),
        ("qwen3", FileType::Q3KM, "q3_k_m"),
        ("qwen3", FileType::Iq4Nl, "iq4_nl"),
        ("qwen3", FileType::Iq4Xs, "iq4_xs"),
        ("qwen3moe", FileType::Q8_0, "q8_0"),
        ("qwen3moe", FileType::Q4KM, "q4_k_m"),
    ] {
        let out = dir.path().join(format!("{arch}-tiny-{name}.gguf"));
        run(&dir.path().join(format!("{arch}-tiny-f32.gguf")), &out, &opts(ftype)).expect("quantize");
        let file = format!("{arch}-tiny-{name}.gguf");
        assert_eq!(sha256(&out), expected(&file), "{file} differs from llama-quantize's");
    }
}
