//! AVX2 (and AVX-VNNI) kernels of the 16-row layout (`matmul::Layout::Interleaved16`,
//! Q4_1): one 32-bit lane per weight row, as the AVX-512 kernels (`avx512_x16`) have
//! it, on half the registers.
//!
//! Each 64-byte run of a block holds 4 quants of each of the group's 16 rows (row
//! `i` at byte `4i`), so its two 256-bit halves are rows 0–7 and rows 8–15. A group
//! is computed as those two halves, one after the other (the second pass finds the
//! group's few kilobytes in L1), each lane doing exactly what its lane of the
//! AVX-512 kernel does; so both orders give the AVX-512 kernels' bits, and those of
//! the scalar twins:
//! - ggml's order (given text): per token, 8 accumulators (one per dot-product step,
//!   ggml's 8 lanes) and the `m·s` chain, added as `hsum_float_8` adds them;
//! - the fast one (generated tokens): the 8 steps chained into one exact integer
//!   block sum per row, scaled into one f32 chain per (row, token)
//!   (`quant::q4_1::vec_dot_chain`), in tiles of 4 tokens that decode each half
//!   block of weights once: 8 `vpdpbusd` (or `vpmaddubsw` + `vpmaddwd` + add), a
//!   conversion, a multiply and two FMAs per 8 rows × 32 quants, against about
//!   7 operations per row and block in the row-major kernels (`avx2`).

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::avx2::{MADDUBS, VNNI_EVEX, VNNI_VEX};
use crate::x86::{each_token, prefetch_ahead};

/// Rows of a group (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 16;
/// Bytes of one Q4_1 block of a group: 16 `d`, 16 `m` (f16), 4 runs of 64 bytes.
const BLOCK: usize = 16 * 20;
/// Tokens of a full tile in the fast order (8 weight vectors + 4 accumulators + the
/// step's temporaries fill the 16 registers).
const FAST_TOKENS: usize = 4;

/// `acc` plus, per i32 lane, the four u8×i8 products of the lane (see
/// `avx2::dot_u8i8`; the same integers whichever `V`).
#[inline(always)]
unsafe fn dot_acc<const V: u8>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    match V {
        VNNI_VEX => _mm256_dpbusd_avx_epi32(acc, u, s),
        VNNI_EVEX => _mm256_dpbusd_epi32(acc, u, s),
        _ => _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))),
    }
}

/// The 8 `d` and 8 `m` of rows `8h..8h + 8` of the group's block at `p`.
#[inline(always)]
unsafe fn scales(p: *const u8, h: usize) -> (__m256, __m256) {
    let dw = _mm256_cvtph_ps(_mm_loadu_si128(p.add(16 * h).cast()));
    let mw = _mm256_cvtph_ps(_mm_loadu_si128(p.add(32 + 16 * h).cast()));
    (dw, mw)
}

/// Steps `j` and `j + 4` of rows `8h..8h + 8` of the group's block at `p`: the low
/// and the high nibbles of run `j`'s half `h`.
#[inline(always)]
unsafe fn steps(p: *const u8, h: usize, j: usize) -> (__m256i, __m256i) {
    let low = _mm256_set1_epi8(0x0F);
    let q = _mm256_loadu_si256(p.add(64 + 64 * j + 32 * h).cast());
    (_mm256_and_si256(q, low), _mm256_and_si256(_mm256_srli_epi16::<4>(q), low))
}

/// Quants `4j..4j + 4` of token `t`'s block `b`, in every lane.
#[inline(always)]
unsafe fn token_step(a: &Q8View<'_>, t: usize, b: usize, j: usize) -> __m256i {
    _mm256_set1_epi32(a.qs.as_ptr().add(t * a.qs_stride + b * 32 + 4 * j).cast::<i32>().read_unaligned())
}

/// One tile in the fast order: the 16 rows of the group at `group` (output rows
/// `r0..r0 + 16`) × tokens `t0..t0 + C`. Each token's arithmetic is the same
/// whatever the tile, so results are batch-invariant.
#[inline(always)]
unsafe fn tile_fast<const V: u8, const C: usize>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); C];
        for b in 0..nb {
            let p = group.add(b * BLOCK);
            if h == 0 {
                prefetch_ahead(group, b * BLOCK, BLOCK);
            }
            let (dw, mw) = scales(p, h);
            let mut w = [_mm256_setzero_si256(); 8];
            for j in 0..4 {
                (w[j], w[j + 4]) = steps(p, h, j);
            }
            each_token!(c in 0..C => {
                let t = t0 + c;
                let k = t * a.d_stride + b;
                let mut isum = _mm256_setzero_si256();
                for (j, wj) in w.iter().enumerate() {
                    isum = dot_acc::<V>(isum, *wj, token_step(a, t, b, j));
                }
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(k)));
                acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc[c]);
                acc[c] = _mm256_fmadd_ps(mw, _mm256_set1_ps(*a.s.get_unchecked(k)), acc[c]);
            });
        }
        for (c, y) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.at(t0 + c, r0 + 8 * h), *y);
        }
    }
}

