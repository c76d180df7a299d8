//! AVX-512 kernels of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) in ggml's
//! order (see `quant::order`): per output, 8 f32 lanes, one fused multiply-add per
//! block, then ggml's pairwise sum of the lanes.
//!
//! One 512-bit vector holds one block of two weight rows (32 quants each, as
//! unsigned bytes), so an 8-bit dot product with the token's block, broadcast to
//! both halves, leaves exactly ggml's 8 integer lanes for each row; one conversion
//! and one FMA with the two rows' scale products then advance both rows' chains.
//! Signed formats are stored offset (`q + 8`, `q + 16`, `q + 128`); each dot
//! product starts at the activations' group correction (`−Σa << shift`, see `act`),
//! which takes the offset back out. Q4_1's `m·s` chain lives in one more vector,
//! lane `4i + c` for row `i`, token `c` of the tile.

use std::arch::x86_64::*;
use std::ops::Range;

use crate::act::Q8View;
use crate::matmul::{Acts, Out, QMatrix};
use crate::quant::order::hsum8;
use crate::x86::{drive_tiles, prefetch_ahead};

/// Row tile (threads split rows in multiples of it).
pub(crate) const ROWS: usize = 4;

/// A 32-element format as these kernels see it.
pub(crate) trait Format {
    /// Bytes per block.
    const BYTES: usize;
    /// There is a minimum `m` after `d` and an `m·s` chain (Q4_1, Q5_1).
    const MIN: bool;
    /// Log2 of the offset of the stored quants (0: none); the activations' group
    /// corrections must be made with this shift.
    const SHIFT: u32;
    /// The offset quants of the blocks at `a` and `b`: `[a: 32 | b: 32]`.
    unsafe fn pair(a: *const u8, b: *const u8) -> __m512i;
}

/// `[nibbles of the 16 bytes at a | of those at b]` in element order (low nibbles
/// first), one per byte.
#[inline(always)]
unsafe fn nibble_pair(a: *const u8, b: *const u8) -> __m512i {
    let lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(a.cast()));
    let hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.cast()));
    let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
    let shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    _mm512_and_si512(_mm512_srlv_epi64(both, shift), _mm512_set1_epi8(0x0F))
}

/// Q4_0: `q − 8`, stored as the nibble `q`.
pub(crate) struct Q4_0;
impl Format for Q4_0 {
    const BYTES: usize = 18;
    const MIN: bool = false;
    const SHIFT: u32 = 3;
    #[inline(always)]
    unsafe fn pair(a: *const u8, b: *const u8) -> __m512i {
        nibble_pair(a.add(2), b.add(2))
    }
}

/// Q4_1: the nibbles as they are.
pub(crate) struct Q4_1;
impl Format for Q4_1 {
    const BYTES: usize = 20;
    const MIN: bool = true;
    const SHIFT: u32 = 0;
    #[inline(always)]
    unsafe fn pair(a: *const u8, b: *const u8) -> __m512i {
        nibble_pair(a.add(4), b.add(4))
    }
}

/// Q5_0: `q − 16`, stored as `nibble | fifth bit · 16`.
pub(crate) struct Q5_0;
impl Format for Q5_0 {
    const BYTES: usize = 22;
    const MIN: bool = false;
    const SHIFT: u32 = 4;
    #[inline(always)]
    unsafe fn pair(a: *const u8, b: *const u8) -> __m512i {
        let q = nibble_pair(a.add(6), b.add(6));
        // Bit j of `qh` is element j's fifth bit: bytes 0..32 for `a`, 32..64 for `b`.
        let bits = u64::from(a.add(2).cast::<u32>().read_unaligned())
            | (u64::from(b.add(2).cast::<u32>().read_unaligned()) << 32);
        _mm512_mask_add_epi8(q, bits, q, _mm512_set1_epi8(16))
    }
}

/// Q5_1: `nibble | fifth bit · 16` as it is (no offset).
pub(crate) struct Q5_1;
impl Format for Q5_1 {
    const BYTES: usize = 24;
    const MIN: bool = true;
    const SHIFT: u32 = 0;
    #[inline(always)]
    unsafe fn pair(a: *const u8, b: *const u8) -> __m512i {
        let q = nibble_pair(a.add(8), b.add(8));
        let bits = u64::from(a.add(4).cast::<u32>().read_unaligned())
            | (u64::from(b.add(4).cast::<u32>().read_unaligned()) << 32);
        _mm512_mask_add_epi8(q, bits, q, _mm512_set1_epi8(16))
    }
}

