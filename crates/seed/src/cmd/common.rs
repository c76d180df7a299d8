//! Options shared by the subcommands that load a model.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use kernels::ThreadPool;
use model::sampler::SamplingParams;
use model::LoadedModel;
use seed::catalogue;

/// Which model, and how to run it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A catalogue name (see `seed models`) or a path to a .gguf file.
    #[arg(long, short = 'm', default_value = catalogue::DEFAULT_MODEL)]
    pub model: String,
    /// Compute threads (default: one per CPU).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Context length: positions the KV cache holds (default 4096, at most the
    /// model's training context; for `perplexity`, the chunk length, default 512).
    #[arg(long, short = 'c')]
    pub ctx: Option<usize>,
}

impl ModelArgs {
    /// Resolves (pulling if needed) and loads the model; creates the thread pool.
    pub fn load(&self, verbose: bool) -> anyhow::Result<(LoadedModel, ThreadPool, PathBuf)> {
        let path = catalogue::resolve_model(&self.model)?;
        let started = Instant::now();
        let loaded = catalogue::open_model(&path)?;
        let pool = match self.threads {
            Some(n) => ThreadPool::new(n),
            None => ThreadPool::with_available_parallelism(),
        };
        if verbose {
            let hp = loaded.model.hparams();
            eprintln!(
                "loaded {} ({}, {} layers, {} MB of weights) in {:.0} ms; {} threads, {} kernels",
                path.display(),
                hp.arch,
                hp.n_layer,
                loaded.model.weight_bytes() / 1_000_000,
                started.elapsed().as_secs_f64() * 1e3,
                pool.n_threads(),
                kernels::active_isa()
            );
        }
        Ok((loaded, pool, path))
    }

    /// The context length to use: `--ctx`, capped by the model's training context.
    pub fn n_ctx(&self, loaded: &LoadedModel) -> usize {
        self.ctx.unwrap_or(4096).clamp(16, loaded.model.hparams().n_ctx_train.max(16))
    }
}

/// Sampling flags.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy (deterministic).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens (0: off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass (1: off).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than min-p × the most likely (0: off).
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Repetition penalty over the last 64 tokens (1: off).
    #[arg(long)]
    pub repeat_penalty: Option<f32>,
    /// Frequency penalty.
    #[arg(long)]
    pub frequency_penalty: Option<f32>,
    /// Presence penalty.
    #[arg(long)]
    pub presence_penalty: Option<f32>,
    /// Random seed (same seed, same output).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The flags given, over `defaults`; validated.
    pub fn params(&self, defaults: SamplingParams) -> anyhow::Result<SamplingParams> {
        let p = SamplingParams {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_k: self.top_k.unwrap_or(defaults.top_k),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            repetition_penalty: self.repeat_penalty.unwrap_or(defaults.repetition_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(defaults.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(defaults.presence_penalty),
            seed: self.seed.or(defaults.seed),
            ..defaults
        };
        p.validate()?;
        Ok(p)
    }
}
