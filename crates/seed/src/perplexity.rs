//! Perplexity of a text, scored the way `llama-perplexity` scores it.
//!
//! The text is tokenized once (with BOS where the vocabulary adds one) and cut into
//! chunks of `n_ctx` tokens; each chunk is evaluated from an empty cache, its first
//! token replaced by BOS where the vocabulary uses one, and only the second half
//! of each chunk is scored (the first half gives every scored token a context of
//! at least `n_ctx / 2`). The estimate's uncertainty is the standard error of the
//! mean negative log-likelihood, carried through `exp`.

use kernels::ThreadPool;
use model::sampler::logprobs;
use model::session::Session;
use model::{LoadedModel, ModelError};
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

/// Scores `text`; `on_chunk(i, running_ppl)` is called after each chunk.
pub fn perplexity(
    m: &LoadedModel,
    pool: &ThreadPool,
    text: &str,
    n_ctx: usize,
    mut on_chunk: impl FnMut(usize, f64),
) -> Result<Perplexity, ModelError> {
    if n_ctx < 4 {
        return Err(ModelError::Request(format!("a context of {n_ctx} tokens is too short to score")));
    }
    let tokens = m.tokenizer.encode(text, true, false);
    let n_chunks = tokens.len() / n_ctx;
    if n_chunks == 0 {
        return Err(ModelError::Request(format!(
            "the text has {} tokens, fewer than one chunk of {n_ctx}",
            tokens.len()
        )));
    }
    let bos = m.tokenizer.bos().filter(|_| m.tokenizer.add_bos());
    let first = n_ctx / 2;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut running = Vec::with_capacity(n_chunks);
    let mut chunk = vec![0u32; n_ctx];
    for c in 0..n_chunks {
        chunk.copy_from_slice(&tokens[c * n_ctx..(c + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        let mut session = Session::new(&m.model, pool, n_ctx)?;
        let source = &tokens[c * n_ctx..(c + 1) * n_ctx];
        session.feed_scoring(&chunk, |i, logits| {
            // Row i predicts token i + 1 of the chunk; score the second half.
            if i >= first && i + 1 < n_ctx {
                let (lp, _) = logprobs(logits, &[source[i + 1]], 0);
                let v = -f64::from(lp[0]);
                nll += v;
                nll2 += v * v;
                count += 1;
            }
        })?;
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
