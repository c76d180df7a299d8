//! What the fuzz targets share: finding the real models in Seed's model cache.

use std::path::PathBuf;

/// The catalogue models whose tokenizers the targets use.
pub const MODELS: [&str; 2] = ["smollm2-135m-instruct", "gemma3-270m"];

/// `$SEED_HOME/models/<name>.gguf` (default `~/.cache/seed`), as the `seed` CLI
/// caches them; `seed pull <name>` puts them there.
pub fn model_path(name: &str) -> PathBuf {
    let home = std::env::var_os("SEED_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(|x| PathBuf::from(x).join("seed")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("seed")))
        .unwrap_or_else(|| PathBuf::from(".cache/seed"));
    home.join("models").join(format!("{name}.gguf"))
}
