//! One sequence with a cache of its own: what the command line and the tests use
//! to run a model without the engine's scheduler.
//!
//! The session remembers the tokens already in its cache, so a chat's next turn
//! only feeds what is new ([`Session::reuse_prefix`]).

use kernels::ThreadPool;

use crate::batch::{GivenTextOrder, Logits, SeqBatch, Workspace};
use crate::error::ModelError;
use crate::kv_cache::{BlockAllocator, KvCache};
use crate::Model;

/// Positions per KV block in a session's cache.
const BLOCK_SIZE: usize = 32;
/// Most tokens fed through one forward pass (longer prompts go in chunks).
pub const MAX_CHUNK: usize = 512;

/// A single sequence over `model`, with room for `n_ctx` positions.
pub struct Session<'m> {
    model: &'m Model,
    pool: &'m ThreadPool,
    kv: KvCache,
    blocks: BlockAllocator,
    table: Vec<u32>,
    tokens: Vec<u32>,
    ws: Workspace,
    n_ctx: usize,
}

impl<'m> Session<'m> {
    /// A session with a cache for `n_ctx` positions.
    pub fn new(model: &'m Model, pool: &'m ThreadPool, n_ctx: usize) -> Result<Self, ModelError> {
        let n_blocks = n_ctx.div_ceil(BLOCK_SIZE).max(1);
        Ok(Session {
            kv: KvCache::new(model.hparams(), BLOCK_SIZE, n_blocks)?,
            blocks: BlockAllocator::new(n_blocks),
            table: Vec::with_capacity(n_blocks),
            tokens: Vec::with_capacity(n_ctx),
            ws: Workspace::default(),
            model,
            pool,
            n_ctx,
        })
    }

    /// Sets the order in which later [`Session::feed`] and [`Session::feed_scoring`]
    /// calls compute given text (default: the fast one; [`GivenTextOrder::Ggml`]
    /// scores text exactly as llama.cpp does).
    pub fn set_given_text_order(&mut self, order: GivenTextOrder) {
        self.ws.set_given_text_order(order);
    }

    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Tokens in the cache, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets everything after the first `n` tokens.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.tokens.len() {
            return;
        }
        self.tokens.truncate(n);
        let keep = n.div_ceil(BLOCK_SIZE);
        for b in self.table.drain(keep..) {
            self.blocks.release(b);
        }
    }

    /// Keeps the longest cached prefix shared with `tokens` (leaving at least one
    /// token of `tokens` to feed, so there are logits to sample from) and returns
    /// its length: the caller feeds `tokens[returned..]`.
    pub fn reuse_prefix(&mut self, tokens: &[u32]) -> usize {
        let common = self.tokens.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        let keep = common.min(tokens.len().saturating_sub(1));
        self.truncate(keep);
        keep
    }

    /// Feeds `tokens` after those in the cache and returns the logits of the last
    /// one `(n_vocab,)`.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::Request("nothing to feed".into()));
        }
        let chunks = tokens.len().div_ceil(MAX_CHUNK);
        for (i, chunk) in tokens.chunks(MAX_CHUNK).enumerate() {
            let wanted = if i + 1 == chunks { Logits::Last } else { Logits::None };
            self.forward(chunk, wanted, false)?;
        }
        Ok(self.ws.logits_row(0))
    }

    /// Feeds one token the model generated (decoding) and returns the logits after
    /// it. Unlike [`Session::feed`], whose given text takes the session's
    /// [`GivenTextOrder`], this always lets the matrix products use their fast order
    /// (see `SeqBatch::generated_from`), as the engine does for every generated token.
    pub fn decode(&mut self, token: u32) -> Result<&[f32], ModelError> {
        self.forward(&[token], Logits::Last, true)?;
        Ok(self.ws.logits_row(0))
    }

    /// Feeds `tokens` and calls `on_row(i, logits)` with the logits after each
    /// token `tokens[i]` (the distribution of the token that follows it).
    pub fn feed_scoring(&mut self, tokens: &[u32], mut on_row: impl FnMut(usize, &[f32])) -> Result<(), ModelError> {
        let mut done = 0;
        for chunk in tokens.chunks(MAX_CHUNK) {
            self.forward(chunk, Logits::All, false)?;
            for i in 0..chunk.len() {
                on_row(done + i, self.ws.logits_row(i));
            }
            done += chunk.len();
        }
        Ok(())
    }

    fn forward(&mut self, chunk: &[u32], logits: Logits, decoding: bool) -> Result<(), ModelError> {
        let pos = self.tokens.len();
        let end = pos + chunk.len();
        if end > self.n_ctx {
            return Err(ModelError::Request(format!(
                "the context is full: {pos} tokens in the cache + {} new > {} positions",
                chunk.len(),
                self.n_ctx
            )));
        }
        if !self.blocks.reserve(&mut self.table, end, BLOCK_SIZE) {
            return Err(ModelError::Request("the KV cache has no free blocks".into()));
        }
        let generated_from = if decoding { pos } else { usize::MAX };
        let batch = [SeqBatch { tokens: chunk, pos, block_table: &self.table, logits, generated_from }];
        self.model.forward(&batch, &mut self.kv, &mut self.ws, self.pool)?;
        self.tokens.extend_from_slice(chunk);
        Ok(())
    }
}
