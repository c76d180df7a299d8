//! Parsing the header, the metadata and the tensor index of a GGUF file.
//!
//! Layout (all little-endian): magic `GGUF`, version u32, tensor count u64,
//! kv count u64; the kvs (key string, value type u32, value); the tensor infos
//! (name string, n_dims u32, dims u64 × n_dims, ggml type u32, offset u64); zero
//! padding to the alignment; the data section. Tensor offsets are relative to the
//! data section and multiples of the alignment (`general.alignment`, default 32).
//!
//! Everything read is checked before use; see [`GgufError`] for what is rejected.

use std::collections::HashMap;

use kernels::GgmlType;

use super::error::GgufError;
use super::reader::{check_count, Cursor, Field};
use super::value::{Array, Value, ValueType};
use super::TensorInfo;

/// The magic at offset 0.
pub(crate) const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment when the file has no `general.alignment`.
pub(crate) const DEFAULT_ALIGNMENT: usize = 32;
/// Deepest nesting of arrays accepted (1 = an array of scalars in a kv).
pub const MAX_ARRAY_DEPTH: usize = 8;
/// Smallest kv: key length and one byte of key, value type, a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// Smallest tensor info: name length and one byte, n_dims, one dim, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;
/// Most items reserved up front for a list of kvs, tensors, strings or arrays.
///
/// A count is only known to fit the bytes left in the file; each element in
/// memory is larger than its smallest encoding (a `String` is 24 bytes, its
/// encoding at least 8), and nested arrays would each reserve that much at once.
/// Reserving at most this many and growing as elements are actually read keeps
/// memory proportional to the bytes consumed.
const PREALLOC_MAX: usize = 4096;
/// Offset of the tensor count in the header.
const TENSOR_COUNT_OFFSET: usize = 8;

/// The parsed index of a file: everything but the tensor data.
pub(crate) struct Parsed {
    pub version: u32,
    pub alignment: usize,
    pub kvs: Vec<(String, Value)>,
    pub kv_index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub tensor_index: HashMap<String, usize>,
    pub data_start: usize,
}

/// Parses and checks the index of the GGUF file `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, GgufError> {
    let mut cur = Cursor::new(bytes);
    let magic: [u8; 4] = cur.bytes(&|| "magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = cur.u32(&|| "version".into())?;
    if !matches!(version, 2 | 3) {
        return Err(GgufError::UnsupportedVersion { version });
    }
    // Checked here against the whole rest of the file, and again once the kvs are read.
    let n_tensors = cur.count(MIN_TENSOR_INFO_BYTES, &|| "tensor count".into())?;
    let n_kv = cur.count(MIN_KV_BYTES, &|| "kv count".into())?;

    let (kvs, kv_index, value_offsets) = read_kvs(&mut cur, n_kv)?;
    let alignment = alignment(&kvs, &kv_index, &value_offsets)?;

    check_count(n_tensors as u64, MIN_TENSOR_INFO_BYTES, cur.remaining(), TENSOR_COUNT_OFFSET, &|| {
        "tensor count".into()
    })?;
    let mut tensors = Vec::with_capacity(prealloc(n_tensors));
    let mut tensor_index = HashMap::with_capacity(prealloc(n_tensors));
    let mut pending = Vec::with_capacity(prealloc(n_tensors));
    for i in 0..n_tensors {
        let (info, rel) = read_tensor_info(&mut cur, i, alignment, &tensor_index)?;
        tensor_index.insert(info.name.clone(), i);
        tensors.push(info);
        pending.push(rel);
    }

    // The data section starts at the next multiple of the alignment.
    let data_start = align_up(cur.pos(), alignment);
    for (info, (rel, field_offset)) in tensors.iter_mut().zip(pending) {
        let end = data_start as u128 + rel as u128 + info.size as u128;
        let start = usize::try_from(data_start as u128 + rel as u128).ok();
        match start {
            Some(start) if end <= bytes.len() as u128 => info.offset = start,
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    field: format!("tensor '{}' offset", info.name),
                    offset: field_offset,
                    data_start: data_start as u64,
                    data_offset: rel,
                    size: info.size as u64,
                    end,
                    file_len: bytes.len(),
                })
            }
        }
    }
    Ok(Parsed { version, alignment, kvs, kv_index, tensors, tensor_index, data_start })
}

/// The metadata kvs in file order, an index by key, and where each value starts.
type Kvs = (Vec<(String, Value)>, HashMap<String, usize>, Vec<usize>);

/// Reads `n` kvs; keys must be non-empty and unique.
fn read_kvs(cur: &mut Cursor, n: usize) -> Result<Kvs, GgufError> {
    let mut kvs = Vec::with_capacity(prealloc(n));
    let mut index = HashMap::with_capacity(prealloc(n));
    let mut value_offsets = Vec::with_capacity(prealloc(n));
    for i in 0..n {
        let key_field = || format!("kv[{i}] key");
        let key_offset = cur.pos();
        let key = cur.string(&key_field)?;
        if key.is_empty() {
            return Err(GgufError::EmptyKey { field: key_field(), offset: key_offset });
        }
        if let Some(&first) = index.get(&key) {
            return Err(GgufError::DuplicateKey { field: key_field(), offset: key_offset, key, first });
        }
        let type_offset = cur.pos();
        let type_field = || format!("kv '{key}' value type");
        let id = cur.u32(&type_field)?;
        let ty = ValueType::from_id(id).ok_or_else(|| GgufError::InvalidValueType {
            field: type_field(),
            offset: type_offset,
            id,
        })?;
        value_offsets.push(cur.pos());
        let value = read_value(cur, ty, &|| format!("kv '{key}'"), 0)?;
        index.insert(key.clone(), i);
        kvs.push((key, value));
    }
    Ok((kvs, index, value_offsets))
}

