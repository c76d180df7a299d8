//! The `seed` command line: a thin layer over the library crates.

use anyhow::Result;
use clap::{Parser, Subcommand};

use seed::catalogue;

mod cmd;

/// Seed: a Rust-native LLM engine and chat assistant.
#[derive(Parser, Debug)]
#[command(name = "seed", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download a model into the cache (default: the default model): a catalogue name,
    /// hf.co/OWNER/REPO[:QUANT], hf.co/OWNER/REPO/FILE.gguf, modelscope.cn/OWNER/REPO[:QUANT],
    /// or https://…/FILE.gguf.
    Pull {
        /// Catalogue name (see `seed models`) or hub reference.
        name: Option<String>,
    },
    /// List the catalogue and what is cached.
    Models,
    /// Chat with a model (one answer with PROMPT, else an interactive chat).
    Run(cmd::run::RunArgs),
    /// Complete one prompt; --json for machine-readable output with token ids.
    Generate(cmd::generate::GenerateArgs),
    /// Prompt and decode speed, like llama-bench.
    Bench(cmd::bench::BenchArgs),
    /// Perplexity of a text file, scored as llama-perplexity does.
    Perplexity(cmd::perplexity::PerplexityArgs),
    /// Write a model in another type (Q8_0, Q4_K_M, … or back to F32), as llama-quantize does.
    Quantize(cmd::quantize::QuantizeArgs),
    /// A model's tokens for a text, like llama-tokenize (vocabulary-only files too).
    Tokenize(cmd::tokenize::TokenizeArgs),
    /// Serve the OpenAI-compatible HTTP API (chat, completions, streaming, metrics).
    Serve(cmd::serve::ServeArgs),
    /// Manage API keys of the tenants in a platform config (`--config seed.toml`).
    Keys(cmd::keys::KeysArgs),
    /// Usage totals by tenant, day and edition, from the stores (`--config` or the data folder).
    Usage(cmd::usage::UsageArgs),
    /// Bring the regions' stores up to this build's schema (SQLite files or PostgreSQL).
    Migrate(cmd::migrate::MigrateArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Pull { name } => {
            let name = name.as_deref().unwrap_or(catalogue::DEFAULT_MODEL);
            let path = match seed::hub::Reference::parse(name) {
                Some(reference) => seed::hub::resolve(&reference?, &seed::hub::Sources::from_env())?,
                None => catalogue::ensure_model(name)?,
            };
            println!("{name}: {}", path.display());
            Ok(())
        }
        Command::Models => cmd::models::run(),
        Command::Run(args) => cmd::run::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Perplexity(args) => cmd::perplexity::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Quantize(args) => cmd::quantize::run(args),
        Command::Tokenize(args) => cmd::tokenize::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Usage(args) => cmd::usage::run(args),
        Command::Migrate(args) => cmd::migrate::run(args),
    }
}
