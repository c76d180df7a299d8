//! The one error type of this crate: what a model file can get wrong about a
//! weight matrix or a row, with the numbers that explain it.

use crate::GgmlType;

/// Why a weight matrix or a row cannot be used by the kernels.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The type has no kernels here (e.g. `Q5_1`, or an `IQ` type).
    #[error("{0} is not supported by Seed's kernels")]
    UnsupportedType(GgmlType),
    /// A row is not a whole number of blocks.
    #[error("{ty} rows of {cols} elements are not a whole number of {block_size}-element blocks")]
    PartialBlock {
        /// The element type.
        ty: GgmlType,
        /// Elements per row.
        cols: usize,
        /// Elements per block of `ty`.
        block_size: usize,
    },
    /// The byte count does not match the shape.
    #[error("{ty} data of {rows}x{cols} elements needs {expected} bytes, got {actual}")]
    WrongLength {
        /// The element type.
        ty: GgmlType,
        /// Rows of the matrix (1 for a single row).
        rows: usize,
        /// Elements per row.
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The shape's byte count overflows `usize`.
    #[error("{ty} data of {rows}x{cols} elements is too large to address")]
    TooLarge {
        /// The element type.
        ty: GgmlType,
        /// Rows of the matrix.
        rows: usize,
        /// Elements per row.
        cols: usize,
    },
    /// The data does not start on the block type's alignment.
    #[error("{ty} data at address {addr:#x} is not aligned to {align} bytes")]
    Misaligned {
        /// The element type.
        ty: GgmlType,
        /// Required alignment in bytes.
        align: usize,
        /// Address of the first byte.
        addr: usize,
    },
    /// The interleaved layout exists only for some types and row counts.
    #[error("no such interleaved layout for {rows} rows of {ty} (groups of 4: Q4_1 or Q5_0; groups of 16: Q4_1)")]
    NoInterleaving {
        /// The element type.
        ty: GgmlType,
        /// Rows of the matrix.
        rows: usize,
    },
}
