//! The GGUF reader. The file is hostile input.
//!
//! [`GgufFile::open`] maps the file and parses its index (header, metadata, tensor
//! infos); [`GgufFile::from_bytes`] does the same from memory (tests, fuzzing).
//! Every count, length, dimension, type id and offset is checked before use, and
//! no allocation is larger than the bytes left in the file could justify, so a
//! broken or malicious file gives a [`GgufError`] that names the field and its
//! byte offset, never a panic. Once open, [`GgufFile::tensor_data`] is a plain
//! slice: every tensor's bytes were checked to lie inside the file.
//!
//! - [`error`] holds [`GgufError`];
//! - [`value`] holds metadata [`Value`]s and [`Array`]s;
//! - `reader` is the byte cursor with checked reads;
//! - `parse` reads the header, the kvs and the tensor infos;
//! - [`writer`] holds [`GgufBuilder`], to write valid and deliberately broken files.

pub mod error;
mod parse;
mod reader;
pub mod value;
pub mod writer;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;

use kernels::GgmlType;
use memmap2::Mmap;

pub use error::GgufError;
pub use parse::MAX_ARRAY_DEPTH;
pub use value::{Array, Value};
pub use writer::GgufBuilder;

/// An open GGUF file: its metadata, its tensor index, and its bytes.
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// Alignment of the data section and of every tensor's offset, in bytes.
    pub alignment: usize,
    storage: Storage,
    kvs: Vec<(String, Value)>,
    kv_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_start: usize,
}

/// Where the file's bytes live.
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// One tensor of the index.
///
/// Tensors with a dimension of 0 are rejected at open: GGUF allows them in
/// principle, but no model Seed runs has one, and refusing them keeps every
/// size computation free of the empty case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Dimensions in ggml order: `dims[0]` is the contiguous row length (1 to 4 dims, none 0).
    pub dims: Vec<usize>,
    /// Absolute offset of the data in the file.
    pub offset: usize,
    /// Size of the data in bytes.
    pub size: usize,
}

impl TensorInfo {
    /// Number of elements (product of the dims).
    pub fn n_elements(&self) -> usize {
        self.dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
    }

    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of `dims[1..]`).
    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).fold(1usize, |acc, &d| acc.saturating_mul(d))
    }
}

impl GgufFile {
    /// Maps the file at `path` and parses its index.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            return GgufFile::from_bytes(Vec::new());
        }
        // SAFETY: the map is read-only and private; Seed never writes model files
        // while they are open. Another process truncating or rewriting the file
        // while it is mapped would change the bytes under us (or fault on access);
        // that is outside what any reader of a mapped file can prevent, and the
        // model cache writes files atomically (write, then rename) to avoid it.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        GgufFile::from_storage(Storage::Mapped(map))
    }

    /// Parses a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<GgufFile, GgufError> {
        let p = parse::parse(storage.bytes())?;
        Ok(GgufFile {
            version: p.version,
            alignment: p.alignment,
            storage,
            kvs: p.kvs,
            kv_index: p.kv_index,
            tensors: p.tensors,
            tensor_index: p.tensor_index,
            data_start: p.data_start,
        })
    }

    /// The metadata kvs in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kvs.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv_index.get(key).and_then(|&i| self.kvs.get(i)).map(|(_, v)| v)
    }

    fn need(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    /// `key` as a u32: any integer type whose value fits.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.need(key)?;
        integer(key, v, "u32").and_then(|n| u32::try_from(n).map_err(|_| out_of_range(key, v, n, "u32")))
    }

    /// `key` as a u64: any integer type whose value fits.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.need(key)?;
        integer(key, v, "u64").and_then(|n| u64::try_from(n).map_err(|_| out_of_range(key, v, n, "u64")))
    }

    /// `key` as an f32: an F32, or an F64 within f32's range.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        match *self.need(key)? {
            Value::F32(x) => Ok(x),
            Value::F64(x) if !x.is_finite() || (x as f32).is_finite() => Ok(x as f32),
            ref v => Err(wrong_type(key, "f32", v)),
        }
    }

    /// `key` as a bool.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.need(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(wrong_type(key, "bool", v)),
        }
    }

    /// `key` as a string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.need(key)? {
            Value::String(s) => Ok(s),
            v => Err(wrong_type(key, "string", v)),
        }
    }

    /// `key` as an array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<&[String], GgufError> {
        match self.need(key)? {
            Value::Array(Array::String(a)) => Ok(a),
            v => Err(wrong_type(key, "array of string", v)),
        }
    }

    /// `key` as an array of f32.
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], GgufError> {
        match self.need(key)? {
            Value::Array(Array::F32(a)) => Ok(a),
            v => Err(wrong_type(key, "array of f32", v)),
        }
    }

    /// `key` as an array of i32.
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32], GgufError> {
        match self.need(key)? {
            Value::Array(Array::I32(a)) => Ok(a),
            v => Err(wrong_type(key, "array of i32", v)),
        }
    }

    /// The tensor index in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The bytes of tensor `t` (exactly `t.size` of them; checked at open).
    ///
    /// `t` must come from this file; for any other `TensorInfo` whose bytes fall
    /// outside the file, the result is empty.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let bytes = self.storage.bytes();
        t.offset.checked_add(t.size).and_then(|end| bytes.get(t.offset..end)).unwrap_or_default()
    }

    /// Absolute offset where the data section starts (tensor offsets are relative
    /// to it in the file; [`TensorInfo::offset`] is already absolute).
    pub fn data_offset(&self) -> usize {
        self.data_start
    }

    /// Length of the file in bytes.
    pub fn file_len(&self) -> usize {
        self.storage.bytes().len()
    }
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("kvs", &self.kvs.len())
            .field("tensors", &self.tensors.len())
            .field("data_offset", &self.data_start)
            .field("file_len", &self.file_len())
            .finish()
    }
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &Value) -> GgufError {
    GgufError::WrongType { key: key.into(), expected, found: found.type_name().into() }
}

fn integer(key: &str, v: &Value, expected: &'static str) -> Result<i128, GgufError> {
    v.as_integer().ok_or_else(|| wrong_type(key, expected, v))
}

fn out_of_range(key: &str, v: &Value, n: i128, expected: &'static str) -> GgufError {
    GgufError::WrongType { key: key.into(), expected, found: format!("{} {n} (out of range)", v.type_name()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_file_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<GgufFile>();
        shared::<GgufError>();
    }

    #[test]
    fn tensor_info_shape_helpers() {
        let t = TensorInfo { name: "w".into(), ty: GgmlType::Q4_0, dims: vec![64, 3, 2], offset: 0, size: 216 };
        assert_eq!((t.row_len(), t.n_rows(), t.n_elements()), (64, 6, 384));
    }

    #[test]
    fn tensor_data_of_a_foreign_info_is_empty_not_a_panic() {
        let f = GgufFile::from_bytes(GgufBuilder::new().build()).expect("empty file is valid");
        let t = TensorInfo { name: "w".into(), ty: GgmlType::F32, dims: vec![4], offset: usize::MAX, size: 16 };
        assert!(f.tensor_data(&t).is_empty());
        assert_eq!(f.tensors().len(), 0);
    }
}
