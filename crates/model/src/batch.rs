//! What a forward pass takes and where it works: a batch of token runs from
//! different sequences, and the reusable buffers of the pass.
//!
//! Each [`SeqBatch`] is a run of new tokens of one sequence, starting at position
//! `pos`, with the block table that holds (and will hold) that sequence's keys and
//! values. Prompt chunks and single decode tokens of many sequences go through one
//! forward together, so each weight matrix is read once per step.

use kernels::matmul::MatmulScratch;

use crate::attention::{AttnScratch, RowPos, TILED_MIN_RUN};
use crate::error::ModelError;
use crate::kv_cache::KvCache;

/// Which rows of a run need logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (a prompt chunk that is not the last).
    None,
    /// Only the run's last token (decoding, end of a prompt).
    Last,
    /// Every token (scoring: perplexity, teacher forcing).
    All,
}

/// The order in which the matrix products compute given text (prompts, scored
/// text), for the layouts that have two (`kernels::matmul::Layout::Interleaved16`).
///
/// Generated tokens always take the layout's fast order: one exact integer sum per
/// row and block, scaled into one f32 chain per (row, token), in tiles that decode
/// each block of weights once for several tokens. ggml sums a block's 8 partial
/// products in 8 float lanes instead, one token at a time. Both are right; the
/// fast one passes the fidelity rule of `testdata/golden/README.md` (KL divergence
/// from an F32 run of the same weights no worse than llama.cpp's), so it is the
/// default for given text too. ggml's order stays as an option because it scores
/// text exactly as llama.cpp scores it: `seed perplexity --ggml-order` prints
/// llama-perplexity's figure to the last digit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GivenTextOrder {
    /// The layout's fast order, as for generated tokens.
    #[default]
    Fast,
    /// ggml's order; generated tokens (from [`SeqBatch::generated_from`] on) still
    /// take the fast one.
    Ggml,
}

/// New tokens of one sequence.
#[derive(Clone, Copy, Debug)]
pub struct SeqBatch<'a> {
    /// The tokens to feed, at positions `pos..pos + tokens.len()`.
    pub tokens: &'a [u32],
    /// Position of `tokens[0]`; positions before it are already in the cache.
    pub pos: usize,
    /// The sequence's blocks, covering at least `pos + tokens.len()` positions.
    pub block_table: &'a [u32],
    /// Which rows need logits.
    pub logits: Logits,
    /// The first position of the sequence that holds a token the model itself
    /// generated (`usize::MAX`: none). Generated tokens go through the matrix
    /// products in their fast, batch-invariant order
    /// (`kernels::matmul::MatmulScratch::set_fast_tokens`); given text (prompts,
    /// scoring) takes the workspace's [`GivenTextOrder`]. A position's order
    /// depends only on these, never on the rest of the batch, and a generated token
    /// computed again (after a preemption) takes the order it first had.
    pub generated_from: usize,
}

/// Buffers reused across forward passes; they grow to the largest batch seen and
/// are not allocated again after that.
#[derive(Default)]
pub struct Workspace {
    /// Residual stream `(n_rows, n_embd)`.
    pub(crate) x: Vec<f32>,
    /// Normalised input of a sub-block `(n_rows, n_embd)`.
    pub(crate) xn: Vec<f32>,
    /// Queries `(n_rows, n_head * head_dim)`.
    pub(crate) q: Vec<f32>,
    /// Keys `(n_rows, n_head_kv * head_dim)`.
    pub(crate) k: Vec<f32>,
    /// Values `(n_rows, n_head_kv * head_dim_v)`.
    pub(crate) v: Vec<f32>,
    /// Attention output `(n_rows, n_head * head_dim_v)`.
    pub(crate) att: Vec<f32>,
    /// Output of a sub-block before the residual add `(n_rows, n_embd)`.
    pub(crate) tmp: Vec<f32>,
    /// Feed-forward gate `(n_rows, n_ff)`.
    pub(crate) gate: Vec<f32>,
    /// Feed-forward up projection `(n_rows, n_ff)`.
    pub(crate) up: Vec<f32>,
    /// RoPE cosines and sines per row `(n_rows, n_rot / 2)`.
    pub(crate) rope_cos: Vec<f32>,
    pub(crate) rope_sin: Vec<f32>,
    /// Final hidden states of the rows that need logits `(n_out, n_embd)`.
    pub(crate) hidden_out: Vec<f32>,
    /// Logits `(n_out, n_vocab)`.
    pub(crate) logits: Vec<f32>,
    /// Token of each row.
    pub(crate) tokens: Vec<u32>,
    /// Sequence and position of each row.
    pub(crate) rows: Vec<RowPos>,
    /// Rows that need logits, in batch order.
    pub(crate) out_rows: Vec<usize>,
    /// Whether each row takes its matrices' fast order (see [`GivenTextOrder`]).
    pub(crate) fast: Vec<bool>,
    /// The order of given text.
    given_order: GivenTextOrder,
    /// Quantized activations for the matrix products.
    pub(crate) scratch: MatmulScratch,
    /// Attention's buffers.
    pub(crate) attn: AttnScratch,
    /// A mixture of experts' buffers.
    pub(crate) moe: crate::moe::MoeScratch,
    n_vocab: usize,
    /// Width of [`Workspace::hidden_out`]'s rows (set by the forward pass).
    pub(crate) n_embd: usize,
}

