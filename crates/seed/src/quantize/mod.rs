//! `seed quantize`: the `llama-quantize` of Seed.
//!
//! From an F32, F16 or BF16 GGUF to one of llama.cpp's file types (Q8_0, Q4_0,
//! Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K, IQ4_NL, IQ4_XS,
//! F16, BF16), and from any type Seed
//! reads back to F32 (the reference for KL-divergence runs). Without an importance
//! matrix the output is byte for byte what `llama-quantize` writes for the same
//! input: the same per-tensor types ([`preset`]), the same quantizers
//! (`kernels::quant::quantize_row`, ggml's reference ones), the same metadata
//! (the input's kvs in order, then `general.quantization_version` and
//! `general.file_type`) and the same layout (tensors sorted by layer, then name;
//! data aligned as the input's).
//!
//! The output is written under a temporary name beside it and renamed into place
//! only when complete, so an interrupted or failed run leaves no half-written file.

pub mod preset;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use kernels::quant::{dequantize_row, quantize_row};
use kernels::GgmlType;
use model::gguf::writer::{index_bytes, TensorEntry};
use model::gguf::{GgufError, GgufFile, TensorInfo, Value};

pub use preset::{FileType, ModelFacts, FILE_TYPES};

/// What to write.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The file type.
    pub ftype: FileType,
    /// Threads for (de)quantizing.
    pub threads: usize,
    /// Quantize tensors that are already quantized (from their dequantized
    /// values; quality suffers, so llama-quantize also asks for this explicitly).
    pub allow_requantize: bool,
}

/// What one tensor became.
#[derive(Clone, Debug)]
pub struct TensorPlan {
    /// Name.
    pub name: String,
    /// Type in the input.
    pub from: GgmlType,
    /// Type in the output.
    pub to: GgmlType,
    /// Bytes in the input.
    pub bytes_in: usize,
    /// Bytes in the output.
    pub bytes_out: usize,
}

/// Why a quantization failed. Nothing is left at the output path.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The input is not a GGUF file Seed can read.
    #[error("{path}: {source}")]
    Input {
        /// The input.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<GgufError>,
    },
    /// The input has no `general.architecture` or no block count.
    #[error("{path} is not a model file: {what}")]
    NotAModel {
        /// The input.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The input is one part of a split model.
    #[error(
        "{path} is one part of a model split into {count} files; join the parts first \
         (`seed pull` joins them, as does `llama-gguf-split --merge`)"
    )]
    SplitPart {
        /// The input.
        path: PathBuf,
        /// Parts in all.
        count: u64,
    },
    /// A tensor's rows fit no type.
    #[error(transparent)]
    NoFallback(#[from] preset::NoFallback),
    /// A quantized tensor would be quantized again.
    #[error(
        "{name} is already {ty}; quantizing a quantized model loses quality, pass \
         --allow-requantize to do it anyway (or start from the F32/F16/BF16 original)"
    )]
    Requantize {
        /// The tensor.
        name: String,
        /// Its type.
        ty: GgmlType,
    },
    /// A tensor of a type Seed cannot convert.
    #[error("{name} is {ty}, a type Seed cannot convert")]
    Unconvertible {
        /// The tensor.
        name: String,
        /// Its type.
        ty: GgmlType,
    },
    /// A value that is not finite.
    #[error("{name} has a value that is not finite ({value}) in row {row}; the input is damaged")]
    NotFinite {
        /// The tensor.
        name: String,
        /// The row.
        row: usize,
        /// The value.
        value: f32,
    },
    /// Input and output are the same file.
    #[error("the output {0} is the input; choose another name")]
    SamePath(PathBuf),
    /// Writing failed (nothing is left at the output path).
    #[error("writing {path}: {source}")]
    Write {
        /// The output.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// Quantizes `input` into `output`. `progress(done, total, tensor)` is called
/// after each tensor. Returns what each tensor became, in file order.
pub fn quantize(
    input: &Path,
    output: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize, &TensorPlan),
) -> Result<Vec<TensorPlan>, QuantizeError> {
    let file = GgufFile::open(input)
        .map_err(|source| QuantizeError::Input { path: input.into(), source: Box::new(source) })?;
    if let Some(count) = file.get("split.count").and_then(as_u64).filter(|&c| c > 1) {
        return Err(QuantizeError::SplitPart { path: input.into(), count });
    }
    if same_file(input, output) {
        return Err(QuantizeError::SamePath(output.into()));
    }
    let facts = model_facts(&file).map_err(|what| QuantizeError::NotAModel { path: input.into(), what })?;
    let plans = plan(&file, facts, opts)?;
    let kvs = output_kvs(&file, opts.ftype);
    let entries: Vec<TensorEntry> =
        plans.iter().map(|(t, p)| TensorEntry { name: t.name.clone(), ty: p.to, dims: t.dims.clone() }).collect();
    let (index, _) = index_bytes(&kvs, &entries, file.alignment).expect("every planned tensor is whole blocks");
    let write_err = |source| QuantizeError::Write { path: output.into(), source };
    let tmp = crate::atomic::create_beside(output).map_err(write_err)?;
    let mut out = BufWriter::with_capacity(1 << 20, tmp);
    out.write_all(&index).map_err(write_err)?;
    let total = plans.len();
    let mut written = 0usize;
    for (i, (info, p)) in plans.iter().enumerate() {
        let converted = convert(&file, info, p, opts.threads)?;
        let data = converted.bytes();
        debug_assert_eq!(data.len(), p.bytes_out);
        out.write_all(data).map_err(write_err)?;
        let padded = data.len().next_multiple_of(file.alignment);
        out.write_all(&vec![0u8; padded - data.len()]).map_err(write_err)?;
        written += padded;
        progress(i + 1, total, p);
    }
    let tmp = out.into_inner().map_err(|e| write_err(e.into_error()))?;
    debug_assert_eq!(tmp.as_file().metadata().map(|m| m.len()).ok(), Some((index.len() + written) as u64));
    crate::atomic::commit(tmp, output).map_err(write_err)?;
    Ok(plans.into_iter().map(|(_, p)| p).collect())
}

