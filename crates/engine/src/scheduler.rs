//! Continuous batching: which sequences advance in the next forward pass, by how
//! many tokens, and with which KV blocks.
//!
//! Each step carries one decode token for every running sequence that has
//! finished its prompt, plus whole prompt chunks of waiting work up to a token
//! budget. A prompt is always cut at the same places (chunks of
//! `prefill_chunk` tokens from its first uncached token), whatever else is in
//! the batch, so a request's numbers do not depend on the load. There are no
//! fixed slots: a request is admitted whenever the pool has the blocks for its
//! prompt; when decoding runs out of blocks, the newest sequence is preempted
//! (its blocks freed, its tokens so far queued again to be recomputed).
//!
//! The scheduler knows nothing of the model: it is driven by [`Scheduler::schedule`]
//! (what to compute) and [`Scheduler::advance`] (what was computed and sampled),
//! so it is tested with fake sequences.
//!
//! Admission is fair between tenants (start-time fair queueing, a weighted
//! round-robin): each tenant has a virtual pass that grows by `STRIDE / weight`
//! with every sequence of its admitted, and the waiting tenant with the lowest
//! pass goes next, its oldest sequence first. A tenant that was idle starts at
//! the current virtual time, so it neither banks credit nor waits behind
//! another's backlog. With one tenant this is plain first-come first-served.

use std::collections::{HashMap, VecDeque};

use crate::blocks::{BlockHash, BlockManager, PartialHit};

/// Identifies a sequence inside the scheduler.
pub type SeqId = u64;

/// Virtual time one admission costs a tenant of weight 1.
const STRIDE: u64 = 1 << 20;

/// Fewest prompt positions that a waiting sequence would take from a running
/// one's prompt computation to wait a step for it (see
/// `Scheduler::shares_a_prompt_in_progress`): below it, computing them again
/// costs less than the step.
const MIN_SHARED: usize = 8;

/// Whose a sequence is, for fair admission: a tenant id and its weight (a
/// tenant of weight 2 is admitted twice as often as one of weight 1 while both
/// wait). The default is the one anonymous tenant of weight 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Share {
    /// The tenant (any stable number; the server hashes the tenant's id).
    pub tenant: u64,
    /// Its weight, at least 1.
    pub weight: u32,
}

impl Default for Share {
    fn default() -> Self {
        Share { tenant: 0, weight: 1 }
    }
}

/// Sizes and limits of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Positions per KV block.
    pub block_size: usize,
    /// Blocks in the pool.
    pub n_blocks: usize,
    /// Longest sequence (prompt + generated) the model accepts.
    pub max_seq_len: usize,
    /// Prompts are computed in chunks of this many tokens.
    pub prefill_chunk: usize,
    /// Most tokens in one forward pass (decode tokens and prompt chunks).
    pub max_batch_tokens: usize,
    /// Most sequences running at once.
    pub max_running: usize,
}

impl SchedulerConfig {
    /// Checks that a request of `prompt` tokens and `max_tokens` could ever run.
    pub fn check(&self, prompt: usize, max_tokens: usize) -> Result<(), AdmitError> {
        if prompt == 0 {
            return Err(AdmitError::Empty);
        }
        let total = prompt.saturating_add(max_tokens);
        if total > self.max_seq_len {
            return Err(AdmitError::TooLong { prompt, max_tokens, total, limit: self.max_seq_len });
        }
        let needed = total.div_ceil(self.block_size);
        if needed > self.n_blocks {
            return Err(AdmitError::TooBig { needed, total: self.n_blocks });
        }
        Ok(())
    }
}

/// The scheduler's record of one sequence.
#[derive(Debug)]
pub struct SeqState {
    /// Its id.
    pub id: SeqId,
    /// Prompt and generated tokens so far.
    pub tokens: Vec<u32>,
    /// Prompt length (as submitted).
    pub n_prompt: usize,
    /// Most tokens the whole sequence may reach.
    pub max_len: usize,
    /// Prompt tokens taken from the prefix cache at the first admission.
    pub n_cached: usize,
    /// Positions whose keys and values are in the cache.
    pub n_computed: usize,
    /// Its KV blocks.
    pub table: Vec<u32>,
    /// Prefix-cache salt.
    pub salt: u64,
    /// Full blocks already registered in the prefix cache.
    n_registered: usize,
    /// Where the current prompt computation started (chunks count from here).
    chunk_base: usize,
    /// Admitted before?
    admitted_once: bool,
    /// Times preempted.
    pub preemptions: u32,
    /// Its tenant's share.
    pub share: Share,
}

/// One sequence's share of a forward pass: tokens `start..start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    /// The sequence.
    pub id: SeqId,
    /// First position computed.
    pub start: usize,
    /// Tokens computed.
    pub len: usize,
    /// Whether the last token's logits are needed (a decode step, or the end of
    /// the prompt).
    pub sample: bool,
}

