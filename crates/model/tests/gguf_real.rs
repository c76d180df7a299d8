//! The reader against real model files, when the environment points to them:
//! `SEED_TEST_SMOLLM2` (SmolLM2-135M-Instruct Q4_1) and `SEED_TEST_GEMMA3`
//! (Gemma 3 270M Q4_K_M). Without the variable the test says it was skipped.

#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use std::path::PathBuf;

use kernels::GgmlType;
use model::gguf::{GgufFile, TensorInfo};

fn model_path(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("skipped: set {var} to the model file to run this test");
            None
        }
    }
}

/// Checks that hold for every file: tensors in bounds, aligned, sized by their type.
fn check_index(f: &GgufFile) {
    let mut prev_end = f.data_offset();
    for t in f.tensors() {
        assert_eq!(f.tensor_data(t).len(), t.size, "{}", t.name);
        assert_eq!(t.offset % f.alignment, 0, "{}", t.name);
        assert!(t.offset >= prev_end, "{} overlaps the tensor before it", t.name);
        prev_end = t.offset + t.size;
        let row = t.ty.row_size(t.row_len()).expect("whole blocks");
        assert_eq!(row * t.n_rows(), t.size, "{}", t.name);
        assert_eq!(t.row_len() * t.n_rows(), t.n_elements());
        assert_eq!(f.tensor(&t.name), Some(t));
    }
    assert!(prev_end <= f.file_len());
}

fn tensor<'f>(f: &'f GgufFile, name: &str) -> &'f TensorInfo {
    f.tensor(name).unwrap_or_else(|| panic!("tensor {name} missing"))
}

#[test]
fn smollm2_opens_with_expected_index() {
    let Some(path) = model_path("SEED_TEST_SMOLLM2") else { return };
    let f = GgufFile::open(&path).expect("open smollm2");
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment, 32);
    assert_eq!(f.tensors().len(), 272);
    assert_eq!(f.metadata().count(), 33);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), 576);
    assert!(f.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap() > 0.0);
    assert_eq!(f.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(f.get_i32_array("tokenizer.ggml.token_type").unwrap().len(), 49152);
    assert!(f.get_bool("tokenizer.ggml.add_bos_token").is_ok());
    let embd = tensor(&f, "token_embd.weight");
    assert_eq!(embd.ty, GgmlType::Q8_0);
    assert_eq!(embd.dims, vec![576, 49152]);
    assert_eq!(embd.offset, f.data_offset());
    check_index(&f);
}

#[test]
fn gemma3_opens_with_expected_index() {
    let Some(path) = model_path("SEED_TEST_GEMMA3") else { return };
    let f = GgufFile::open(&path).expect("open gemma3");
    assert_eq!(f.version, 3);
    assert_eq!(f.tensors().len(), 236);
    assert_eq!(f.metadata().count(), 33);
    assert_eq!(f.get_str("general.architecture").unwrap(), "gemma3");
    assert_eq!(f.get_u32("gemma3.embedding_length").unwrap(), 640);
    assert_eq!(f.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 262144);
    assert_eq!(f.get_f32_array("tokenizer.ggml.scores").unwrap().len(), 262144);
    let norm = tensor(&f, "output_norm.weight");
    assert_eq!((norm.ty, norm.dims.as_slice(), norm.size), (GgmlType::F32, &[640][..], 2560));
    check_index(&f);
}