/// The tensors in llama.cpp's order (by layer, the rest first, then by name) with
/// the type each gets.
fn plan<'f>(
    file: &'f GgufFile,
    facts: ModelFacts,
    opts: &Options,
) -> Result<Vec<(&'f TensorInfo, TensorPlan)>, QuantizeError> {
    let mut tensors: Vec<&TensorInfo> = file.tensors().iter().collect();
    tensors.sort_by(|a, b| {
        let layer = |t: &TensorInfo| preset::layer_of(&t.name).map_or(-1, |l| l as i64);
        layer(a).cmp(&layer(b)).then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });
    let mut planner = preset::Planner::new(opts.ftype, facts, tensors.iter().map(|t| t.name.as_str()));
    let mut plans = Vec::with_capacity(tensors.len());
    for t in tensors {
        let n_dims = t.dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
        let to = planner.choose(&t.name, t.ty, t.dims[0], n_dims)?;
        if to != t.ty {
            let dequantizing = !is_float(t.ty) && is_float(to);
            if !is_float(t.ty) && !dequantizing && !opts.allow_requantize {
                return Err(QuantizeError::Requantize { name: t.name.clone(), ty: t.ty });
            }
            if !t.ty.is_supported() {
                return Err(QuantizeError::Unconvertible { name: t.name.clone(), ty: t.ty });
            }
        }
        let entry = TensorEntry { name: t.name.clone(), ty: to, dims: trim_dims(&t.dims) };
        let bytes_out = entry.size().expect("the planner keeps rows whole blocks");
        plans.push((t, TensorPlan { name: t.name.clone(), from: t.ty, to, bytes_in: t.size, bytes_out }));
    }
    Ok(plans)
}

/// `dims` without trailing 1s (at least one), as ggml writes them.
fn trim_dims(dims: &[usize]) -> Vec<usize> {
    let n = dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
    dims[..n].to_vec()
}

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// A tensor's output bytes: the input's own when its type stays, else converted.
enum Converted<'a> {
    Same(&'a [u8]),
    /// u32 words so that every block type's alignment holds, and the byte length.
    New(Vec<u32>, usize),
}

impl Converted<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Converted::Same(b) => b,
            Converted::New(words, len) => &bytemuck::cast_slice::<u32, u8>(words)[..*len],
        }
    }
}

