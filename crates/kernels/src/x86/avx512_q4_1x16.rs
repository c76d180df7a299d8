//! AVX-512 kernels of Q4_1 matrices in the 16-row layout
//! (`matmul::Layout::Interleaved16`): one 512-bit lane per weight row.
//!
//! A group's block holds its 16 rows' scales, minimums and nibbles side by side,
//! so that one 8-bit dot-product step multiplies 4 quants of each of the 16 rows by
//! the same 4 quants of a token (broadcast to every lane). Eight steps leave the 16
//! rows' exact integer block sums in 16 lanes, which are added to the rows' f64
//! accumulators (two conversions, two multiplies and four fused multiply-adds for
//! both halves): 17 vector operations per 512 multiply-adds, where ggml's order
//! (8 f32 lanes per output, `avx512`) needs 32, and a tile of 8 tokens decodes
//! each block of nibbles once.
//!
//! The arithmetic is `quant::q4_1::vec_dot_chain`'s: every term is exact in f64,
//! so each output is the exact dot product of the quantized values, rounded once
//! to f32 — the same for every number of tokens, so a token's results do not
//! depend on the batch it is computed in. Tokens not flagged for the fast order
//! (`MatmulScratch::set_fast_tokens`; prompts) take ggml's order instead, with the
//! same layout: 8 accumulators per token, one per dot-product step, which are
//! ggml's 8 lanes (26 operations per 512 multiply-adds).

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::avx512::dot;
use crate::x86::prefetch_ahead;

/// Rows of a group (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 16;
/// Bytes of one block of a group: 16 `d`, 16 `m` (f16), 16 × 16 bytes of nibbles.
const BLOCK: usize = 16 * 20;
/// Tokens of a full tile in the fast order.
const TOKENS: usize = 8;
/// Tokens of a full tile in ggml's order (9 accumulators per token).
const EXACT_TOKENS: usize = 2;

/// One tile in the fast order: the 16 rows of the group at `group` (output rows
/// `r0..r0 + 16`) × tokens `t0..t0 + C`.
#[inline(always)]
unsafe fn tile_fast<const VNNI: bool, const C: usize>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let low = _mm512_set1_epi8(0x0F);
    // Rows 0..8 and 8..16 of each token, in f64.
    let mut acc = [[_mm512_setzero_pd(); 2]; C];
    for b in 0..nb {
        let p = group.add(b * BLOCK);
        prefetch_ahead(group, b * BLOCK, BLOCK);
        let halves = |at: usize| {
            let v = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(at).cast()));
            [
                _mm512_cvtps_pd(_mm512_castps512_ps256(v)),
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))),
            ]
        };
        let (dw, mw) = (halves(0), halves(32));
        // Step j multiplies quants 4j..4j + 4 of every row: low nibbles of run j
        // for j < 4, high nibbles of run j − 4 after.
        let mut w = [_mm512_setzero_si512(); 8];
        for j in 0..4 {
            let q = _mm512_loadu_si512(p.add(64 + 64 * j).cast());
            w[j] = _mm512_and_si512(q, low);
            w[j + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(q), low);
        }
        for c in 0..C {
            let t = t0 + c;
            let x = a.qs.as_ptr().add(t * a.qs_stride + b * 32);
            let mut isum = _mm512_setzero_si512();
            for (j, wj) in w.iter().enumerate() {
                let xj = _mm512_set1_epi32(x.add(4 * j).cast::<i32>().read_unaligned());
                isum = dot::<VNNI>(isum, *wj, xj);
            }
            let k = t * a.d_stride + b;
            let da = _mm512_set1_pd(f64::from(*a.d.get_unchecked(k)));
            let s = _mm512_set1_pd(f64::from(*a.s.get_unchecked(k)));
            let sums = [
                _mm512_cvtepi32_pd(_mm512_castsi512_si256(isum)),
                _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64::<1>(isum)),
            ];
            for h in 0..2 {
                let v = _mm512_fmadd_pd(_mm512_mul_pd(dw[h], da), sums[h], acc[c][h]);
                acc[c][h] = _mm512_fmadd_pd(mw[h], s, v);
            }
        }
    }
    for (c, [lo, hi]) in acc.iter().enumerate() {
        let y = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(_mm512_cvtpd_ps(*lo)), _mm512_cvtpd_ps(*hi));
        _mm512_storeu_ps(out.at(t0 + c, r0), y);
    }
}

