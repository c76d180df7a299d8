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
            "{:<24} {:>8}  {:<10} {}",
            format!("{}{marker}", e.name),
            human_size(e.size),
            if cached { "yes" } else { "no" },
            e.description
        );
    }
    let pulled = seed::hub::pulled()?;
    if !pulled.is_empty() {
        println!("\npulled from hubs and URLs:");
        for (reference, path) in pulled {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!("  {reference:<60} {:>8}", human_size(size));
        }
    }
    println!("\ncache: {}", catalogue::seed_home()?.join("models").display());
    println!("architectures: {}", model::supported_architectures().collect::<Vec<_>>().join(", "));
    Ok(())
}

/// Bytes as the listing shows them: megabytes, or kilobytes under one megabyte.
fn human_size(bytes: u64) -> String {
    if bytes < 1_000_000 {
        format!("{:.0}KB", bytes as f64 / 1e3)
    } else {
        format!("{:.0}MB", bytes as f64 / 1e6)
    }
}
