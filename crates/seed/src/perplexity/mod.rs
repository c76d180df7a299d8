//! Perplexity of a text, scored the way `llama-perplexity` scores it.
//!
//! The text is tokenized once (with BOS where the vocabulary adds one) and cut into
//! chunks of `n_ctx` tokens; each chunk is evaluated from an empty cache, its first
//! token replaced by BOS where the vocabulary uses one, and only the second half
//! of each chunk is scored (the first half gives every scored token a context of
//! at least `n_ctx / 2`). The estimate's uncertainty is the standard error of the
//! mean negative log-likelihood, carried through `exp`.
//!
//! The same pass can write llama-perplexity's file of base log-probabilities
//! ([`logits_file`]), and [`kl_divergence`] reads such a file (written by either
//! tool) and compares this model's distributions with it ([`kld`]).

pub mod kld;
pub mod logits_file;

use std::io::Write;

use kernels::ThreadPool;
use model::sampler::logprobs;
use model::session::Session;
use model::{GivenTextOrder, LoadedModel, ModelError};
use serde::Serialize;

/// The result of a perplexity run.
#[derive(Clone, Debug, Serialize)]
pub struct Perplexity {
    /// Context length of each chunk.
    pub n_ctx: usize,
    /// Chunks scored.
    pub n_chunks: usize,
    /// Tokens scored.
    pub n_scored: usize,
    /// Perplexity over all scored tokens.
    pub ppl: f64,
    /// Its uncertainty (± one standard error).
    pub ppl_err: f64,
    /// Running perplexity after each chunk.
    pub running: Vec<f64>,
}

/// Scores `text` with its products in `order` (`GivenTextOrder::Ggml` gives
/// llama-perplexity's figures to the last digit); `on_chunk(i, running_ppl)` is called after each chunk. With
/// `base`, also writes every scored position's log-probabilities there in
/// llama-perplexity's `--kl-divergence-base` format.
pub fn perplexity(
    m: &LoadedModel,
    pool: &ThreadPool,
    text: &str,
    n_ctx: usize,
    order: GivenTextOrder,
    base: Option<&mut dyn Write>,
    mut on_chunk: impl FnMut(usize, f64),
) -> Result<Perplexity, PerplexityError> {
    if n_ctx < 4 {
        return Err(ModelError::Request(format!("a context of {n_ctx} tokens is too short to score")).into());
    }
    let tokens = m.tokenizer.encode(text, true, false);
    let n_chunks = tokens.len() / n_ctx;
    if n_chunks == 0 {
        return Err(ModelError::Request(format!(
            "the text has {} tokens, fewer than one chunk of {n_ctx}",
            tokens.len()
        ))
        .into());
    }
    let mut writer = match base {
        Some(out) => {
            let header = logits_file::Header {
                n_ctx,
                n_vocab: m.tokenizer.n_vocab(),
                n_chunk: n_chunks,
                tokens: tokens[..n_chunks * n_ctx].to_vec(),
            };
            Some(logits_file::Writer::new(out, &header).map_err(PerplexityError::Write)?)
        }
        None => None,
    };
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut running = Vec::with_capacity(n_chunks);
    for c in 0..n_chunks {
        let source = &tokens[c * n_ctx..(c + 1) * n_ctx];
        let mut failed = None;
        score_chunk(m, pool, source, order, |i, logits| {
            let next = source[i + 1];
            if let Some(w) = writer.as_mut() {
                if let Err(e) = w.record(logits, next as usize) {
                    failed.get_or_insert(e);
                }
            }
            let (lp, _) = logprobs(logits, &[next], 0);
            let v = -f64::from(lp[0]);
            nll += v;
            nll2 += v * v;
            count += 1;
        })?;
        if let Some(e) = failed {
            return Err(PerplexityError::Write(e));
        }
        let ppl = (nll / count as f64).exp();
        running.push(ppl);
        on_chunk(c, ppl);
    }
    let mean = nll / count as f64;
    let var = nll2 / count as f64 - mean * mean;
    let ppl = mean.exp();
    let ppl_err = if var > 0.0 && count > 1 { (var / (count - 1) as f64).sqrt() * ppl } else { 0.0 };
    Ok(Perplexity { n_ctx, n_chunks, n_scored: count, ppl, ppl_err, running })
}

/// Evaluates one chunk from an empty cache (its first token replaced by BOS where
/// the vocabulary adds one) and calls `on_row(i, logits)` for each scored
/// position `i` (the second half but the last; row `i` predicts token `i + 1`).
fn score_chunk(
    m: &LoadedModel,
    pool: &ThreadPool,
    source: &[u32],
    order: GivenTextOrder,
    mut on_row: impl FnMut(usize, &[f32]),
) -> Result<(), ModelError> {
    let n_ctx = source.len();
    let first = n_ctx / 2;
    let mut chunk = source.to_vec();
    if let Some(b) = m.tokenizer.bos().filter(|_| m.tokenizer.add_bos()) {
        chunk[0] = b;
    }
    let mut session = Session::new(&m.model, pool, n_ctx)?;
    session.set_given_text_order(order);
    session.feed_scoring(&chunk, |i, logits| {
        if i >= first && i + 1 < n_ctx {
            on_row(i, logits);
        }
    })
}

/// Compares this model, its products in `order`, with the base log-probabilities
/// in `reader` (llama-perplexity's `--kl-divergence` on the file's own tokens);
/// `on_chunk(i, acc)` after each chunk.
pub fn kl_divergence(
    m: &LoadedModel,
    pool: &ThreadPool,
    reader: &mut logits_file::Reader,
    order: GivenTextOrder,
    mut on_chunk: impl FnMut(usize, &kld::Accum),
) -> Result<kld::Summary, PerplexityError> {
    let header = reader.header.clone();
    if header.n_vocab != m.tokenizer.n_vocab() {
        return Err(PerplexityError::Mismatch(format!(
            "the base was written for a vocabulary of {} tokens; this model has {}",
            header.n_vocab,
            m.tokenizer.n_vocab()
        )));
    }
    let mut acc = kld::Accum::default();
    let mut words = Vec::new();
    let (n_ctx, first, stride) = (header.n_ctx, header.n_ctx / 2, header.record_words());
    for c in 0..header.n_chunk {
        reader.next_chunk(&mut words).map_err(PerplexityError::Base)?;
        let source = &header.tokens[c * n_ctx..(c + 1) * n_ctx];
        score_chunk(m, pool, source, order, |i, logits| {
            let k = i - first;
            let record = logits_file::Record::new(&words[k * stride..(k + 1) * stride], header.n_vocab);
            acc.add(&logits[..logits.len().min(header.n_vocab)], &record, source[i + 1] as usize);
        })?;
        on_chunk(c, &acc);
    }
    Ok(acc.summary())
}

/// Why a perplexity or KL-divergence run failed.
#[derive(Debug, thiserror::Error)]
pub enum PerplexityError {
    /// The model could not evaluate the text.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Writing the base file failed.
    #[error("writing the base log-probabilities: {0}")]
    Write(std::io::Error),
    /// The base file is unreadable or damaged.
    #[error(transparent)]
    Base(logits_file::LogitsFileError),
    /// The base file belongs to another model.
    #[error("{0}")]
    Mismatch(String),
}
