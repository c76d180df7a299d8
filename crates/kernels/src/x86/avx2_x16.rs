//! AVX2 (and AVX-VNNI) kernels of the 16-row layout (`matmul::Layout::Interleaved16`:
//! Q4_1, Q5_0, and with `vpdpbusd` Q8_0): one 32-bit lane per weight row, as the
//! AVX-512 kernels (`avx512_x16`) have it, on half the registers.
//!
//! Each 64-byte run of a block holds 4 quants of each of the group's 16 rows (row
//! `i` at byte `4i`), so its two 256-bit halves are rows 0–7 and rows 8–15. A group
//! is computed as those two halves, one after the other (the second pass finds the
//! group's few kilobytes in L1), each lane doing exactly what its lane of the
//! AVX-512 kernel does; so both orders give the AVX-512 kernels' bits, and those of
//! the scalar twins:
//! - ggml's order (given text when asked for: `model::GivenTextOrder::Ggml`): per
//!   token, 8 accumulators (one per dot-product step, ggml's 8 lanes) and the `m·s`
//!   chain, added as `hsum_float_8` adds them;
//! - the fast one (generated tokens, and by default given text): the 8 steps
//!   chained into one exact integer block sum per row, scaled into one f32 chain
//!   per (row, token) (`quant::*::vec_dot_chain`), in tiles of 4 tokens that decode each half
//!   block of weights once: 8 `vpdpbusd` (or `vpmaddubsw` + `vpmaddwd` + add), a
//!   conversion, a multiply and one or two FMAs per 8 rows × 32 quants, against
//!   about 7 operations per row and block in the row-major kernels (`avx2`).
//!
//! Q5_0's and Q8_0's weights are stored offset (`q + 16`, `q + 128`: unsigned, as the
//! dot product wants); each step starts at the activations' group correction (see
//! `act`). Q8_0 needs `vpdpbusd`: `vpmaddubsw` would saturate on `(q + 128)·a`.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::avx2::{MADDUBS, VNNI_EVEX, VNNI_VEX};
use crate::x86::{each_token, for_each_group_run, prefetch_ahead};

/// Rows of a group (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 16;
/// Tokens of a full tile in the fast order (8 weight vectors + 4 accumulators + the
/// step's temporaries fill the 16 registers).
const FAST_TOKENS: usize = 4;

/// A format in the 16-row layout, as one 8-row half of a group's block.
trait Half {
    /// Bytes of one block of a group (16 rows' blocks).
    const BLOCK: usize;
    /// There are minimums and an `m·s` term (Q4_1).
    const MIN: bool;
    /// The quants are stored offset; the dot products start at the activations'
    /// group corrections.
    const OFFSET: bool;
    /// The 8 scales and the 8 minimums (zeros without) of rows `8h..8h + 8` of the
    /// group's block at `p`; every format's block starts with its 16 `d`.
    #[inline(always)]
    unsafe fn scales(p: *const u8, h: usize) -> (__m256, __m256) {
        (d8(p, h), _mm256_setzero_ps())
    }
    /// Steps `j` and `j + 4` (`j < 4`) of those rows.
    unsafe fn steps(p: *const u8, h: usize, j: usize) -> (__m256i, __m256i);
}

/// The `d` (f16) of rows `8h..8h + 8`: the group's block starts with its 16 `d`.
#[inline(always)]
unsafe fn d8(p: *const u8, h: usize) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p.add(16 * h).cast()))
}

/// The low and the high nibbles of half `h` of the 64-byte run at `run`.
#[inline(always)]
unsafe fn nibbles(run: *const u8, h: usize) -> (__m256i, __m256i) {
    let low = _mm256_set1_epi8(0x0F);
    let q = _mm256_loadu_si256(run.add(32 * h).cast());
    (_mm256_and_si256(q, low), _mm256_and_si256(_mm256_srli_epi16::<4>(q), low))
}

/// Q4_1: 16 `d`, 16 `m` (f16), then 4 runs of 64 bytes of nibbles; step `j` is the
/// low nibbles of run `j` for `j < 4`, the high nibbles of run `j − 4` after.
struct Q4_1;
impl Half for Q4_1 {
    const BLOCK: usize = 16 * 20;
    const MIN: bool = true;
    const OFFSET: bool = false;
    #[inline(always)]
    unsafe fn scales(p: *const u8, h: usize) -> (__m256, __m256) {
        (d8(p, h), _mm256_cvtph_ps(_mm_loadu_si128(p.add(32 + 16 * h).cast())))
    }
    #[inline(always)]
    unsafe fn steps(p: *const u8, h: usize, j: usize) -> (__m256i, __m256i) {
        nibbles(p.add(64 + 64 * j), h)
    }
}