/// One value of type `ty`; `depth` is the number of arrays around it.
fn read_value(cur: &mut Cursor, ty: ValueType, field: Field, depth: usize) -> Result<Value, GgufError> {
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.u8(field)?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(cur.bytes(field)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.bytes(field)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.bytes(field)?)),
        ValueType::U32 => Value::U32(cur.u32(field)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.bytes(field)?)),
        ValueType::U64 => Value::U64(cur.u64(field)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.bytes(field)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.bytes(field)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.bytes(field)?)),
        ValueType::Bool => Value::Bool(cur.bool(field)?),
        ValueType::String => Value::String(cur.string(field)?),
        ValueType::Array => Value::Array(read_array(cur, field, depth + 1)?),
    })
}

/// An array (element type u32, length u64, elements) at nesting depth `depth`.
fn read_array(cur: &mut Cursor, field: Field, depth: usize) -> Result<Array, GgufError> {
    let type_offset = cur.pos();
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep { field: field(), offset: type_offset, depth, max: MAX_ARRAY_DEPTH });
    }
    let type_field = || format!("{} array element type", field());
    let id = cur.u32(&type_field)?;
    let ty = ValueType::from_id(id).ok_or_else(|| GgufError::InvalidValueType {
        field: type_field(),
        offset: type_offset,
        id,
    })?;
    let n = cur.count(ty.min_size(), &|| format!("{} array length", field()))?;
    Ok(match ty {
        ValueType::U8 => Array::U8(cur.le_vec(n, field, u8::from_le_bytes)?),
        ValueType::I8 => Array::I8(cur.le_vec(n, field, i8::from_le_bytes)?),
        ValueType::U16 => Array::U16(cur.le_vec(n, field, u16::from_le_bytes)?),
        ValueType::I16 => Array::I16(cur.le_vec(n, field, i16::from_le_bytes)?),
        ValueType::U32 => Array::U32(cur.le_vec(n, field, u32::from_le_bytes)?),
        ValueType::I32 => Array::I32(cur.le_vec(n, field, i32::from_le_bytes)?),
        ValueType::U64 => Array::U64(cur.le_vec(n, field, u64::from_le_bytes)?),
        ValueType::I64 => Array::I64(cur.le_vec(n, field, i64::from_le_bytes)?),
        ValueType::F32 => Array::F32(cur.le_vec(n, field, f32::from_le_bytes)?),
        ValueType::F64 => Array::F64(cur.le_vec(n, field, f64::from_le_bytes)?),
        ValueType::Bool => {
            let mut out = Vec::with_capacity(prealloc(n));
            for j in 0..n {
                out.push(cur.bool(&|| format!("{}[{j}]", field()))?);
            }
            Array::Bool(out)
        }
        ValueType::String => {
            let mut out = Vec::with_capacity(prealloc(n));
            for j in 0..n {
                out.push(cur.string(&|| format!("{}[{j}]", field()))?);
            }
            Array::String(out)
        }
        ValueType::Array => {
            let mut out = Vec::with_capacity(prealloc(n));
            for j in 0..n {
                out.push(read_array(cur, &|| format!("{}[{j}]", field()), depth + 1)?);
            }
            Array::Array(out)
        }
    })
}

