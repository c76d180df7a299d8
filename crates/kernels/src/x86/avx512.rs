//! AVX-512 kernels of the 32-element formats (Q4_0, Q4_1, Q5_0, Q8_0).
//!
//! One 512-bit vector holds two blocks. Per pair of blocks and tile entry (row `i`,
//! token `c`) the work is one 8-bit dot product into 16 i32 lanes (8 per block),
//! one conversion and one FMA with the product of the two blocks' scales. The
//! scales of 16 blocks are gathered once per row (and loaded once per token) and
//! spread to each pair with a permute.
//!
//! Activations are signed for Q4_1 (its nibbles are the unsigned operand) and
//! stored as `q + 128` for the signed weight formats, whose quants are the signed
//! operand; the extra `128·Σw` is removed by starting each dot product at
//! `−128·Σw`, computed once per row and pair.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::x86::drive_tiles;

/// Row tile (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 4;

/// A 32-element weight format as the AVX-512 kernels see it.
trait Legacy {
    /// Bytes per block.
    const BYTES: usize;
    /// Quants are unsigned and there is a minimum `m` next to `d` (Q4_1).
    const UNSIGNED: bool;
    /// The 32 quants of the block at `p` in bytes 0..32 and, if `TWO`, those of the
    /// next block in bytes 32..64 (zeros otherwise); signed unless `UNSIGNED`.
    unsafe fn quants<const TWO: bool>(p: *const u8) -> __m512i;
}

