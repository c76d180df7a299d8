//! Weights as the forward passes use them: quantized matrices — repacked for the
//! kernels or copied as they are into huge-page slabs while a model loads (see
//! [`packed`]), else read where the memory-mapped file holds them — and small f32
//! vectors (norms, biases) copied out at load.
//!
//! Every tensor is checked against the shape the hyper-parameters predict before
//! it is used, so a file whose metadata and tensors disagree fails at load with a
//! message naming the tensor, not with an out-of-bounds read in a kernel.

use std::cell::RefCell;
use std::sync::Arc;

use kernels::matmul::{
    dequantize_matrix_row, dequantize_row, interleave_as, interleave_into, interleaved_layout, Layout, QMatrix,
};
use kernels::memory::{SlabArena, SlabWords};
use kernels::GgmlType;

use crate::error::ModelError;
use crate::gguf::{GgufFile, TensorInfo};

/// A weight matrix `(rows, cols)` = `(n_out, n_in)`, row-major in ggml's layout:
/// the GGUF tensor with `dims = [cols, rows]`.
pub struct Matrix {
    name: String,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: Bytes,
}

/// Where a matrix's bytes live.
enum Bytes {
    /// In the mapped file: the tensor at this index of `GgufFile::tensors()`.
    Mapped(Arc<GgufFile>, usize),
    /// Copied out: into the model's huge-page slabs (see [`packed`]), or because
    /// the file's alignment did not suit the kernels (`u64` storage keeps every
    /// block type aligned). Holds `len` bytes.
    Owned(Words, usize),
    /// Repacked at load into an interleaved `kernels::matmul::Layout`, where this
    /// CPU has a faster kernel for it. Holds `len` bytes.
    Interleaved(Words, usize, Layout),
}

/// The words of a matrix held in memory (repacked or copied out of the file): a
/// run of the model's slabs, or a buffer of its own.
enum Words {
    Slab(SlabWords),
    Own(Vec<u64>),
}

impl std::ops::Deref for Words {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        match self {
            Words::Slab(w) => w,
            Words::Own(w) => w,
        }
    }
}

impl std::ops::DerefMut for Words {
    fn deref_mut(&mut self) -> &mut [u64] {
        match self {
            Words::Slab(w) => w,
            Words::Own(w) => w,
        }
    }
}

/// Bytes per slab of repacked weights: 16 huge pages.
const SLAB_BYTES: usize = 32 << 20;

thread_local! {
    /// The arena of the model being loaded on this thread (see [`packed`]).
    static ARENA: RefCell<Option<SlabArena>> = const { RefCell::new(None) };
}

/// Runs `load` with the matrices it loads — repacked, or copied out of the file —
/// placed side by side in shared slabs backed by huge pages (`kernels::memory`):
/// a decode step streams every weight, and with 4 KiB pages nearly every page of
/// it is a TLB miss. Outside it, repacked matrices get buffers of their own and
/// the others are read where the file maps them.
pub(crate) fn packed<T>(load: impl FnOnce() -> T) -> T {
    /// Puts back the arena that was there before, also when `load` panics.
    struct Restore(Option<SlabArena>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            ARENA.with(|a| *a.borrow_mut() = outer);
        }
    }
    let _restore = Restore(ARENA.with(|a| a.borrow_mut().replace(SlabArena::new(SLAB_BYTES))));
    load()
}

impl Matrix {
    /// Loads the tensor `name` and checks that it is `(rows, cols)`.
    pub fn load(file: &Arc<GgufFile>, name: &str, rows: usize, cols: usize) -> Result<Matrix, ModelError> {
        Matrix::load_dims(file, name, &[cols, rows], rows, cols, rows)
    }

