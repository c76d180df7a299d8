//! Activations quantized for the SIMD kernels of the 32-element formats.
//!
//! The values are exactly those of ggml's Q8_0 / Q8_1 blocks (same scales, same
//! rounding), laid out for vector loads: each token's quants are one contiguous,
//! 64-byte aligned run in element order, and the per-block scales (already f32) and
//! Q8_1 sums sit in arrays of their own. Two more arrays serve the AVX-512 kernels:
//! - the *group corrections*: for each 4 consecutive quants, `−(their sum) << shift`
//!   (i32). A kernel that multiplies unsigned weights `q + 2^shift` starts each
//!   4-element dot product there, which makes it a dot product of the signed weights;
//! - the scales and sums again, *transposed* (`[block][token]`), so that the values
//!   of 4 consecutive tokens for one block are one 16-byte load;
//! - with a shift, each block's 8 group corrections added up (`gb`), where a
//!   kernel chains a whole block's dot products from one start.

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

/// Owned buffers of quantized activations (reused across calls). `lines` holds one
/// record per token, `(n_tokens, record)`: `qs_bytes` quant bytes, then `d_len`
/// block scales (f32 of the f16 ggml stores), `d_len` Q8_1 sums `f16(d·Σq)` as f32,
/// and `g_len` group corrections (i32). One record per token lets the pool's threads
/// quantize tokens in parallel without `unsafe`. `trans` holds the scales and sums
/// transposed, `(2, nb, t_stride)`.
#[derive(Default)]
pub(crate) struct Q8Buf {
    lines: Vec<Line>,
    trans: Vec<f32>,
    gb: Vec<i32>,
}

/// A read-only view of quantized activations. `qs[t·qs_stride + i]` is quant `i` of
/// token `t` (as `i8` bits); `d[t·d_stride + b]` and `s[t·d_stride + b]` the scale and
/// sum of its block `b`; `g[t·d_stride + 8b + l]` the correction of its quants
/// `32b + 4l .. 32b + 4l + 4`; `gb[t·nb + b]` the sum of block `b`'s 8 corrections
/// (empty without a shift); `dt[b·t_stride + t]` and `st[b·t_stride + t]` the scale
/// and sum again (zeros for `t` past the last token, up to `t_stride`).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the x86-64 kernels only
#[derive(Clone, Copy)]
pub(crate) struct Q8View<'a> {
    pub qs: &'a [u8],
    pub qs_stride: usize,
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub g: &'a [i32],
    pub gb: &'a [i32],
    pub nb: usize,
    pub d_stride: usize,
    pub dt: &'a [f32],
    pub st: &'a [f32],
    pub t_stride: usize,
}

/// Sizes of one token's record, in bytes and in 4-byte items.
struct Record {
    qs_bytes: usize,
    d_len: usize,
    g_len: usize,
}

impl Record {
    fn new(nb: usize) -> Record {
        Record { qs_bytes: (nb * QK).div_ceil(64) * 64, d_len: nb.div_ceil(16) * 16, g_len: (8 * nb).div_ceil(16) * 16 }
    }

    fn bytes(&self) -> usize {
        self.qs_bytes + 4 * (2 * self.d_len + self.g_len)
    }
}

/// One token's slices of a record: quants, scales, sums, group corrections.
pub(crate) struct TokenOut<'r> {
    pub q: &'r mut [u8],
    pub d: &'r mut [f32],
    pub s: &'r mut [f32],
    pub g: &'r mut [i32],
}

