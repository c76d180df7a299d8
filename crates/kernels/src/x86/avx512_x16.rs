//! AVX-512 kernels of the 16-row layout (`matmul::Layout::Interleaved16`; Q4_1,
//! Q5_0 and Q8_0): one 512-bit lane per weight row.
//!
//! A group's block holds its 16 rows' scales (and Q4_1's minimums) and quants side
//! by side, so that one 8-bit dot-product step multiplies 4 quants of each of the
//! 16 rows by the same 4 quants of a token (broadcast to every lane): step `j`
//! covers quants `4j..4j + 4` of the block, and 8 steps cover it all.
//!
//! Two orders of the float arithmetic, chosen per token (`Out::fast`):
//! - ggml's (given text when asked for, so that it scores exactly as llama.cpp
//!   scores it: `model::GivenTextOrder::Ggml`): each step's 16 integer sums are
//!   scaled into an accumulator of their own, and the 8 accumulators are ggml's 8
//!   lanes, added pairwise at the end as ggml adds them; 26 vector operations per
//!   512 multiply-adds, against 32 for the 8-lanes-per-row kernels (`avx512`),
//!   with two tokens per tile.
//! - the fast one (generated tokens, and by default given text too): the 8 steps
//!   are chained into one exact integer block sum per lane, scaled into a single
//!   f32 accumulator per token (`quant::*::vec_dot_chain`), whose order depends on nothing but the token:
//!   12 operations per 512 multiply-adds (8 dot products, a conversion, a
//!   multiply, an FMA, a broadcast), and a tile of 8 tokens decodes each block of
//!   weights once.
//!
//! Q5_0's and Q8_0's weights are stored offset (`q + 16`, `q + 128`: unsigned, as
//! the dot product wants); each step starts at the activations' group correction
//! (see `act`).

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::avx512::dot;
use crate::x86::{each_token, for_each_group_run, prefetch_ahead};

/// Rows of a group (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 16;
/// Tokens of a full tile in the fast order.
const FAST_TOKENS: usize = 8;
/// Tokens of a full tile in ggml's order (9 accumulators per token).
const EXACT_TOKENS: usize = 2;

/// A format in the 16-row layout.
pub(crate) trait Format16 {
    /// Bytes of one block of a group (16 rows' blocks).
    const BLOCK: usize;
    /// There are minimums and an `m·s` term (Q4_1).
    const MIN: bool;
    /// The quants are stored offset by 128; the dot products start at the
    /// activations' group corrections.
    const OFFSET: bool;
    /// The 16 scales, the 16 minimums (zeros without), and the 8 steps' quants of
    /// the group's block at `p`.
    unsafe fn block(p: *const u8) -> (__m512, __m512, [__m512i; 8]);
}

/// Q4_1: 16 `d`, 16 `m` (f16), then 4 runs of 64 bytes of nibbles; step `j` is
/// the low nibbles of run `j` for `j < 4`, the high nibbles of run `j − 4` after.
pub(crate) struct Q4_1;
impl Format16 for Q4_1 {
    const BLOCK: usize = 16 * 20;
    const MIN: bool = true;
    const OFFSET: bool = false;
    #[inline(always)]
    unsafe fn block(p: *const u8) -> (__m512, __m512, [__m512i; 8]) {
        let low = _mm512_set1_epi8(0x0F);
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        let mw = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(32).cast()));
        let mut w = [_mm512_setzero_si512(); 8];
        for j in 0..4 {
            let q = _mm512_loadu_si512(p.add(64 + 64 * j).cast());
            w[j] = _mm512_and_si512(q, low);
            w[j + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(q), low);
        }
        (dw, mw, w)
    }
}

/// Q5_0: 16 `d` (f16), 8 masks of the fifth bits (one per step), then 4 runs of
/// 64 bytes of nibbles as Q4_1's; stored offset by 16 (`nibble + 16·bit`).
pub(crate) struct Q5_0;
impl Format16 for Q5_0 {
    const BLOCK: usize = 16 * 22;
    const MIN: bool = false;
    const OFFSET: bool = true;
    #[inline(always)]
    unsafe fn block(p: *const u8) -> (__m512, __m512, [__m512i; 8]) {
        let low = _mm512_set1_epi8(0x0F);
        let sixteen = _mm512_set1_epi8(16);
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        let mut w = [_mm512_setzero_si512(); 8];
        for j in 0..4 {
            let q = _mm512_loadu_si512(p.add(96 + 64 * j).cast());
            w[j] = _mm512_and_si512(q, low);
            w[j + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(q), low);
        }
        for (j, wj) in w.iter_mut().enumerate() {
            let bits = p.add(32 + 8 * j).cast::<u64>().read_unaligned();
            *wj = _mm512_mask_add_epi8(*wj, bits, *wj, sixteen);
        }
        (dw, _mm512_setzero_ps(), w)
    }
}

/// Q8_0: 16 `d` (f16), then 8 runs of 64 bytes, run `j` = step `j`.
pub(crate) struct Q8_0;
impl Format16 for Q8_0 {
    const BLOCK: usize = 16 * 34;
    const MIN: bool = false;
    const OFFSET: bool = true;
    #[inline(always)]
    unsafe fn block(p: *const u8) -> (__m512, __m512, [__m512i; 8]) {
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        let flip = _mm512_set1_epi8(0x80u8 as i8);
        let w = std::array::from_fn(|j| _mm512_xor_si512(_mm512_loadu_si512(p.add(32 + 64 * j).cast()), flip));
        (dw, _mm512_setzero_ps(), w)
    }
}