/// Why a sequence cannot be admitted at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmitError {
    /// Prompt plus `max_tokens` exceed the model's context.
    #[error(
        "the prompt has {prompt} tokens and max_tokens is {max_tokens}: {total} exceed the context of {limit} tokens"
    )]
    TooLong {
        /// Prompt tokens.
        prompt: usize,
        /// Requested completion tokens.
        max_tokens: usize,
        /// Their sum.
        total: usize,
        /// The limit.
        limit: usize,
    },
    /// The sequence could never fit in the KV pool.
    #[error("the request needs {needed} KV blocks but the pool has {total}")]
    TooBig {
        /// Blocks needed.
        needed: usize,
        /// Blocks in the pool.
        total: usize,
    },
    /// Empty prompt.
    #[error("the prompt is empty")]
    Empty,
}

/// The waiting queue, the running set and the block pool.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    blocks: BlockManager,
    waiting: VecDeque<SeqState>,
    running: Vec<SeqState>,
    /// Each tenant's virtual pass (see the module's notes).
    pass: HashMap<u64, u64>,
    /// The virtual time: the start pass of the last admission.
    vtime: u64,
    /// Partial prefix hits of the last [`Scheduler::schedule`] whose blocks the
    /// caller must copy (see [`Scheduler::pending_copies`]).
    copies: Vec<PartialHit>,
    /// Prompt positions looked up in the prefix cache at first admission, and
    /// those taken from it.
    prefix_tokens: (u64, u64),
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(cfg: SchedulerConfig) -> Self {
        Scheduler {
            blocks: BlockManager::new(cfg.n_blocks, cfg.block_size),
            cfg,
            waiting: VecDeque::new(),
            running: Vec::new(),
            pass: HashMap::new(),
            vtime: 0,
            copies: Vec::new(),
            prefix_tokens: (0, 0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Prompt positions looked up in the prefix cache (all but the last of each
    /// prompt, at its first admission) and those taken from it, whole blocks and
    /// parts of blocks: the cache's hit rate in the positions it saves computing.
    pub fn prefix_tokens(&self) -> (u64, u64) {
        self.prefix_tokens
    }

    /// The block manager (for metrics).
    pub fn blocks(&self) -> &BlockManager {
        &self.blocks
    }

    /// Sequences waiting to be admitted.
    pub fn n_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Sequences admitted and not finished.
    pub fn n_running(&self) -> usize {
        self.running.len()
    }

    /// Checks that a request of `prompt` tokens and `max_tokens` could ever run.
    pub fn check(&self, prompt: usize, max_tokens: usize) -> Result<(), AdmitError> {
        self.cfg.check(prompt, max_tokens)
    }

    /// Queues a sequence (after [`Scheduler::check`]).
    pub fn add(&mut self, id: SeqId, prompt: Vec<u32>, max_tokens: usize, salt: u64) -> Result<(), AdmitError> {
        self.add_for(id, prompt, max_tokens, salt, Share::default())
    }

    /// Queues a sequence of the tenant `share` (after [`Scheduler::check`]).
    pub fn add_for(
        &mut self,
        id: SeqId,
        prompt: Vec<u32>,
        max_tokens: usize,
        salt: u64,
        share: Share,
    ) -> Result<(), AdmitError> {
        self.check(prompt.len(), max_tokens)?;
        let share = Share { weight: share.weight.max(1), ..share };
        let n_prompt = prompt.len();
        self.waiting.push_back(SeqState {
            id,
            max_len: n_prompt + max_tokens,
            tokens: prompt,
            n_prompt,
            n_cached: 0,
            n_computed: 0,
            table: Vec::new(),
            salt,
            n_registered: 0,
            chunk_base: 0,
            admitted_once: false,
            preemptions: 0,
            share,
        });
        Ok(())
    }

    /// The running sequence `id`.
    pub fn get(&self, id: SeqId) -> Option<&SeqState> {
        self.running.iter().find(|s| s.id == id)
    }

    /// Removes `id` wherever it is (finished or cancelled), releasing its blocks.
    pub fn remove(&mut self, id: SeqId) -> Option<SeqState> {
        let mut seq = if let Some(i) = self.running.iter().position(|s| s.id == id) {
            self.running.remove(i)
        } else {
            let i = self.waiting.iter().position(|s| s.id == id)?;
            self.waiting.remove(i)?
        };
        self.drop_copies(&seq.table);
        self.blocks.release_all(&mut seq.table);
        Some(seq)
    }

    /// Cancels the pending copies into blocks of `table` (a sequence leaving
    /// before its copy was made: its block may go to another sequence).
    fn drop_copies(&mut self, table: &[u32]) {
        let blocks = &mut self.blocks;
        self.copies.retain(|hit| {
            let keep = !table.contains(&hit.dst);
            if !keep {
                blocks.release(hit.src);
            }
            keep
        });
    }

    /// Decides the next forward pass: admits what fits, then lists the work.
    /// Returns the ids of sequences preempted to make room (their work restarts).
    /// Before computing the work, the caller makes the block copies of
    /// [`Scheduler::pending_copies`] and then calls [`Scheduler::copies_done`]
    /// (copies left unconfirmed are let go here, at the next call).
    pub fn schedule(&mut self) -> (Vec<Work>, Vec<SeqId>) {
        self.copies_done();
        let mut preempted = Vec::new();
        self.admit();
        let mut work = Vec::new();
        let mut budget = self.cfg.max_batch_tokens;

        // Decode steps first: every running sequence whose prompt is done.
        let mut i = 0;
        while i < self.running.len() {
            let seq = &self.running[i];
            if seq.tokens.len() - seq.n_computed != 1 {
                i += 1;
                continue;
            }
            let need = seq.n_computed + 1;
            if !self.grow(i, need) {
                // Out of blocks: preempt the newest sequence (maybe this one, in
                // which case `i` now points past the end), then retry.
                let victim = self.running.len() - 1;
                preempted.push(self.running[victim].id);
                self.preempt(victim);
                continue;
            }
            let seq = &self.running[i];
            work.push(Work { id: seq.id, start: seq.n_computed, len: 1, sample: true });
            budget = budget.saturating_sub(1);
            i += 1;
        }

        // Prompt chunks, oldest first, whole chunks only.
        for i in 0..self.running.len() {
            let seq = &self.running[i];
            let remaining = seq.tokens.len() - seq.n_computed;
            if remaining <= 1 {
                continue; // decoding (scheduled above) or nothing to do
            }
            let done_in_run = seq.n_computed - seq.chunk_base;
            let chunk = self.cfg.prefill_chunk - done_in_run % self.cfg.prefill_chunk;
            let len = chunk.min(remaining);
            if len > budget && !work.is_empty() {
                break;
            }
            let need = seq.n_computed + len;
            if !self.grow(i, need) {
                break;
            }
            let seq = &self.running[i];
            work.push(Work { id: seq.id, start: seq.n_computed, len, sample: len == remaining });
            budget = budget.saturating_sub(len);
        }
        (work, preempted)
    }

    /// Block copies the last [`Scheduler::schedule`] asked for: for each, the
    /// keys and values of block `src` go to block `dst` (whole blocks; the
    /// sequence owning `dst` uses its first `len` positions and writes the rest).
    pub fn pending_copies(&self) -> &[PartialHit] {
        &self.copies
    }

    /// Confirms that the pending copies were made: their source blocks are let go.
    pub fn copies_done(&mut self) {
        for hit in std::mem::take(&mut self.copies) {
            self.blocks.release(hit.src);
        }
    }

    /// Records that `work` was computed: positions become cached, full blocks
    /// are registered for sharing, and `sampled` (one token per sampling work
    /// item, in order) is appended to each sequence.
    pub fn advance(&mut self, work: &[Work], sampled: &[Option<u32>]) {
        for (w, tok) in work.iter().zip(sampled) {
            let Some(seq) = self.running.iter_mut().find(|s| s.id == w.id) else { continue };
            seq.n_computed = w.start + w.len;
            if let Some(t) = tok {
                seq.tokens.push(*t);
            }
            // Register the blocks that became full.
            let bs = self.cfg.block_size;
            let full = seq.n_computed / bs;
            if full > seq.n_registered {
                let hashes = self.blocks.block_hashes(seq.salt, &seq.tokens[..full * bs]);
                for i in seq.n_registered..full {
                    let parent = if i == 0 { BlockManager::root(seq.salt) } else { hashes[i - 1] };
                    self.blocks.register(seq.table[i], parent, hashes[i], &seq.tokens[i * bs..(i + 1) * bs]);
                }
                seq.n_registered = full;
            }
        }
    }

    /// The waiting sequence to admit next, leaving out those in `held`: a
    /// preempted one first (it is at the front), else the oldest of the waiting
    /// tenant with the lowest pass.
    fn next_waiting(&self, held: &[SeqId]) -> Option<usize> {
        let front = self.waiting.front()?;
        if front.preemptions > 0 {
            return Some(0);
        }
        let mut best: Option<(u64, usize)> = None;
        let mut seen: Vec<u64> = Vec::new();
        for (i, seq) in self.waiting.iter().enumerate() {
            if held.contains(&seq.id) {
                continue;
            }
            let t = seq.share.tenant;
            if seen.contains(&t) {
                continue;
            }
            seen.push(t);
            let pass = self.pass.get(&t).copied().unwrap_or(0).max(self.vtime);
            if best.is_none_or(|(p, _)| pass < p) {
                best = Some((pass, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Charges the admission of one sequence to `share`'s tenant.
    fn charge(&mut self, share: Share) {
        let start = self.pass.get(&share.tenant).copied().unwrap_or(0).max(self.vtime);
        self.vtime = start;
        self.pass.insert(share.tenant, start + STRIDE / u64::from(share.weight.max(1)));
        // Tenants at or behind the virtual time are the same as new ones.
        if self.pass.len() > 64 {
            let vtime = self.vtime;
            self.pass.retain(|_, p| *p > vtime);
        }
    }

    /// Admits waiting sequences, fairly between tenants (oldest first within
    /// one), while the pool has blocks for their prompts (the prefix cache may
    /// cover part of them).
    fn admit(&mut self) {
        let mut held = Vec::new();
        while self.running.len() < self.cfg.max_running {
            let Some(idx) = self.next_waiting(&held) else { break };
            let seq = &self.waiting[idx];
            if self.shares_a_prompt_in_progress(seq) {
                held.push(seq.id);
                continue;
            }
            let bs = self.cfg.block_size;
            // Leave at least one token to compute, for its logits.
            let hashes: Vec<BlockHash> = self.blocks.block_hashes(seq.salt, &seq.tokens[..seq.tokens.len() - 1]);
            // Conservative: blocks the prefix cache would share count as needed too.
            let needed = seq.tokens.len().div_ceil(bs);
            if needed > self.blocks.n_available() {
                break;
            }
            let Some(mut seq) = self.waiting.remove(idx) else { break };
            if !seq.admitted_once {
                self.charge(seq.share);
            }
            seq.table = self.blocks.match_prefix(&hashes);
            seq.n_computed = seq.table.len() * bs;
            seq.n_registered = seq.table.len();
            // Then the positions of the next block that a cached block agrees on,
            // copied (when the pool has a block to spare beyond the prompt's).
            let full = seq.table.len();
            let next = &seq.tokens[full * bs..seq.tokens.len() - 1];
            if !next.is_empty() && self.blocks.n_available() > needed {
                let parent = if full == 0 { BlockManager::root(seq.salt) } else { hashes[full - 1] };
                if let Some(hit) = self.blocks.take_partial(parent, next) {
                    seq.table.push(hit.dst);
                    seq.n_computed += hit.len;
                    self.copies.push(hit);
                }
            }
            seq.chunk_base = seq.n_computed;
            if !seq.admitted_once {
                seq.n_cached = seq.n_computed;
                seq.admitted_once = true;
                self.prefix_tokens.0 += (seq.tokens.len() - 1) as u64;
                self.prefix_tokens.1 += seq.n_computed as u64;
            }
            self.running.push(seq);
        }
    }

    /// Whether waiting `seq` should wait a step for a running sequence whose
    /// prompt is being computed and agrees with its own for at least
    /// [`MIN_SHARED`] positions not computed yet, which it could take from the
    /// prefix cache once they are (only full blocks are registered, so the
    /// agreement counts up to the running prompt's last full block). Prompts that
    /// arrive together — a burst after one system prompt, the `n` choices of one
    /// request — then compute their common part once instead of side by side.
    /// A sequence waits only for prompt work already running, which advances
    /// every step, so the wait ends.
    fn shares_a_prompt_in_progress(&self, seq: &SeqState) -> bool {
        if seq.admitted_once {
            return false;
        }
        let bs = self.cfg.block_size;
        let own = &seq.tokens[..seq.tokens.len() - 1];
        self.running.iter().any(|run| {
            if run.salt != seq.salt || run.n_computed >= run.n_prompt {
                return false;
            }
            // The first `want` positions must agree, within the running prompt's
            // whole blocks; the last of them is checked first, so prompts that
            // share only a system prompt already computed cost one comparison.
            let want = run.n_computed + MIN_SHARED;
            want <= (run.n_prompt / bs * bs).min(own.len())
                && run.tokens[want - 1] == own[want - 1]
                && run.tokens[..want] == own[..want]
        })
    }

    /// Grows running sequence `i`'s table to cover `need` positions.
    fn grow(&mut self, i: usize, need: usize) -> bool {
        let bs = self.cfg.block_size;
        while self.running[i].table.len() * bs < need {
            match self.blocks.allocate() {
                Some(b) => self.running[i].table.push(b),
                None => return false,
            }
        }
        true
    }

    /// Frees running sequence `i`'s blocks and queues it again, first in line,
    /// to recompute everything it has so far.
    fn preempt(&mut self, i: usize) {
        let mut seq = self.running.remove(i);
        self.drop_copies(&seq.table);
        self.blocks.release_all(&mut seq.table);
        seq.n_computed = 0;
        seq.n_registered = 0;
        seq.chunk_base = 0;
        seq.preemptions += 1;
        self.waiting.push_front(seq);
    }
}