/// `v[..n]`, growing `v` first if it is shorter.
pub(crate) fn buf(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

impl Workspace {
    /// Sets the order in which later passes compute given text (default: fast).
    pub fn set_given_text_order(&mut self, order: GivenTextOrder) {
        self.given_order = order;
    }

    /// Lays out the rows of `batch` and checks it against the vocabulary and the
    /// cache: token ids in range, block tables long enough and in range.
    /// Returns the number of rows.
    pub(crate) fn plan(&mut self, batch: &[SeqBatch], n_vocab: usize, kv: &KvCache) -> Result<usize, ModelError> {
        self.tokens.clear();
        self.rows.clear();
        self.out_rows.clear();
        self.fast.clear();
        self.n_vocab = n_vocab;
        let bs = kv.block_size();
        for (s, run) in batch.iter().enumerate() {
            if run.tokens.is_empty() {
                return Err(ModelError::Request(format!("sequence {s} of the batch has no tokens")));
            }
            let end = run.pos + run.tokens.len();
            if run.block_table.len() * bs < end {
                return Err(ModelError::Request(format!(
                    "sequence {s} needs {end} positions but its {} blocks hold {}",
                    run.block_table.len(),
                    run.block_table.len() * bs
                )));
            }
            if let Some(b) = run.block_table.iter().find(|&&b| b as usize >= kv.n_blocks()) {
                return Err(ModelError::Request(format!("block {b} is outside the cache of {} blocks", kv.n_blocks())));
            }
            let tiled = run.tokens.len() >= TILED_MIN_RUN;
            for (i, &tok) in run.tokens.iter().enumerate() {
                if tok as usize >= n_vocab {
                    return Err(ModelError::Request(format!("token id {tok} is outside the vocabulary of {n_vocab}")));
                }
                let wanted = match run.logits {
                    Logits::None => false,
                    Logits::Last => i + 1 == run.tokens.len(),
                    Logits::All => true,
                };
                if wanted {
                    self.out_rows.push(self.rows.len());
                }
                self.tokens.push(tok);
                self.rows.push(RowPos { seq: s, pos: run.pos + i, tiled });
                let generated = run.pos + i >= run.generated_from;
                self.fast.push(generated || self.given_order == GivenTextOrder::Fast);
            }
        }
        self.scratch.set_fast_tokens(self.fast.iter().copied());
        Ok(self.rows.len())
    }

    /// Logits of the last forward pass: `(n_out, n_vocab)`, one row per token that
    /// asked for logits, in batch order.
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.out_rows.len() * self.n_vocab]
    }

    /// Logits of the `i`-th output row of the last forward pass.
    pub fn logits_row(&self, i: usize) -> &[f32] {
        &self.logits[i * self.n_vocab..(i + 1) * self.n_vocab]
    }

    /// The final-normed hidden state of the `i`-th output row of the last forward pass: what
    /// the output matrix reads, and the row an embedding pools (llama.cpp's `result_norm`).
    pub fn hidden_row(&self, i: usize) -> &[f32] {
        &self.hidden_out[i * self.n_embd..(i + 1) * self.n_embd]
    }

    /// Number of output rows of the last forward pass.
    pub fn n_out(&self) -> usize {
        self.out_rows.len()
    }
}