/// Q5_0: 16 `d` (f16), 8 masks of the fifth bits (64 bits each, one per step), then
/// 4 runs of 64 bytes of nibbles as Q4_1's; stored offset by 16 (`nibble + 16·bit`).
struct Q5_0;
impl Half for Q5_0 {
    const BLOCK: usize = 16 * 22;
    const MIN: bool = false;
    const OFFSET: bool = true;
    #[inline(always)]
    unsafe fn steps(p: *const u8, h: usize, j: usize) -> (__m256i, __m256i) {
        let (lo, hi) = nibbles(p.add(96 + 64 * j), h);
        // Half `h` of step `k`'s mask: bits 32h..32h + 32, one per byte of the half.
        let fifth = |k: usize| {
            let bits = p.add(32 + 8 * k + 4 * h).cast::<u32>().read_unaligned();
            _mm256_and_si256(crate::x86::avx2::bytes_from_bits(bits), _mm256_set1_epi8(16))
        };
        (_mm256_add_epi8(lo, fifth(j)), _mm256_add_epi8(hi, fifth(j + 4)))
    }
}

/// Q8_0: 16 `d` (f16), then 8 runs of 64 bytes, run `j` = step `j`; stored offset by 128.
struct Q8_0;
impl Half for Q8_0 {
    const BLOCK: usize = 16 * 34;
    const MIN: bool = false;
    const OFFSET: bool = true;
    #[inline(always)]
    unsafe fn steps(p: *const u8, h: usize, j: usize) -> (__m256i, __m256i) {
        let flip = _mm256_set1_epi8(0x80u8 as i8);
        let run = |k: usize| _mm256_xor_si256(_mm256_loadu_si256(p.add(32 + 64 * k + 32 * h).cast()), flip);
        (run(j), run(j + 4))
    }
}

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

/// Quants `4j..4j + 4` of token `t`'s block `b`, in every lane.
#[inline(always)]
unsafe fn token_step(a: &Q8View<'_>, t: usize, b: usize, j: usize) -> __m256i {
    _mm256_set1_epi32(a.qs.as_ptr().add(t * a.qs_stride + b * 32 + 4 * j).cast::<i32>().read_unaligned())
}

/// One tile in the fast order: the 16 rows of the group at `group` (output rows
/// `r0..r0 + 16`) × tokens `t0..t0 + C`. Each token's arithmetic is the same
/// whatever the tile, so results are batch-invariant.
#[inline(always)]
unsafe fn tile_fast<F: Half, const V: u8, const C: usize>(
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
            let p = group.add(b * F::BLOCK);
            if h == 0 {
                prefetch_ahead(group, b * F::BLOCK, F::BLOCK);
            }
            let (dw, mw) = F::scales(p, h);
            let mut w = [_mm256_setzero_si256(); 8];
            for j in 0..4 {
                (w[j], w[j + 4]) = F::steps(p, h, j);
            }
            each_token!(c in 0..C => {
                let t = t0 + c;
                let k = t * a.d_stride + b;
                let mut isum = if F::OFFSET {
                    _mm256_set1_epi32(*a.gb.get_unchecked(t * a.nb + b))
                } else {
                    _mm256_setzero_si256()
                };
                for (j, wj) in w.iter().enumerate() {
                    isum = dot_acc::<V>(isum, *wj, token_step(a, t, b, j));
                }
                let d = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(k)));
                acc[c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc[c]);
                if F::MIN {
                    acc[c] = _mm256_fmadd_ps(mw, _mm256_set1_ps(*a.s.get_unchecked(k)), acc[c]);
                }
            });
        }
        for (c, y) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.at(t0 + c, r0 + 8 * h), *y);
        }
    }
}