/// `general.alignment` if present (a non-zero power-of-two u32), else 32.
fn alignment(kvs: &[(String, Value)], index: &HashMap<String, usize>, offsets: &[usize]) -> Result<usize, GgufError> {
    let Some(&i) = index.get("general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let offset = offsets.get(i).copied().unwrap_or(0);
    match kvs.get(i).map(|(_, v)| v) {
        Some(&Value::U32(value)) if value.is_power_of_two() => {
            usize::try_from(value).map_err(|_| GgufError::BadAlignment { offset, value })
        }
        Some(&Value::U32(value)) => Err(GgufError::BadAlignment { offset, value }),
        Some(other) => Err(GgufError::AlignmentType { offset, found: other.type_name() }),
        None => Ok(DEFAULT_ALIGNMENT),
    }
}

/// Tensor info `i`, its offset still relative to the data section; also returns
/// that relative offset and where its field starts.
fn read_tensor_info(
    cur: &mut Cursor,
    i: usize,
    alignment: usize,
    seen: &HashMap<String, usize>,
) -> Result<(TensorInfo, (u64, usize)), GgufError> {
    let name_field = || format!("tensor[{i}] name");
    let name_offset = cur.pos();
    let name = cur.string(&name_field)?;
    if name.is_empty() {
        return Err(GgufError::EmptyTensorName { field: name_field(), offset: name_offset });
    }
    if let Some(&first) = seen.get(&name) {
        return Err(GgufError::DuplicateTensorName { field: name_field(), offset: name_offset, name, first });
    }
    let field = |what: &str| format!("tensor '{name}' {what}");

    let n_dims_offset = cur.pos();
    let n_dims = cur.u32(&|| field("n_dims"))?;
    if !(1..=4).contains(&n_dims) {
        return Err(GgufError::BadDimCount { field: field("n_dims"), offset: n_dims_offset, n_dims });
    }
    let dims_offset = cur.pos();
    let mut raw_dims = Vec::with_capacity(4);
    for d in 0..n_dims {
        let dim_offset = cur.pos();
        let dim = cur.u64(&|| field(&format!("dims[{d}]")))?;
        if dim == 0 {
            return Err(GgufError::ZeroDim { field: field(&format!("dims[{d}]")), offset: dim_offset });
        }
        raw_dims.push(dim);
    }
    let overflow =
        |what| GgufError::ShapeOverflow { field: field("dims"), offset: dims_offset, dims: raw_dims.clone(), what };
    let dims: Vec<usize> = raw_dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| overflow("element count"))?;
    let n_elements =
        dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| overflow("element count"))?;

    let type_offset = cur.pos();
    let id = cur.u32(&|| field("type"))?;
    let ty = GgmlType::from_id(id).ok_or_else(|| GgufError::UnknownTensorType {
        field: field("type"),
        offset: type_offset,
        id,
    })?;
    let row_len = dims.first().copied().unwrap_or(1);
    if row_len % ty.block_size() != 0 {
        return Err(GgufError::RowNotWholeBlocks {
            field: field("dims[0]"),
            offset: dims_offset,
            ty,
            row_len: row_len as u64,
            block_size: ty.block_size(),
        });
    }
    let n_rows = n_elements / row_len;
    let size = ty.row_size(row_len).and_then(|r| r.checked_mul(n_rows)).ok_or_else(|| overflow("byte size"))?;

    let offset_offset = cur.pos();
    let rel = cur.u64(&|| field("offset"))?;
    if rel % alignment as u64 != 0 {
        return Err(GgufError::MisalignedTensor {
            field: field("offset"),
            offset: offset_offset,
            data_offset: rel,
            alignment,
        });
    }
    Ok((TensorInfo { name, ty, dims, offset: 0, size }, (rel, offset_offset)))
}

/// Capacity to reserve for `n` items (see [`PREALLOC_MAX`]).
fn prealloc(n: usize) -> usize {
    n.min(PREALLOC_MAX)
}

/// `pos` rounded up to a multiple of `alignment` (at least 1); saturates.
pub(crate) fn align_up(pos: usize, alignment: usize) -> usize {
    let a = alignment.max(1);
    pos.div_ceil(a).saturating_mul(a)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests an unwrap is an assertion
mod tests {
    use super::*;
    use crate::gguf::writer::{write_string, write_u32, write_u64, write_value};

    #[test]
    fn smallest_encodings_match_the_minimum_sizes() {
        // If a minimum were larger than a real encoding, valid files would be rejected.
        let mut kv = Vec::new();
        write_string(&mut kv, b"k");
        write_value(&mut kv, &Value::U8(0));
        assert_eq!(kv.len() as u64, MIN_KV_BYTES);
        let mut info = Vec::new();
        write_string(&mut info, b"t");
        write_u32(&mut info, 1);
        write_u64(&mut info, 1);
        write_u32(&mut info, 0);
        write_u64(&mut info, 0);
        assert_eq!(info.len() as u64, MIN_TENSOR_INFO_BYTES);
        for (value, ty) in [
            (Value::Bool(true), ValueType::Bool),
            (Value::I16(0), ValueType::I16),
            (Value::F32(0.0), ValueType::F32),
            (Value::String(String::new()), ValueType::String),
            (Value::Array(Array::U8(Vec::new())), ValueType::Array),
        ] {
            let mut buf = Vec::new();
            write_value(&mut buf, &value);
            assert_eq!(buf.len() as u64 - 4, ty.min_size(), "{value:?}");
        }
    }

    #[test]
    fn counts_exactly_at_the_limit_are_accepted() {
        // 2 kvs of the smallest size and nothing else: the kv count check is tight.
        let mut b = crate::gguf::GgufBuilder::new();
        b.add_kv("a", Value::U8(1)).add_kv("b", Value::U8(2));
        let mut bytes = b.build();
        bytes.truncate(24 + 2 * MIN_KV_BYTES as usize);
        let p = parse(&bytes).unwrap();
        assert_eq!(p.kvs.len(), 2);
        assert_eq!(p.data_start, 64);
    }

    #[test]
    fn align_up_rounds_to_multiples() {
        assert_eq!(align_up(0, 32), 0);
        assert_eq!(align_up(1, 32), 32);
        assert_eq!(align_up(64, 32), 64);
        assert_eq!(align_up(5, 0), 5);
        assert_eq!(align_up(usize::MAX, 32), usize::MAX);
    }
}
