//! `seed bench`: prompt-processing and decode speed, measured like llama-bench.
//!
//! - `pp N`: one prompt of N tokens into an empty cache, as one batch per 512.
//! - `tg N`: N decode steps of one token from an empty cache.
//! - `tg N @ B`: B sequences decoding together, one token each per step (one
//!   forward over the batch), reported as aggregate tokens per second.
//! - `… @ dD` (llama-bench's `-d`): the same, after D positions already in the
//!   cache (filled once, untimed), so attention reads D more keys per row.
//!
//! Tokens are drawn from the vocabulary with a fixed seed (the numbers do not
//! depend on what the tokens say); every test runs once untimed first.

use std::time::Instant;

use kernels::ThreadPool;
use model::kv_cache::{BlockAllocator, KvCache};
use model::session::MAX_CHUNK;
use model::{Logits, Model, ModelError, SeqBatch, Workspace};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Positions per KV block in the benchmark's cache.
const BLOCK: usize = 32;

/// One measured test.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// `pp512`, `tg128`, `tg128@16`, …
    pub test: String,
    /// Tokens processed per repetition.
    pub tokens: usize,
    /// Sequences processed together.
    pub batch: usize,
    /// Mean tokens per second over the repetitions.
    pub tokens_per_s: f64,
    /// Standard deviation of tokens per second.
    pub stddev: f64,
    /// Each repetition's tokens per second.
    pub samples: Vec<f64>,
}

/// Runs `f` once untimed and then `reps` times, each returning tokens processed;
/// summarises the rates.
fn measure(
    test: String,
    batch: usize,
    reps: usize,
    mut f: impl FnMut() -> Result<usize, ModelError>,
) -> Result<BenchResult, ModelError> {
    f()?;
    let mut samples = Vec::with_capacity(reps);
    let mut tokens = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        tokens = f()?;
        samples.push(tokens as f64 / t.elapsed().as_secs_f64());
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (samples.len().max(2) - 1) as f64;
    Ok(BenchResult { test, tokens, batch, tokens_per_s: mean, stddev: var.sqrt(), samples })
}

/// A cache with room for `batch` sequences of `len` positions, and their tables.
struct Caches {
    kv: KvCache,
    tables: Vec<Vec<u32>>,
}

impl Caches {
    fn new(model: &Model, batch: usize, len: usize) -> Result<Caches, ModelError> {
        let per_seq = len.div_ceil(BLOCK);
        let kv = KvCache::new(model.hparams(), BLOCK, per_seq * batch)?;
        let mut blocks = BlockAllocator::new(per_seq * batch);
        let mut tables = vec![Vec::new(); batch];
        for t in &mut tables {
            if !blocks.reserve(t, len, BLOCK) {
                return Err(ModelError::Request("benchmark cache too small".into()));
            }
        }
        Ok(Caches { kv, tables })
    }
}

/// Fills positions `..depth` of every sequence's cache with a prompt, untimed.
fn fill_depth(
    model: &Model,
    pool: &ThreadPool,
    caches: &mut Caches,
    ws: &mut Workspace,
    depth: usize,
) -> Result<(), ModelError> {
    let tokens = random_tokens(model, depth, 3);
    for table in &caches.tables {
        for (c, chunk) in tokens.chunks(MAX_CHUNK).enumerate() {
            let run = SeqBatch {
                tokens: chunk,
                pos: c * MAX_CHUNK,
                block_table: table,
                logits: Logits::None,
                generated_from: usize::MAX,
            };
            model.forward(&[run], &mut caches.kv, ws, pool)?;
        }
    }
    Ok(())
}

/// The test's name: `pp512`, `tg128@16`, `tg128 @ d512`.
fn test_name(base: String, depth: usize) -> String {
    if depth == 0 {
        base
    } else {
        format!("{base} @ d{depth}")
    }
}

/// Prompt processing: `n` tokens into a cache holding `depth` positions.
pub fn bench_pp(
    model: &Model,
    pool: &ThreadPool,
    n: usize,
    depth: usize,
    reps: usize,
) -> Result<BenchResult, ModelError> {
    let tokens = random_tokens(model, n, 1);
    let mut caches = Caches::new(model, 1, depth + n)?;
    let mut ws = Workspace::default();
    fill_depth(model, pool, &mut caches, &mut ws, depth)?;
    measure(test_name(format!("pp{n}"), depth), 1, reps, || {
        for (c, chunk) in tokens.chunks(MAX_CHUNK).enumerate() {
            let last = (c + 1) * MAX_CHUNK >= n;
            let run = SeqBatch {
                tokens: chunk,
                pos: depth + c * MAX_CHUNK,
                block_table: &caches.tables[0],
                logits: if last { Logits::Last } else { Logits::None },
                generated_from: usize::MAX,
            };
            model.forward(&[run], &mut caches.kv, &mut ws, pool)?;
        }
        Ok(n)
    })
}

/// Decoding: `n` steps of one token for each of `batch` sequences together,
/// each after `depth` positions.
pub fn bench_tg(
    model: &Model,
    pool: &ThreadPool,
    n: usize,
    batch: usize,
    depth: usize,
    reps: usize,
) -> Result<BenchResult, ModelError> {
    let tokens = random_tokens(model, n * batch, 2);
    let mut caches = Caches::new(model, batch, depth + n)?;
    let mut ws = Workspace::default();
    fill_depth(model, pool, &mut caches, &mut ws, depth)?;
    let name = if batch == 1 { format!("tg{n}") } else { format!("tg{n}@{batch}") };
    measure(test_name(name, depth), batch, reps, || {
        for step in 0..n {
            let runs: Vec<SeqBatch> = (0..batch)
                .map(|s| SeqBatch {
                    tokens: std::slice::from_ref(&tokens[s * n + step]),
                    pos: depth + step,
                    block_table: &caches.tables[s],
                    logits: Logits::Last,
                    generated_from: 0,
                })
                .collect();
            model.forward(&runs, &mut caches.kv, &mut ws, pool)?;
        }
        Ok(n * batch)
    })
}

fn random_tokens(model: &Model, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let vocab = model.hparams().n_vocab as u32;
    (0..n).map(|_| rng.gen_range(0..vocab)).collect()
}
