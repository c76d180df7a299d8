//! Split GGUF models (`NAME-00001-of-00003.gguf`, as `llama-gguf-split` writes them for
//! hubs that cap file sizes), joined into one file.
//!
//! Each part is a GGUF file of its own: the first carries the model's metadata, every part
//! carries `split.no` (0-based), `split.count` and `split.tensors.count`, and the tensors
//! are spread over the parts in order. Joining writes the first part's metadata without
//! the `split.*` keys, then every part's tensor infos and data, realigned — what
//! `llama-gguf-split --merge` makes. The model loader then sees one ordinary file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use model::gguf::writer::{write_string, write_u32, write_u64, write_value};
use model::gguf::{GgufFile, Value};

/// Where a path sits in a split model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Everything before `-NNNNN-of-MMMMM.gguf`.
    pub prefix: String,
    /// 1-based index.
    pub index: u32,
    /// Number of parts.
    pub count: u32,
}

impl Part {
    /// The path of part `index` of the same model.
    pub fn name_of(&self, index: u32) -> String {
        format!("{}-{index:05}-of-{:05}.gguf", self.prefix, self.count)
    }

    /// The path of the joined model: the prefix with `.gguf`.
    pub fn joined_name(&self) -> String {
        format!("{}.gguf", self.prefix)
    }
}

/// The split-part position of `path`, when its name ends `-NNNNN-of-MMMMM.gguf` with
/// 1 ≤ NNNNN ≤ MMMMM and MMMMM ≥ 2.
pub fn part_of(path: &str) -> Option<Part> {
    let stem = path.strip_suffix(".gguf").or_else(|| path.strip_suffix(".GGUF"))?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, index) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(index) || !digits(count) || prefix.is_empty() {
        return None;
    }
    let (index, count) = (index.parse().ok()?, count.parse().ok()?);
    (index >= 1 && index <= count && count >= 2).then(|| Part { prefix: prefix.to_string(), index, count })
}

