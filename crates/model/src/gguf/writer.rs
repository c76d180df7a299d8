//! Writing GGUF files: [`index_bytes`] for `seed quantize`, which streams the data
//! itself; [`GgufBuilder`] for tests and fuzzing.
//!
//! [`GgufBuilder`] lays out a valid file (version 3, alignment 32, tensor data
//! packed in order and padded like ggml does). For broken files it can override
//! the magic, the version and the counts, take kvs as raw bytes
//! ([`GgufBuilder::add_raw_kv`]) and tensor infos with any n_dims, dims, type id
//! and offset ([`RawTensor`]); the `write_*` functions encode single fields for
//! hand-made raw kvs.

use kernels::GgmlType;

use super::parse::{align_up, DEFAULT_ALIGNMENT, MAGIC};
use super::value::{Array, Value};

/// Builds a GGUF file in memory.
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    magic: [u8; 4],
    version: u32,
    alignment: usize,
    tensor_count: Option<u64>,
    kv_count: Option<u64>,
    kvs: Vec<Vec<u8>>,
    tensors: Vec<RawTensor>,
}

/// One tensor as written: every field free, so tests can write broken infos.
#[derive(Debug, Clone)]
pub struct RawTensor {
    /// Name bytes (need not be UTF-8).
    pub name: Vec<u8>,
    /// The n_dims field (need not match `dims.len()`).
    pub n_dims: u32,
    /// The dims written.
    pub dims: Vec<u64>,
    /// The ggml type id written.
    pub type_id: u32,
    /// The offset written (relative to the data section); `None` for where the
    /// builder places the data.
    pub offset: Option<u64>,
    /// The data bytes placed in the data section.
    pub data: Vec<u8>,
}

impl RawTensor {
    /// A well-formed tensor info for `data`.
    pub fn new(name: &str, ty: GgmlType, dims: &[u64], data: Vec<u8>) -> RawTensor {
        RawTensor {
            name: name.as_bytes().to_vec(),
            n_dims: u32::try_from(dims.len()).unwrap_or(u32::MAX),
            dims: dims.to_vec(),
            type_id: ty.id(),
            offset: None,
            data,
        }
    }
}

impl Default for GgufBuilder {
    fn default() -> Self {
        GgufBuilder::new()
    }
}

impl GgufBuilder {
    /// An empty version-3 file with the default alignment (32, no `general.alignment` kv).
    pub fn new() -> GgufBuilder {
        GgufBuilder {
            magic: MAGIC,
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            tensor_count: None,
            kv_count: None,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version field.
    pub fn version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Writes a `general.alignment` u32 kv and pads with `alignment` (with 1 if it is 0).
    pub fn alignment(&mut self, alignment: u32) -> &mut Self {
        self.alignment = usize::try_from(alignment).unwrap_or(DEFAULT_ALIGNMENT).max(1);
        self.add_kv("general.alignment", Value::U32(alignment))
    }

    /// Sets the magic bytes.
    pub fn magic(&mut self, magic: [u8; 4]) -> &mut Self {
        self.magic = magic;
        self
    }

    /// Writes `count` as the tensor count instead of the number of tensors added.
    pub fn tensor_count(&mut self, count: u64) -> &mut Self {
        self.tensor_count = Some(count);
        self
    }

    /// Writes `count` as the kv count instead of the number of kvs added.
    pub fn kv_count(&mut self, count: u64) -> &mut Self {
        self.kv_count = Some(count);
        self
    }

    /// Adds a kv.
    pub fn add_kv(&mut self, key: &str, value: Value) -> &mut Self {
        let mut buf = Vec::new();
        write_string(&mut buf, key.as_bytes());
        write_value(&mut buf, &value);
        self.kvs.push(buf);
        self
    }

    /// Adds a kv given as raw bytes (key string, value type, value), written verbatim.
    pub fn add_raw_kv(&mut self, bytes: Vec<u8>) -> &mut Self {
        self.kvs.push(bytes);
        self
    }

    /// Adds a tensor; `dims` in ggml order, `data` its bytes.
    pub fn add_tensor(&mut self, name: &str, ty: GgmlType, dims: &[usize], data: Vec<u8>) -> &mut Self {
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        self.add_raw_tensor(RawTensor::new(name, ty, &dims, data))
    }

    /// Adds a tensor info written exactly as given.
    pub fn add_raw_tensor(&mut self, tensor: RawTensor) -> &mut Self {
        self.tensors.push(tensor);
        self
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&self.magic);
        write_u32(&mut buf, self.version);
        write_u64(&mut buf, self.tensor_count.unwrap_or(self.tensors.len() as u64));
        write_u64(&mut buf, self.kv_count.unwrap_or(self.kvs.len() as u64));
        for kv in &self.kvs {
            buf.extend_from_slice(kv);
        }
        // Data placement: each tensor at the next aligned offset after the previous one.
        let mut placed = Vec::with_capacity(self.tensors.len());
        let mut next = 0usize;
        for t in &self.tensors {
            placed.push(next);
            next = align_up(next + t.data.len(), self.alignment);
        }
        for (t, &at) in self.tensors.iter().zip(&placed) {
            write_string(&mut buf, &t.name);
            write_u32(&mut buf, t.n_dims);
            for &d in &t.dims {
                write_u64(&mut buf, d);
            }
            write_u32(&mut buf, t.type_id);
            write_u64(&mut buf, t.offset.unwrap_or(at as u64));
        }
        let data_start = align_up(buf.len(), self.alignment);
        buf.resize(data_start, 0);
        for (t, &at) in self.tensors.iter().zip(&placed) {
            buf.resize(data_start + at, 0);
            buf.extend_from_slice(&t.data);
        }
        buf.resize(data_start + next, 0);
        buf
    }
}

/// One tensor of a file's index, for [`index_bytes`].
#[derive(Debug, Clone)]
pub struct TensorEntry {
    /// Name.
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Dimensions in ggml order.
    pub dims: Vec<usize>,
}

impl TensorEntry {
    /// Bytes of the tensor's data, or `None` if a row is not whole blocks.
    pub fn size(&self) -> Option<usize> {
        let row = self.ty.row_size(*self.dims.first()?)?;
        self.dims[1..].iter().try_fold(row, |n, &d| n.checked_mul(d))
    }
}

/// The bytes of a GGUF file before its data section (header, kvs, tensor index and
/// the padding after it), for writers that stream the data themselves. Tensors are
/// placed as ggml places them: in order, each at the next multiple of `alignment`.
/// Returns the bytes and each tensor's offset within the data section, or `None` if
/// a tensor's rows are not whole blocks.
pub fn index_bytes(kvs: &[(String, Value)], tensors: &[TensorEntry], alignment: usize) -> Option<(Vec<u8>, Vec<u64>)> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&MAGIC);
    write_u32(&mut buf, 3);
    write_u64(&mut buf, tensors.len() as u64);
    write_u64(&mut buf, kvs.len() as u64);
    for (key, value) in kvs {
        write_string(&mut buf, key.as_bytes());
        write_value(&mut buf, value);
    }
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut next = 0usize;
    for t in tensors {
        write_string(&mut buf, t.name.as_bytes());
        write_u32(&mut buf, u32::try_from(t.dims.len()).ok()?);
        for &d in &t.dims {
            write_u64(&mut buf, d as u64);
        }
        write_u32(&mut buf, t.ty.id());
        write_u64(&mut buf, next as u64);
        offsets.push(next as u64);
        next = align_up(next.checked_add(t.size()?)?, alignment);
    }
    buf.resize(align_up(buf.len(), alignment), 0);
    Some((buf, offsets))
}

