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
use crate::quant::q8::{q8_scale, round_i8};
use crate::quant::QK;

/// 64 bytes on a 64-byte boundary.
#[repr(C, align(64))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Line([u8; 64]);

/// Owned buffers of quantized activations (reused across calls).
#[derive(Default)]
pub(crate) struct Q8Buf {
    /// `(n_tokens, qs_stride)` quant bytes.
    qs: Vec<Line>,
    /// `(n_tokens, d_stride)` block scales (f32 of the f16 ggml stores).
    d: Vec<f32>,
    /// `(n_tokens, d_stride)` Q8_1 sums `f16(d·Σq)` as f32; zeros when unused.
    s: Vec<f32>,
}

/// A read-only view of quantized activations.
#[derive(Clone, Copy)]
pub(crate) struct Q8View<'a> {
    pub qs: &'a [u8],
    pub qs_stride: usize,
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub d_stride: usize,
}

impl Q8Buf {
    /// Quantizes `x` (`(n_tokens, cols)`) and returns the view.
    pub(crate) fn quantize(
        &mut self,
        isa: Isa,
        x: &[f32],
        n_tokens: usize,
        cols: usize,
        offset: bool,
        quad: bool,
    ) -> Q8View<'_> {
        let nb = cols / QK;
        let qs_stride = cols.div_ceil(128) * 128;
        let d_stride = nb.div_ceil(16) * 16;
        resize(&mut self.qs, n_tokens * qs_stride / 64, Line([0; 64]));
        resize(&mut self.d, n_tokens * d_stride, 0.0);
        resize(&mut self.s, n_tokens * d_stride, 0.0);
        let qs: &mut [u8] = bytemuck::cast_slice_mut(&mut self.qs[..n_tokens * qs_stride / 64]);
        for t in 0..n_tokens {
            let xr = &x[t * cols..(t + 1) * cols];
            let q = &mut qs[t * qs_stride..(t + 1) * qs_stride];
            let d = &mut self.d[t * d_stride..(t + 1) * d_stride];
            let s = &mut self.s[t * d_stride..(t + 1) * d_stride];
            #[cfg(target_arch = "x86_64")]
            if isa >= Isa::Avx512 {
                // SAFETY: `isa` is at least AVX-512, which the caller checked this CPU has.
                unsafe { crate::x86::quantize::q8_row_avx512(xr, q, d, s, offset, quad) };
                continue;
            }
            let _ = isa;
            quantize_row_scalar(xr, q, d, s, offset, quad);
        }
        Q8View { qs, qs_stride, d: &self.d, s: &self.s, d_stride }
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
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            for offset in [false, true] {
                for quad in [false, true] {
                    let v = buf.quantize(isa, &x, n, cols, offset, quad);
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
                        assert!(v.d[t * v.d_stride + 7..(t + 1) * v.d_stride].iter().all(|&d| d == 0.0));
                    }
                }
            }
        }
    }
}
