//! The generation loop of the command line: prefill, then sample token by token
//! until an end-of-generation token, the token limit, or a stop request.
//!
//! (The server's engine runs many sequences at once; this is the one-sequence
//! loop that `seed run` and `seed generate` need.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use model::sampler::{self, Sampler, SamplingParams};
use model::session::Session;
use model::tokenizer::Tokenizer;
use serde::Serialize;

/// How to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Record the top-`k` log-probabilities at each generated position.
    pub logprobs: Option<usize>,
    /// A grammar the output must follow (`seed run --json-schema`); each generation uses a
    /// fresh copy.
    pub constraint: Option<model::grammar::Constraint>,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token came (it is not part of the output).
    Stop,
    /// The token limit or the context was reached.
    Length,
    /// The caller asked to stop (Ctrl-C).
    Cancelled,
}

/// A (token, log-probability) pair.
#[derive(Clone, Debug, Serialize)]
pub struct TokenLogprob {
    /// Token id.
    pub id: u32,
    /// Token text (lossy UTF-8 of its bytes).
    pub token: String,
    /// Natural-log probability under the raw logits.
    pub logprob: f32,
}

/// Log-probabilities at one generated position.
#[derive(Clone, Debug, Serialize)]
pub struct PositionLogprobs {
    /// The chosen token.
    #[serde(flatten)]
    pub chosen: TokenLogprob,
    /// The most likely tokens, most likely first.
    pub top_logprobs: Vec<TokenLogprob>,
}

/// What a generation produced.
#[derive(Clone, Debug)]
pub struct Generated {
    /// Generated token ids (without the end-of-generation token).
    pub token_ids: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Per-position log-probabilities, when asked for.
    pub logprobs: Vec<PositionLogprobs>,
    /// Prompt tokens actually computed (those not already in the cache).
    pub prompt_tokens_computed: usize,
    /// Time spent on the prompt.
    pub prompt_time: Duration,
    /// Time spent generating after the prompt.
    pub decode_time: Duration,
}

/// Generates a continuation of `prompt` in `session`, reusing whatever prefix of
/// it the session already holds. `on_token(id, bytes)` is called as each token is
/// chosen; `stop` (e.g. set by Ctrl-C) ends generation early.
pub fn generate(
    session: &mut Session,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    opts: &GenerateOptions,
    stop: Option<&AtomicBool>,
    mut on_token: impl FnMut(u32, &[u8]),
) -> Result<Generated, model::ModelError> {
    let started = Instant::now();
    let reused = session.reuse_prefix(prompt);
    let room = session.n_ctx().saturating_sub(prompt.len());
    if room == 0 {
        return Err(model::ModelError::Request(format!(
            "the prompt has {} tokens, which fills the context of {}",
            prompt.len(),
            session.n_ctx()
        )));
    }
    let mut sampler = Sampler::new(opts.sampling.clone());
    let mut constraint = opts.constraint.as_ref().map(model::grammar::Constraint::fork);
    let mut history: Vec<u32> = prompt.to_vec();
    let mut logits = session.feed(&prompt[reused..])?.to_vec();
    let prompt_time = started.elapsed();
    let decode_start = Instant::now();

    let mut out = Generated {
        token_ids: Vec::new(),
        finish_reason: FinishReason::Length,
        logprobs: Vec::new(),
        prompt_tokens_computed: prompt.len() - reused,
        prompt_time,
        decode_time: Duration::ZERO,
    };
    let limit = opts.max_tokens.min(room);
    while out.token_ids.len() < limit {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            out.finish_reason = FinishReason::Cancelled;
            break;
        }
        let raw = opts.logprobs.map(|_| logits.clone());
        if let Some(c) = constraint.as_mut() {
            c.mask(&mut logits).map_err(|e| model::ModelError::Request(format!("the output grammar failed: {e}")))?;
        }
        let id = sampler.sample(&mut logits, &history);
        if let Some(c) = constraint.as_mut() {
            c.accept(id).map_err(|e| model::ModelError::Request(format!("the output grammar failed: {e}")))?;
        }
        if let (Some(k), Some(raw)) = (opts.logprobs, raw) {
            out.logprobs.push(position_logprobs(tokenizer, &raw, id, k));
        }
        if tokenizer.is_eog(id) {
            out.finish_reason = FinishReason::Stop;
            break;
        }
        out.token_ids.push(id);
        history.push(id);
        on_token(id, &tokenizer.token_to_piece(id, false));
        if out.token_ids.len() == limit {
            break;
        }
        logits.copy_from_slice(session.decode(id)?);
    }
    if out.finish_reason == FinishReason::Stop && out.logprobs.len() > out.token_ids.len() {
        out.logprobs.truncate(out.token_ids.len());
    }
    out.decode_time = decode_start.elapsed();
    Ok(out)
}

/// Log-probabilities of `chosen` and of the `k` most likely tokens under `logits`.
pub fn position_logprobs(tokenizer: &Tokenizer, logits: &[f32], chosen: u32, k: usize) -> PositionLogprobs {
    let (lp, top) = sampler::logprobs(logits, &[chosen], k);
    let entry = |id: u32, logprob: f32| TokenLogprob {
        id,
        token: String::from_utf8_lossy(&tokenizer.token_to_piece(id, true)).into_owned(),
        logprob,
    };
    PositionLogprobs {
        chosen: entry(chosen, lp[0]),
        top_logprobs: top.into_iter().map(|(id, l)| entry(id, l)).collect(),
    }
}