/// Appends a u32, little-endian.
pub fn write_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends a u64, little-endian.
pub fn write_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends a GGUF string: u64 length, then the bytes (written as given, UTF-8 or not).
pub fn write_string(buf: &mut Vec<u8>, s: &[u8]) {
    write_u64(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

/// The GGUF value type id of `v`.
pub fn value_type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

/// The GGUF value type id of `a`'s elements.
pub fn array_type_id(a: &Array) -> u32 {
    match a {
        Array::U8(_) => 0,
        Array::I8(_) => 1,
        Array::U16(_) => 2,
        Array::I16(_) => 3,
        Array::U32(_) => 4,
        Array::I32(_) => 5,
        Array::F32(_) => 6,
        Array::Bool(_) => 7,
        Array::String(_) => 8,
        Array::Array(_) => 9,
        Array::U64(_) => 10,
        Array::I64(_) => 11,
        Array::F64(_) => 12,
    }
}

/// Appends `v`'s type id and its encoding.
pub fn write_value(buf: &mut Vec<u8>, v: &Value) {
    write_u32(buf, value_type_id(v));
    match v {
        Value::U8(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(u8::from(*x)),
        Value::String(s) => write_string(buf, s.as_bytes()),
        Value::Array(a) => write_array(buf, a),
    }
}

/// Appends an array: element type id, length, elements.
pub fn write_array(buf: &mut Vec<u8>, a: &Array) {
    write_u32(buf, array_type_id(a));
    write_u64(buf, a.len() as u64);
    fn each<T: Copy, const N: usize>(buf: &mut Vec<u8>, v: &[T], enc: fn(T) -> [u8; N]) {
        for &x in v {
            buf.extend_from_slice(&enc(x));
        }
    }
    match a {
        Array::U8(v) => buf.extend_from_slice(v),
        Array::I8(v) => each(buf, v, i8::to_le_bytes),
        Array::U16(v) => each(buf, v, u16::to_le_bytes),
        Array::I16(v) => each(buf, v, i16::to_le_bytes),
        Array::U32(v) => each(buf, v, u32::to_le_bytes),
        Array::I32(v) => each(buf, v, i32::to_le_bytes),
        Array::U64(v) => each(buf, v, u64::to_le_bytes),
        Array::I64(v) => each(buf, v, i64::to_le_bytes),
        Array::F32(v) => each(buf, v, f32::to_le_bytes),
        Array::F64(v) => each(buf, v, f64::to_le_bytes),
        Array::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| write_string(buf, s.as_bytes())),
        Array::Array(v) => v.iter().for_each(|inner| write_array(buf, inner)),
    }
}
