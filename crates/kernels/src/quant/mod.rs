//! ggml's block formats, bit for bit: the weight formats Seed computes with and the
//! 8-bit formats activations are quantized to before a dot product.
//!
//! Each format module has the `#[repr(C)]` block (ggml's field names, a compile-time
//! size check), a scalar `dequantize_row`, a scalar `quantize_row` and the scalar
//! reference `vec_dot` against the format's activation type. These scalar functions
//! are the definition of the numerics; the SIMD kernels in `x86` are tested against
//! them. `quantize_row` is ggml's reference quantizer bit for bit (the scale
//! searches are in [`search`]): it is what `seed quantize` writes, and what
//! `llama-quantize` writes without an importance matrix for the same input.
//!
//! | weights | activations quantized to |
//! |---|---|
//! | Q4_0, Q5_0, Q8_0, IQ4_NL | Q8_0 |
//! | Q4_1, Q5_1 | Q8_1 (`s = d·Σq`) |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS | Q8_K (with `bsums`) |
//! | F16 / BF16 / F32 | f16 / bf16 / f32 |

pub mod float;
pub mod iq4;
pub mod order;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8;
pub mod q8_k;
pub mod search;

pub use iq4::{BlockIq4Nl, BlockIq4Xs};
pub use q2_k::BlockQ2K;
pub use q3_k::BlockQ3K;
pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q4_k::BlockQ4K;
pub use q5_0::BlockQ5_0;
pub use q5_1::BlockQ5_1;
pub use q5_k::BlockQ5K;
pub use q6_k::BlockQ6K;
pub use q8::{BlockQ8_0, BlockQ8_1};
pub use q8_k::BlockQ8K;

use crate::{GgmlType, KernelError};
use bytemuck::Pod;

/// Elements per block of the 32-element formats (Q4_0, Q4_1, Q5_0, Q8_0, Q8_1).
pub const QK: usize = 32;

/// The format a weight type's dot product wants its activations in (ggml's `vec_dot_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotType {
    /// Q8_0 blocks.
    Q8_0,
    /// Q8_1 blocks (with `s = d·Σq`).
    Q8_1,
    /// Q8_K super-blocks (with `bsums`).
    Q8K,
    /// f32 rounded to f16.
    F16,
    /// f32 rounded to bf16.
    BF16,
    /// f32 as is.
    F32,
}

impl DotType {
    /// The activation format for weights of type `ty`, or `None` if `ty` is unsupported.
    pub fn of(ty: GgmlType) -> Option<DotType> {
        Some(match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_NL => DotType::Q8_0,
            GgmlType::Q4_1 | GgmlType::Q5_1 => DotType::Q8_1,
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::IQ4_XS => {
                DotType::Q8K
            }
            GgmlType::F16 => DotType::F16,
            GgmlType::BF16 => DotType::BF16,
            GgmlType::F32 => DotType::F32,
            _ => return None,
        })
    }
}

/// Alignment the kernels need for data of type `ty` (that of its block struct).
pub(crate) fn align_of_type(ty: GgmlType) -> usize {
    match ty {
        GgmlType::F32 | GgmlType::Q8_K => 4,
        _ => 2,
    }
}

/// Views `bytes` as blocks of type `T`, checking length and alignment.
pub(crate) fn cast_blocks<T: Pod>(ty: GgmlType, bytes: &[u8]) -> Result<&[T], KernelError> {
    bytemuck::try_cast_slice(bytes).map_err(|e| match e {
        bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => {
            KernelError::Misaligned { ty, align: align_of::<T>(), addr: bytes.as_ptr() as usize }
        }
        _ => KernelError::WrongLength {
            ty,
            rows: 1,
            cols: bytes.len() / size_of::<T>() * ty.block_size(),
            expected: bytes.len() / size_of::<T>() * size_of::<T>(),
            actual: bytes.len(),
        },
    })
}

