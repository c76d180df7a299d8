//! `y = x·Wᵀ` for quantized weight matrices: the one entry point the model uses.
//!
//! A call quantizes all `n_tokens` activation rows once, to the weight type's dot
//! type, then splits the weight rows over the pool's threads (in multiples of the
//! kernels' row tile, so each thread reads only its own rows of `W`). Each kernel
//! computes tiles of a few weight rows × a few tokens with accumulators in
//! registers, so a weight block is loaded once per tile of tokens.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use half::{bf16, f16};

use crate::act::{Q8Buf, Q8View};
use crate::pool::ThreadPool;
use crate::quant::{self, align_of_type, BlockQ8K, BlockQ8_0, BlockQ8_1, DotType};
use crate::{GgmlType, KernelError};

use crate::cpu::Width;
pub use crate::cpu::{active_isa, detected_isa, Isa};
pub use crate::quant::dequantize_row;

/// How a matrix's blocks are laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row after row, as a GGUF file stores them.
    Rows,
    /// Groups of 4 rows, block by block: for each block the 4 rows' fields side
    /// by side, field after field — Q4_1: `d0 m0 d1 m1 d2 m2 d3 m3` (f16), then
    /// the 4 rows' 16 bytes of nibbles; Q5_0: `d0 d1 d2 d3`, the 4 rows' 4 bytes of
    /// fifth bits, then their nibbles. Same size as `Rows`; made once at load by
    /// [`interleave_as`], and read by kernels that fetch a block of 4 rows with one
    /// load per field.
    Interleaved4,
    /// Groups of 16 rows, block by block, laid out so that one 512-bit lane holds
    /// one row (Q4_1, Q5_0 and Q8_0): for each block the 16 rows' `d` (f16),
    /// Q4_1's 16 `m` or Q5_0's fifth bits as 8 masks of 64 bits, then runs of 64
    /// bytes, run `j` holding bytes `4j..4j + 4` of each row's quants side by side
    /// (row `i` at `4i`): 4 runs of nibbles (Q4_1, Q5_0), 8 of bytes (Q8_0). Its
    /// kernels compute the tokens flagged by [`MatmulScratch::set_fast_tokens`] (by
    /// default every one) in a faster order of their own: one f32 chain over the
    /// blocks' exact integer sums (`quant::q4_1::vec_dot_chain`), and the others in
    /// ggml's order (the bits of `Rows`).
    Interleaved16,
}

impl Layout {
    /// Rows per group: a matrix in this layout has a whole number of groups, and
    /// threads split it on group boundaries.
    pub fn group(self) -> usize {
        match self {
            Layout::Rows => 1,
            Layout::Interleaved4 => 4,
            Layout::Interleaved16 => 16,
        }
    }
}

/// A weight matrix: `rows` rows of `cols` elements of type `ty`, borrowed from a
/// model file (row-major) or from an interleaved copy (see [`Layout`]).
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_size: usize,
    data: &'a [u8],
    layout: Layout,
}

