//! The scalar kernels: a loop over (row, token) calling each format's reference
//! `vec_dot` on ggml's block layouts. Slow and plainly in ggml's order of float
//! operations; every SIMD kernel is tested to give the same bits.

use std::ops::Range;

use bytemuck::Pod;

use crate::matmul::{Acts, GemmFn, Out, QMatrix};
use crate::quant::order::{is_repacked, repacked_gemm_token};
use crate::quant::{self, q4_0, q4_1, q4_k, q5_0, q5_k, q6_k, q8};
use crate::GgmlType;

/// The scalar kernel for a matrix of `ty` (a supported type) with `rows` rows.
pub(crate) fn gemm_fn(ty: GgmlType, rows: usize) -> GemmFn {
    let repacked = is_repacked(ty, rows);
    match ty {
        GgmlType::Q4_0 if repacked => gemm_q4_0_repacked,
        GgmlType::Q4_0 => gemm_q4_0_plain,
        GgmlType::Q4_1 => gemm_q4_1,
        GgmlType::Q5_0 => gemm_q5_0,
        GgmlType::Q8_0 => gemm_q8_0,
        GgmlType::Q4_K if repacked => gemm_q4_k_repacked,
        GgmlType::Q4_K => gemm_q4_k_plain,
        GgmlType::Q5_K => gemm_q5_k,
        GgmlType::Q6_K => gemm_q6_k,
        GgmlType::F16 => gemm_f16,
        GgmlType::BF16 => gemm_bf16,
        GgmlType::F32 => gemm_f32,
        _ => unreachable!("QMatrix holds a supported type, not {ty}"),
    }
}

/// Runs `dot` over every row in `rows` and every token.
fn run<W: Pod, A>(w: &QMatrix<'_>, acts: &[A], rows: Range<usize>, out: &Out, dot: fn(&[W], &[A]) -> f32) {
    let per_token = acts.len() / out.n_tokens;
    for r in rows {
        let wr: &[W] = bytemuck::cast_slice(w.row(r));
        for (t, a) in acts.chunks_exact(per_token).enumerate() {
            // SAFETY: `t < n_tokens`, `r < rows`, and the caller gave us `rows` alone.
            unsafe { out.set(t, r, dot(wr, a)) };
        }
    }
}

macro_rules! scalar_gemm {
    ($name:ident, $variant:ident, $dot:path) => {
        /// Scalar kernel (see the module docs).
        unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::$variant(a) = acts else { unreachable!("scalar kernel given the wrong activation layout") };
            run(w, a, rows, out, $dot);
        }
    };
}

scalar_gemm!(gemm_q4_0_plain, Q8_0, q4_0::vec_dot);
scalar_gemm!(gemm_q4_0_repacked, Q8_0, q4_0::vec_dot_repacked);
scalar_gemm!(gemm_q4_1, Q8_1, q4_1::vec_dot);
scalar_gemm!(gemm_q5_0, Q8_0, q5_0::vec_dot);
scalar_gemm!(gemm_q8_0, Q8_0, q8::vec_dot_q8_0);
scalar_gemm!(gemm_q4_k_plain, Q8K, q4_k::vec_dot);

/// Repacked Q4_K: the order depends on the token's place in the batch.
unsafe fn gemm_q4_k_repacked(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8K(a) = acts else { unreachable!("scalar kernel given the wrong activation layout") };
    let nb = w.cols() / crate::QK_K;
    for r in rows {
        let wr: &[quant::BlockQ4K] = bytemuck::cast_slice(w.row(r));
        for (t, y) in a.chunks_exact(nb).enumerate() {
            let v = q4_k::vec_dot_repacked(wr, y, repacked_gemm_token(t, out.n_tokens));
            // SAFETY: `t < n_tokens`, `r < rows`, and the caller gave us `rows` alone.
            unsafe { out.set(t, r, v) };
        }
    }
}
scalar_gemm!(gemm_q5_k, Q8K, q5_k::vec_dot);
scalar_gemm!(gemm_q6_k, Q8K, q6_k::vec_dot);
scalar_gemm!(gemm_f16, F16, quant::float::vec_dot_f16);
scalar_gemm!(gemm_bf16, BF16, quant::float::vec_dot_bf16);
scalar_gemm!(gemm_f32, F32, quant::float::vec_dot_f32);