/// One tile in ggml's order (`quant::q4_1::vec_dot`): for each token, the 8
/// lanes of ggml's chain are 8 vectors here (lane `j` = quants `4j..4j + 4` of each
/// block), one per dot-product step, added pairwise as ggml adds its lanes.
#[inline(always)]
unsafe fn tile_exact<const VNNI: bool, const C: usize>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let low = _mm512_set1_epi8(0x0F);
    let mut acc = [[_mm512_setzero_ps(); 8]; C];
    let mut mins = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        let p = group.add(b * BLOCK);
        prefetch_ahead(group, b * BLOCK, BLOCK);
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        let mw = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(32).cast()));
        let mut w = [_mm512_setzero_si512(); 8];
        for j in 0..4 {
            let q = _mm512_loadu_si512(p.add(64 + 64 * j).cast());
            w[j] = _mm512_and_si512(q, low);
            w[j + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(q), low);
        }
        for c in 0..C {
            let t = t0 + c;
            let x = a.qs.as_ptr().add(t * a.qs_stride + b * 32);
            let k = t * a.d_stride + b;
            mins[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*a.s.get_unchecked(k)), mins[c]);
            let d = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(k)));
            for (j, wj) in w.iter().enumerate() {
                let xj = _mm512_set1_epi32(x.add(4 * j).cast::<i32>().read_unaligned());
                let sums = _mm512_cvtepi32_ps(dot::<VNNI>(_mm512_setzero_si512(), *wj, xj));
                acc[c][j] = _mm512_fmadd_ps(d, sums, acc[c][j]);
            }
        }
    }
    for (c, l) in acc.iter().enumerate() {
        // ggml's `hsum_float_8`: ((l4 + l0) + (l6 + l2)) + ((l5 + l1) + (l7 + l3)).
        let add = |x, y| _mm512_add_ps(x, y);
        let sum = add(add(add(l[4], l[0]), add(l[6], l[2])), add(add(l[5], l[1]), add(l[7], l[3])));
        _mm512_storeu_ps(out.at(t0 + c, r0), _mm512_add_ps(sum, mins[c]));
    }
}

/// Tokens `t..end` (all of one order) for one group, in tiles of `N` then one
/// tail tile.
#[inline(always)]
unsafe fn tokens<const VNNI: bool, const FAST: bool, const N: usize>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    mut t: usize,
    end: usize,
) {
    macro_rules! run {
        ($c:literal) => {
            if FAST {
                tile_fast::<VNNI, $c>(group, nb, a, out, r0, t)
            } else {
                tile_exact::<VNNI, $c>(group, nb, a, out, r0, t)
            }
        };
    }
    while t + N <= end {
        if FAST {
            tile_fast::<VNNI, N>(group, nb, a, out, r0, t);
        } else {
            tile_exact::<VNNI, N>(group, nb, a, out, r0, t);
        }
        t += N;
    }
    match end - t {
        0 => {}
        1 => run!(1),
        2 => run!(2),
        3 => run!(3),
        4 => run!(4),
        5 => run!(5),
        6 => run!(6),
        _ => run!(7),
    }
}

/// All tokens for the groups of `rows`: runs of consecutive tokens of one order
/// (see `Out::fast`) each go through that order's tiles.
#[inline(always)]
unsafe fn drive<const VNNI: bool>(w: &QMatrix<'_>, a: &Q8View<'_>, rows: Range<usize>, out: &Out) {
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
                tokens::<VNNI, true, TOKENS>(group, nb, a, out, r0, t, end);
            } else {
                tokens::<VNNI, false, EXACT_TOKENS>(group, nb, a, out, r0, t, end);
            }
            t = end;
        }
    }
}

macro_rules! entry {
    ($name:ident, $features:literal, $vnni:tt) => {
        /// AVX-512 kernel of a Q4_1 matrix in the 16-row layout (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`]; `rows` must start and end on a group
        /// boundary.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
            drive::<$vnni>(w, a, rows, out);
        }
    };
}

entry!(q4_1x16_plain, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_1x16_vnni, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
