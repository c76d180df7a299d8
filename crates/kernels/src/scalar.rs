//! The scalar kernels: a loop over (row, token) calling each format's reference
//! `vec_dot` on ggml's block layouts. Slow and plainly in ggml's order of float
//! operations (or, for the generated tokens of the 16-row layout, in its own order);
//! every SIMD kernel is tested to give the same bits.

use std::ops::Range;

use bytemuck::Pod;

use crate::matmul::{interleaved_block, Acts, GemmFn, Layout, Out, QMatrix};
use crate::quant::order::is_repacked;
use crate::quant::{self, iq4, q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8};
use crate::GgmlType;

/// The scalar kernel for a matrix of `ty` (a supported type) with `rows` rows in
/// `layout`.
pub(crate) fn gemm_fn(ty: GgmlType, rows: usize, layout: Layout) -> GemmFn {
    let repacked = is_repacked(ty, rows);
    match (layout, ty) {
        (Layout::Rows, _) => {}
        (Layout::Interleaved16, GgmlType::Q8_0) => return gemm_q8_0_chain,
        (Layout::Interleaved16, GgmlType::Q5_0) => return gemm_q5_0_chain,
        (Layout::Interleaved16, _) => return gemm_q4_1_chain,
        (Layout::Interleaved4, GgmlType::Q4_1) => return gemm_q4_1_interleaved,
        (Layout::Interleaved4, _) => return gemm_q5_0_interleaved,
    }
    match ty {
        GgmlType::Q4_0 if repacked => gemm_q4_0_repacked,
        GgmlType::Q4_0 => gemm_q4_0_plain,
        GgmlType::Q4_1 => gemm_q4_1,
        GgmlType::Q5_0 => gemm_q5_0,
        GgmlType::Q5_1 => gemm_q5_1,
        GgmlType::Q8_0 => gemm_q8_0,
        GgmlType::Q4_K if repacked => gemm_q4_k_repacked,
        GgmlType::Q4_K => gemm_q4_k_plain,
        GgmlType::Q5_K => gemm_q5_k,
        GgmlType::Q2_K => gemm_q2_k,
        GgmlType::Q3_K => gemm_q3_k,
        GgmlType::IQ4_NL => gemm_iq4_nl,
        GgmlType::IQ4_XS => gemm_iq4_xs,
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

/// Runs `dot` over every row in `rows` of an interleaved matrix (one row's blocks
/// gathered at a time) and every token.
fn run_interleaved<W: Pod, A>(
    w: &QMatrix<'_>,
    acts: &[A],
    rows: Range<usize>,
    out: &Out,
    dot: impl Fn(usize) -> fn(&[W], &[A]) -> f32,
) {
    let per_token = acts.len() / out.n_tokens;
    let (bytes, nb) = (w.ty().type_size(), w.cols() / w.ty().block_size());
    let mut row = vec![0u8; w.row_size()];
    for r in rows {
        for b in 0..nb {
            row[b * bytes..(b + 1) * bytes].copy_from_slice(&interleaved_block(w, r, b)[..bytes]);
        }
        let wr: &[W] = bytemuck::cast_slice(&row);
        for (t, a) in acts.chunks_exact(per_token).enumerate() {
            // SAFETY: `t < n_tokens`, `r < rows`, and the caller gave us `rows` alone.
            unsafe { out.set(t, r, dot(t)(wr, a)) };
        }
    }
}

/// Scalar kernel of an interleaved Q4_1 matrix in ggml's order.
unsafe fn gemm_q4_1_interleaved(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8_1(a) = acts else { unreachable!("scalar kernel given the wrong activation layout") };
    run_interleaved(w, a, rows, out, |_| q4_1::vec_dot);
}

/// Scalar kernel of an interleaved Q5_0 matrix in ggml's order.
unsafe fn gemm_q5_0_interleaved(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8_0(a) = acts else { unreachable!("scalar kernel given the wrong activation layout") };
    run_interleaved(w, a, rows, out, |_| q5_0::vec_dot);
}

/// Scalar kernel of a Q4_1 matrix in the 16-row layout: the layout's fast order
/// for the tokens flagged for it, ggml's for the others.
unsafe fn gemm_q4_1_chain(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8_1(a) = acts else { unreachable!("scalar kernel given the wrong activation layout") };
    run_interleaved(w, a, rows, out, |t| if out.fast(t) { q4_1::vec_dot_chain } else { q4_1::vec_dot });
}

/// Scalar kernel of a Q8_0 matrix in the 16-row layout: the layout's fast order
/// for the tokens flagged for it, ggml's for the others.
unsafe fn gemm_q8_0_chain(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8_0(a) = acts else { unreachable!("scalar kernel given the wrong activation layout") };
    run_interleaved(w, a, rows, out, |t| if out.fast(t) { q8::vec_dot_q8_0_chain } else { q8::vec_dot_q8_0 });
}

/// Scalar kernel of a Q5_0 matrix in the 16-row layout: the layout's fast order
/// for the tokens flagged for it, ggml's for the others.
unsafe fn gemm_q5_0_chain(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8_0(a) = acts else { unreachable!("scalar kernel given the wrong activation layout") };
    run_interleaved(w, a, rows, out, |t| if out.fast(t) { q5_0::vec_dot_chain } else { q5_0::vec_dot });
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
scalar_gemm!(gemm_q5_1, Q8_1, q5_1::vec_dot);
scalar_gemm!(gemm_q8_0, Q8_0, q8::vec_dot_q8_0);
scalar_gemm!(gemm_q4_k_plain, Q8K, q4_k::vec_dot);

// Repacked Q4_K: llama.cpp's gemv order for every token (see `quant::order`).
scalar_gemm!(gemm_q4_k_repacked, Q8K, q4_k::vec_dot_repacked);
scalar_gemm!(gemm_q5_k, Q8K, q5_k::vec_dot);
scalar_gemm!(gemm_q6_k, Q8K, q6_k::vec_dot);
scalar_gemm!(gemm_q2_k, Q8K, q2_k::vec_dot);
scalar_gemm!(gemm_q3_k, Q8K, q3_k::vec_dot);
scalar_gemm!(gemm_iq4_nl, Q8_0, iq4::vec_dot_nl);
scalar_gemm!(gemm_iq4_xs, Q8K, iq4::vec_dot_xs);
scalar_gemm!(gemm_f16, F16, quant::float::vec_dot_f16);
scalar_gemm!(gemm_bf16, BF16, quant::float::vec_dot_bf16);
scalar_gemm!(gemm_f32, F32, quant::float::vec_dot_f32);