impl<'a> QMatrix<'a> {
    /// Row-major weight matrix: `rows` rows of `cols` elements of `ty`. Checks that `ty` is
    /// supported, cols is a whole number of blocks, data.len() == rows * row_size, and data
    /// is aligned for the block type.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: &'a [u8]) -> Result<Self, KernelError> {
        if !ty.is_supported() {
            return Err(KernelError::UnsupportedType(ty));
        }
        if !cols.is_multiple_of(ty.block_size()) {
            return Err(KernelError::PartialBlock { ty, cols, block_size: ty.block_size() });
        }
        let row_size = ty.row_size(cols).ok_or(KernelError::TooLarge { ty, rows, cols })?;
        let expected = row_size.checked_mul(rows).ok_or(KernelError::TooLarge { ty, rows, cols })?;
        if data.len() != expected {
            return Err(KernelError::WrongLength { ty, rows, cols, expected, actual: data.len() });
        }
        let align = align_of_type(ty);
        if !data.is_empty() && !(data.as_ptr() as usize).is_multiple_of(align) {
            return Err(KernelError::Misaligned { ty, align, addr: data.as_ptr() as usize });
        }
        Ok(QMatrix { ty, rows, cols, row_size, data, layout: Layout::Rows })
    }

    /// A matrix in an interleaved `layout` (as [`interleave_as`] makes it). Checks
    /// what [`QMatrix::new`] checks, and that the type and row count allow the
    /// layout.
    pub fn interleaved(
        layout: Layout,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        if layout == Layout::Rows || !layout_exists(layout, ty) || !rows.is_multiple_of(layout.group()) {
            return Err(KernelError::NoInterleaving { ty, rows });
        }
        Ok(QMatrix { layout, ..QMatrix::new(ty, rows, cols, data)? })
    }

    /// How the blocks are laid out.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Number of rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes per row.
    pub fn row_size(&self) -> usize {
        self.row_size
    }

    /// The bytes of row `r`.
    ///
    /// # Panics
    /// If `r >= rows()`, or the matrix is interleaved (its rows are not contiguous).
    pub fn row(&self, r: usize) -> &'a [u8] {
        assert!(r < self.rows, "row {r} of a matrix with {} rows", self.rows);
        assert_eq!(self.layout, Layout::Rows, "row {r} of an interleaved matrix");
        &self.data[r * self.row_size..(r + 1) * self.row_size]
    }

    /// All the matrix's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// The layout to repack a matrix of `ty` with `rows` rows into ([`interleave_as`]), where
/// the active level runs a faster kernel for it: at the AVX-512 levels Q4_1, Q5_0 and
/// (with VNNI) Q8_0 in groups of 16 rows where they can, else Q4_1 and Q5_0 in groups
/// of 4; at the 256-bit levels Q4_1, Q5_0 and (with `vpdpbusd`) Q8_0 in groups of 16;
/// `None` to keep the rows as they are.
pub fn interleaved_layout(ty: GgmlType, rows: usize) -> Option<Layout> {
    let isa = active_isa();
    let candidates: &[Layout] = match isa.width() {
        Width::W512 if ty == GgmlType::Q8_0 && isa < Isa::Avx512Vnni => &[],
        Width::W512 => &[Layout::Interleaved16, Layout::Interleaved4],
        Width::W256 if ty == GgmlType::Q8_0 && isa != Isa::AvxVnni => &[],
        Width::W256 if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0) => &[Layout::Interleaved16],
        _ => &[],
    };
    candidates.iter().copied().find(|&l| layout_exists(l, ty) && rows.is_multiple_of(l.group()))
}

/// Whether `layout` is defined for `ty`.
fn layout_exists(layout: Layout, ty: GgmlType) -> bool {
    match layout {
        Layout::Rows => true,
        Layout::Interleaved4 => matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_0),
        Layout::Interleaved16 => matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0),
    }
}

/// The copy of a row-major matrix in `layout` (an interleaved one defined for
/// `ty` and `rows`, e.g. the one [`interleaved_layout`] picks), whatever this CPU
/// runs; `None` for the rows as they are or an invalid matrix.
pub fn interleave_as(layout: Layout, ty: GgmlType, rows: usize, cols: usize, data: &[u8]) -> Option<Vec<u64>> {
    let mut words = vec![0u64; data.len().div_ceil(8)];
    interleave_into(layout, ty, rows, cols, data, &mut words).then_some(words)
}

