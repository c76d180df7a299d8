//! AVX-512 kernel of Q8_0 weights (the nibble formats are in `avx512_nib`), and
//! helpers both use.
//!
//! One 512-bit vector holds two blocks. Per pair of blocks and tile entry (row `i`,
//! token `c`) the work is one `vpdpbusd` into 16 i32 lanes (8 per block), one
//! conversion and one FMA with the product of the two blocks' scales. The scales
//! of 16 blocks are read once per row (and once per token) and spread to each pair
//! with a permute. Reading them runs ahead of the quants by up to 16 blocks, which
//! keeps more of a big matrix's cache misses in flight: this kernel streams the
//! output matrix, the largest one, in every decode step.
//!
//! The activations are stored as `q + 128` (the unsigned operand); the extra
//! `128·Σw` is removed by starting each dot product at `−128·Σw`, computed once
//! per row and pair.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::drive_tiles;

/// Row tile (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 4;

/// Bytes per Q8_0 block.
const BYTES: usize = 34;

/// The 32 quants of the block at `p` in bytes 0..32 and, if `TWO`, those of the
/// next block in bytes 32..64 (zeros otherwise).
#[inline(always)]
unsafe fn quants<const TWO: bool>(p: *const u8) -> __m512i {
    let lo = _mm256_loadu_si256(p.add(2).cast());
    let hi = if TWO { _mm256_loadu_si256(p.add(BYTES + 2).cast()) } else { _mm256_setzero_si256() };
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// `acc + Σ a·b` over each 4 bytes (`a` unsigned, `b` signed).
#[inline(always)]
pub(crate) unsafe fn dot<const VNNI: bool>(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    if VNNI {
        _mm512_dpbusd_epi32(acc, a, b)
    } else {
        _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)))
    }
}

/// The little-endian u32 at the start of each of `1 <= n <= 16` blocks of `bytes`
/// bytes from `p` (zeros past `n`).
#[inline(always)]
pub(crate) unsafe fn block_words(p: *const u8, bytes: usize, n: usize) -> __m512i {
    // Lanes past `n` reread block `n - 1` (never past the row) and are then zeroed:
    // no stack round trip, which would stall on store forwarding.
    let last = n - 1;
    let at = |k: usize| p.add(k.min(last) * bytes).cast::<i32>().read_unaligned();
    let v = _mm512_setr_epi32(
        at(0),
        at(1),
        at(2),
        at(3),
        at(4),
        at(5),
        at(6),
        at(7),
        at(8),
        at(9),
        at(10),
        at(11),
        at(12),
        at(13),
        at(14),
        at(15),
    );
    let keep: __mmask16 = if n >= 16 { 0xFFFF } else { (1u16 << n) - 1 };
    _mm512_maskz_mov_epi32(keep, v)
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile<const R: usize, const C: usize>(w: &QMatrix<'_>, a: &Q8View<'_>, out: &Out, r0: usize, t0: usize) {
    let nb = w.cols() / 32;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut g = 0;
    while g < nb {
        let n = (nb - g).min(16);
        let mut dw = [_mm512_setzero_ps(); R];
        for i in 0..R {
            // The first 4 bytes of each of the group's blocks (`d` and 2 quants). Plain
            // loads, not a gather: a gather that misses the cache serializes its misses.
            let raw = block_words(rows[i].add(g * BYTES), BYTES, n);
            dw[i] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        }
        let da: [__m512; C] = std::array::from_fn(|c| _mm512_loadu_ps(a.d.as_ptr().add((t0 + c) * a.d_stride + g)));
        let mut k = 0;
        while k + 2 <= n {
            pair::<R, C, true>(&rows, a, t0, g, k, &dw, &da, &mut acc);
            k += 2;
        }
        if k < n {
            pair::<R, C, false>(&rows, a, t0, g, k, &dw, &da, &mut acc);
        }
        g += 16;
    }
    for (i, acc) in acc.iter().enumerate() {
        for (c, v) in acc.iter().enumerate() {
            out.set(t0 + c, r0 + i, _mm512_reduce_add_ps(*v));
        }
    }
}

/// Blocks `g + k` and (if `TWO`) `g + k + 1` of one tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pair<const R: usize, const C: usize, const TWO: bool>(
    rows: &[*const u8; R],
    a: &Q8View<'_>,
    t0: usize,
    g: usize,
    k: usize,
    dw: &[__m512; R],
    da: &[__m512; C],
    acc: &mut [[__m512; C]; R],
) {
    let idx = _mm512_add_epi32(
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_set1_epi32(k as i32),
    );
    let blk = g + k;
    let zero = _mm512_setzero_si512();
    let mut wq = [zero; R];
    let mut init = [zero; R];
    let mut dwp = [_mm512_setzero_ps(); R];
    for i in 0..R {
        wq[i] = quants::<TWO>(rows[i].add(blk * BYTES));
        init[i] = _mm512_sub_epi32(zero, dot::<true>(zero, _mm512_set1_epi8(0x80u8 as i8), wq[i]));
        dwp[i] = _mm512_permutexvar_ps(idx, dw[i]);
    }
    for c in 0..C {
        let y = _mm512_loadu_si512(a.qs.as_ptr().add((t0 + c) * a.qs_stride + blk * 32).cast());
        let dap = _mm512_permutexvar_ps(idx, da[c]);
        for i in 0..R {
            let p = dot::<true>(init[i], y, wq[i]);
            acc[i][c] = _mm512_fmadd_ps(_mm512_mul_ps(dwp[i], dap), _mm512_cvtepi32_ps(p), acc[i][c]);
        }
    }
}

/// The Q8_0 kernel (VNNI only: without it, `vpmaddubsw` would saturate on
/// `(q + 128)·w`, so the AVX2 kernel serves AVX-512 CPUs without VNNI).
///
/// # Safety
/// See [`crate::matmul::GemmFn`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn gemm_q8_0(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
    drive_tiles!(rows, out.n_tokens, 4, 4, tile[](w, a, out));
}
