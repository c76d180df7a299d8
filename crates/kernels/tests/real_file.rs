//! The kernels on real weights: the first rows of one tensor of each supported type
//! in the GGUF file named by `SEED_TEST_GGUF` (skipped, with a note, when unset).
//! Every level must agree with the scalar kernels, and those with an f64 product.

mod common;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use common::*;
use kernels::matmul::{matmul_with_isa, MatmulScratch, QMatrix};
use kernels::{GgmlType, Isa, ThreadPool};

/// A tensor's type, dims (`[cols, rows, …]`) and absolute offset in the file.
struct TensorInfo {
    ty: Option<GgmlType>,
    dims: Vec<u64>,
    offset: u64,
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_string(r: &mut impl Read) -> io::Result<String> {
    let len = read_u64(r)?;
    assert!(len < 1 << 20, "string of {len} bytes");
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Skips one metadata value of type `ty`; returns it if it is a u32 (for `general.alignment`).
fn skip_value(r: &mut impl Read, ty: u32) -> io::Result<Option<u32>> {
    let size = match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4 => return read_u32(r).map(Some),
        5 | 6 => 4,
        10..=12 => 8,
        8 => return read_string(r).map(|_| None),
        9 => {
            let elem = read_u32(r)?;
            for _ in 0..read_u64(r)? {
                skip_value(r, elem)?;
            }
            return Ok(None);
        }
        _ => panic!("unknown GGUF value type {ty}"),
    };
    io::copy(&mut r.take(size), &mut io::sink())?;
    Ok(None)
}

fn tensor_infos(f: &mut File) -> io::Result<Vec<TensorInfo>> {
    let mut r = io::BufReader::new(&mut *f);
    assert_eq!(read_u32(&mut r)?, u32::from_le_bytes(*b"GGUF"), "not a GGUF file");
    let _version = read_u32(&mut r)?;
    let (n_tensors, n_kv) = (read_u64(&mut r)?, read_u64(&mut r)?);
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key = read_string(&mut r)?;
        let ty = read_u32(&mut r)?;
        if let Some(v) = skip_value(&mut r, ty)? {
            if key == "general.alignment" {
                alignment = u64::from(v);
            }
        }
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let _name = read_string(&mut r)?;
        let n_dims = read_u32(&mut r)?;
        let dims = (0..n_dims).map(|_| read_u64(&mut r)).collect::<io::Result<Vec<_>>>()?;
        let ty = GgmlType::from_id(read_u32(&mut r)?);
        infos.push(TensorInfo { ty, dims, offset: read_u64(&mut r)? });
    }
    let data_start = r.stream_position()?.div_ceil(alignment) * alignment;
    for t in &mut infos {
        t.offset += data_start;
    }
    Ok(infos)
}

#[test]
fn real_weights_agree_across_levels() {
    let Ok(path) = std::env::var("SEED_TEST_GGUF") else {
        println!("note: SEED_TEST_GGUF is not set; skipping the check on real weights");
        return;
    };
    let mut f = File::open(&path).expect("open SEED_TEST_GGUF");
    let infos = tensor_infos(&mut f).expect("read GGUF header");
    let pool = ThreadPool::new(2);
    let mut scratch = MatmulScratch::default();
    let mut rng = rng(20);
    let mut seen = Vec::new();
    for t in &infos {
        let Some(ty) = t.ty.filter(|ty| ty.is_supported() && !seen.contains(ty)) else { continue };
        if t.dims.len() != 2 {
            continue;
        }
        seen.push(ty);
        let (cols, rows) = (t.dims[0] as usize, (t.dims[1] as usize).min(37));
        let mut data = Aligned::zeroed(rows * ty.row_size(cols).expect("whole blocks"));
        f.seek(SeekFrom::Start(t.offset)).expect("seek");
        f.read_exact(data.bytes_mut()).expect("read rows");
        let w = QMatrix::new(ty, rows, cols, data.bytes()).expect("valid matrix");
        let deq = dequantize(ty, data.bytes(), rows, cols);
        for n in [1usize, 5] {
            let x = random_acts(&mut rng, n * cols);
            let (want, bound) = reference(ty, &deq, rows, cols, &x, n);
            let mut scalar = vec![0.0f32; n * rows];
            matmul_with_isa(Isa::Scalar, &w, &x, n, &mut scalar, &mut scratch, &pool);
            for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
                let mut y = vec![f32::NAN; n * rows];
                matmul_with_isa(isa, &w, &x, n, &mut y, &mut scratch, &pool);
                for k in 0..y.len() {
                    assert!((y[k] - want[k]).abs() <= bound[k], "{ty} {isa} entry {k}: {} vs f64 {}", y[k], want[k]);
                    let tol = bound[k] * 1e-3 + 1e-5 * scalar[k].abs() + 1e-6;
                    assert!((y[k] - scalar[k]).abs() <= tol, "{ty} {isa} entry {k}: {} vs scalar {}", y[k], scalar[k]);
                }
            }
        }
        println!("{ty}: {rows}x{cols} rows of a real tensor agree at every level");
    }
    assert!(!seen.is_empty(), "no tensor of a supported type in {path}");
}
