//! `seed perplexity`: how well a model predicts a text (as llama-perplexity), and
//! its KL divergence from a base run (`--kl-divergence-base`, `--kl-divergence`).

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use model::GivenTextOrder;

use super::common::ModelArgs;
use seed::perplexity::logits_file::Reader;
use seed::perplexity::{kl_divergence, perplexity};

/// Arguments of `seed perplexity`.
#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text file to score (not needed with --kl-divergence: the base file has the tokens).
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// The base log-probabilities, in llama-perplexity's format: written here while
    /// scoring the text, or, with --kl-divergence, read and compared with.
    #[arg(long, value_name = "FILE")]
    kl_divergence_base: Option<PathBuf>,
    /// Compare with --kl-divergence-base instead of writing it: KL divergence,
    /// Δp and same-top-token statistics, as llama-perplexity prints them.
    #[arg(long, requires = "kl_divergence_base")]
    kl_divergence: bool,
    /// Compute the text in ggml's summation order, as llama-perplexity does, instead
    /// of Seed's faster one: the same figures as llama-perplexity to the last digit
    /// where Seed's kernels keep ggml's order for the model's types (SmolLM2's Q4_1).
    #[arg(long)]
    ggml_order: bool,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    json: bool,
}

impl PerplexityArgs {
    fn order(&self) -> GivenTextOrder {
        if self.ggml_order {
            GivenTextOrder::Ggml
        } else {
            GivenTextOrder::Fast
        }
    }
}

/// Runs `seed perplexity`. `--ctx` (default 512 here) is the chunk length.
pub fn run(args: PerplexityArgs) -> anyhow::Result<()> {
    if args.kl_divergence {
        return run_kld(&args);
    }
    let Some(path) = &args.file else {
        anyhow::bail!(
            "say which text to score with --file (or compare with a base: --kl-divergence-base FILE --kl-divergence)"
        );
    };
    let n_ctx = args.model.ctx.unwrap_or(512);
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (loaded, pool, _) = args.model.load(!args.json)?;
    let started = std::time::Instant::now();
    let json = args.json;
    // The base file is written under a temporary name and renamed when complete.
    let mut base = match &args.kl_divergence_base {
        Some(p) => {
            let tmp = seed::atomic::create_beside(p).with_context(|| format!("creating {}", p.display()))?;
            Some(BufWriter::with_capacity(1 << 20, tmp))
        }
        None => None,
    };
    let result = perplexity(
        &loaded,
        &pool,
        &text,
        n_ctx,
        args.order(),
        base.as_mut().map(|w| w as &mut dyn Write),
        |i, ppl| {
            if !json {
                eprint!("[{}]{ppl:.4},", i + 1);
                let _ = std::io::stderr().flush();
            }
        },
    )?;
    if let (Some(w), Some(p)) = (base, &args.kl_divergence_base) {
        let tmp = w.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", p.display()))?;
        seed::atomic::commit(tmp, p).with_context(|| format!("writing {}", p.display()))?;
    }
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
        if let Some(p) = &args.kl_divergence_base {
            println!("base log-probabilities written to {}", p.display());
        }
    }
    Ok(())
}

/// `--kl-divergence`: this model against the base file.
fn run_kld(args: &PerplexityArgs) -> anyhow::Result<()> {
    let path = args.kl_divergence_base.as_ref().expect("clap requires it");
    let mut reader = Reader::open(path)?;
    if args.model.ctx.is_some_and(|c| c != reader.header.n_ctx) {
        anyhow::bail!("{} was written with chunks of {} tokens; leave out --ctx", path.display(), reader.header.n_ctx);
    }
    let (loaded, pool, _) = args.model.load(!args.json)?;
    let json = args.json;
    let started = std::time::Instant::now();
    let summary = kl_divergence(&loaded, &pool, &mut reader, args.order(), |i, acc| {
        if !json {
            eprint!("[{}]{:.5},", i + 1, acc.mean_kld());
            let _ = std::io::stderr().flush();
        }
    })?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!();
        print!("{}", summary.report());
        println!(
            "({} chunks of {} tokens, {} positions, {:.1} s)",
            reader.header.n_chunk,
            reader.header.n_ctx,
            summary.count,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
