//! The GGUF reader against deliberately broken files: one generated file per
//! corruption class. Each test asserts the error variant, that the message names
//! the field, and (where the layout makes it easy to know) the byte offset.
//!
//! Offsets used below, for a file with no kvs and one tensor named `x`: header
//! 0..24, name length 24..32, name 32, n_dims 33..37, dims[0] 37..45,
//! dims[1] 45..53, then type and offset.

#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use kernels::GgmlType;
use model::gguf::writer::{write_string, write_u32, write_u64, RawTensor};
use model::gguf::{Array, GgufBuilder, GgufError, GgufFile, Value, MAX_ARRAY_DEPTH};

/// A small valid file: metadata like a llama model's, three tensors of three types.
fn base() -> GgufBuilder {
    let mut b = GgufBuilder::new();
    b.add_kv("general.architecture", Value::String("llama".into()))
        .add_kv("llama.block_count", Value::U32(1))
        .add_kv("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["a".into(), "b".into(), "c".into()])))
        .add_kv("tokenizer.ggml.scores", Value::Array(Array::F32(vec![0.0, -1.0, -2.0])))
        .add_kv("tokenizer.ggml.token_type", Value::Array(Array::I32(vec![1, 1, 3])))
        .add_tensor("token_embd.weight", GgmlType::Q4_0, &[64, 3], vec![7; 2 * 18 * 3])
        .add_tensor("output_norm.weight", GgmlType::F32, &[64], vec![1; 64 * 4])
        .add_tensor("blk.0.attn_q.weight", GgmlType::F16, &[64, 64], vec![2; 64 * 64 * 2]);
    b
}

/// A file with no kvs and the one tensor `t`.
fn one_tensor(t: RawTensor) -> Vec<u8> {
    GgufBuilder::new().add_raw_tensor(t).build()
}

fn open(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(bytes)
}

/// The error for `bytes`, whose message must contain every one of `parts`.
fn err(bytes: Vec<u8>, parts: &[&str]) -> GgufError {
    let e = match open(bytes) {
        Ok(f) => panic!("broken file accepted: {f:?}"),
        Err(e) => e,
    };
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
    e
}

/// A raw kv: key, value type id, value bytes.
fn raw_kv(key: &[u8], type_id: u32, value: &[u8]) -> Vec<u8> {
    let mut kv = Vec::new();
    write_string(&mut kv, key);
    write_u32(&mut kv, type_id);
    kv.extend_from_slice(value);
    kv
}

#[test]
fn base_file_is_valid() {
    let f = open(base().build()).expect("valid");
    assert_eq!(f.tensors().len(), 3);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
}

#[test]
fn truncated_anywhere_is_an_error() {
    let bytes = base().build();
    let f = open(bytes.clone()).expect("valid");
    // Every cut inside the header, the kvs, the tensor infos and the padding.
    for cut in 0..f.data_offset() {
        match open(bytes[..cut].to_vec()) {
            Err(GgufError::Truncated { offset, .. }) => assert!(offset <= cut, "cut {cut}"),
            Err(GgufError::CountTooLarge { .. } | GgufError::TensorOutOfBounds { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // Cuts inside each tensor's data name that tensor.
    for t in f.tensors() {
        for cut in [t.offset, t.offset + 1, t.offset + t.size / 2, t.offset + t.size - 1] {
            let e = err(bytes[..cut].to_vec(), &[&format!("tensor '{}' offset", t.name), "past the end"]);
            assert!(matches!(e, GgufError::TensorOutOfBounds { file_len, .. } if file_len == cut), "{e:?}");
        }
    }
}

#[test]
fn empty_file_is_truncated_at_the_magic() {
    let e = err(Vec::new(), &["magic at offset 0"]);
    assert!(matches!(e, GgufError::Truncated { offset: 0, needed: 4, available: 0, .. }), "{e:?}");
}

#[test]
fn bad_magic() {
    let e = err(base().magic(*b"GGML").build(), &["magic at offset 0", "GGUF"]);
    assert!(matches!(e, GgufError::BadMagic { found } if &found == b"GGML"), "{e:?}");
}

#[test]
fn versions_1_and_99_are_rejected_2_and_3_accepted() {
    for v in [0, 1, 4, 99, u32::MAX] {
        let e = err(base().version(v).build(), &["version at offset 4", &format!("is {v}")]);
        assert!(matches!(e, GgufError::UnsupportedVersion { version } if version == v), "{e:?}");
    }
    for v in [2, 3] {
        assert_eq!(open(base().version(v).build()).expect("valid").version, v);
    }
    err(base().version(3u32.swap_bytes()).build(), &["big-endian"]);
}

#[test]
fn tensor_count_2_pow_64_minus_1() {
    let e = err(base().tensor_count(u64::MAX).build(), &["tensor count at offset 8", "18446744073709551615"]);
    assert!(matches!(e, GgufError::CountTooLarge { offset: 8, count: u64::MAX, .. }), "{e:?}");
}

#[test]
fn kv_count_2_pow_64_minus_1() {
    let e = err(base().kv_count(u64::MAX).build(), &["kv count at offset 16"]);
    assert!(matches!(e, GgufError::CountTooLarge { offset: 16, count: u64::MAX, .. }), "{e:?}");
}

#[test]
fn tensor_count_that_fits_the_file_but_not_what_is_left_after_the_kvs() {
    // 40 tensors declared, none written: the bytes after the header could hold 40
    // minimal infos (they are the kvs), the bytes after the kvs cannot; the recheck
    // names the tensor count.
    let mut b = GgufBuilder::new();
    b.add_kv("padding", Value::Array(Array::U8(vec![0; 40 * 33])));
    let e = err(b.tensor_count(40).build(), &["tensor count at offset 8"]);
    assert!(matches!(e, GgufError::CountTooLarge { count: 40, available, .. } if available < 32), "{e:?}");
}

#[test]
fn string_length_past_the_end() {
    // A key claiming 2^40 bytes.
    let mut kv = Vec::new();
    write_u64(&mut kv, 1 << 40);
    kv.extend_from_slice(b"general.name");
    let e = err(GgufBuilder::new().add_raw_kv(kv).build(), &["kv[0] key at offset 32"]);
    assert!(matches!(e, GgufError::Truncated { offset: 32, needed: 1099511627776, .. }), "{e:?}");
    // A string value claiming 1000 bytes with 3 left.
    let mut value = Vec::new();
    write_u64(&mut value, 1000);
    value.extend_from_slice(b"abc");
    let kv = raw_kv(b"general.name", 8, &value);
    let e = err(GgufBuilder::new().add_raw_kv(kv).build(), &["kv 'general.name' at offset"]);
    assert!(matches!(e, GgufError::Truncated { needed: 1000, available, .. } if available < 40), "{e:?}");
}

#[test]
fn empty_key() {
    let mut b = GgufBuilder::new();
    b.add_kv("a", Value::U8(1)).add_kv("", Value::U8(2));
    // kv[0] is 8 + 1 + 4 + 1 bytes from 24; kv[1]'s key starts at 38.
    let e = err(b.build(), &["kv[1] key at offset 38 is empty"]);
    assert!(matches!(e, GgufError::EmptyKey { offset: 38, .. }), "{e:?}");
}

#[test]
fn duplicate_key() {
    let mut b = base();
    b.add_kv("llama.block_count", Value::U32(2));
    let e = err(b.build(), &["kv[5] key", "'llama.block_count'", "kv[1]"]);
    assert!(matches!(e, GgufError::DuplicateKey { first: 1, ref key, .. } if key == "llama.block_count"), "{e:?}");
}

#[test]
fn duplicate_and_empty_tensor_names() {
    let mut b = base();
    b.add_tensor("output_norm.weight", GgmlType::F32, &[4], vec![0; 16]);
    let e = err(b.build(), &["tensor[3] name", "'output_norm.weight'", "tensor[1]"]);
    assert!(matches!(e, GgufError::DuplicateTensorName { first: 1, .. }), "{e:?}");

    let e = err(one_tensor(RawTensor::new("", GgmlType::F32, &[4], vec![0; 16])), &["tensor[0] name at offset 24"]);
    assert!(matches!(e, GgufError::EmptyTensorName { offset: 24, .. }), "{e:?}");
}

#[test]
fn n_dims_outside_1_to_4() {
    let e = err(
        one_tensor(RawTensor::new("x", GgmlType::F32, &[1, 1, 1, 1, 4], vec![0; 16])),
        &["tensor 'x' n_dims at offset 33 is 5"],
    );
    assert!(matches!(e, GgufError::BadDimCount { n_dims: 5, offset: 33, .. }), "{e:?}");
    let e = err(one_tensor(RawTensor::new("x", GgmlType::F32, &[], vec![])), &["tensor 'x' n_dims"]);
    assert!(matches!(e, GgufError::BadDimCount { n_dims: 0, .. }), "{e:?}");
    // n_dims of u32::MAX with no dims after it: rejected before any dim is read.
    let mut t = RawTensor::new("x", GgmlType::F32, &[4], vec![0; 16]);
    t.n_dims = u32::MAX;
    assert!(matches!(open(one_tensor(t)), Err(GgufError::BadDimCount { .. })));
}

#[test]
fn a_dimension_of_0() {
    let e =
        err(one_tensor(RawTensor::new("x", GgmlType::F32, &[4, 0], vec![])), &["tensor 'x' dims[1] at offset 45 is 0"]);
    assert!(matches!(e, GgufError::ZeroDim { offset: 45, .. }), "{e:?}");
}

#[test]
fn dimensions_whose_product_overflows() {
    let e = err(
        one_tensor(RawTensor::new("x", GgmlType::F32, &[1 << 32, 1 << 32, 1 << 32], vec![])),
        &["tensor 'x' dims at offset 37", "element count overflows"],
    );
    assert!(matches!(e, GgufError::ShapeOverflow { what: "element count", .. }), "{e:?}");
    // The element count fits, the byte size (4 bytes each) does not.
    let e = err(one_tensor(RawTensor::new("x", GgmlType::F32, &[1 << 62, 2], vec![])), &["byte size overflows"]);
    assert!(matches!(e, GgufError::ShapeOverflow { what: "byte size", .. }), "{e:?}");
}

#[test]
fn unknown_tensor_type() {
    for id in [4, 31, 40, 1000, u32::MAX] {
        let mut t = RawTensor::new("x", GgmlType::F32, &[4], vec![0; 16]);
        t.type_id = id;
        // type at 37 + 8 for one dim.
        let e = err(one_tensor(t), &[&format!("tensor 'x' type at offset 45 is {id}")]);
        assert!(matches!(e, GgufError::UnknownTensorType { id: found, offset: 45, .. } if found == id), "{e:?}");
    }
}

#[test]
fn row_length_not_a_multiple_of_the_block_size() {
    let e = err(
        one_tensor(RawTensor::new("x", GgmlType::Q4_K, &[100, 2], vec![0; 1000])),
        &["tensor 'x' dims[0] at offset 37 is 100", "Q4_K's block size 256"],
    );
    assert!(matches!(e, GgufError::RowNotWholeBlocks { row_len: 100, block_size: 256, .. }), "{e:?}");
}

#[test]
fn offset_plus_size_past_the_end() {
    for offset in [1 << 20, u64::MAX - 31, 0] {
        let mut t = RawTensor::new("x", GgmlType::F32, &[64], vec![0; 256]);
        t.offset = Some(offset);
        if offset == 0 {
            t.data.truncate(100); // the data section is shorter than the declared size
        }
        let e = err(one_tensor(t), &["tensor 'x' offset at offset 49", "past the end of the file"]);
        assert!(
            matches!(e, GgufError::TensorOutOfBounds { data_offset, size: 256, .. } if data_offset == offset),
            "{e:?}"
        );
    }
}

#[test]
fn offset_not_aligned() {
    let mut t = RawTensor::new("x", GgmlType::F32, &[64], vec![0; 256]);
    t.offset = Some(4);
    let e = err(one_tensor(t), &["tensor 'x' offset at offset 49 is 4", "alignment 32"]);
    assert!(matches!(e, GgufError::MisalignedTensor { data_offset: 4, alignment: 32, .. }), "{e:?}");
    // Aligned to 32 but the file says 64.
    let mut b = base();
    let mut t = RawTensor::new("x", GgmlType::F32, &[4], vec![0; 16]);
    t.offset = Some(32);
    b.alignment(64).add_raw_tensor(t);
    assert!(matches!(open(b.build()), Err(GgufError::MisalignedTensor { alignment: 64, .. })));
}

#[test]
fn alignment_0_3_and_wrong_type_are_rejected_64_accepted() {
    for a in [0, 3, 48] {
        let e = err(base().alignment(a).build(), &["kv 'general.alignment' value at offset", &format!("is {a}")]);
        assert!(matches!(e, GgufError::BadAlignment { value, .. } if value == a), "{e:?}");
    }
    let mut b = base();
    b.add_kv("general.alignment", Value::U64(32));
    let e = err(b.build(), &["kv 'general.alignment'", "u64"]);
    assert!(matches!(e, GgufError::AlignmentType { found: "u64", .. }), "{e:?}");

    let f = open(base().alignment(64).build()).expect("valid");
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert!(f.tensors().iter().all(|t| t.offset % 64 == 0));
}

#[test]
fn array_of_the_wrong_element_type() {
    let mut b = GgufBuilder::new();
    b.add_kv("tokenizer.ggml.tokens", Value::Array(Array::U32(vec![1, 2, 3])));
    let f = open(b.build()).expect("valid file, wrong type for the caller");
    let e = f.get_str_array("tokenizer.ggml.tokens").unwrap_err();
    assert!(
        matches!(e, GgufError::WrongType { expected: "array of string", ref found, .. } if found == "array of u32"),
        "{e:?}"
    );
    assert!(e.to_string().contains("'tokenizer.ggml.tokens'"), "{e}");
    assert!(matches!(f.get_f32_array("tokenizer.ggml.tokens"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_str("tokenizer.ggml.tokens"), Err(GgufError::WrongType { .. })));
}

#[test]
fn invalid_value_type_id() {
    let kv = raw_kv(b"a", 13, &[0; 8]);
    let e = err(GgufBuilder::new().add_raw_kv(kv).build(), &["kv 'a' value type at offset 33 is 13"]);
    assert!(matches!(e, GgufError::InvalidValueType { id: 13, offset: 33, .. }), "{e:?}");
    // An array whose element type is invalid.
    let mut value = Vec::new();
    write_u32(&mut value, 99);
    write_u64(&mut value, 1);
    value.extend_from_slice(&[0; 8]);
    let kv = raw_kv(b"a", 9, &value);
    let e = err(GgufBuilder::new().add_raw_kv(kv).build(), &["kv 'a' array element type at offset 37 is 99"]);
    assert!(matches!(e, GgufError::InvalidValueType { id: 99, .. }), "{e:?}");
}

/// `levels` arrays nested in one another, the innermost holding one u8.
fn nested(levels: usize) -> Array {
    let mut a = Array::U8(vec![42]);
    for _ in 1..levels {
        a = Array::Array(vec![a]);
    }
    a
}

#[test]
fn arrays_nested_too_deep() {
    let mut b = GgufBuilder::new();
    b.add_kv("deep", Value::Array(nested(MAX_ARRAY_DEPTH)));
    let f = open(b.build()).expect("at the limit");
    assert_eq!(f.get("deep"), Some(&Value::Array(nested(MAX_ARRAY_DEPTH))));

    let mut b = GgufBuilder::new();
    b.add_kv("deep", Value::Array(nested(MAX_ARRAY_DEPTH + 1)));
    let e = err(b.build(), &["kv 'deep'[0][0][0][0][0][0][0][0]", "nested 9 deep"]);
    assert!(matches!(e, GgufError::NestingTooDeep { depth: 9, max: 8, .. }), "{e:?}");
}

#[test]
fn invalid_utf8() {
    // In a key.
    let kv = raw_kv(b"ab\xffc", 0, &[1]);
    let e = err(GgufBuilder::new().add_raw_kv(kv).build(), &["kv[0] key at offset 32", "byte at offset 34"]);
    assert!(matches!(e, GgufError::InvalidUtf8 { offset: 32, bad_at: 34, .. }), "{e:?}");
    // In a string value.
    let mut value = Vec::new();
    write_string(&mut value, b"\xc3\x28");
    let e = err(GgufBuilder::new().add_raw_kv(raw_kv(b"k", 8, &value)).build(), &["kv 'k' at offset"]);
    assert!(matches!(e, GgufError::InvalidUtf8 { .. }), "{e:?}");
    // In an element of a string array.
    let mut value = Vec::new();
    write_u32(&mut value, 8);
    write_u64(&mut value, 2);
    write_string(&mut value, b"ok");
    write_string(&mut value, b"\xe2\x82");
    let e = err(GgufBuilder::new().add_raw_kv(raw_kv(b"toks", 9, &value)).build(), &["kv 'toks'[1] at offset"]);
    assert!(matches!(e, GgufError::InvalidUtf8 { .. }), "{e:?}");
    // In a tensor name.
    let mut t = RawTensor::new("x", GgmlType::F32, &[4], vec![0; 16]);
    t.name = b"blk.\x80".to_vec();
    let e = err(one_tensor(t), &["tensor[0] name at offset 32"]);
    assert!(matches!(e, GgufError::InvalidUtf8 { bad_at: 36, .. }), "{e:?}");
}

#[test]
fn invalid_bool() {
    let e = err(GgufBuilder::new().add_raw_kv(raw_kv(b"b", 7, &[2])).build(), &["kv 'b' at offset 37 is byte 2"]);
    assert!(matches!(e, GgufError::InvalidBool { byte: 2, offset: 37, .. }), "{e:?}");
}

#[test]
fn array_length_past_the_end() {
    // 2^40 strings: each needs at least its 8-byte length.
    let mut value = Vec::new();
    write_u32(&mut value, 8);
    write_u64(&mut value, 1 << 40);
    let kv = raw_kv(b"tokenizer.ggml.tokens", 9, &value);
    let e = err(GgufBuilder::new().add_raw_kv(kv).build(), &["kv 'tokenizer.ggml.tokens' array length at offset"]);
    assert!(matches!(e, GgufError::CountTooLarge { count: 1099511627776, min_bytes_each: 8, .. }), "{e:?}");
    // 100 u32 (400 bytes) with 300 bytes left: more than the count of bytes, less than needed.
    let mut value = Vec::new();
    write_u32(&mut value, 4);
    write_u64(&mut value, 100);
    value.extend_from_slice(&[0; 300]);
    let e = err(GgufBuilder::new().add_raw_kv(raw_kv(b"ids", 9, &value)).build(), &["kv 'ids' array length"]);
    assert!(
        matches!(e, GgufError::CountTooLarge { count: 100, min_bytes_each: 4, available, .. } if (300..400).contains(&available)),
        "{e:?}"
    );
}

#[test]
fn getters_check_type_and_range() {
    let mut b = GgufBuilder::new();
    b.add_kv("neg", Value::I32(-1))
        .add_kv("big", Value::U64(1 << 40))
        .add_kv("small64", Value::U64(7))
        .add_kv("i8", Value::I8(5))
        .add_kv("f64", Value::F64(0.5))
        .add_kv("huge64", Value::F64(1e300))
        .add_kv("flag", Value::Bool(true));
    let f = open(b.build()).expect("valid");
    assert!(
        matches!(f.get_u32("neg"), Err(GgufError::WrongType { expected: "u32", ref found, .. }) if found == "i32 -1 (out of range)")
    );
    assert!(matches!(f.get_u64("neg"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_u32("big"), Err(GgufError::WrongType { .. })));
    assert_eq!(f.get_u64("big").unwrap(), 1 << 40);
    assert_eq!(f.get_u32("small64").unwrap(), 7);
    assert_eq!(f.get_u32("i8").unwrap(), 5);
    assert_eq!(f.get_f32("f64").unwrap(), 0.5);
    assert!(matches!(f.get_f32("huge64"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_f32("i8"), Err(GgufError::WrongType { .. })));
    assert!(f.get_bool("flag").unwrap());
    assert!(matches!(f.get_bool("i8"), Err(GgufError::WrongType { .. })));
    let e = f.get_str("absent").unwrap_err();
    assert!(matches!(e, GgufError::MissingKey { ref key } if key == "absent"), "{e:?}");
    assert_eq!(e.to_string(), "metadata key 'absent' is missing");
}