/// Nibbles of the 16 bytes at `p` (and at `q` if `TWO`): element order of two blocks.
#[inline(always)]
unsafe fn nibbles<const TWO: bool>(p: *const u8, q: *const u8) -> __m512i {
    let lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
    let hi = if TWO { _mm256_broadcastsi128_si256(_mm_loadu_si128(q.cast())) } else { _mm256_setzero_si256() };
    let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
    let shifted = _mm512_srlv_epi64(both, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    _mm512_and_si512(shifted, _mm512_set1_epi8(0x0F))
}

struct Q4_0;
impl Legacy for Q4_0 {
    const BYTES: usize = 18;
    const UNSIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants<const TWO: bool>(p: *const u8) -> __m512i {
        let n = nibbles::<TWO>(p.add(2), p.add(Self::BYTES + 2));
        let off = if TWO { _mm512_set1_epi8(8) } else { _mm512_maskz_set1_epi8(u32::MAX as u64, 8) };
        _mm512_sub_epi8(n, off)
    }
}

struct Q4_1;
impl Legacy for Q4_1 {
    const BYTES: usize = 20;
    const UNSIGNED: bool = true;
    #[inline(always)]
    unsafe fn quants<const TWO: bool>(p: *const u8) -> __m512i {
        nibbles::<TWO>(p.add(4), p.add(Self::BYTES + 4))
    }
}

struct Q5_0;
impl Legacy for Q5_0 {
    const BYTES: usize = 22;
    const UNSIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants<const TWO: bool>(p: *const u8) -> __m512i {
        let n = nibbles::<TWO>(p.add(6), p.add(Self::BYTES + 6));
        let h0 = u64::from(p.add(2).cast::<u32>().read_unaligned());
        let h1 =
            if TWO { u64::from(p.add(Self::BYTES + 2).cast::<u32>().read_unaligned()) } else { u64::from(u32::MAX) };
        // (nibble | bit·16) − 16: subtract 16 where the fifth bit is clear.
        _mm512_mask_sub_epi8(n, !(h0 | (h1 << 32)), n, _mm512_set1_epi8(16))
    }
}

struct Q8_0;
impl Legacy for Q8_0 {
    const BYTES: usize = 34;
    const UNSIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants<const TWO: bool>(p: *const u8) -> __m512i {
        let lo = _mm256_loadu_si256(p.add(2).cast());
        let hi = if TWO { _mm256_loadu_si256(p.add(Self::BYTES + 2).cast()) } else { _mm256_setzero_si256() };
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }
}

/// `acc + Σ a·b` over each 4 bytes (`a` unsigned, `b` signed).
#[inline(always)]
unsafe fn dot<const VNNI: bool>(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    if VNNI {
        _mm512_dpbusd_epi32(acc, a, b)
    } else {
        _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)))
    }
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C`.
#[inline(always)]
unsafe fn tile<F: Legacy, const VNNI: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let nb = w.cols() / 32;
    let rows: [*const u8; R] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i) * w.row_size()));
    let offs = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(F::BYTES as i32),
    );
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut g = 0;
    while g < nb {
        let n = (nb - g).min(16);
        let kmask: __mmask16 = if n == 16 { 0xFFFF } else { (1u16 << n) - 1 };
        let mut dw = [_mm512_setzero_ps(); R];
        for i in 0..R {
            let base = rows[i].add(g * F::BYTES).cast::<i32>();
            let raw = _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), kmask, offs, base);
            dw[i] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
            if F::UNSIGNED {
                let m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(raw)));
                for c in 0..C {
                    let s = _mm512_loadu_ps(a.s.as_ptr().add((t0 + c) * a.d_stride + g));
                    acc[i][c] = _mm512_fmadd_ps(m, s, acc[i][c]);
                }
            }
        }
        let da: [__m512; C] = std::array::from_fn(|c| _mm512_loadu_ps(a.d.as_ptr().add((t0 + c) * a.d_stride + g)));
        let mut k = 0;
        while k + 2 <= n {
            pair::<F, VNNI, R, C, true>(&rows, a, t0, g, k, &dw, &da, &mut acc);
            k += 2;
        }
        if k < n {
            pair::<F, VNNI, R, C, false>(&rows, a, t0, g, k, &dw, &da, &mut acc);
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
unsafe fn pair<F: Legacy, const VNNI: bool, const R: usize, const C: usize, const TWO: bool>(
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
        wq[i] = F::quants::<TWO>(rows[i].add(blk * F::BYTES));
        if !F::UNSIGNED {
            init[i] = _mm512_sub_epi32(zero, dot::<VNNI>(zero, _mm512_set1_epi8(0x80u8 as i8), wq[i]));
        }
        dwp[i] = _mm512_permutexvar_ps(idx, dw[i]);
    }
    for c in 0..C {
        let y = _mm512_loadu_si512(a.qs.as_ptr().add((t0 + c) * a.qs_stride + blk * 32).cast());
        let dap = _mm512_permutexvar_ps(idx, da[c]);
        for i in 0..R {
            let p = if F::UNSIGNED { dot::<VNNI>(zero, wq[i], y) } else { dot::<VNNI>(init[i], y, wq[i]) };
            acc[i][c] = _mm512_fmadd_ps(_mm512_mul_ps(dwp[i], dap), _mm512_cvtepi32_ps(p), acc[i][c]);
        }
    }
}

macro_rules! entry {
    ($name:ident, $fmt:ty, $features:literal, $vnni:tt) => {
        /// AVX-512 kernel (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = $features)]
        unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 4, tile [$fmt, $vnni] (w, a, out));
        }
    };
}

entry!(q4_0_plain, Q4_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_1_plain, Q4_1, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q5_0_plain, Q5_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_0_vnni, Q4_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q4_1_vnni, Q4_1, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q5_0_vnni, Q5_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q8_0_vnni, Q8_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);

/// The Q4_0 kernel, with or without VNNI.
pub(crate) unsafe fn gemm_q4_0<const VNNI: bool>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    if VNNI {
        q4_0_vnni(w, acts, rows, out)
    } else {
        q4_0_plain(w, acts, rows, out)
    }
}

/// The Q4_1 kernel, with or without VNNI.
pub(crate) unsafe fn gemm_q4_1<const VNNI: bool>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    if VNNI {
        q4_1_vnni(w, acts, rows, out)
    } else {
        q4_1_plain(w, acts, rows, out)
    }
}

/// The Q5_0 kernel, with or without VNNI.
pub(crate) unsafe fn gemm_q5_0<const VNNI: bool>(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    if VNNI {
        q5_0_vnni(w, acts, rows, out)
    } else {
        q5_0_plain(w, acts, rows, out)
    }
}

/// The Q8_0 kernel (VNNI only: without it, `vpmaddubsw` would saturate on `(q + 128)·w`;
/// the AVX2 kernel serves AVX-512 CPUs without VNNI).
pub(crate) unsafe fn gemm_q8_0(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
    q8_0_vnni(w, acts, rows, out)
}