/// Q8_0: `q`, stored as `q + 128`.
pub(crate) struct Q8_0;
impl Format for Q8_0 {
    const BYTES: usize = 34;
    const MIN: bool = false;
    const SHIFT: u32 = 7;
    #[inline(always)]
    unsafe fn pair(a: *const u8, b: *const u8) -> __m512i {
        let lo = _mm256_loadu_si256(a.add(2).cast());
        let hi = _mm256_loadu_si256(b.add(2).cast());
        let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
        _mm512_xor_si512(q, _mm512_set1_epi8(0x80u8 as i8))
    }
}

/// `acc + Σ a·b` over each 4 bytes (`a` unsigned, `b` signed; without VNNI the
/// pairwise 16-bit sums must not saturate, which holds for `a < 64`).
#[inline(always)]
pub(crate) unsafe fn dot<const VNNI: bool>(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    if VNNI {
        _mm512_dpbusd_epi32(acc, a, b)
    } else {
        _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1)))
    }
}

/// The f32 values of the first two f16 of the blocks at `p[0..4]` (`d`, and `m`
/// for Q4_1): `[d0, m0, d1, m1, d2, m2, d3, m3]` in the low 8 lanes.
#[inline(always)]
pub(crate) unsafe fn scales4(p: [*const u8; 4]) -> __m512 {
    let word = |k: usize| _mm_set1_epi32(p[k].cast::<i32>().read_unaligned());
    let v = _mm_blend_epi32::<0b1100>(
        _mm_blend_epi32::<0b0010>(word(0), word(1)),
        _mm_blend_epi32::<0b1000>(word(2), word(3)),
    );
    _mm512_castps256_ps512(_mm256_cvtph_ps(v))
}

/// Lanes of `v` picked by `idx` (the indices as a constant array).
#[inline(always)]
pub(crate) unsafe fn pick(v: __m512, idx: &[i32; 16]) -> __m512 {
    _mm512_permutexvar_ps(_mm512_loadu_si512(idx.as_ptr().cast()), v)
}

/// From `scales4`: `[d0 ×8 | d1 ×8]`, `[d2 ×8 | d3 ×8]`.
pub(crate) const PAIR_D: [[i32; 16]; 2] =
    [[0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2], [4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6]];
/// From `scales4`: `[d0 ×4, d1 ×4, d2 ×4, d3 ×4]` (lane `4i + c` holds row `i`'s).
pub(crate) const SPREAD_D: [i32; 16] = [0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6];
/// From `scales4`: `[m0 ×4, m1 ×4, m2 ×4, m3 ×4]`.
const SPREAD_M: [i32; 16] = [1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7];

/// Where a tile's weight blocks come from.
trait Source {
    /// Block `b` of the tile's 4 rows: the scales as [`scales4`] lays them out, and
    /// the offset quants of rows (0, 1) and (2, 3) as [`Format::pair`] does.
    unsafe fn block(&self, b: usize) -> (__m512, [__m512i; 2]);
}

/// Rows of a row-major matrix (rows past the tile's repeat its last one).
struct RowBlocks<F> {
    rows: [*const u8; 4],
    pairs: usize,
    step: usize,
    format: std::marker::PhantomData<F>,
}

impl<F: Format> Source for RowBlocks<F> {
    #[inline(always)]
    unsafe fn block(&self, b: usize) -> (__m512, [__m512i; 2]) {
        prefetch_ahead(self.rows[0], b * self.step, self.step);
        let at: [*const u8; 4] = self.rows.map(|r| r.add(b * F::BYTES));
        let mut wq = [_mm512_setzero_si512(); 2];
        for (p, q) in wq.iter_mut().enumerate().take(self.pairs) {
            *q = F::pair(at[2 * p], at[2 * p + 1]);
        }
        (scales4(at), wq)
    }
}

/// A group of 4 rows of an interleaved Q4_1 matrix (see `matmul::Layout`).
struct InterleavedQ4_1 {
    group: *const u8,
}