/// Token `t` in ggml's order (`quant::q4_1::vec_dot`): ggml's 8 lanes are 8 vectors
/// here, one per step, each lane a row.
#[inline(always)]
unsafe fn tile_exact<const V: u8>(group: *const u8, nb: usize, a: &Q8View<'_>, out: &Out, r0: usize, t: usize) {
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut mins = _mm256_setzero_ps();
        for b in 0..nb {
            let p = group.add(b * BLOCK);
            if h == 0 {
                prefetch_ahead(group, b * BLOCK, BLOCK);
            }
            let (dw, mw) = scales(p, h);
            let k = t * a.d_stride + b;
            mins = _mm256_fmadd_ps(mw, _mm256_set1_ps(*a.s.get_unchecked(k)), mins);
            let d = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(k)));
            for j in 0..4 {
                let (lo, hi) = steps(p, h, j);
                for (step, wq) in [(j, lo), (j + 4, hi)] {
                    let sums = dot_acc::<V>(_mm256_setzero_si256(), wq, token_step(a, t, b, step));
                    acc[step] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc[step]);
                }
            }
        }
        // ggml's `hsum_float_8`: ((l4 + l0) + (l6 + l2)) + ((l5 + l1) + (l7 + l3)), then
        // the `m·s` chain.
        let add = |x, y| _mm256_add_ps(x, y);
        let l = &acc;
        let sum = add(add(add(l[4], l[0]), add(l[6], l[2])), add(add(l[5], l[1]), add(l[7], l[3])));
        _mm256_storeu_ps(out.at(t, r0 + 8 * h), _mm256_add_ps(sum, mins));
    }
}

/// Fast tokens `t..end` of one group, in tiles of [`FAST_TOKENS`] then one tail tile.
#[inline(always)]
unsafe fn fast_tokens<const V: u8>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    mut t: usize,
    end: usize,
) {
    while t + FAST_TOKENS <= end {
        tile_fast::<V, FAST_TOKENS>(group, nb, a, out, r0, t);
        t += FAST_TOKENS;
    }
    match end - t {
        0 => {}
        1 => tile_fast::<V, 1>(group, nb, a, out, r0, t),
        2 => tile_fast::<V, 2>(group, nb, a, out, r0, t),
        _ => tile_fast::<V, 3>(group, nb, a, out, r0, t),
    }
}

/// All tokens for the groups of `rows`: runs of consecutive tokens of one order
/// each go through that order's tiles.
#[inline(always)]
unsafe fn drive<const V: u8>(w: &QMatrix<'_>, a: &Q8View<'_>, rows: Range<usize>, out: &Out) {
    debug_assert!(rows.start.is_multiple_of(ROWS) && rows.end.is_multiple_of(ROWS), "groups are whole");
    let nb = w.cols() / 32;
    let nt = out.n_tokens;
    for r0 in rows.step_by(ROWS) {
        let group = w.data().as_ptr().add(r0 * w.row_size());
        let mut t = 0;
        while t < nt {
            let fast = out.fast(t);
            let end = (t..nt).find(|&u| out.fast(u) != fast).unwrap_or(nt);
            if fast {
                fast_tokens::<V>(group, nb, a, out, r0, t, end);
            } else {
                for u in t..end {
                    tile_exact::<V>(group, nb, a, out, r0, u);
                }
            }
            t = end;
        }
    }
}

macro_rules! entry {
    ($name:ident, $features:literal, $v:expr) => {
        /// Kernel of a Q4_1 matrix in the 16-row layout (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`]; `rows` must start and end on a group
        /// boundary; the CPU must have the features named.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX2 kernel given the wrong activation layout") };
            drive::<{ $v }>(w, a, rows, out);
        }
    };
}

entry!(q4_1, "avx2,fma,f16c", MADDUBS);
entry!(q4_1_vex, "avx2,fma,f16c,avxvnni", VNNI_VEX);
entry!(q4_1_evex, "avx2,fma,f16c,avx512vnni,avx512vl", VNNI_EVEX);