impl Q8Buf {
    /// Quantizes `x` (`(n_tokens, cols)`) and returns the view; many tokens are
    /// split over the pool's threads. `shift` scales the group corrections.
    pub(crate) fn quantize(
        &mut self,
        isa: Isa,
        x: &[f32],
        n_tokens: usize,
        cols: usize,
        shift: u32,
        pool: &ThreadPool,
    ) -> Q8View<'_> {
        let nb = cols / QK;
        let rec = Record::new(nb);
        let lines_per = rec.bytes() / 64;
        grow(&mut self.lines, n_tokens * lines_per, Line([0; 64]));
        let lines = &mut self.lines[..n_tokens * lines_per];
        let one = |t: usize, record: &mut [Line]| {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(record);
            let (q, rest) = bytes.split_at_mut(rec.qs_bytes);
            let (ds, g) = rest.split_at_mut(8 * rec.d_len);
            let (d, s) = bytemuck::cast_slice_mut::<u8, f32>(ds).split_at_mut(rec.d_len);
            let out = TokenOut { q, d, s, g: bytemuck::cast_slice_mut(g) };
            let xr = &x[t * cols..(t + 1) * cols];
            #[cfg(target_arch = "x86_64")]
            match isa.width() {
                // SAFETY: the caller checked this CPU runs `isa`: AVX-512 F/BW/VL.
                crate::cpu::Width::W512 => return unsafe { crate::x86::quantize::q8_row_avx512(xr, out, shift) },
                // SAFETY: as above, AVX2 and F16C.
                crate::cpu::Width::W256 => return unsafe { crate::x86::quantize::q8_row_avx2(xr, out, shift) },
                crate::cpu::Width::Scalar => {}
            }
            let _ = isa;
            quantize_row_scalar(xr, out, shift);
        };
        if n_tokens >= 8 && pool.n_threads() > 1 {
            pool.split_mut(lines, lines_per, &|tokens, records| {
                for (k, record) in records.chunks_exact_mut(lines_per).enumerate() {
                    one(tokens.start + k, record);
                }
            });
        } else {
            for (t, record) in lines.chunks_exact_mut(lines_per).enumerate() {
                one(t, record);
            }
        }
        let lines = &self.lines[..n_tokens * lines_per];
        let floats: &[f32] = bytemuck::cast_slice(lines);
        let d_stride = rec.bytes() / 4;
        let d = &floats[rec.qs_bytes / 4..];
        let s = &floats[rec.qs_bytes / 4 + rec.d_len..];
        let ints: &[i32] = bytemuck::cast_slice(lines);
        let g = &ints[rec.qs_bytes / 4 + 2 * rec.d_len..];
        // The transposed copies, with room for a 4-token load at any token.
        let t_stride = n_tokens + 3;
        grow(&mut self.trans, 2 * nb * t_stride, 0.0);
        let (dt, st) = self.trans[..2 * nb * t_stride].split_at_mut(nb * t_stride);
        for b in 0..nb {
            for t in 0..t_stride {
                let (dv, sv) = if t < n_tokens { (d[t * d_stride + b], s[t * d_stride + b]) } else { (0.0, 0.0) };
                dt[b * t_stride + t] = dv;
                st[b * t_stride + t] = sv;
            }
        }
        // Block sums of the corrections (only offset weights start from them).
        let gb_len = if shift > 0 { n_tokens * nb } else { 0 };
        grow(&mut self.gb, gb_len, 0);
        let gb = &mut self.gb[..gb_len];
        for (t, sums) in gb.chunks_exact_mut(nb.max(1)).enumerate() {
            let gt = &g[t * d_stride..];
            for (b, v) in sums.iter_mut().enumerate() {
                *v = gt[8 * b..8 * b + 8].iter().sum();
            }
        }
        let gb = &self.gb[..gb_len];
        Q8View { qs: bytemuck::cast_slice(lines), qs_stride: rec.bytes(), d, s, g, gb, nb, d_stride, dt, st, t_stride }
    }
}

/// Grows `v` to at least `n` items (never shrinks, so warm buffers stay allocated).
fn grow<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

/// Scalar quantizer of one token: the same numbers as `quantize_row_q8_0/1`, and the
/// group corrections. The padding of `out` is zeroed.
pub(crate) fn quantize_row_scalar(x: &[f32], out: TokenOut<'_>, shift: u32) {
    let nb = x.len() / QK;
    out.q.fill(0);
    out.g.fill(0);
    for (b, block) in x.chunks_exact(QK).enumerate() {
        let (scale, id) = q8_scale(block);
        let mut sum = 0i32;
        for (j, &v) in block.iter().enumerate() {
            let qi = round_i8(v * id);
            sum += i32::from(qi);
            out.q[b * QK + j] = qi as u8;
            out.g[8 * b + j / 4] -= i32::from(qi) << shift;
        }
        out.d[b] = f16::from_f32(scale).to_f32();
        out.s[b] = f16::from_f32(scale * sum as f32).to_f32();
    }
    out.d[nb..].fill(0.0);
    out.s[nb..].fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::q8::{quantize_row_q8_0, quantize_row_q8_1};
    use crate::quant::{BlockQ8_0, BlockQ8_1};

    /// The SIMD layout holds exactly ggml's Q8_0/Q8_1 numbers at every level, and
    /// the corrections and transposed copies agree with them.
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
            for shift in [0, 3, 7] {
                let v = buf.quantize(isa, &x, n, cols, shift, &pool);
                for t in 0..n {
                    for b in 0..7 {
                        let want = &b0[t * 7 + b];
                        let row = &v.qs[t * v.qs_stride + b * QK..];
                        for (j, (&got, &q)) in row.iter().zip(&want.qs).enumerate() {
                            assert_eq!(got as i8, q, "{isa} t {t} b {b} j {j}");
                        }
                        for l in 0..8 {
                            let sum: i32 = want.qs[4 * l..4 * l + 4].iter().map(|&q| i32::from(q)).sum();
                            assert_eq!(v.g[t * v.d_stride + 8 * b + l], -(sum << shift), "{isa} t {t} b {b} l {l}");
                        }
                        if shift > 0 {
                            let sum: i32 = want.qs.iter().map(|&q| i32::from(q)).sum();
                            assert_eq!(v.gb[t * v.nb + b], -(sum << shift), "{isa} t {t} b {b}: block sum");
                        }
                        assert_eq!(v.d[t * v.d_stride + b], want.d.to_f32());
                        assert_eq!(v.s[t * v.d_stride + b], b1[t * 7 + b].s.to_f32());
                        assert_eq!(v.dt[b * v.t_stride + t], want.d.to_f32());
                        assert_eq!(v.st[b * v.t_stride + t], b1[t * 7 + b].s.to_f32());
                    }
                    assert!(v.d[t * v.d_stride + 7..t * v.d_stride + 16].iter().all(|&d| d == 0.0));
                }
                assert!((n..v.t_stride).all(|t| v.dt[t] == 0.0 && v.st[6 * v.t_stride + t] == 0.0));
                assert_eq!(v.gb.len(), if shift > 0 { n * 7 } else { 0 });
            }
        }
    }
}