    /// Loads the 3-D tensor `name` of `n` stacked `(rows, cols)` matrices (GGUF
    /// `dims = [cols, rows, n]`, e.g. a mixture of experts' weights) as one
    /// `(n·rows, cols)` matrix; [`Matrix::rows_view`] gives matrix `i` back.
    pub fn load_stacked(
        file: &Arc<GgufFile>,
        name: &str,
        n: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix, ModelError> {
        let all = rows.checked_mul(n).ok_or_else(|| ModelError::metadata(name, "too many rows"))?;
        Matrix::load_dims(file, name, &[cols, rows, n], all, cols, rows)
    }

    fn load_dims(
        file: &Arc<GgufFile>,
        name: &str,
        dims: &[usize],
        rows: usize,
        cols: usize,
        rows_per_matrix: usize,
    ) -> Result<Matrix, ModelError> {
        let (index, info) = find(file, name)?;
        check_shape(info, dims)?;
        let data = file.tensor_data(info);
        // Validate once here; `qmatrix()` rebuilds the view from checked parts.
        // Interleaving keeps groups of rows together, which must not straddle two
        // matrices of a stack: the layout is the one each matrix alone would get.
        if let Some(layout) = interleaved_layout(info.ty, rows_per_matrix) {
            // Inside `packed`, into the model's huge-page slabs; else on their own.
            let run = ARENA.with(|a| a.borrow_mut().as_mut().map(|arena| arena.alloc(data.len().div_ceil(8))));
            let words = match run {
                Some(mut run) => {
                    interleave_into(layout, info.ty, rows, cols, data, &mut run).then_some(Words::Slab(run))
                }
                None => interleave_as(layout, info.ty, rows, cols, data).map(Words::Own),
            };
            if let Some(words) = words {
                let bytes = Bytes::Interleaved(words, data.len(), layout);
                return Ok(Matrix { name: name.into(), ty: info.ty, rows, cols, bytes });
            }
        }
        let checked = QMatrix::new(info.ty, rows, cols, data);
        let bytes = match checked {
            // Outside `packed`, a well-aligned matrix is read where the file maps it.
            Ok(_) if !ARENA.with(|a| a.borrow().is_some()) => Bytes::Mapped(Arc::clone(file), index),
            // Copied: into the model's huge-page slabs, or out of a misaligned file.
            Ok(_) | Err(kernels::KernelError::Misaligned { .. }) => {
                let n_words = data.len().div_ceil(8);
                let run = ARENA.with(|a| a.borrow_mut().as_mut().map(|arena| arena.alloc(n_words)));
                let mut owned = run.map_or_else(|| Words::Own(vec![0u64; n_words]), Words::Slab);
                bytemuck::cast_slice_mut::<u64, u8>(&mut owned)[..data.len()].copy_from_slice(data);
                let m = Matrix { name: name.into(), ty: info.ty, rows, cols, bytes: Bytes::Owned(owned, data.len()) };
                QMatrix::new(info.ty, rows, cols, m.data())
                    .map_err(|source| ModelError::Kernel { name: name.into(), source })?;
                return Ok(m);
            }
            Err(source) => {
                return Err(match source {
                    kernels::KernelError::UnsupportedType(ty) => {
                        ModelError::UnsupportedType { name: name.into(), ty, role: "for a weight matrix" }
                    }
                    source => ModelError::Kernel { name: name.into(), source },
                })
            }
        };
        Ok(Matrix { name: name.into(), ty: info.ty, rows, cols, bytes })
    }

    /// An F32 matrix holding `values` (row-major), for unit tests.
    #[cfg(test)]
    pub(crate) fn f32_for_tests(rows: usize, cols: usize, values: &[f32]) -> Matrix {
        assert_eq!(values.len(), rows * cols);
        let len = rows * cols * 4;
        let mut words = vec![0u64; len.div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len].copy_from_slice(bytemuck::cast_slice(values));
        Matrix { name: "test".into(), ty: GgmlType::F32, rows, cols, bytes: Bytes::Owned(Words::Own(words), len) }
    }

    /// Like [`Matrix::load`], or `None` when the file has no tensor `name`.
    pub fn load_optional(
        file: &Arc<GgufFile>,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Option<Matrix>, ModelError> {
        if file.tensor(name).is_none() {
            return Ok(None);
        }
        Matrix::load(file, name, rows, cols).map(Some)
    }

    fn data(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(file, index) => file.tensor_data(&file.tensors()[*index]),
            Bytes::Owned(words, len) | Bytes::Interleaved(words, len, _) => &bytemuck::cast_slice(words)[..*len],
        }
    }

    /// The kernels' view of this matrix.
    pub fn qmatrix(&self) -> QMatrix<'_> {
        let m = match self.bytes {
            Bytes::Interleaved(_, _, layout) => {
                QMatrix::interleaved(layout, self.ty, self.rows, self.cols, self.data())
            }
            _ => QMatrix::new(self.ty, self.rows, self.cols, self.data()),
        };
        m.expect("matrix validated at load")
    }