/// [`interleave_as`] into `words` (zeroed, `data.len().div_ceil(8)` long, e.g. a
/// [`crate::memory::HugeBuf`]); `false` (nothing written) where `interleave_as`
/// gives `None` or `words` has the wrong length.
pub fn interleave_into(layout: Layout, ty: GgmlType, rows: usize, cols: usize, data: &[u8], words: &mut [u64]) -> bool {
    if layout == Layout::Rows
        || !layout_exists(layout, ty)
        || !rows.is_multiple_of(layout.group())
        || words.len() != data.len().div_ceil(8)
    {
        return false;
    }
    let Ok(m) = QMatrix::new(ty, rows, cols, data) else { return false };
    let (bytes, nb, g) = (ty.type_size(), cols / ty.block_size(), layout.group());
    let out = bytemuck::cast_slice_mut::<u64, u8>(words);
    for group in 0..rows / g {
        for b in 0..nb {
            let at = group * g * m.row_size + b * g * bytes;
            for i in 0..g {
                let block = &m.row(g * group + i)[b * bytes..(b + 1) * bytes];
                for (from, to, len) in block_moves(layout, ty, i) {
                    out[at + to..][..len].copy_from_slice(&block[from..from + len]);
                }
                if let Some(masks) = fifth_bit_masks(layout, ty) {
                    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
                    for e in (0..32).filter(|e| qh >> e & 1 == 1) {
                        let bit = 4 * i + e % 4;
                        out[at + masks + 8 * (e / 4) + bit / 8] |= 1 << (bit % 8);
                    }
                }
            }
        }
    }
    true
}

/// Where the bytes of row `i`'s block go in its group's block of `layout`:
/// (offset in the row-major block, offset in the group's block, length).
fn block_moves(layout: Layout, ty: GgmlType, i: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    // Whole fields, then `n` runs of 4 bytes of each row: run `j` from byte
    // `from + 4j` of the row-major block to `to + 64j + 4i` of the group's block.
    let none = (0, 0, 0);
    let (fields, (from, to, n)) = match (layout, ty) {
        // d and m together; nibbles.
        (Layout::Interleaved4, GgmlType::Q4_1) => ([(0, 4 * i, 4), (4, 16 + 16 * i, 16), none], (0, 0, 0)),
        // d; fifth bits; nibbles.
        (Layout::Interleaved4, GgmlType::Q5_0) => ([(0, 2 * i, 2), (2, 8 + 4 * i, 4), (6, 24 + 16 * i, 16)], (0, 0, 0)),
        // d; m; 4 runs of nibbles.
        (Layout::Interleaved16, GgmlType::Q4_1) => ([(0, 2 * i, 2), (2, 32 + 2 * i, 2), none], (4, 64, 4)),
        // d; the fifth bits (see `fifth_bit_masks`); 4 runs of nibbles.
        (Layout::Interleaved16, GgmlType::Q5_0) => ([(0, 2 * i, 2), none, none], (6, 96, 4)),
        // d; 8 runs of quants.
        (Layout::Interleaved16, GgmlType::Q8_0) => ([(0, 2 * i, 2), none, none], (2, 32, 8)),
        _ => ([none; 3], (0, 0, 0)),
    };
    let runs = (0..n).map(move |j| (from + 4 * j, to + 64 * j + 4 * i, 4));
    fields.into_iter().filter(|f| f.2 > 0).chain(runs)
}

/// The row-major bytes of block `b` of row `r` of an interleaved matrix (the first
/// `type_size` of them).
pub(crate) fn interleaved_block(w: &QMatrix, r: usize, b: usize) -> [u8; 34] {
    let (bytes, g) = (w.ty().type_size(), w.layout().group());
    let at = (r / g) * g * w.row_size() + b * g * bytes;
    let mut block = [0u8; 34];
    for (from, to, len) in block_moves(w.layout(), w.ty(), r % g) {
        block[from..from + len].copy_from_slice(&w.data()[at + to..][..len]);
    }
    if let Some(masks) = fifth_bit_masks(w.layout(), w.ty()) {
        let mut qh = 0u32;
        for e in 0..32 {
            let bit = 4 * (r % g) + e % 4;
            qh |= u32::from(w.data()[at + masks + 8 * (e / 4) + bit / 8] >> (bit % 8) & 1) << e;
        }
        block[2..6].copy_from_slice(&qh.to_le_bytes());
    }
    block
}