/// The output tensor's bytes, converted row by row on `threads` threads.
fn convert<'a>(
    file: &'a GgufFile,
    info: &TensorInfo,
    p: &TensorPlan,
    threads: usize,
) -> Result<Converted<'a>, QuantizeError> {
    let src = file.tensor_data(info);
    if p.to == p.from {
        return Ok(Converted::Same(src));
    }
    let cols = info.dims[0];
    let rows = info.n_elements() / cols;
    let (row_in, row_out) = (p.from.row_size(cols).expect("a valid tensor"), p.to.row_size(cols).expect("planned"));
    let mut words = vec![0u32; (rows * row_out).div_ceil(4)];
    let dst = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..rows * row_out];
    let threads = threads.clamp(1, rows.max(1));
    let per = rows.div_ceil(threads);
    let result: Result<(), QuantizeError> = std::thread::scope(|s| {
        let jobs: Vec<_> = dst
            .chunks_mut(per * row_out)
            .enumerate()
            .map(|(j, out)| {
                let first = j * per;
                s.spawn(move || -> Result<(), QuantizeError> {
                    let mut buf = vec![0.0f32; cols];
                    for (k, out_row) in out.chunks_exact_mut(row_out).enumerate() {
                        let r = first + k;
                        let in_row = &src[r * row_in..(r + 1) * row_in];
                        // F32 rows are used where they lie (tensor data is aligned).
                        let values: &[f32] = match bytemuck::try_cast_slice(in_row) {
                            Ok(v) if p.from == GgmlType::F32 => v,
                            _ => {
                                dequantize_row(p.from, in_row, &mut buf).expect("a planned, valid row");
                                &buf
                            }
                        };
                        if let Some(&value) = values.iter().find(|v| !v.is_finite()) {
                            return Err(QuantizeError::NotFinite { name: p.name.clone(), row: r, value });
                        }
                        quantize_row(p.to, values, out_row).expect("a planned type and whole blocks");
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter().try_for_each(|j| j.join().expect("a quantizing thread panicked"))
    });
    result?;
    Ok(Converted::New(words, rows * row_out))
}

/// The input's kvs in order, with `general.quantization_version` and
/// `general.file_type` moved to the end (as ggml's `gguf_set_val` does) and the
/// split keys dropped.
fn output_kvs(file: &GgufFile, ftype: FileType) -> Vec<(String, Value)> {
    const DROPPED: [&str; 5] =
        ["general.quantization_version", "general.file_type", "split.no", "split.count", "split.tensors.count"];
    let mut kvs: Vec<(String, Value)> =
        file.metadata().filter(|(k, _)| !DROPPED.contains(k)).map(|(k, v)| (k.to_string(), v.clone())).collect();
    kvs.push(("general.quantization_version".into(), Value::U32(2)));
    kvs.push(("general.file_type".into(), Value::U32(ftype.id())));
    kvs
}

/// What the per-tensor rules need, from the metadata.
fn model_facts(file: &GgufFile) -> Result<ModelFacts, String> {
    let arch = file.get_str("general.architecture").map_err(|_| "no general.architecture".to_string())?.to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let n_layer = file.get_u32(&key("block_count")).map_err(|e| e.to_string())? as usize;
    let n_head = file.get_u32(&key("attention.head_count")).unwrap_or(0) as usize;
    let n_head_kv = file.get_u32(&key("attention.head_count_kv")).map_or(n_head, |n| n as usize);
    let n_expert = file.get_u32(&key("expert_count")).unwrap_or(0) as usize;
    // llama.cpp's LLM_TYPE_70B: a Llama of 80 layers with grouped-query attention.
    let is_70b = arch == "llama" && n_layer == 80 && n_head != n_head_kv;
    let n_gqa = n_head.checked_div(n_head_kv).unwrap_or(1);
    Ok(ModelFacts { arch, n_layer, n_gqa, n_expert, is_70b })
}

fn as_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(n) => Some(n.into()),
        Value::U16(n) => Some(n.into()),
        Value::U32(n) => Some(n.into()),
        Value::U64(n) => Some(n),
        Value::I32(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
