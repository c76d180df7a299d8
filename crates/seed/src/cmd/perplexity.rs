//! `seed perplexity`: how well a model predicts a text (as llama-perplexity).

use std::io::Write;

use anyhow::Context;
use clap::Args;

use super::common::ModelArgs;
use seed::perplexity::perplexity;

/// Arguments of `seed perplexity`.
#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text file to score.
    #[arg(long, short = 'f')]
    file: std::path::PathBuf,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `seed perplexity`. `--ctx` (default 512 here) is the chunk length.
pub fn run(args: PerplexityArgs) -> anyhow::Result<()> {
    let n_ctx = args.model.ctx.unwrap_or(512);
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let (loaded, pool, _) = args.model.load(!args.json)?;
    let started = std::time::Instant::now();
    let json = args.json;
    let result = perplexity(&loaded, &pool, &text, n_ctx, |i, ppl| {
        if !json {
            eprint!("[{}]{ppl:.4},", i + 1);
            let _ = std::io::stderr().flush();
        }
    })?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        eprintln!();
        println!(
            "Final estimate: PPL = {:.4} +/- {:.5} ({} chunks of {} tokens, {} tokens scored, {:.1} s)",
            result.ppl,
            result.ppl_err,
            result.n_chunks,
            result.n_ctx,
            result.n_scored,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