/// Where the 16-row layout keeps Q5_0's fifth bits: 8 masks of 64 bits at this
/// offset of a group's block, mask `j` holding bit `k` of quant `4j + k` of row
/// `i` at bit `4i + k` (the byte lanes of dot-product step `j`).
fn fifth_bit_masks(layout: Layout, ty: GgmlType) -> Option<usize> {
    (layout == Layout::Interleaved16 && ty == GgmlType::Q5_0).then_some(32)
}

/// Dequantizes row `r` of `w`, whatever its layout, into `out` (`cols` values).
///
/// # Panics
/// If `r >= w.rows()` or `out.len() != w.cols()`.
pub fn dequantize_matrix_row(w: &QMatrix, r: usize, out: &mut [f32]) {
    assert!(r < w.rows(), "row {r} of a matrix with {} rows", w.rows());
    match w.layout() {
        Layout::Rows => dequantize_row(w.ty(), w.row(r), out).expect("a valid matrix's row"),
        Layout::Interleaved4 | Layout::Interleaved16 => {
            let (bytes, bs) = (w.ty().type_size(), w.ty().block_size());
            for (b, o) in out.chunks_exact_mut(bs).enumerate() {
                let block = interleaved_block(w, r, b);
                dequantize_row(w.ty(), &block[..bytes], o).expect("one whole block");
            }
        }
    }
}

/// Reusable buffers for the quantized activations of [`matmul`]; after the largest
/// shape has been seen once, calls do not allocate.
#[derive(Default)]
pub struct MatmulScratch {
    /// Which tokens may use a layout's fast order (see [`MatmulScratch::set_fast_tokens`]).
    fast: Vec<bool>,
    q8: Q8Buf,
    b8_0: Vec<BlockQ8_0>,
    b8_1: Vec<BlockQ8_1>,
    b8k: Vec<BlockQ8K>,
    h16: Vec<f16>,
    bh16: Vec<bf16>,
    f32s: Vec<f32>,
}

impl MatmulScratch {
    /// Lets the products that follow compute token `t` in the fast order of the
    /// matrix's layout where `fast[t]` (only [`Layout::Interleaved16`] has one: one
    /// f32 chain over the blocks' exact integer sums), and in ggml's order elsewhere. It applies to
    /// the calls whose token count equals `fast.len()`; every other call, and
    /// every call after [`MatmulScratch::clear_fast_tokens`], uses ggml's order for
    /// all tokens. A model sets it for the tokens it decodes, so that prompts are
    /// computed exactly as llama.cpp computes them while decoding takes the fast
    /// path; each token's result depends only on its own flag, never on the batch.
    pub fn set_fast_tokens(&mut self, fast: impl IntoIterator<Item = bool>) {
        self.fast.clear();
        self.fast.extend(fast);
    }

    /// Back to ggml's order for every token.
    pub fn clear_fast_tokens(&mut self) {
        self.fast.clear();
    }
}

impl std::fmt::Debug for MatmulScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatmulScratch").finish_non_exhaustive()
    }
}

