//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL, optionally VNNI).
//!
//! Every function here that uses intrinsics is either `#[target_feature]` or
//! `#[inline(always)]` and only reached from such a function, and the entry points
//! are only handed out by [`select`] for a level the CPU has.

// Tile loops index several arrays (rows, tokens, accumulators) by the same `i`/`c`.
#![allow(clippy::needless_range_loop)]

pub(crate) mod quantize;

mod avx2;
mod avx2_k;
mod avx512;
mod avx512_k;
mod avx512_nib;
mod float;

use crate::cpu::Isa;
use crate::matmul::{GemmFn, Prep};
use crate::GgmlType;

/// The SIMD kernel for `ty` at level `isa`: activation layout, kernel, row tile.
/// `None` for the scalar level.
pub(crate) fn select(ty: GgmlType, rows: usize, isa: Isa) -> Option<(Prep, GemmFn, usize)> {
    let _ = rows;
    use GgmlType::*;
    let signed = Prep::Q8 { offset: false, quad: false };
    let offset = Prep::Q8 { offset: true, quad: false };
    let quad_signed = Prep::Q8 { offset: false, quad: true };
    let quad_offset = Prep::Q8 { offset: true, quad: true };
    Some(match (isa, ty) {
        (Isa::Scalar, _) => return None,
        (Isa::Avx2, Q4_0) => (signed, avx2::gemm_q4_0, avx2::ROWS),
        (Isa::Avx2, Q4_1) => (signed, avx2::gemm_q4_1, avx2::ROWS),
        (Isa::Avx2, Q5_0) => (signed, avx2::gemm_q5_0, avx2::ROWS),
        (Isa::Avx2 | Isa::Avx512, Q8_0) => (signed, avx2::gemm_q8_0, avx2::ROWS),
        (Isa::Avx2, Q4_K) => (Prep::Q8K, avx2_k::gemm_q4_k, avx2_k::ROWS),
        (Isa::Avx2, Q6_K) => (Prep::Q8K, avx2_k::gemm_q6_k, avx2_k::ROWS),
        (Isa::Avx2, F32 | F16 | BF16) => (Prep::Float, float::avx2_gemm(ty), float::ROWS),
        (Isa::Avx512, Q4_0) => (quad_offset, avx512_nib::gemm_q4_0::<false>, avx512::ROWS),
        (Isa::Avx512, Q4_1) => (quad_signed, avx512_nib::gemm_q4_1::<false>, avx512::ROWS),
        (Isa::Avx512, Q5_0) => (quad_offset, avx512_nib::gemm_q5_0::<false>, avx512::ROWS),
        (Isa::Avx512Vnni, Q4_0) => (quad_offset, avx512_nib::gemm_q4_0::<true>, avx512::ROWS),
        (Isa::Avx512Vnni, Q4_1) => (quad_signed, avx512_nib::gemm_q4_1::<true>, avx512::ROWS),
        (Isa::Avx512Vnni, Q5_0) => (quad_offset, avx512_nib::gemm_q5_0::<true>, avx512::ROWS),
        (Isa::Avx512Vnni, Q8_0) => (offset, avx512::gemm_q8_0, avx512::ROWS),
        (Isa::Avx512, Q4_K) => (Prep::Q8K, avx512_k::gemm_q4_k::<false>, avx512_k::ROWS),
        (Isa::Avx512, Q6_K) => (Prep::Q8K, avx512_k::gemm_q6_k::<false>, avx512_k::ROWS),
        (Isa::Avx512Vnni, Q4_K) => (Prep::Q8K, avx512_k::gemm_q4_k::<true>, avx512_k::ROWS),
        (Isa::Avx512Vnni, Q6_K) => (Prep::Q8K, avx512_k::gemm_q6_k::<true>, avx512_k::ROWS),
        (Isa::Avx512 | Isa::Avx512Vnni, F32 | F16 | BF16) => (Prep::Float, float::avx512_gemm(ty), float::ROWS),
        _ => return None,
    })
}

/// Walks `rows` × `0..n_tokens` in tiles of `$rt` rows × `$ct` tokens, calling
/// `$tile::<generics.., R, C>(args.., r, t)` for each; the edges use 1-row and
/// 1-token tiles.
macro_rules! drive_tiles {
    ($rows:expr, $nt:expr, $rt:literal, $ct:literal, $tile:ident [$($g:tt),*] ($($arg:expr),*)) => {{
        let rows: ::std::ops::Range<usize> = $rows;
        let nt: usize = $nt;
        let mut r = rows.start;
        while r + $rt <= rows.end {
            let mut t = 0;
            while t + $ct <= nt {
                $tile::<$($g,)* $rt, $ct>($($arg,)* r, t);
                t += $ct;
            }
            while t < nt {
                $tile::<$($g,)* $rt, 1>($($arg,)* r, t);
                t += 1;
            }
            r += $rt;
        }
        while r < rows.end {
            let mut t = 0;
            while t + $ct <= nt {
                $tile::<$($g,)* 1, $ct>($($arg,)* r, t);
                t += $ct;
            }
            while t < nt {
                $tile::<$($g,)* 1, 1>($($arg,)* r, t);
                t += 1;
            }
            r += 1;
        }
    }};
}
pub(crate) use drive_tiles;
