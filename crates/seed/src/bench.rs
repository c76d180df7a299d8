//! `seed bench`: prompt-processing and decode speed, measured like llama-bench.
//!
//! - `pp N`: one prompt of N tokens into an empty cache, as one batch per 512.
//! - `tg N`: N decode steps of one token from an empty cache.
//! - `tg N @ B`: B sequences decoding together, one token each per step (one
//!   forward over the batch), reported as aggregate tokens per second.
//! - `tgN@B engine` and `tgN@B engine schema`: B sequences through the serving engine, without
//!   and with each under a JSON schema (the grammar's cost at batch B).
//! - `… @ dD` (llama-bench's `-d`): the same, after D positions already in the
//!   cache (filled once, untimed), so attention reads D more keys per row.
//!
//! Tokens are drawn from the vocabulary with a fixed seed (the numbers do not
//! depend on what the tokens say); every test runs once untimed first.

use std::sync::Arc;
use std::time::Instant;

use engine::scheduler::SchedulerConfig;
use engine::{Engine, EngineConfig, Event, EventSender, Request, Share};

use kernels::ThreadPool;
use model::kv_cache::{BlockAllocator, KvCache};
use model::sampler::SamplingParams;
use model::session::MAX_CHUNK;
use model::{LoadedModel, Logits, Model, ModelError, SeqBatch, Workspace};
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
    Ok(summarise(test, tokens, batch, samples))
}

/// Mean and standard deviation of `samples`.
fn summarise(test: String, tokens: usize, batch: usize, samples: Vec<f64>) -> BenchResult {
    let mean = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (samples.len().max(2) - 1) as f64;
    BenchResult { test, tokens, batch, tokens_per_s: mean, stddev: var.sqrt(), samples }
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
    let mut decode = Decode::new(model, pool, n, batch, depth)?;
    let name = if batch == 1 { format!("tg{n}") } else { format!("tg{n}@{batch}") };
    measure(test_name(name, depth), batch, reps, || decode.run(model, pool))
}

/// The steps of `tg N @ B @ dD`, with the cache and workspace they reuse.
struct Decode {
    tokens: Vec<u32>,
    caches: Caches,
    ws: Workspace,
    n: usize,
    batch: usize,
    depth: usize,
}

impl Decode {
    fn new(model: &Model, pool: &ThreadPool, n: usize, batch: usize, depth: usize) -> Result<Decode, ModelError> {
        let tokens = random_tokens(model, n * batch, 2);
        let mut caches = Caches::new(model, batch, depth + n)?;
        let mut ws = Workspace::default();
        fill_depth(model, pool, &mut caches, &mut ws, depth)?;
        Ok(Decode { tokens, caches, ws, n, batch, depth })
    }

    /// All `n` steps; returns the tokens decoded.
    fn run(&mut self, model: &Model, pool: &ThreadPool) -> Result<usize, ModelError> {
        let Decode { tokens, caches, ws, n, batch, depth } = self;
        for step in 0..*n {
            let runs: Vec<SeqBatch> = (0..*batch)
                .map(|s| SeqBatch {
                    tokens: std::slice::from_ref(&tokens[s * *n + step]),
                    pos: *depth + step,
                    block_table: &caches.tables[s],
                    logits: Logits::Last,
                    generated_from: 0,
                })
                .collect();
            model.forward(&runs, &mut caches.kv, ws, pool)?;
        }
        Ok(*n * *batch)
    }
}

fn random_tokens(model: &Model, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let vocab = model.hparams().n_vocab as u32;
    (0..n).map(|_| rng.gen_range(0..vocab)).collect()
}

/// Decoding through the serving engine — its scheduler, sampler, detokenizer
/// and event channel around the same forward pass — beside plain `tg N`, one
/// repetition of each in turn so the machine's drift (minutes-long swings on a
/// shared VM) hits both alike. Returns `(tg N, tg N engine)`; the engine's rate
/// counts the `n` tokens after its first (the first comes from the one-token
/// prompt), from that first token's event to the last's.
pub fn bench_tg_engine(
    loaded: &Arc<LoadedModel>,
    pool: &ThreadPool,
    n: usize,
    reps: usize,
) -> Result<(BenchResult, BenchResult), ModelError> {
    let cfg = EngineConfig {
        scheduler: SchedulerConfig {
            block_size: BLOCK,
            n_blocks: (n + 2).div_ceil(BLOCK),
            max_seq_len: n + 2,
            prefill_chunk: MAX_CHUNK,
            max_batch_tokens: MAX_CHUNK,
            max_running: 1,
        },
        max_waiting: 1,
        threads: pool.n_threads(),
        cpus: Vec::new(),
    };
    let engine = Engine::start(Arc::clone(loaded), cfg)?;
    let prompts = random_tokens(&loaded.model, reps + 1, 4);
    let through_engine = |rep: usize| -> Result<f64, ModelError> {
        let (events, rx) = EventSender::channel();
        let req = Request {
            id: rep as u64,
            prompt: vec![prompts[rep]],
            sampling: SamplingParams::greedy(),
            max_tokens: n + 1,
            stop: Vec::new(),
            ignore_eos: true,
            logprobs: None,
            cache_salt: rep as u64,
            share: Share::default(),
            constraint: None,
            embed: false,
            events,
        };
        engine.submit(req).map_err(|e| ModelError::Request(format!("the engine refused the request: {e}")))?;
        let (mut first, mut count) = (None, 0usize);
        loop {
            match rx.recv().map_err(|_| ModelError::Request("the engine stopped".into()))? {
                Event::Token { .. } => {
                    count += 1;
                    first.get_or_insert_with(Instant::now);
                }
                Event::Done { .. } => break,
                Event::Error { message } => return Err(ModelError::Request(message)),
                Event::Embedding { .. } => {}
            }
        }
        let first = first
            .filter(|_| count == n + 1)
            .ok_or_else(|| ModelError::Request(format!("the engine sent {count} tokens, not {}", n + 1)))?;
        Ok(n as f64 / first.elapsed().as_secs_f64())
    };
    // Plain `tg N`, as `bench_tg` runs it.
    let mut decode = Decode::new(&loaded.model, pool, n, 1, 0)?;
    let mut plain_once = || -> Result<f64, ModelError> {
        let t = Instant::now();
        let tokens = decode.run(&loaded.model, pool)?;
        Ok(tokens as f64 / t.elapsed().as_secs_f64())
    };
    // Both once untimed, as every test.
    plain_once()?;
    through_engine(reps)?;
    let (mut plain, mut served) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for rep in 0..reps.max(1) {
        plain.push(plain_once()?);
        served.push(through_engine(rep)?);
    }
    Ok((summarise(format!("tg{n}"), n, 1, plain), summarise(format!("tg{n} engine"), n, 1, served)))
}