/// Activations in the layout a kernel reads, `n_tokens` rows of them.
pub(crate) enum Acts<'a> {
    /// ggml Q8_0 blocks, `(n_tokens, nb)`.
    Q8_0(&'a [BlockQ8_0]),
    /// ggml Q8_1 blocks, `(n_tokens, nb)`.
    Q8_1(&'a [BlockQ8_1]),
    /// ggml Q8_K blocks, `(n_tokens, nb)`.
    Q8K(&'a [BlockQ8K]),
    /// f16 values, `(n_tokens, cols)`.
    F16(&'a [f16]),
    /// bf16 values, `(n_tokens, cols)`.
    BF16(&'a [bf16]),
    /// f32 values (rounded to the weight type if it is F16/BF16), `(n_tokens, cols)`.
    F32(&'a [f32]),
    /// The SIMD layout of Q8_0/Q8_1 values (see `act`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Q8(Q8View<'a>),
}

/// Where a kernel writes: `y` of shape `(n_tokens, ld)`. Threads write disjoint rows
/// (columns of `y`) through this shared handle.
pub(crate) struct Out<'f> {
    ptr: *mut f32,
    ld: usize,
    pub(crate) n_tokens: usize,
    /// Token `t` may use the layout's fast order where `fast[t]` (empty: none may).
    fast: &'f [bool],
}

// SAFETY: `Out` is only used inside one `pool.run` region, while the `&mut [f32]` it
// was made from is borrowed, and each thread writes only its own rows `r`.
unsafe impl Sync for Out<'_> {}

impl Out<'_> {
    /// Writes `y[t][r] = v`.
    ///
    /// # Safety
    /// `t < n_tokens`, `r < ld`, and no other thread writes row `r` in this region.
    #[inline(always)]
    pub(crate) unsafe fn set(&self, t: usize, r: usize, v: f32) {
        debug_assert!(t < self.n_tokens && r < self.ld);
        // SAFETY: in bounds of the `(n_tokens, ld)` buffer per the caller's contract.
        unsafe { *self.ptr.add(t * self.ld + r) = v };
    }
}

impl Out<'_> {
    /// Whether token `t` may use the layout's fast order.
    #[inline(always)]
    pub(crate) fn fast(&self, t: usize) -> bool {
        self.fast.get(t).copied().unwrap_or(false)
    }

    /// The address of `y[t][r]`, for kernels that store several rows at once.
    ///
    /// # Safety
    /// `t < n_tokens` and `r < ld`; writes through it follow [`Out::set`]'s contract
    /// for every row they touch.
    #[inline(always)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) unsafe fn at(&self, t: usize, r: usize) -> *mut f32 {
        debug_assert!(t < self.n_tokens && r < self.ld);
        // SAFETY: in bounds per the caller's contract.
        unsafe { self.ptr.add(t * self.ld + r) }
    }
}

/// A kernel: computes `y[t][r]` for every token and every `r` in `rows`.
///
/// # Safety
/// The CPU must support the kernel's instruction set, `acts` must be the layout the
/// kernel was selected with, and `rows` must be this thread's alone.
pub(crate) type GemmFn = unsafe fn(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out);

/// How the activations are prepared for a kernel.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // used by the x86-64 kernels only
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prep {
    /// ggml's block layout of the dot type (scalar kernels).
    Blocks,
    /// The SIMD Q8 layout (see `act`).
    Q8 {
        /// Scale of the group corrections: `−Σq << shift`.
        shift: u32,
    },
    /// Q8_K blocks.
    Q8K,
    /// f32 rounded to the weight type.
    Float,
}

/// y = x · Wᵀ: x is (n_tokens, w.cols()) row-major f32, y is (n_tokens, w.rows()) row-major.
/// Quantizes x once (all tokens) to the weight's dot type, then splits work over the pool's threads.
pub fn matmul(w: &QMatrix, x: &[f32], n_tokens: usize, y: &mut [f32], scratch: &mut MatmulScratch, pool: &ThreadPool) {
    matmul_with_isa(active_isa(), w, x, n_tokens, y, scratch, pool);
}

/// [`matmul`] with an explicit instruction-set level, for tests and benchmarks.
///
/// # Panics
/// If the shapes disagree or this CPU lacks `isa` ([`Isa::is_available`]).
pub fn matmul_with_isa(
    isa: Isa,
    w: &QMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut MatmulScratch,
    pool: &ThreadPool,
) {
    assert_eq!(x.len(), n_tokens * w.cols(), "matmul: x has {} values, want {n_tokens}x{}", x.len(), w.cols());
    assert_eq!(y.len(), n_tokens * w.rows(), "matmul: y has {} values, want {n_tokens}x{}", y.len(), w.rows());
    assert!(isa.is_available(), "matmul: this CPU cannot run {isa} kernels");
    if n_tokens == 0 || w.rows() == 0 {
        return;
    }
    if w.cols() == 0 {
        y.fill(0.0); // an empty sum
        return;
    }
    let (prep, kernel, row_tile) = select(w, isa);
    let fast = std::mem::take(&mut scratch.fast);
    let acts = prepare(scratch, prep, isa, w, x, n_tokens, pool);
    let out = Out { ptr: y.as_mut_ptr(), ld: w.rows(), n_tokens, fast: fast_for(&fast, n_tokens) };
    let units = w.rows().div_ceil(row_tile);
    let n_threads = pool.n_threads().min(units);
    let claims = Claims::new(units, n_threads, n_tokens);
    let work = |_: usize| {
        while let Some(u) = claims.next() {
            let rows = u.start * row_tile..(u.end * row_tile).min(w.rows());
            // SAFETY: `select` returned a kernel for `isa`, which this CPU has (asserted
            // above); `acts` was prepared with that kernel's `prep`; each range of
            // units is claimed once, so threads write disjoint rows.
            unsafe { kernel(w, &acts, rows, &out) };
        }
    };
    if n_threads == 1 {
        work(0);
    } else {
        pool.run(&work);
    }
    scratch.fast = fast;
}

/// The most matrices one [`matmul_multi`] call takes.
pub const MAX_MULTI: usize = 4;

/// `ys[i] = x · ws[i]ᵀ` for matrices that read the same activations (a layer's
/// query/key/value projections, or its gate and up projections): `x` is quantized
/// once and all the products run in one parallel region, each thread taking an
/// equal share of all the matrices' row tiles. Each output is computed exactly as
/// [`matmul`] computes it. Matrices of different types or widths fall back to one
/// `matmul` per matrix.
///
/// # Panics
/// If more than [`MAX_MULTI`] matrices are given, `ws` and `ys` differ in length, or
/// a shape disagrees (as for `matmul`).
pub fn matmul_multi(
    ws: &[QMatrix],
    x: &[f32],
    n_tokens: usize,
    ys: &mut [&mut [f32]],
    scratch: &mut MatmulScratch,
    pool: &ThreadPool,
) {
    let isa = active_isa();
    assert!(ws.len() <= MAX_MULTI && ws.len() == ys.len(), "matmul_multi: {} matrices, {} outputs", ws.len(), ys.len());
    let Some(first) = ws.first() else { return };
    let same_shape = ws.iter().all(|w| w.ty() == first.ty() && w.cols() == first.cols() && w.rows() > 0);
    let selected: [Option<(Prep, GemmFn, usize)>; MAX_MULTI] =
        std::array::from_fn(|i| ws.get(i).map(|w| select(w, isa)));
    let same_prep = selected.iter().flatten().all(|k| k.0 == selected[0].map_or(k.0, |f| f.0));
    if !same_shape || !same_prep || n_tokens == 0 || first.cols() == 0 {
        for (w, y) in ws.iter().zip(ys.iter_mut()) {
            matmul_with_isa(isa, w, x, n_tokens, y, scratch, pool);
        }
        return;
    }
    for (w, y) in ws.iter().zip(ys.iter()) {
        assert_eq!(
            x.len(),
            n_tokens * w.cols(),
            "matmul_multi: x has {} values, want {n_tokens}x{}",
            x.len(),
            w.cols()
        );
        assert_eq!(
            y.len(),
            n_tokens * w.rows(),
            "matmul_multi: y has {} values, want {n_tokens}x{}",
            y.len(),
            w.rows()
        );
    }
    let prep = selected[0].expect("one matrix at least").0;
    let fast = std::mem::take(&mut scratch.fast);
    let acts = prepare(scratch, prep, isa, first, x, n_tokens, pool);
    let outs: [Option<Out>; MAX_MULTI] = std::array::from_fn(|i| {
        ys.get_mut(i).map(|y| Out { ptr: y.as_mut_ptr(), ld: ws[i].rows(), n_tokens, fast: fast_for(&fast, n_tokens) })
    });
    // Row tiles of every matrix, numbered one after the other.
    let units: [usize; MAX_MULTI] =
        std::array::from_fn(|i| ws.get(i).zip(selected[i]).map_or(0, |(w, k)| w.rows().div_ceil(k.2)));
    let total: usize = units.iter().sum();
    let n_threads = pool.n_threads().min(total);
    let claims = Claims::new(total, n_threads, n_tokens);
    let work = |_: usize| {
        while let Some(mine) = claims.next() {
            run_units(mine, ws, &selected, &units, &outs, &acts);
        }
    };
    if n_threads == 1 {
        work(0);
    } else {
        pool.run(&work);
    }
    scratch.fast = fast;
}

/// Runs the row tiles `mine` of the matrices of a [`matmul_multi`] call (numbered
/// one matrix after the other).
fn run_units(
    mine: Range<usize>,
    ws: &[QMatrix],
    selected: &[Option<(Prep, GemmFn, usize)>; MAX_MULTI],
    units: &[usize; MAX_MULTI],
    outs: &[Option<Out>; MAX_MULTI],
    acts: &Acts<'_>,
) {
    let mut first_unit = 0;
    for (i, w) in ws.iter().enumerate() {
        let (_, kernel, row_tile) = selected[i].expect("selected for every matrix");
        let here = first_unit..first_unit + units[i];
        first_unit = here.end;
        let (start, end) = (mine.start.max(here.start), mine.end.min(here.end));
        if start >= end {
            continue;
        }
        let rows = (start - here.start) * row_tile..((end - here.start) * row_tile).min(w.rows());
        let out = outs[i].as_ref().expect("an output for every matrix");
        // SAFETY: as in `matmul_with_isa`: the kernel was selected for `isa`, which
        // this CPU has; `acts` was prepared with the prep all these kernels share;
        // each range of units is claimed once, so threads write disjoint rows.
        unsafe { kernel(w, acts, rows, out) };
    }
}

/// Ranges of work units handed out from a shared counter. A large product is cut
/// into a few claims per thread, so a thread that runs slower (a core shared with
/// another process) takes fewer instead of keeping the others waiting at the end
/// of the region; a small one (a single token's projections) into one claim per
/// thread, as a static split, since each claim costs a contended atomic and a
/// kernel call. Each row's arithmetic is the same whoever computes it.
struct Claims {
    next: AtomicUsize,
    total: usize,
    grain: usize,
}

impl Claims {
    /// Claims per thread of a large product, on average.
    const PER_THREAD: usize = 4;
    /// Row tiles × tokens per thread from which a product counts as large.
    const LARGE: usize = 256;

    fn new(total: usize, n_threads: usize, n_tokens: usize) -> Claims {
        let grain = if total.saturating_mul(n_tokens) >= n_threads * Self::LARGE {
            (total / (n_threads * Self::PER_THREAD)).max(1)
        } else {
            total.div_ceil(n_threads)
        };
        Claims { next: AtomicUsize::new(0), total, grain }
    }

    fn next(&self) -> Option<Range<usize>> {
        let start = self.next.fetch_add(self.grain, Ordering::Relaxed);
        (start < self.total).then(|| start..(start + self.grain).min(self.total))
    }
}

/// The fast-order flags that apply to a call of `n_tokens` tokens.
fn fast_for(fast: &[bool], n_tokens: usize) -> &[bool] {
    if fast.len() == n_tokens {
        fast
    } else {
        &[]
    }
}

/// Quantizes `x` as `prep` says, into `scratch`.
fn prepare<'s>(
    scratch: &'s mut MatmulScratch,
    prep: Prep,
    isa: Isa,
    w: &QMatrix,
    x: &'s [f32],
    n_tokens: usize,
    pool: &ThreadPool,
) -> Acts<'s> {
    let cols = w.cols();
    let dot = DotType::of(w.ty()).expect("QMatrix holds a supported type");
    match (prep, dot) {
        (Prep::Q8 { shift }, _) => Acts::Q8(scratch.q8.quantize(isa, x, n_tokens, cols, shift, pool)),
        (Prep::Q8K, _) | (Prep::Blocks, DotType::Q8K) => {
            let nb = cols / crate::QK_K;
            let b = fill(&mut scratch.b8k, n_tokens * nb);
            let quantize = |tokens: Range<usize>, blocks: &mut [BlockQ8K]| {
                let xs = &x[tokens.start * cols..tokens.end * cols];
                #[cfg(target_arch = "x86_64")]
                match isa.width() {
                    // SAFETY: `matmul_with_isa` checked this CPU runs `isa`: AVX-512 F/BW/VL.
                    crate::cpu::Width::W512 => return unsafe { crate::x86::quantize::q8k_row_avx512(xs, blocks) },
                    // SAFETY: as above, AVX2.
                    crate::cpu::Width::W256 => return unsafe { crate::x86::quantize::q8k_row_avx2(xs, blocks) },
                    crate::cpu::Width::Scalar => {}
                }
                quant::q8_k::quantize_row_q8_k(xs, blocks);
            };
            if n_tokens >= 8 {
                pool.split_mut(b, nb, &quantize);
            } else {
                quantize(0..n_tokens, b);
            }
            Acts::Q8K(b)
        }
        (Prep::Blocks, DotType::Q8_0) => {
            let b = fill(&mut scratch.b8_0, n_tokens * cols / quant::QK);
            quant::q8::quantize_row_q8_0(x, b);
            Acts::Q8_0(b)
        }
        (Prep::Blocks, DotType::Q8_1) => {
            let b = fill(&mut scratch.b8_1, n_tokens * cols / quant::QK);
            quant::q8::quantize_row_q8_1(x, b);
            Acts::Q8_1(b)
        }
        (Prep::Blocks, DotType::F16) => {
            let b = fill(&mut scratch.h16, x.len());
            quant::float::quantize_row_f16(x, b);
            Acts::F16(b)
        }
        (Prep::Blocks, DotType::BF16) => {
            let b = fill(&mut scratch.bh16, x.len());
            quant::float::quantize_row_bf16(x, b);
            Acts::BF16(b)
        }
        (Prep::Blocks | Prep::Float, DotType::F32) => Acts::F32(x),
        (Prep::Float, DotType::F16) => {
            let b = fill(&mut scratch.f32s, x.len());
            for (o, &v) in b.iter_mut().zip(x) {
                *o = f16::from_f32(v).to_f32();
            }
            Acts::F32(b)
        }
        (Prep::Float, DotType::BF16) => {
            let b = fill(&mut scratch.f32s, x.len());
            for (o, &v) in b.iter_mut().zip(x) {
                *o = bf16::from_f32(v).to_f32();
            }
            Acts::F32(b)
        }
        (Prep::Float, _) => unreachable!("float preparation for a quantized type"),
    }
}

/// The first `n` items of `v`, grown if needed (never shrunk).
fn fill<T: Clone + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// The kernel for a matrix of type `ty` with `rows` rows at level `isa`: how to
/// prepare the activations, the kernel, and its row tile (threads split rows in
/// multiples of it). Every layout has a scalar kernel, so any level computes any
/// matrix.
fn select(w: &QMatrix, isa: Isa) -> (Prep, GemmFn, usize) {
    let (ty, rows) = (w.ty(), w.rows());
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = crate::x86::select(ty, rows, w.layout(), isa) {
        return k;
    }
    #[cfg(target_arch = "aarch64")]
    if let Some(k) = crate::arm::select(ty, rows, w.layout(), isa) {
        return k;
    }
    (Prep::Blocks, crate::scalar::gemm_fn(ty, rows, w.layout()), w.layout().group())
}
