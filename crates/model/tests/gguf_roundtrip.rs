//! Builder → reader round trips with random values and tensors, opening files
//! from disk, and random corruption of a valid file (never a panic; whatever is
//! accepted is internally consistent).

#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use kernels::GgmlType;
use model::gguf::{Array, GgufBuilder, GgufError, GgufFile, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_string(rng: &mut ChaCha8Rng) -> String {
    let len = rng.gen_range(0..12);
    (0..len).map(|_| if rng.gen_bool(0.1) { 'é' } else { rng.gen_range('a'..='z') }).collect()
}

fn random_array(rng: &mut ChaCha8Rng, depth: usize) -> Array {
    let n = rng.gen_range(0..6);
    match rng.gen_range(0..if depth < 3 { 13 } else { 12 }) {
        0 => Array::U8((0..n).map(|_| rng.gen()).collect()),
        1 => Array::I8((0..n).map(|_| rng.gen()).collect()),
        2 => Array::U16((0..n).map(|_| rng.gen()).collect()),
        3 => Array::I16((0..n).map(|_| rng.gen()).collect()),
        4 => Array::U32((0..n).map(|_| rng.gen()).collect()),
        5 => Array::I32((0..n).map(|_| rng.gen()).collect()),
        6 => Array::U64((0..n).map(|_| rng.gen()).collect()),
        7 => Array::I64((0..n).map(|_| rng.gen()).collect()),
        8 => Array::F32((0..n).map(|_| rng.gen_range(-1e6..1e6)).collect()),
        9 => Array::F64((0..n).map(|_| rng.gen_range(-1e300..1e300)).collect()),
        10 => Array::Bool((0..n).map(|_| rng.gen()).collect()),
        11 => Array::String((0..n).map(|_| random_string(rng)).collect()),
        _ => Array::Array((0..n).map(|_| random_array(rng, depth + 1)).collect()),
    }
}

fn random_value(rng: &mut ChaCha8Rng) -> Value {
    match rng.gen_range(0..13) {
        0 => Value::U8(rng.gen()),
        1 => Value::I8(rng.gen()),
        2 => Value::U16(rng.gen()),
        3 => Value::I16(rng.gen()),
        4 => Value::U32(rng.gen()),
        5 => Value::I32(rng.gen()),
        6 => Value::U64(rng.gen()),
        7 => Value::I64(rng.gen()),
        8 => Value::F32(rng.gen_range(-1e30..1e30)),
        9 => Value::F64(rng.gen()),
        10 => Value::Bool(rng.gen()),
        11 => Value::String(random_string(rng)),
        _ => Value::Array(random_array(rng, 1)),
    }
}

const TYPES: [GgmlType; 7] =
    [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K];

/// A random file; returns it with the kvs and tensors (name, type, dims, bytes) written.
type Tensors = Vec<(String, GgmlType, Vec<usize>, Vec<u8>)>;
fn random_file(rng: &mut ChaCha8Rng, version: u32, alignment: Option<u32>) -> (Vec<u8>, Vec<(String, Value)>, Tensors) {
    let mut b = GgufBuilder::new();
    b.version(version);
    let mut kvs = Vec::new();
    if let Some(a) = alignment {
        b.alignment(a);
        kvs.push(("general.alignment".to_string(), Value::U32(a)));
    }
    for i in 0..rng.gen_range(0..20) {
        let (key, value) = (format!("test.key{i}.{}", random_string(rng)), random_value(rng));
        b.add_kv(&key, value.clone());
        kvs.push((key, value));
    }
    let mut tensors = Vec::new();
    for i in 0..rng.gen_range(0..8) {
        let ty = TYPES[rng.gen_range(0..TYPES.len())];
        let n_dims = rng.gen_range(1..=4);
        let mut dims = vec![ty.block_size() * rng.gen_range(1..4)];
        dims.extend((1..n_dims).map(|_| rng.gen_range(1..4)));
        let size = ty.row_size(dims[0]).expect("whole blocks") * dims[1..].iter().product::<usize>();
        let data: Vec<u8> = (0..size).map(|_| rng.gen()).collect();
        let name = format!("blk.{i}.weight");
        b.add_tensor(&name, ty, &dims, data.clone());
        tensors.push((name, ty, dims, data));
    }
    (b.build(), kvs, tensors)
}

fn check_same(f: &GgufFile, kvs: &[(String, Value)], tensors: &Tensors) {
    let read: Vec<(String, Value)> = f.metadata().map(|(k, v)| (k.to_string(), v.clone())).collect();
    assert_eq!(read, kvs);
    for (k, v) in kvs {
        assert_eq!(f.get(k), Some(v));
    }
    assert_eq!(f.tensors().len(), tensors.len());
    for (t, (name, ty, dims, data)) in f.tensors().iter().zip(tensors) {
        assert_eq!((&t.name, t.ty, &t.dims, t.size), (name, *ty, dims, data.len()));
        assert_eq!(f.tensor_data(t), &data[..]);
        assert_eq!(f.tensor(name), Some(t));
        assert_eq!(t.offset % f.alignment, 0);
    }
}

#[test]
fn random_files_round_trip() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    for round in 0..200 {
        let version = if round % 5 == 0 { 2 } else { 3 };
        let alignment = [None, Some(1), Some(8), Some(32), Some(64), Some(4096)][round % 6];
        let (bytes, kvs, tensors) = random_file(&mut rng, version, alignment);
        let f = GgufFile::from_bytes(bytes).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(f.version, version);
        assert_eq!(f.alignment, alignment.map_or(32, |a| a as usize));
        check_same(&f, &kvs, &tensors);
    }
}