/// Dequantizes one row: `src` is exactly one row's bytes, `dst.len()` its element count.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    if !ty.is_supported() {
        return Err(KernelError::UnsupportedType(ty));
    }
    let cols = dst.len();
    let expected = ty.row_size(cols).ok_or(KernelError::PartialBlock { ty, cols, block_size: ty.block_size() })?;
    if src.len() != expected {
        return Err(KernelError::WrongLength { ty, rows: 1, cols, expected, actual: src.len() });
    }
    match ty {
        GgmlType::F32 => dst.copy_from_slice(cast_blocks::<f32>(ty, src)?),
        GgmlType::F16 => float::dequantize_row_f16(cast_blocks(ty, src)?, dst),
        GgmlType::BF16 => float::dequantize_row_bf16(cast_blocks(ty, src)?, dst),
        GgmlType::Q4_0 => q4_0::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::Q4_1 => q4_1::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::Q5_0 => q5_0::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::Q5_1 => q5_1::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::Q8_0 => q8::dequantize_row_q8_0(cast_blocks(ty, src)?, dst),
        GgmlType::Q2_K => q2_k::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::Q3_K => q3_k::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::IQ4_NL => iq4::dequantize_row_nl(cast_blocks(ty, src)?, dst),
        GgmlType::IQ4_XS => iq4::dequantize_row_xs(cast_blocks(ty, src)?, dst),
        GgmlType::Q4_K => q4_k::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::Q5_K => q5_k::dequantize_row(cast_blocks(ty, src)?, dst),
        GgmlType::Q6_K => q6_k::dequantize_row(cast_blocks(ty, src)?, dst),
        _ => return Err(KernelError::UnsupportedType(ty)),
    }
    Ok(())
}

/// Quantizes `src` into one row of `ty` (`dst` = exactly one row's bytes) with
/// ggml's reference quantizer for the type: the bytes `llama-quantize` writes
/// for the same values when it has no importance matrix.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), KernelError> {
    if !ty.is_supported() {
        return Err(KernelError::UnsupportedType(ty));
    }
    let cols = src.len();
    let expected = ty.row_size(cols).ok_or(KernelError::PartialBlock { ty, cols, block_size: ty.block_size() })?;
    if dst.len() != expected {
        return Err(KernelError::WrongLength { ty, rows: 1, cols, expected, actual: dst.len() });
    }
    let addr = dst.as_ptr() as usize;
    let misaligned = KernelError::Misaligned { ty, align: align_of_type(ty), addr };
    macro_rules! blocks {
        () => {
            bytemuck::try_cast_slice_mut(dst).map_err(|_| misaligned)?
        };
    }
    match ty {
        GgmlType::F32 => {
            let d: &mut [f32] = blocks!();
            d.copy_from_slice(src);
        }
        GgmlType::F16 => float::quantize_row_f16(src, blocks!()),
        GgmlType::BF16 => float::quantize_row_bf16(src, blocks!()),
        GgmlType::Q4_0 => q4_0::quantize_row(src, blocks!()),
        GgmlType::Q4_1 => q4_1::quantize_row(src, blocks!()),
        GgmlType::Q5_0 => q5_0::quantize_row(src, blocks!()),
        GgmlType::Q5_1 => q5_1::quantize_row(src, blocks!()),
        GgmlType::Q8_0 => q8::quantize_row_q8_0_ref(src, blocks!()),
        GgmlType::Q2_K => q2_k::quantize_row(src, blocks!()),
        GgmlType::Q3_K => q3_k::quantize_row(src, blocks!()),
        GgmlType::IQ4_NL => iq4::quantize_row_nl(src, blocks!()),
        GgmlType::IQ4_XS => iq4::quantize_row_xs(src, blocks!()),
        GgmlType::Q4_K => q4_k::quantize_row(src, blocks!()),
        GgmlType::Q5_K => q5_k::quantize_row(src, blocks!()),
        GgmlType::Q6_K => q6_k::quantize_row(src, blocks!()),
        _ => return Err(KernelError::UnsupportedType(ty)),
    }
    Ok(())
}

/// The smallest and largest element of `x`, compared as ggml's quantizers do.
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Largest absolute value of `x` (0 for an empty slice).
pub(crate) fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The element of `x` with the largest absolute value, the first one on ties (ggml's choice).
pub(crate) fn signed_max(x: &[f32]) -> f32 {
    let mut best = 0.0f32;
    for &v in x {
        if v.abs() > best.abs() {
            best = v;
        }
    }
    best
}
