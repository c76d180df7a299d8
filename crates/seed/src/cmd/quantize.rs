//! `seed quantize`: a model file in another type, as llama-quantize writes it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use seed::catalogue;
use seed::quantize::{quantize, FileType, Options, FILE_TYPES};

/// Arguments of `seed quantize`.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The model to read: a .gguf path, a catalogue name or a hub reference.
    input: String,
    /// The file to write (replaced if it exists, only once the new one is complete).
    output: PathBuf,
    /// The file type: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S,
    /// Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, IQ4_NL, IQ4_XS, F16, BF16 or F32 (or llama.cpp's
    /// number for it).
    #[arg(value_name = "TYPE")]
    ftype: String,
    /// Threads (default: one per CPU).
    #[arg(long, short = 't')]
    threads: Option<usize>,
    /// Quantize tensors that are already quantized (from their dequantized values).
    #[arg(long)]
    allow_requantize: bool,
}

/// Runs `seed quantize`.
pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let Some(ftype) = FileType::parse(&args.ftype) else {
        let names: Vec<&str> = FILE_TYPES.iter().map(|&(_, n)| n).collect();
        anyhow::bail!("unknown type {:?}; Seed writes {}", args.ftype, names.join(", "));
    };
    let input = catalogue::resolve_model(&args.input).with_context(|| format!("finding {}", args.input))?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = Options { ftype, threads, allow_requantize: args.allow_requantize };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:<36} [{bar:32}] {pos}/{len} tensors, {elapsed}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let plans = quantize(&input, &args.output, &opts, &mut |done, total, p| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{} {}→{}", p.name, p.from, p.to));
    })?;
    bar.finish_and_clear();
    let (bytes_in, bytes_out) = plans.iter().fold((0, 0), |(a, b), p| (a + p.bytes_in, b + p.bytes_out));
    let mut counts: Vec<(String, usize)> = Vec::new();
    for p in &plans {
        match counts.iter_mut().find(|(t, _)| *t == p.to.name()) {
            Some((_, n)) => *n += 1,
            None => counts.push((p.to.name().to_string(), 1)),
        }
    }
    let mix: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    println!(
        "{} → {} ({}): {} tensors ({}), {:.1} MB → {:.1} MB in {:.1} s",
        input.display(),
        args.output.display(),
        ftype.name(),
        plans.len(),
        mix.join(", "),
        bytes_in as f64 / 1e6,
        bytes_out as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