impl Source for InterleavedQ4_1 {
    #[inline(always)]
    unsafe fn block(&self, b: usize) -> (__m512, [__m512i; 2]) {
        const BLOCK: usize = 4 * Q4_1::BYTES;
        let p = self.group.add(b * BLOCK);
        prefetch_ahead(self.group, b * BLOCK, BLOCK);
        let scales = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(p.cast())));
        // 64-bit lanes 2i, 2i+1 hold row i's 16 bytes; each pair wants
        // [row a, row a, row b, row b], low nibbles from the first copy, high from the second.
        let q = _mm512_loadu_si512(p.add(16).cast());
        let wq = [
            interleaved_pair(q, _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3)),
            interleaved_pair(q, _mm512_setr_epi64(4, 5, 4, 5, 6, 7, 6, 7)),
        ];
        (scales, wq)
    }
}

/// A group of 4 rows of an interleaved Q5_0 matrix: per block the 4 scales
/// (8 bytes), the 4 rows' fifth bits (16 bytes), then their nibbles (64 bytes).
struct InterleavedQ5_0 {
    group: *const u8,
}

impl Source for InterleavedQ5_0 {
    #[inline(always)]
    unsafe fn block(&self, b: usize) -> (__m512, [__m512i; 2]) {
        const BLOCK: usize = 4 * Q5_0::BYTES;
        let p = self.group.add(b * BLOCK);
        prefetch_ahead(self.group, b * BLOCK, BLOCK);
        // [d0 d1 d2 d3] to the lanes `scales4` gives them: 0, 2, 4, 6.
        let d = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64(p.cast())));
        let scales = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0), d);
        let q = _mm512_loadu_si512(p.add(24).cast());
        let sixteen = _mm512_set1_epi8(16);
        let mut wq = [
            interleaved_pair(q, _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3)),
            interleaved_pair(q, _mm512_setr_epi64(4, 5, 4, 5, 6, 7, 6, 7)),
        ];
        for (k, w) in wq.iter_mut().enumerate() {
            // Rows 2k and 2k+1's fifth bits, side by side: bit j of the 64 is element j's.
            let bits = p.add(8 + 8 * k).cast::<u64>().read_unaligned();
            *w = _mm512_mask_add_epi8(*w, bits, *w, sixteen);
        }
        (scales, wq)
    }
}

/// The nibbles of two rows of a group's block, `q`'s 64-bit lanes picked by `idx`
/// as `[row a, row a, row b, row b]`: the low nibbles of the first copy, the high
/// nibbles of the second, one per byte (what [`nibble_pair`] gives for row-major
/// blocks).
#[inline(always)]
unsafe fn interleaved_pair(q: __m512i, idx: __m512i) -> __m512i {
    let shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutexvar_epi64(idx, q), shift), _mm512_set1_epi8(0x0F))
}

/// One tile: rows `r0..r0+R` × tokens `t0..t0+C` (`R, C <= 4`) of a row-major matrix.
#[inline(always)]
unsafe fn tile<F: Format, const VNNI: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    // Rows past `R` repeat the last one (read, never written).
    let rows: [*const u8; 4] = std::array::from_fn(|i| w.data().as_ptr().add((r0 + i.min(R - 1)) * w.row_size()));
    let src = RowBlocks::<F> { rows, pairs: R.div_ceil(2), step: R * F::BYTES, format: std::marker::PhantomData };
    tile_from::<F, VNNI, R, C>(&src, w.cols() / 32, a, out, r0, t0);
}

/// One tile: rows `r0..r0+4` × tokens `t0..t0+C` of an interleaved matrix.
#[inline(always)]
unsafe fn tile_interleaved<F: Format, const VNNI: bool, const R: usize, const C: usize>(
    w: &QMatrix<'_>,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    debug_assert!(R == 4 && r0.is_multiple_of(4), "interleaved groups are whole");
    let group = w.data().as_ptr().add(r0 * w.row_size());
    let nb = w.cols() / 32;
    if F::MIN {
        tile_from::<Q4_1, VNNI, 4, C>(&InterleavedQ4_1 { group }, nb, a, out, r0, t0);
    } else {
        tile_from::<Q5_0, VNNI, 4, C>(&InterleavedQ5_0 { group }, nb, a, out, r0, t0);
    }
}