/// The schema of `tg N @ B schema`: an object holding a long list of short strings, so every
/// sequence decodes N tokens inside free JSON strings and their separators (the grammar's
/// lexer at work on every token) and none can finish early.
pub const BENCH_SCHEMA: &str = r#"{"type": "object", "properties": {"notes": {"type": "array",
    "items": {"type": "string", "maxLength": 24}, "minItems": 4096}}, "required": ["notes"],
    "additionalProperties": false}"#;

/// `tg N @ B engine` and `tg N @ B engine schema`: `seqs` sequences decoding N tokens each
/// through the serving engine at once, greedy, without and then with each under
/// [`BENCH_SCHEMA`] (its own compiled constraint), repetitions alternating so both see the same
/// machine; aggregate tokens per second from the first token to the last.
pub fn bench_tg_schema(
    loaded: &Arc<LoadedModel>,
    pool: &ThreadPool,
    n: usize,
    seqs: usize,
    reps: usize,
) -> Result<(BenchResult, BenchResult), ModelError> {
    let cfg = EngineConfig {
        scheduler: SchedulerConfig {
            block_size: BLOCK,
            n_blocks: seqs * (n + 8).div_ceil(BLOCK),
            max_seq_len: n + 8,
            prefill_chunk: MAX_CHUNK,
            max_batch_tokens: MAX_CHUNK,
            max_running: seqs,
        },
        max_waiting: seqs,
        threads: pool.n_threads(),
        cpus: Vec::new(),
    };
    let engine = Engine::start(Arc::clone(loaded), cfg)?;
    let vocab = loaded.grammar_vocab().map_err(|e| ModelError::Request(e.to_string()))?;
    let schema: serde_json::Value =
        serde_json::from_str(BENCH_SCHEMA).map_err(|e| ModelError::Request(e.to_string()))?;
    let spec = model::grammar::Spec::JsonSchema(schema);
    let prompts = random_tokens(&loaded.model, (reps + 1) * seqs * 2, 4);
    let mut next_prompt = 0usize;
    let mut run = |constrained: bool| -> Result<f64, ModelError> {
        let mut receivers = Vec::with_capacity(seqs);
        for s in 0..seqs {
            let constraint = if constrained {
                Some(vocab.compile(&spec).map_err(|e| ModelError::Request(e.to_string()))?)
            } else {
                None
            };
            let (events, rx) = EventSender::channel();
            let id = next_prompt as u64;
            next_prompt += 1;
            let req = Request {
                id,
                prompt: vec![prompts[(id as usize) % prompts.len()]],
                sampling: SamplingParams::greedy(),
                max_tokens: n,
                stop: Vec::new(),
                ignore_eos: !constrained,
                logprobs: None,
                cache_salt: id,
                share: Share::default(),
                constraint,
                embed: false,
                events,
            };
            engine.submit(req).map_err(|e| ModelError::Request(format!("the engine refused request {s}: {e}")))?;
            receivers.push(rx);
        }
        let (mut first, mut count) = (None::<Instant>, 0usize);
        for rx in &receivers {
            loop {
                match rx.recv().map_err(|_| ModelError::Request("the engine stopped".into()))? {
                    Event::Token { .. } => {
                        count += 1;
                        first.get_or_insert_with(Instant::now);
                    }
                    Event::Done { .. } => break,
                    Event::Error { message } => return Err(ModelError::Request(message)),
                    Event::Embedding { .. } => {}
                }
            }
        }
        if count != seqs * n {
            return Err(ModelError::Request(format!("the engine sent {count} tokens, not {}", seqs * n)));
        }
        let first = first.ok_or_else(|| ModelError::Request("no tokens".into()))?;
        // The first token of each sequence comes with its prefill; count the rest.
        Ok((count - seqs) as f64 / first.elapsed().as_secs_f64())
    };
    run(false)?;
    run(true)?;
    let (mut plain, mut schema) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps.max(1) {
        plain.push(run(false)?);
        schema.push(run(true)?);
    }
    Ok((
        summarise(format!("tg{n}@{seqs} engine"), n, seqs, plain),
        summarise(format!("tg{n}@{seqs} engine schema"), n, seqs, schema),
    ))
}