/// Joins `parts` (in order) into `out`; `progress` is told the bytes of tensor data written
/// so far. Checks that the parts belong together: `split.no` and `split.count` as their
/// order says, and the tensor total `split.tensors.count` gives.
pub fn join(parts: &[PathBuf], out: &Path, progress: &mut dyn FnMut(u64)) -> anyhow::Result<()> {
    let files: Vec<GgufFile> = parts
        .iter()
        .map(|p| GgufFile::open(p).with_context(|| format!("reading the split part {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    for (i, (f, p)) in files.iter().zip(parts).enumerate() {
        let no = int(f, "split.no");
        let count = int(f, "split.count");
        if no != Some(i as u64) || count != Some(parts.len() as u64) {
            bail!(
                "{} says it is part {} of {} (split.no, split.count), expected part {i} of {}",
                p.display(),
                no.map_or("?".into(), |n| n.to_string()),
                count.map_or("?".into(), |n| n.to_string()),
                parts.len()
            );
        }
    }
    let first = &files[0];
    let n_tensors: usize = files.iter().map(|f| f.tensors().len()).sum();
    if let Some(total) = int(first, "split.tensors.count") {
        if total != n_tensors as u64 {
            bail!("the parts hold {n_tensors} tensors, but split.tensors.count says {total}");
        }
    }
    let alignment = first.alignment;
    let kvs: Vec<(&str, &Value)> = first.metadata().filter(|(k, _)| !k.starts_with("split.")).collect();

    // Header, metadata and tensor infos, with offsets packed as ggml places them.
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    write_u32(&mut head, 3);
    write_u64(&mut head, n_tensors as u64);
    write_u64(&mut head, kvs.len() as u64);
    for (key, value) in &kvs {
        write_string(&mut head, key.as_bytes());
        write_value(&mut head, value);
    }
    let mut offset = 0usize;
    for f in &files {
        for t in f.tensors() {
            write_string(&mut head, t.name.as_bytes());
            write_u32(&mut head, t.dims.len() as u32);
            for &d in &t.dims {
                write_u64(&mut head, d as u64);
            }
            write_u32(&mut head, t.ty.id());
            write_u64(&mut head, offset as u64);
            offset = align_up(offset + t.size, alignment);
        }
    }
    head.resize(align_up(head.len(), alignment), 0);

    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let write_err = |e: std::io::Error| super::download::write_error(e, out, 0);
    w.write_all(&head).map_err(write_err)?;
    let mut written = 0usize;
    let zeros = vec![0u8; alignment];
    for f in &files {
        for t in f.tensors() {
            let data = f.tensor_data(t);
            w.write_all(data).map_err(write_err)?;
            let padded = align_up(written + data.len(), alignment);
            w.write_all(&zeros[..padded - written - data.len()]).map_err(write_err)?;
            written = padded;
            progress(written as u64);
        }
    }
    let file = w.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    Ok(())
}

fn align_up(n: usize, alignment: usize) -> usize {
    n.div_ceil(alignment) * alignment
}

/// An integer kv of any width, as u64.
fn int(f: &GgufFile, key: &str) -> Option<u64> {
    match f.get(key)? {
        Value::U8(v) => Some(u64::from(*v)),
        Value::U16(v) => Some(u64::from(*v)),
        Value::U32(v) => Some(u64::from(*v)),
        Value::U64(v) => Some(*v),
        Value::I8(v) => u64::try_from(*v).ok(),
        Value::I16(v) => u64::try_from(*v).ok(),
        Value::I32(v) => u64::try_from(*v).ok(),
        Value::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// Writes `source` as `count` parts the way `llama-gguf-split --split` does (tensors spread
/// evenly, `split.*` keys in every part, the metadata in the first only). For tests.
pub fn split_for_tests(source: &GgufFile, count: usize, parts: &[PathBuf]) -> anyhow::Result<()> {
    let tensors = source.tensors();
    let per = tensors.len().div_ceil(count);
    for (i, path) in parts.iter().enumerate().take(count) {
        let mut b = model::gguf::GgufBuilder::new();
        if source.get("general.alignment").is_some() {
            b.alignment(source.alignment as u32);
        }
        b.add_kv("split.no", Value::U16(i as u16));
        b.add_kv("split.count", Value::U16(count as u16));
        b.add_kv("split.tensors.count", Value::I32(tensors.len() as i32));
        if i == 0 {
            for (k, v) in source.metadata().filter(|(k, _)| *k != "general.alignment") {
                b.add_kv(k, v.clone());
            }
        }
        for t in tensors.iter().skip(i * per).take(per) {
            b.add_tensor(&t.name, t.ty, &t.dims, source.tensor_data(t).to_vec());
        }
        std::fs::write(path, b.build()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernels::GgmlType;

    #[test]
    fn part_names() {
        let p = part_of("Q4_K_M/Qwen3-Q4_K_M-00001-of-00003.gguf").unwrap();
        assert_eq!((p.prefix.as_str(), p.index, p.count), ("Q4_K_M/Qwen3-Q4_K_M", 1, 3));
        assert_eq!(p.name_of(3), "Q4_K_M/Qwen3-Q4_K_M-00003-of-00003.gguf");
        assert_eq!(p.joined_name(), "Q4_K_M/Qwen3-Q4_K_M.gguf");
        for not in ["a.gguf", "a-1-of-2.gguf", "a-00003-of-00002.gguf", "a-00001-of-00001.gguf", "-00001-of-00002.gguf"]
        {
            assert_eq!(part_of(not), None, "{not}");
        }
    }

    #[test]
    fn split_then_joined_is_the_same_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = model::gguf::GgufBuilder::new();
        b.add_kv("general.architecture", Value::String("llama".into()));
        b.alignment(64);
        for i in 0..5u8 {
            let data: Vec<u8> = (0..(4 * (i as usize + 3))).map(|j| j as u8 ^ i).collect();
            b.add_tensor(&format!("t{i}"), GgmlType::F32, &[i as usize + 3], data);
        }
        let original = GgufFile::from_bytes(b.build()).unwrap();
        let parts: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("m-{i:05}-of-00003.gguf"))).collect();
        split_for_tests(&original, 3, &parts).unwrap();
        let out = dir.path().join("m.gguf");
        let mut last = 0;
        join(&parts, &out, &mut |n| last = n).unwrap();
        assert!(last > 0);
        let joined = GgufFile::open(&out).unwrap();
        assert_eq!(joined.metadata().count(), original.metadata().count());
        assert!(joined.get("split.count").is_none());
        assert_eq!(joined.alignment, 64);
        assert_eq!(joined.tensors().len(), 5);
        for t in original.tensors() {
            let j = joined.tensor(&t.name).unwrap();
            assert_eq!((j.ty, &j.dims), (t.ty, &t.dims));
            assert_eq!(joined.tensor_data(j), original.tensor_data(t), "{}", t.name);
        }

        // Parts out of order are refused with what they say they are.
        let swapped = vec![parts[1].clone(), parts[0].clone(), parts[2].clone()];
        let err = join(&swapped, &out, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("part 1 of 3") && err.contains("expected part 0 of 3"), "{err}");
    }
}