/// The arithmetic of a tile, whatever the weights' layout.
#[inline(always)]
unsafe fn tile_from<F: Format, const VNNI: bool, const R: usize, const C: usize>(
    src: &impl Source,
    nb: usize,
    a: &Q8View<'_>,
    out: &Out,
    r0: usize,
    t0: usize,
) {
    let pairs = R.div_ceil(2);
    let mut acc = [[_mm512_setzero_ps(); C]; 2];
    let mut mins = _mm512_setzero_ps();
    for b in 0..nb {
        let (scales, wq) = src.block(b);
        let mut dw = [_mm512_setzero_ps(); 2];
        for p in 0..pairs {
            dw[p] = pick(scales, &PAIR_D[p]);
        }
        if F::MIN {
            let s = _mm512_broadcast_f32x4(_mm_loadu_ps(a.st.as_ptr().add(b * a.t_stride + t0)));
            mins = _mm512_fmadd_ps(pick(scales, &SPREAD_M), s, mins);
        }
        for c in 0..C {
            let t = t0 + c;
            let y = _mm512_broadcast_i64x4(_mm256_loadu_si256(a.qs.as_ptr().add(t * a.qs_stride + b * 32).cast()));
            let init = if F::SHIFT > 0 {
                _mm512_broadcast_i64x4(_mm256_loadu_si256(a.g.as_ptr().add(t * a.d_stride + 8 * b).cast()))
            } else {
                _mm512_setzero_si512()
            };
            let da = _mm512_set1_ps(*a.d.get_unchecked(t * a.d_stride + b));
            for p in 0..pairs {
                let sums = _mm512_cvtepi32_ps(dot::<VNNI>(init, wq[p], y));
                acc[p][c] = _mm512_fmadd_ps(_mm512_mul_ps(dw[p], da), sums, acc[p][c]);
            }
        }
    }
    let mut m = [0.0f32; 16];
    _mm512_storeu_ps(m.as_mut_ptr(), mins);
    for (p, acc) in acc.iter().take(pairs).enumerate() {
        for (c, v) in acc.iter().enumerate() {
            let mut lanes = [0.0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), *v);
            for h in 0..2 {
                let i = 2 * p + h;
                if i < R {
                    let half: &[f32; 8] = lanes[8 * h..8 * h + 8].try_into().expect("8 lanes");
                    let mut y = hsum8(half);
                    if F::MIN {
                        y += m[4 * i + c];
                    }
                    out.set(t0 + c, r0 + i, y);
                }
            }
        }
    }
}

macro_rules! entry {
    ($name:ident, $fmt:ty, $features:literal, $vnni:tt) => {
        /// AVX-512 kernel of a 32-element format (see the module docs).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`].
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 4, tile[$fmt, $vnni](w, a, out));
        }
    };
}

macro_rules! entry_interleaved {
    ($name:ident, $fmt:ty, $features:literal, $vnni:tt) => {
        /// AVX-512 kernel of an interleaved matrix (see `matmul::Layout`).
        ///
        /// # Safety
        /// See [`crate::matmul::GemmFn`]; `rows` must start and end on a group
        /// boundary (the row tile is 4).
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $name(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            let Acts::Q8(a) = acts else { unreachable!("AVX-512 kernel given the wrong activation layout") };
            drive_tiles!(rows, out.n_tokens, 4, 4, tile_interleaved[$fmt, $vnni](w, a, out));
        }
    };
}

entry_interleaved!(q4_1x4_plain, Q4_1, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry_interleaved!(q4_1x4_vnni, Q4_1, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry_interleaved!(q5_0x4_plain, Q5_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry_interleaved!(q5_0x4_vnni, Q5_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);

entry!(q4_0_plain, Q4_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_1_plain, Q4_1, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q5_0_plain, Q5_0, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q5_1_plain, Q5_1, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", false);
entry!(q4_0_vnni, Q4_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q4_1_vnni, Q4_1, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q5_0_vnni, Q5_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
entry!(q5_1_vnni, Q5_1, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
// Q8_0 needs VNNI: `vpmaddubsw` would saturate on `(q + 128)·a` (the AVX2 kernel
// serves AVX-512 CPUs without it).
entry!(q8_0_vnni, Q8_0, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);
