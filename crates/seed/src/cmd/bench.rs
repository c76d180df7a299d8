//! `seed bench`: prompt and decode speed (see `seed::bench`), printed as a table
//! like llama-bench's or as JSON.

use clap::Args;

use super::common::ModelArgs;
use seed::bench::{bench_pp, bench_tg, bench_tg_engine, bench_tg_schema, BenchResult};

/// Arguments of `seed bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt lengths to test (comma-separated; 0 skips).
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',', default_value = "512")]
    prompt: Vec<usize>,
    /// Decode lengths to test (comma-separated; 0 skips).
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', default_value = "128")]
    gen: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Positions already in the cache before each test (comma-separated; llama-bench's `-d`):
    /// every test runs once per depth.
    #[arg(short = 'd', long = "n-depth", value_delimiter = ',', default_value = "0")]
    depth: Vec<usize>,
    /// Also decode with these numbers of sequences together (comma-separated).
    #[arg(long, value_delimiter = ',')]
    batch: Vec<usize>,
    /// Also decode through the serving engine (`tg N engine`: scheduler, sampler, detokenizer
    /// and event channel around the same forward pass), alternating repetitions with a plain
    /// `tg N` so both see the same machine; shows what the engine adds before any HTTP.
    #[arg(long)]
    engine: bool,
    /// Also decode this many sequences together through the serving engine, without and with
    /// each under a JSON schema (`seed::bench::BENCH_SCHEMA`), alternating repetitions.
    #[arg(long)]
    schema_batch: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `seed bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (loaded, pool, path) = args.model.load(false)?;
    let loaded = std::sync::Arc::new(loaded);
    let model = &loaded.model;
    let mut results: Vec<BenchResult> = Vec::new();
    let name = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
    let size_mb = model.weight_bytes() as f64 / 1e6;
    if !args.json {
        println!("model: {name} ({}, {size_mb:.0} MB of weights read per token)", model.hparams().arch);
        println!("threads: {}, kernels: {}", pool.n_threads(), kernels::active_isa());
        println!("{:<18} {:>16}", "test", "t/s");
    }
    let mut report = |r: BenchResult| {
        if !args.json {
            println!("{:<18} {:>9.2} ± {:<6.2}", r.test, r.tokens_per_s, r.stddev);
        }
        results.push(r);
    };
    for &d in &args.depth {
        for &p in args.prompt.iter().filter(|&&p| p > 0) {
            report(bench_pp(model, &pool, p, d, args.reps)?);
        }
        for &n in args.gen.iter().filter(|&&n| n > 0) {
            if args.engine && d == 0 {
                let (plain, served) = bench_tg_engine(&loaded, &pool, n, args.reps)?;
                report(plain);
                report(served);
            } else {
                report(bench_tg(model, &pool, n, 1, d, args.reps)?);
            }
            for &b in args.batch.iter().filter(|&&b| b > 1) {
                report(bench_tg(model, &pool, n, b, d, args.reps)?);
            }
            if let Some(b) = args.schema_batch.filter(|_| d == 0) {
                let (plain, schema) = bench_tg_schema(&loaded, &pool, n, b, args.reps)?;
                report(plain);
                report(schema);
            }
        }
    }
    if args.json {
        let out = serde_json::json!({
            "model": name,
            "arch": model.hparams().arch,
            "weight_bytes": model.weight_bytes(),
            "threads": pool.n_threads(),
            "isa": kernels::active_isa().to_string(),
            "results": results,
        });
        println!("{out}");
    }
    Ok(())
}