/// One tile in the fast order: the 16 rows of the group at `group` (output rows
/// `r0..r0 + 16`) × tokens `t0..t0 + C`. Each token's arithmetic is the same
/// whatever the tile (`quant::*::vec_dot_chain`), so results are batch-invariant.
#[inline(always)]
unsafe fn tile_fast<F: Format16, const VNNI: bool, const C: usize>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let mut acc = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        let p = group.add(b * F::BLOCK);
        prefetch_ahead(group, b * F::BLOCK, F::BLOCK);
        let (dw, mw, w) = F::block(p);
        each_token!(c in 0..C => {
            let t = t0 + c;
            let x = a.qs.as_ptr().add(t * a.qs_stride + b * 32);
            let k = t * a.d_stride + b;
            let mut isum = if F::OFFSET {
                _mm512_set1_epi32(*a.gb.get_unchecked(t * a.nb + b))
            } else {
                _mm512_setzero_si512()
            };
            for (j, wj) in w.iter().enumerate() {
                let xj = _mm512_set1_epi32(x.add(4 * j).cast::<i32>().read_unaligned());
                isum = dot::<VNNI>(isum, *wj, xj);
            }
            let d = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(k)));
            acc[c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(isum), acc[c]);
            if F::MIN {
                acc[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*a.s.get_unchecked(k)), acc[c]);
            }
        });
    }
    for (c, y) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.at(t0 + c, r0), *y);
    }
}

/// One tile in ggml's order (`quant::q4_1::vec_dot`, `quant::q8::vec_dot_q8_0`):
/// for each token, ggml's 8 lanes are 8 vectors here, one per step.
#[inline(always)]
unsafe fn tile_exact<F: Format16, const VNNI: bool, const C: usize>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 8]; C];
    let mut mins = [_mm512_setzero_ps(); C];
    for b in 0..nb {
        let p = group.add(b * F::BLOCK);
        prefetch_ahead(group, b * F::BLOCK, F::BLOCK);
        let (dw, mw, w) = F::block(p);
        each_token!(c in 0..C => {
            let t = t0 + c;
            let x = a.qs.as_ptr().add(t * a.qs_stride + b * 32);
            let k = t * a.d_stride + b;
            if F::MIN {
                mins[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*a.s.get_unchecked(k)), mins[c]);
            }
            let d = _mm512_mul_ps(dw, _mm512_set1_ps(*a.d.get_unchecked(k)));
            for (j, wj) in w.iter().enumerate() {
                let xj = _mm512_set1_epi32(x.add(4 * j).cast::<i32>().read_unaligned());
                let init = if F::OFFSET {
                    _mm512_set1_epi32(*a.g.get_unchecked(t * a.d_stride + 8 * b + j))
                } else {
                    _mm512_setzero_si512()
                };
                let sums = _mm512_cvtepi32_ps(dot::<VNNI>(init, *wj, xj));
                acc[c][j] = _mm512_fmadd_ps(d, sums, acc[c][j]);
            }
        });
    }
    for (c, l) in acc.iter().enumerate() {
        // ggml's `hsum_float_8`: ((l4 + l0) + (l6 + l2)) + ((l5 + l1) + (l7 + l3)).
        let add = |x, y| _mm512_add_ps(x, y);
        let sum = add(add(add(l[4], l[0]), add(l[6], l[2])), add(add(l[5], l[1]), add(l[7], l[3])));
        // ggml adds the `m·s` chain last (for Q8_0 the zero adds nothing).
        let y = if F::MIN { _mm512_add_ps(sum, mins[c]) } else { sum };
        _mm512_storeu_ps(out.at(t0 + c, r0), y);
    }
}

/// Tokens `t..end` (all of one order) for one group, in tiles of `N` then one
/// tail tile.
#[inline(always)]
unsafe fn tokens<F: Format16, const VNNI: bool, const FAST: bool, const N: usize>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    mut t: usize,
    end: usize,
) {
    macro_rules! run {
        ($c:expr) => {
            if FAST {
                tile_fast::<F, VNNI, { $c }>(group, nb, a, out, r0, t)
            } else {
                tile_exact::<F, VNNI, { $c }>(group, nb, a, out, r0, t)
            }
        };
    }
    while t + N <= end {
        run!(N);
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

/// All tokens for the groups of `rows`, each run of one order through that order's tiles.
#[inline(always)]
unsafe fn drive<F: Format16, const VNNI: bool>(w: &QMatrix<'_>, a: &Q8View<'_>, rows: Range<usize>, out: &Out) {
    for_each_group_run!(w, rows, out, |group, nb, r0, t, end, fast| {
        if fast {
            tokens::<F, VNNI, true, FAST_TOKENS>(group, nb, a, out, r0, t, end);
        } else {
            tokens::<F, VNNI, false, EXACT_TOKENS>(group, nb, a, out, r0, t, end);
        }
    })
}

macro_rules! entry {
    ($name:ident, $fmt:ty, $features:literal, $vnni:tt) => {
        /// AVX-512 kernel of a matrix in the 16-row layout (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`]; `rows` must start and end on a group
        /// boundary.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
            drive::<$fmt, $vnni>(w, a, rows, out);
        }
    };
}

entry!(q4_1_plain, Q4_1, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_1_vnni, Q4_1, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q5_0_plain, Q5_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q5_0_vnni, Q5_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
// Q8_0 needs VNNI: `vpmaddubsw` would saturate on `(q + 128)·a`.
entry!(q8_0_vnni, Q8_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
