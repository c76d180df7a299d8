//! `seed models`: the catalogue, which models are in the cache, and which GGUF
//! architectures Seed can run.

use seed::catalogue::{self, CATALOGUE, DEFAULT_MODEL};

/// Prints the catalogue with each model's cache state.
pub fn run() -> anyhow::Result<()> {
    println!("{:<24} {:>8}  {:<10} description", "name", "size", "cached");
    for e in CATALOGUE {
        let cached = catalogue::cached_path(e)?.is_file();
        let marker = if e.name == DEFAULT_MODEL { "*" } else { " " };
        println!(
            "{:<24} {:>6.0}MB  {:<10} {}",
            format!("{}{marker}", e.name),
            e.size as f64 / 1e6,
            if cached { "yes" } else { "no" },
            e.description
        );
    }
    println!("\ncache: {}", catalogue::seed_home()?.join("models").display());
    println!("architectures: {}", model::SUPPORTED_ARCHITECTURES.join(", "));
    Ok(())
}