    /// The kernels' view of rows `start..start + n` (one matrix of a stack).
    /// An interleaved matrix keeps groups of rows together, so `start` and `n`
    /// must then be multiples of the group (a stack of matrices whose row counts are).
    pub fn rows_view(&self, start: usize, n: usize) -> QMatrix<'_> {
        let rs = self.ty.row_size(self.cols).expect("matrix validated at load");
        let data = &self.data()[start * rs..(start + n) * rs];
        let m = match self.bytes {
            Bytes::Interleaved(_, _, layout) => QMatrix::interleaved(layout, self.ty, n, self.cols, data),
            _ => QMatrix::new(self.ty, n, self.cols, data),
        };
        m.expect("rows within the matrix")
    }

    /// Dequantizes row `r` into `out` (shape `(cols,)`): the embedding lookup.
    pub fn dequantize_row_into(&self, r: usize, out: &mut [f32]) {
        dequantize_matrix_row(&self.qmatrix(), r, out);
    }

    /// The tensor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output width.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input width.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of weights (what one full pass reads).
    pub fn size_bytes(&self) -> usize {
        self.data().len()
    }
}

/// Loads the 1-D tensor `name` of length `n` as f32 (norm weights, biases).
pub fn load_vector(file: &GgufFile, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
    let (_, info) = find(file, name)?;
    check_shape(info, &[n])?;
    if !matches!(info.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(ModelError::UnsupportedType {
            name: name.into(),
            ty: info.ty,
            role: "for a vector (F32, F16 or BF16 only)",
        });
    }
    let mut out = vec![0.0; n];
    dequantize_row(info.ty, file.tensor_data(info), &mut out)
        .map_err(|source| ModelError::Kernel { name: name.into(), source })?;
    Ok(out)
}

/// Like [`load_vector`], or `None` when the file has no tensor `name`.
pub fn load_vector_optional(file: &GgufFile, name: &str, n: usize) -> Result<Option<Vec<f32>>, ModelError> {
    if file.tensor(name).is_none() {
        return Ok(None);
    }
    load_vector(file, name, n).map(Some)
}

fn find<'f>(file: &'f GgufFile, name: &str) -> Result<(usize, &'f TensorInfo), ModelError> {
    file.tensors()
        .iter()
        .enumerate()
        .find(|(_, t)| t.name == name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
}

fn check_shape(info: &TensorInfo, expected: &[usize]) -> Result<(), ModelError> {
    if info.dims != expected {
        return Err(ModelError::TensorShape {
            name: info.name.clone(),
            expected: expected.to_vec(),
            found: info.dims.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufBuilder;

    /// A file with a Q4_1 matrix of 32 rows (repacked where the CPU has a layout
    /// for it) and a Q8_0 matrix of 3 rows (kept as it is).
    fn file() -> Arc<GgufFile> {
        let q4_1: Vec<u8> = (0..32 * 2 * 20).map(|i| (i * 7 % 251) as u8).collect();
        let q8_0: Vec<u8> = (0..3 * 2 * 34).map(|i| (i * 13 % 241) as u8).collect();
        let bytes = GgufBuilder::new()
            .add_tensor("a", GgmlType::Q4_1, &[64, 32], q4_1)
            .add_tensor("b", GgmlType::Q8_0, &[64, 3], q8_0)
            .build();
        Arc::new(GgufFile::from_bytes(bytes).expect("a valid file"))
    }

    #[test]
    fn matrices_packed_into_slabs_read_as_those_loaded_alone() {
        let f = file();
        let alone = [Matrix::load(&f, "a", 32, 64).expect("a"), Matrix::load(&f, "b", 3, 64).expect("b")];
        let packed = packed(|| [Matrix::load(&f, "a", 32, 64).expect("a"), Matrix::load(&f, "b", 3, 64).expect("b")]);
        assert!(ARENA.with(|a| a.borrow().is_none()), "the arena is gone after loading");
        for (x, y) in alone.iter().zip(&packed) {
            assert!(matches!(y.bytes, Bytes::Owned(Words::Slab(_), _) | Bytes::Interleaved(Words::Slab(_), _, _)));
            assert_eq!(x.data(), y.data(), "{}", x.name);
            assert_eq!(x.qmatrix().layout(), y.qmatrix().layout());
        }
        assert!(matches!(alone[1].bytes, Bytes::Mapped(..)), "outside `packed`, read from the file");
    }
}
