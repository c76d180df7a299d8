//! Why a GGUF file was rejected.
//!
//! Every parse error names the field it was reading (`"kv[12] key"`,
//! `"tensor 'blk.0.attn_q.weight' dims[1]"`, `"kv 'tokenizer.ggml.tokens' array length"`)
//! and the absolute byte offset of that field in the file, plus the numbers that
//! explain the rejection, so a bad file can be inspected with a hex dump.

use std::io;
use std::path::PathBuf;

use kernels::GgmlType;

/// A GGUF file could not be opened, or is not a file Seed accepts, or a metadata
/// lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path given to [`GgufFile::open`](super::GgufFile::open).
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error(
        "magic at offset 0 is {found:02x?} (\"{}\"), expected \"GGUF\" [47, 47, 55, 46]: not a GGUF file",
        found.escape_ascii()
    )]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The header's version is not 2 or 3.
    #[error("version at offset 4 is {version}: Seed reads GGUF versions 2 and 3{}", endian_hint(*version))]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The file ends inside a field.
    #[error("{field} at offset {offset} needs {needed} bytes, but only {available} are left in the file")]
    Truncated {
        /// The field being read.
        field: String,
        /// Where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left from `offset` to the end of the file.
        available: usize,
    },
    /// A count of items (kvs, tensors, array elements) that the rest of the file
    /// cannot possibly hold; rejected before anything is allocated for it.
    #[error(
        "{field} at offset {offset} is {count}, but each item takes at least {min_bytes_each} bytes \
         and only {available} bytes are left"
    )]
    CountTooLarge {
        /// The count field.
        field: String,
        /// Where the count field starts.
        offset: usize,
        /// The count found.
        count: u64,
        /// The smallest encoding of one item.
        min_bytes_each: u64,
        /// Bytes left after the count field.
        available: usize,
    },
    /// A string is not valid UTF-8.
    #[error("{field} at offset {offset} is not valid UTF-8 (first bad byte at offset {bad_at})")]
    InvalidUtf8 {
        /// The string field.
        field: String,
        /// Where the string's bytes start (after its length).
        offset: usize,
        /// Absolute offset of the first byte that is not valid UTF-8.
        bad_at: usize,
    },
    /// A value type id outside 0..=12.
    #[error("{field} at offset {offset} is {id}, not a GGUF value type (0..=12)")]
    InvalidValueType {
        /// The type field.
        field: String,
        /// Where the type id starts.
        offset: usize,
        /// The id found.
        id: u32,
    },
    /// A bool byte other than 0 or 1.
    #[error("{field} at offset {offset} is byte {byte}, but a GGUF bool is 0 or 1")]
    InvalidBool {
        /// The bool field.
        field: String,
        /// Where the byte is.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// Arrays of arrays nested deeper than Seed accepts.
    #[error("{field} at offset {offset} is an array nested {depth} deep; at most {max} levels are accepted")]
    NestingTooDeep {
        /// The array field.
        field: String,
        /// Where the array's element type starts.
        offset: usize,
        /// Its nesting depth (1 for an array directly in a kv).
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A metadata key of length 0.
    #[error("{field} at offset {offset} is empty")]
    EmptyKey {
        /// The key field, e.g. `kv[3] key`.
        field: String,
        /// Where the key string starts.
        offset: usize,
    },
    /// The same metadata key twice.
    #[error("{field} at offset {offset} is '{key}', which kv[{first}] already uses")]
    DuplicateKey {
        /// The key field of the second occurrence.
        field: String,
        /// Where that key string starts.
        offset: usize,
        /// The key.
        key: String,
        /// Index of the first kv with this key.
        first: usize,
    },
    /// A tensor name of length 0.
    #[error("{field} at offset {offset} is empty")]
    EmptyTensorName {
        /// The name field, e.g. `tensor[3] name`.
        field: String,
        /// Where the name string starts.
        offset: usize,
    },
    /// The same tensor name twice.
    #[error("{field} at offset {offset} is '{name}', which tensor[{first}] already uses")]
    DuplicateTensorName {
        /// The name field of the second occurrence.
        field: String,
        /// Where that name string starts.
        offset: usize,
        /// The name.
        name: String,
        /// Index of the first tensor with this name.
        first: usize,
    },
    /// A number of dimensions outside 1..=4.
    #[error("{field} at offset {offset} is {n_dims}, expected 1 to 4")]
    BadDimCount {
        /// The n_dims field.
        field: String,
        /// Where it starts.
        offset: usize,
        /// The count found.
        n_dims: u32,
    },
    /// A dimension of 0 (an empty tensor).
    #[error("{field} at offset {offset} is 0; Seed rejects empty tensors")]
    ZeroDim {
        /// The dimension field, e.g. `tensor 'x' dims[1]`.
        field: String,
        /// Where it starts.
        offset: usize,
    },
    /// Dimensions whose element count or byte size does not fit in memory.
    #[error("{field} at offset {offset} are {dims:?}: the {what} overflows")]
    ShapeOverflow {
        /// The dims field.
        field: String,
        /// Where the first dimension starts.
        offset: usize,
        /// All dimensions, as stored.
        dims: Vec<u64>,
        /// What overflowed: `element count` or `byte size`.
        what: &'static str,
    },
    /// A tensor type id ggml never defined.
    #[error("{field} at offset {offset} is {id}, not a known ggml type")]
    UnknownTensorType {
        /// The type field.
        field: String,
        /// Where it starts.
        offset: usize,
        /// The id found.
        id: u32,
    },
    /// A row length that is not a whole number of the type's blocks.
    #[error("{field} at offset {offset} is {row_len}, not a multiple of {ty}'s block size {block_size}")]
    RowNotWholeBlocks {
        /// The dims[0] field.
        field: String,
        /// Where it starts.
        offset: usize,
        /// The tensor's type.
        ty: GgmlType,
        /// dims[0].
        row_len: u64,
        /// Elements per block of `ty`.
        block_size: usize,
    },
    /// A tensor data offset that is not a multiple of the alignment.
    #[error("{field} at offset {offset} is {data_offset}, not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        /// The offset field.
        field: String,
        /// Where it starts.
        offset: usize,
        /// The offset found (relative to the data section).
        data_offset: u64,
        /// The file's alignment.
        alignment: usize,
    },
    /// Tensor data that extends past the end of the file.
    #[error(
        "{field} at offset {offset}: data section start {data_start} + offset {data_offset} \
         + size {size} = {end}, past the end of the file ({file_len} bytes)"
    )]
    TensorOutOfBounds {
        /// The offset field.
        field: String,
        /// Where it starts.
        offset: usize,
        /// Where the data section starts.
        data_start: u64,
        /// The tensor's offset relative to the data section.
        data_offset: u64,
        /// The tensor's size in bytes.
        size: u64,
        /// Where its data would end.
        end: u128,
        /// The file's length.
        file_len: usize,
    },
    /// `general.alignment` is not a u32.
    #[error("kv 'general.alignment' value at offset {offset} is {found}, expected u32")]
    AlignmentType {
        /// Where the value starts.
        offset: usize,
        /// The type found.
        found: &'static str,
    },
    /// `general.alignment` is 0 or not a power of two.
    #[error("kv 'general.alignment' value at offset {offset} is {value}, expected a non-zero power of two")]
    BadAlignment {
        /// Where the value starts.
        offset: usize,
        /// The value found.
        value: u32,
    },
    /// A metadata key the caller needs is absent.
    #[error("metadata key '{key}' is missing")]
    MissingKey {
        /// The key looked up.
        key: String,
    },
    /// A metadata value has a type (or, for integers, a value) the caller cannot use.
    #[error("metadata key '{key}': expected {expected}, found {found}")]
    WrongType {
        /// The key looked up.
        key: String,
        /// What the getter accepts, e.g. `u32`.
        expected: &'static str,
        /// What the file holds, e.g. `array of u32` or `i32 -1`.
        found: String,
    },
}

/// A hint when a version read little-endian looks like a big-endian 2 or 3.
fn endian_hint(version: u32) -> &'static str {
    match version.swap_bytes() {
        2 | 3 => " (this looks like a big-endian file, which Seed does not read)",
        _ => "",
    }
}
