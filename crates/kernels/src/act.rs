//! Activations quantized for the SIMD kernels of the 32-element formats.
//!
//! The values are exactly those of ggml's Q8_0 / Q8_1 blocks (same scales, same
//! rounding), laid out for vector loads: each token's quants are one contiguous,
//! 64-byte aligned run, and the per-block scales (already f32) and Q8_1 sums sit in
//! arrays of their own. With `offset` the quants are stored as `q + 128` (`u8`), the
//! form `vpdpbusd` takes as its unsigned operand. With `quad`, each run of four
//! blocks (128 bytes) holds the first 16 quants of each of the four blocks, then
//! their last 16: the order in which the nibble formats' kernels unpack weights.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::cpu::Isa;
use crate::pool::ThreadPool;
use crate::quant::q8::{q8_scale, round_i8};
use crate::quant::QK;

/// 64 bytes on a 64-byte boundary.
#[repr(C, align(64))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Line([u8; 64]);

/// Owned buffer of quantized activations (reused across calls): one record per
/// token, `(n_tokens, record)` with a record of `qs_stride` quant bytes, then
/// `d_stride` block scales (f32 of the f16 ggml stores), then `d_stride` Q8_1 sums
/// `f16(d·Σq)` as f32. One record per token lets the pool's threads quantize
/// tokens in parallel without `unsafe`.
#[derive(Default)]
pub(crate) struct Q8Buf {
    lines: Vec<Line>,
}

/// A read-only view of quantized activations. `qs[t·qs_stride + i]` is quant `i`
/// of token `t`, `d[t·d_stride + b]` and `s[t·d_stride + b]` the scale and sum of
/// its block `b` (zeros past the last block, up to a multiple of 16).
#[derive(Clone, Copy)]
pub(crate) struct Q8View<'a> {
    pub qs: &'a [u8],
    pub qs_stride: usize,
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub d_stride: usize,
}

impl Q8Buf {
    /// Quantizes `x` (`(n_tokens, cols)`) and returns the view; many tokens are
    /// split over the pool's threads.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn quantize(
        &mut self,
        isa: Isa,
        x: &[f32],
        n_tokens: usize,
        cols: usize,
        offset: bool,
        quad: bool,
        pool: &ThreadPool,
    ) -> Q8View<'_> {
        let nb = cols / QK;
        let qs_bytes = cols.div_ceil(128) * 128;
        let d_len = nb.div_ceil(16) * 16;
        let record = qs_bytes + 8 * d_len;
        resize(&mut self.lines, n_tokens * record / 64, Line([0; 64]));
        let lines = &mut self.lines[..n_tokens * record / 64];
        let one = |t: usize, rec: &mut [Line]| {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(rec);
            let (q, rest) = bytes.split_at_mut(qs_bytes);
            let (d, s) = bytemuck::cast_slice_mut::<u8, f32>(rest).split_at_mut(d_len);
            let xr = &x[t * cols..(t + 1) * cols];
            #[cfg(target_arch = "x86_64")]
            if isa >= Isa::Avx512 {
                // SAFETY: `isa` is at least AVX-512, which the caller checked this CPU has.
                unsafe { crate::x86::quantize::q8_row_avx512(xr, q, d, s, offset, quad) };
                return;
            }
            let _ = isa;
            quantize_row_scalar(xr, q, d, s, offset, quad);
        };
        if n_tokens >= 8 && pool.n_threads() > 1 {
            pool.split_mut(lines, record / 64, &|tokens, recs| {
                for (k, rec) in recs.chunks_exact_mut(record / 64).enumerate() {
                    one(tokens.start + k, rec);
                }
            });
        } else {
            for (t, rec) in lines.chunks_exact_mut(record / 64).enumerate() {
                one(t, rec);
            }
        }
        let lines = &self.lines[..n_tokens * record / 64];
        let floats: &[f32] = bytemuck::cast_slice(lines);
        Q8View {
            qs: bytemuck::cast_slice(lines),
            qs_stride: record,
            d: &floats[qs_bytes / 4..],
            s: &floats[qs_bytes / 4 + d_len..],
            d_stride: record / 4,
        }
    }
}

/// Grows `v` to at least `n` items (never shrinks, so warm buffers stay allocated).
fn resize<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

/// Where the first and the last 16 quants of block `b` go in a token's run.
#[inline]
pub(crate) fn halves(b: usize, quad: bool) -> (usize, usize) {
    if quad {
        let at = (b / 4) * 128 + (b % 4) * 16;
        (at, at + 64)
    } else {
        (b * QK, b * QK + 16)
    }
}

/// Scalar quantizer of one token: the same numbers as `quantize_row_q8_0/1`.
/// `q`, `d`, `s` are the token's padded slices; their padding is zeroed.
pub(crate) fn quantize_row_scalar(x: &[f32], q: &mut [u8], d: &mut [f32], s: &mut [f32], offset: bool, quad: bool) {
    let nb = x.len() / QK;
    let flip = if offset { 0x80u8 } else { 0 };
    q.fill(flip);
    for (b, block) in x.chunks_exact(QK).enumerate() {
        let (scale, id) = q8_scale(block);
        let mut sum = 0i32;
        let (first, second) = halves(b, quad);
        for (j, &v) in block.iter().enumerate() {
            let qi = round_i8(v * id);
            sum += i32::from(qi);
            q[if j < 16 { first + j } else { second + j - 16 }] = (qi as u8) ^ flip;
        }
        d[b] = f16::from_f32(scale).to_f32();
        s[b] = f16::from_f32(scale * sum as f32).to_f32();
    }
    d[nb..].fill(0.0);
    s[nb..].fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::q8::{quantize_row_q8_0, quantize_row_q8_1};
    use crate::quant::{BlockQ8_0, BlockQ8_1};

    /// The SIMD layout holds exactly ggml's Q8_0/Q8_1 numbers, at every level and layout.
    #[test]
    fn simd_layout_holds_ggml_q8_values() {
        let cols = 7 * QK;
        let n = 3;
        let x: Vec<f32> =
            (0..n * cols).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01 * (1 + i % 5) as f32).collect();
        let mut b0 = vec![BlockQ8_0::default(); n * 7];
        let mut b1 = vec![BlockQ8_1::default(); n * 7];
        quantize_row_q8_0(&x, &mut b0);
        quantize_row_q8_1(&x, &mut b1);
        let mut buf = Q8Buf::default();
        let pool = ThreadPool::new(2);
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            for offset in [false, true] {
                for quad in [false, true] {
                    let v = buf.quantize(isa, &x, n, cols, offset, quad, &pool);
                    for t in 0..n {
                        for b in 0..7 {
                            let (first, second) = halves(b, quad);
                            let row = &v.qs[t * v.qs_stride..];
                            for j in 0..QK {
                                let at = if j < 16 { first + j } else { second + j - 16 };
                                let q = (row[at] ^ if offset { 0x80 } else { 0 }) as i8;
                                assert_eq!(
                                    q,
                                    b0[t * 7 + b].qs[j],
                                    "{isa} offset {offset} quad {quad} t {t} b {b} j {j}"
                                );
                            }
                            assert_eq!(v.d[t * v.d_stride + b], b0[t * 7 + b].d.to_f32());
                            assert_eq!(v.s[t * v.d_stride + b], b1[t * 7 + b].s.to_f32());
                        }
                        assert!(v.d[t * v.d_stride + 7..t * v.d_stride + 16].iter().all(|&d| d == 0.0));
                        assert!(v.s[t * v.d_stride + 7..t * v.d_stride + 16].iter().all(|&s| s == 0.0));
                    }
                }
            }
        }
    }
}