/// Token `t` in ggml's order (`quant::q4_1::vec_dot`, `quant::q8::vec_dot_q8_0`):
/// ggml's 8 lanes are 8 vectors here, one per step, each lane a row.
#[inline(always)]
unsafe fn tile_exact<F: Half, const V: u8>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t: usize,
) {
    for h in 0..2 {
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut mins = _mm256_setzero_ps();
        for b in 0..nb {
            let p = group.add(b * F::BLOCK);
            if h == 0 {
                prefetch_ahead(group, b * F::BLOCK, F::BLOCK);
            }
            let (dw, mw) = F::scales(p, h);
            let k = t * a.d_stride + b;
            if F::MIN {
                mins = _mm256_fmadd_ps(mw, _mm256_set1_ps(*a.s.get_unchecked(k)), mins);
            }
            let d = _mm256_mul_ps(dw, _mm256_set1_ps(*a.d.get_unchecked(k)));
            for j in 0..4 {
                let (lo, hi) = F::steps(p, h, j);
                for (step, wq) in [(j, lo), (j + 4, hi)] {
                    let init = if F::OFFSET {
                        _mm256_set1_epi32(*a.g.get_unchecked(t * a.d_stride + 8 * b + step))
                    } else {
                        _mm256_setzero_si256()
                    };
                    let sums = dot_acc::<V>(init, wq, token_step(a, t, b, step));
                    acc[step] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc[step]);
                }
            }
        }
        // ggml's `hsum_float_8`: ((l4 + l0) + (l6 + l2)) + ((l5 + l1) + (l7 + l3)), then
        // the `m·s` chain (ggml adds it last; without minimums there is none).
        let add = |x, y| _mm256_add_ps(x, y);
        let l = &acc;
        let sum = add(add(add(l[4], l[0]), add(l[6], l[2])), add(add(l[5], l[1]), add(l[7], l[3])));
        let y = if F::MIN { _mm256_add_ps(sum, mins) } else { sum };
        _mm256_storeu_ps(out.at(t, r0 + 8 * h), y);
    }
}

/// Fast tokens `t..end` of one group, in tiles of [`FAST_TOKENS`] then one tail tile.
#[inline(always)]
unsafe fn fast_tokens<F: Half, const V: u8>(
    group: *const u8,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    mut t: usize,
    end: usize,
) {
    while t + FAST_TOKENS <= end {
        tile_fast::<F, V, FAST_TOKENS>(group, nb, a, out, r0, t);
        t += FAST_TOKENS;
    }
    match end - t {
        0 => {}
        1 => tile_fast::<F, V, 1>(group, nb, a, out, r0, t),
        2 => tile_fast::<F, V, 2>(group, nb, a, out, r0, t),
        _ => tile_fast::<F, V, 3>(group, nb, a, out, r0, t),
    }
}

/// All tokens for the groups of `rows`, each run of one order through that order's tiles.
#[inline(always)]
unsafe fn drive<F: Half, const V: u8>(w: &QMatrix<'_>, a: &Q8View<'_>, rows: Range<usize>, out: &Out) {
    for_each_group_run!(w, rows, out, |group, nb, r0, t, end, fast| {
        if fast {
            fast_tokens::<F, V>(group, nb, a, out, r0, t, end);
        } else {
            for u in t..end {
                tile_exact::<F, V>(group, nb, a, out, r0, u);
            }
        }
    })
}

macro_rules! entry {
    ($name:ident, $fmt:ty, $features:literal, $v:expr) => {
        /// Kernel of a matrix in the 16-row layout (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`]; `rows` must start and end on a group
        /// boundary; the CPU must have the features named.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX2 kernel given the wrong activation layout") };
            drive::<$fmt, { $v }>(w, a, rows, out);
        }
    };
}

entry!(q4_1, Q4_1, "avx2,fma,f16c", MADDUBS);
entry!(q4_1_vex, Q4_1, "avx2,fma,f16c,avxvnni", VNNI_VEX);
entry!(q4_1_evex, Q4_1, "avx2,fma,f16c,avx512vnni,avx512vl", VNNI_EVEX);
entry!(q5_0, Q5_0, "avx2,fma,f16c", MADDUBS);
entry!(q5_0_vex, Q5_0, "avx2,fma,f16c,avxvnni", VNNI_VEX);
entry!(q5_0_evex, Q5_0, "avx2,fma,f16c,avx512vnni,avx512vl", VNNI_EVEX);
// Q8_0 needs `vpdpbusd` (see the module docs).
entry!(q8_0_vex, Q8_0, "avx2,fma,f16c,avxvnni", VNNI_VEX);
entry!(q8_0_evex, Q8_0, "avx2,fma,f16c,avx512vnni,avx512vl", VNNI_EVEX);