#[test]
fn open_maps_a_file_from_disk() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (bytes, kvs, tensors) = random_file(&mut rng, 3, None);
    let path = std::env::temp_dir().join(format!("seed-gguf-roundtrip-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).expect("write temp file");
    let opened = GgufFile::open(&path);
    std::fs::write(&path, b"").expect("truncate temp file");
    let empty = GgufFile::open(&path);
    std::fs::remove_file(&path).expect("remove temp file");

    check_same(&opened.expect("open"), &kvs, &tensors);
    assert!(matches!(empty, Err(GgufError::Truncated { offset: 0, .. })), "{empty:?}");
    let missing = GgufFile::open(&path).unwrap_err();
    assert!(matches!(missing, GgufError::Io { .. }), "{missing:?}");
    assert!(missing.to_string().contains("seed-gguf-roundtrip"), "{missing}");
}

/// Values that make counts, lengths and offsets extreme.
const NASTY_U64: [u64; 8] = [0, 1, 0xff, 1 << 31, 1 << 32, 1 << 63, u64::MAX, u64::MAX - 31];

#[test]
fn random_corruption_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xbad);
    let mut accepted = 0;
    for _ in 0..40 {
        let (bytes, _, _) = random_file(&mut rng, 3, Some(32));
        let index_end = GgufFile::from_bytes(bytes.clone()).expect("valid").data_offset().max(24);
        for _ in 0..100 {
            let mut broken = bytes.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..index_end);
                if rng.gen_bool(0.5) && at + 8 <= broken.len() {
                    let v = NASTY_U64[rng.gen_range(0..NASTY_U64.len())];
                    broken[at..at + 8].copy_from_slice(&v.to_le_bytes());
                } else {
                    broken[at] = rng.gen();
                }
            }
            if rng.gen_bool(0.2) {
                broken.truncate(rng.gen_range(0..=broken.len()));
            }
            let len = broken.len();
            if let Ok(f) = GgufFile::from_bytes(broken) {
                accepted += 1;
                for t in f.tensors() {
                    assert_eq!(f.tensor_data(t).len(), t.size);
                    assert!(t.offset + t.size <= len && t.offset % f.alignment == 0);
                    assert_eq!(t.ty.row_size(t.row_len()).map(|r| r * t.n_rows()), Some(t.size));
                }
            }
        }
    }
    // Some corruptions land in values (a flipped byte of a float) and are accepted.
    assert!(accepted > 0);
}
