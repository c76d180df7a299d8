//! The engine thread: one OS thread owns the model, the KV cache and the
//! scheduler, and runs a plain loop — take new requests, schedule, one batched
//! forward pass, sample, detokenize, stop checks, send events, free what finished.
//! Compute inside a step is spread over the kernels' thread pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kernels::ThreadPool;
use model::kv_cache::KvCache;
use model::sampler::{argmax, logprobs, Sampler};
use model::{LoadedModel, Logits, ModelError, SeqBatch, Workspace};

use crate::detok::{Push, TextStream};
use crate::request::{Event, EventSender, FinishReason, Logprobs, Request, RequestId, TokenLogprob, Usage};
use crate::scheduler::{AdmitError, Scheduler, SchedulerConfig, Work};
use crate::stats::EngineStats;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Scheduler and KV pool sizes.
    pub scheduler: SchedulerConfig,
    /// Most requests waiting to run before `submit` refuses more.
    pub max_waiting: usize,
    /// Compute threads.
    pub threads: usize,
    /// Pin the compute threads, one CPU each (the engine thread, which samples
    /// and streams between steps, on the first): `threads` CPUs, or empty to
    /// leave placement to the system (see `kernels::affinity`).
    pub cpus: Vec<usize>,
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The waiting queue is full; try again later.
    #[error("the server is busy: {waiting} requests are already waiting")]
    QueueFull {
        /// Requests waiting.
        waiting: usize,
    },
    /// The request can never run (too long for the context or the KV pool).
    #[error(transparent)]
    Invalid(#[from] AdmitError),
    /// The engine is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

enum Command {
    Submit(Box<Request>),
    Shutdown { drain: Duration },
}

/// A running engine; cheap to share behind an `Arc`.
pub struct Engine {
    tx: Sender<Command>,
    stats: Arc<EngineStats>,
    cfg: EngineConfig,
    /// Submitted requests the engine thread has not picked up yet.
    in_channel: Arc<AtomicU64>,
    closing: AtomicBool,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// Starts the engine thread for `model`, allocating its KV pool.
    pub fn start(model: Arc<LoadedModel>, cfg: EngineConfig) -> Result<Engine, ModelError> {
        if !cfg.cpus.is_empty() && cfg.cpus.len() != cfg.threads {
            return Err(ModelError::Request(format!(
                "{} compute threads but {} CPUs to pin them to",
                cfg.threads,
                cfg.cpus.len()
            )));
        }
        let kv = KvCache::new(model.model.hparams(), cfg.scheduler.block_size, cfg.scheduler.n_blocks)?;
        let stats = Arc::new(EngineStats::default());
        EngineStats::set(&stats.kv_blocks_total, cfg.scheduler.n_blocks as u64);
        EngineStats::set(&stats.kv_block_size, cfg.scheduler.block_size as u64);
        let (tx, rx) = mpsc::channel();
        let in_channel = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            model,
            pool: if cfg.cpus.is_empty() { ThreadPool::new(cfg.threads) } else { ThreadPool::pinned(&cfg.cpus) },
            kv,
            ws: Workspace::default(),
            sched: Scheduler::new(cfg.scheduler.clone()),
            active: HashMap::new(),
            stats: Arc::clone(&stats),
            in_channel: Arc::clone(&in_channel),
            logits: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("seed-engine".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| ModelError::Request(format!("starting the engine thread: {e}")))?;
        Ok(Engine {
            tx,
            stats,
            cfg,
            in_channel,
            closing: AtomicBool::new(false),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// The engine's counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Checks that a request could ever run, without submitting it.
    pub fn check(&self, prompt: usize, max_tokens: usize) -> Result<(), AdmitError> {
        self.cfg.scheduler.check(prompt, max_tokens)
    }

    /// Hands a request to the engine; its events arrive on its own sender. A
    /// refused request gets no events: the error says why.
    pub fn submit(&self, req: Request) -> Result<(), SubmitError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        self.check(req.prompt.len(), req.max_tokens)?;
        // Reserve a place in the queue atomically, so a burst cannot overshoot it.
        let reserved = self.in_channel.fetch_add(1, Ordering::SeqCst);
        let waiting = EngineStats::get(&self.stats.waiting) + reserved;
        if waiting as usize >= self.cfg.max_waiting {
            self.in_channel.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::QueueFull { waiting: waiting as usize });
        }
        self.tx.send(Command::Submit(Box::new(req))).map_err(|_| {
            self.in_channel.fetch_sub(1, Ordering::SeqCst);
            SubmitError::ShuttingDown
        })
    }

    /// Stops accepting requests, lets running ones finish for up to `drain`,
    /// cancels the rest (each gets a final event), and waits for the thread.
    pub fn shutdown(&self, drain: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Command::Shutdown { drain });
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// Whether `shutdown` has begun.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

/// A request that ended in a step: why, and the text released at the end.
type Finished = (RequestId, FinishReason, String);

/// A request in flight, as the engine thread tracks it.
struct Active {
    events: EventSender,
    sampler: Sampler,
    stream: TextStream,
    generated: usize,
    max_tokens: usize,
    ignore_eos: bool,
    logprobs: Option<usize>,
    n_prompt: usize,
    submitted: Instant,
    last_token: Option<Instant>,
    constraint: Option<model::grammar::Constraint>,
    embed: bool,
}

/// The state the engine thread owns.
struct Worker {
    model: Arc<LoadedModel>,
    pool: ThreadPool,
    kv: KvCache,
    ws: Workspace,
    sched: Scheduler,
    active: HashMap<RequestId, Active>,
    stats: Arc<EngineStats>,
    in_channel: Arc<AtomicU64>,
    /// Scratch copy of one row of logits (the sampler edits it).
    logits: Vec<f32>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Command>) {
        self.pool.pin_caller();
        let mut deadline: Option<Instant> = None;
        loop {
            // New commands: wait when idle, otherwise just drain what is there.
            let idle = self.active.is_empty();
            let first = if idle && deadline.is_none() {
                match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return, // the engine handle is gone
                }
            } else {
                // (`try_recv`, not a zero timeout: that takes the blocking path.)
                match rx.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        deadline.get_or_insert_with(Instant::now);
                        None
                    }
                }
            };
            let mut next = first;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Submit(req) => {
                        self.in_channel.fetch_sub(1, Ordering::SeqCst);
                        if deadline.is_some() {
                            self.reject(*req, "the server is shutting down");
                        } else {
                            self.admit(*req);
                        }
                    }
                    Command::Shutdown { drain } => {
                        deadline = Some(Instant::now() + drain);
                    }
                }
                next = rx.try_recv().ok();
            }
            if let Some(d) = deadline {
                if self.active.is_empty() || Instant::now() >= d {
                    let ids: Vec<RequestId> = self.active.keys().copied().collect();
                    for id in ids {
                        self.finish(id, FinishReason::Cancelled, String::new());
                    }
                    self.publish();
                    return;
                }
            }
            self.drop_departed();
            if self.active.is_empty() {
                self.publish();
                continue;
            }
            self.step();
        }
    }

    fn admit(&mut self, req: Request) {
        let id = req.id;
        let n_prompt = req.prompt.len();
        if let Err(e) = self.sched.add_for(id, req.prompt, req.max_tokens, req.cache_salt, req.share) {
            let mut events = req.events;
            events.send(Event::Error { message: e.to_string() });
            EngineStats::add(&self.stats.finished[3], 1);
            return;
        }
        let active = Active {
            sampler: Sampler::new(req.sampling),
            stream: TextStream::new(&req.stop),
            events: req.events,
            generated: 0,
            max_tokens: req.max_tokens,
            ignore_eos: req.ignore_eos,
            logprobs: req.logprobs,
            n_prompt,
            submitted: Instant::now(),
            last_token: None,
            constraint: req.constraint,
            embed: req.embed,
        };
        self.active.insert(id, active);
    }

    fn reject(&mut self, req: Request, message: &str) {
        let mut events = req.events;
        events.send(Event::Error { message: message.into() });
        EngineStats::add(&self.stats.finished[3], 1);
    }

    /// Cancels requests whose clients are gone, before spending compute on them.
    fn drop_departed(&mut self) {
        let gone: Vec<RequestId> =
            self.active.iter().filter(|(_, a)| a.events.is_closed()).map(|(&id, _)| id).collect();
        for id in gone {
            self.finish(id, FinishReason::Cancelled, String::new());
        }
    }

    /// One scheduling step and forward pass.
    fn step(&mut self) {
        let (work, preempted) = self.sched.schedule();
        // Prompts that share part of a cached block start from a copy of it.
        for hit in self.sched.pending_copies() {
            self.kv.copy_block(hit.src as usize, hit.dst as usize);
        }
        self.sched.copies_done();
        EngineStats::add(&self.stats.preemptions, preempted.len() as u64);
        self.publish();
        if work.is_empty() {
            // Nothing fits yet (every block is held); wait for the next event
            // rather than spinning.
            std::thread::sleep(Duration::from_millis(1));
            return;
        }
        EngineStats::add(&self.stats.steps, 1);
        let result = {
            let runs: Vec<SeqBatch> = work
                .iter()
                .filter_map(|w| {
                    let seq = self.sched.get(w.id)?;
                    Some(SeqBatch {
                        tokens: &seq.tokens[w.start..w.start + w.len],
                        pos: w.start,
                        block_table: &seq.table,
                        logits: if w.sample { Logits::Last } else { Logits::None },
                        generated_from: seq.n_prompt,
                    })
                })
                .collect();
            self.model.model.forward(&runs, &mut self.kv, &mut self.ws, &self.pool)
        };
        if let Err(e) = result {
            for w in &work {
                self.fail(w.id, &format!("the model failed: {e}"));
            }
            self.publish();
            return;
        }
        let (sampled, finished, failed) = self.sample(&work);
        self.sched.advance(&work, &sampled);
        for (id, reason, text) in finished {
            self.finish(id, reason, text);
        }
        for (id, message) in failed {
            self.fail(id, &message);
        }
        self.publish();
    }

    /// Samples the next token of every sequence that asked for logits, streams
    /// it, and lists the sequences that are done, and those that failed (their grammar did).
    #[allow(clippy::type_complexity)]
    fn sample(&mut self, work: &[Work]) -> (Vec<Option<u32>>, Vec<Finished>, Vec<(RequestId, String)>) {
        let tokenizer = &self.model.tokenizer;
        let max_len = self.sched.config().max_seq_len;
        let mut sampled = Vec::with_capacity(work.len());
        let mut finished = Vec::new();
        let mut failed = Vec::new();
        let mut row = 0;
        for w in work {
            if !w.sample {
                sampled.push(None);
                continue;
            }
            let raw = self.ws.logits_row(row);
            row += 1;
            let Some(act) = self.active.get_mut(&w.id) else {
                sampled.push(None);
                continue;
            };
            if act.embed {
                // The prompt is read: its last row's hidden state is the answer, and nothing is
                // generated.
                let vector = self.ws.hidden_row(row - 1).to_vec();
                sampled.push(None);
                let reason = if act.events.send(Event::Embedding { vector }) {
                    FinishReason::Stop
                } else {
                    FinishReason::Cancelled
                };
                finished.push((w.id, reason, String::new()));
                continue;
            }
            let history = self.sched.get(w.id).map_or(&[][..], |s| &s.tokens[..]);
            let plain = act.sampler.params().temperature <= 0.0
                && act.sampler.params().logit_bias.is_empty()
                && act.sampler.params().repetition_penalty == 1.0
                && act.sampler.params().frequency_penalty == 0.0
                && act.sampler.params().presence_penalty == 0.0;
            let tok = match &mut act.constraint {
                None if plain => argmax(raw),
                None => {
                    self.logits.clear();
                    self.logits.extend_from_slice(raw);
                    act.sampler.sample(&mut self.logits, history)
                }
                // Greedy: the best token, if the grammar allows it, is also the best allowed one,
                // so the whole mask is computed only when the grammar refuses it.
                Some(c) => {
                    // (Sampled decoding masks first: no use looking for the best token.)
                    let greedy = if plain { Some(argmax(raw)).filter(|&best| c.allows(best)) } else { None };
                    if let Some(best) = greedy {
                        best
                    } else {
                        self.logits.clear();
                        self.logits.extend_from_slice(raw);
                        if let Err(e) = c.mask(&mut self.logits) {
                            sampled.push(None);
                            failed.push((w.id, format!("the output grammar failed: {e}")));
                            continue;
                        }
                        if plain {
                            argmax(&self.logits)
                        } else {
                            act.sampler.sample(&mut self.logits, history)
                        }
                    }
                }
            };
            let ends_grammar = match &mut act.constraint {
                Some(c) => {
                    if let Err(e) = c.accept(tok) {
                        sampled.push(None);
                        failed.push((w.id, format!("the output grammar failed: {e}")));
                        continue;
                    }
                    tokenizer.is_eog(tok)
                }
                None => false,
            };
            let lp = act.logprobs.map(|k| {
                let (chosen, top) = logprobs(raw, &[tok], k);
                let entry = |id: u32, logprob: f32| TokenLogprob {
                    id,
                    bytes: tokenizer.token_to_piece(id, true).into_owned(),
                    logprob,
                };
                Logprobs { chosen: entry(tok, chosen[0]), top: top.into_iter().map(|(id, l)| entry(id, l)).collect() }
            });
            sampled.push(Some(tok));

            let now = Instant::now();
            match act.last_token {
                None => self.stats.ttft.observe(now.duration_since(act.submitted).as_secs_f64()),
                Some(t) => self.stats.itl.observe(now.duration_since(t).as_secs_f64()),
            }
            act.last_token = Some(now);

            if ends_grammar || (!act.ignore_eos && tokenizer.is_eog(tok)) {
                finished.push((w.id, FinishReason::Stop, act.stream.finish()));
                continue;
            }
            act.generated += 1;
            EngineStats::add(&self.stats.generation_tokens, 1);
            let (text, stop) = match act.stream.push(&tokenizer.token_to_piece(tok, false)) {
                Push::Text(t) => (t, false),
                Push::Stop(t) => (t, true),
            };
            if !act.events.send(Event::Token { id: tok, text, logprobs: lp }) {
                finished.push((w.id, FinishReason::Cancelled, String::new()));
                continue;
            }
            let len = history.len() + 1;
            if stop {
                finished.push((w.id, FinishReason::Stop, String::new()));
            } else if act.generated >= act.max_tokens || len >= max_len {
                finished.push((w.id, FinishReason::Length, act.stream.finish()));
            }
        }
        (sampled, finished, failed)
    }

    /// Ends request `id`: frees its blocks and sends its final event.
    fn finish(&mut self, id: RequestId, reason: FinishReason, text: String) {
        let seq = self.sched.remove(id);
        let Some(mut act) = self.active.remove(&id) else { return };
        let usage = Usage {
            prompt_tokens: seq.as_ref().map_or(act.n_prompt, |s| s.n_prompt),
            cached_tokens: seq.as_ref().map_or(0, |s| s.n_cached),
            completion_tokens: act.generated,
        };
        EngineStats::add(&self.stats.prompt_tokens, usage.prompt_tokens as u64);
        let slot = match reason {
            FinishReason::Stop => 0,
            FinishReason::Length => 1,
            FinishReason::Cancelled => 2,
        };
        EngineStats::add(&self.stats.finished[slot], 1);
        let stop_sequence = act.stream.matched().filter(|_| reason == FinishReason::Stop).map(str::to_string);
        act.events.send(Event::Done { finish_reason: reason, usage, text, stop_sequence });
    }

    fn fail(&mut self, id: RequestId, message: &str) {
        self.sched.remove(id);
        if let Some(mut act) = self.active.remove(&id) {
            act.events.send(Event::Error { message: message.into() });
            EngineStats::add(&self.stats.finished[3], 1);
        }
    }

    /// Updates the gauges.
    fn publish(&self) {
        let s = &self.stats;
        EngineStats::set(&s.running, self.sched.n_running() as u64);
        EngineStats::set(&s.waiting, self.sched.n_waiting() as u64);
        EngineStats::set(&s.kv_blocks_used, self.sched.blocks().n_in_use() as u64);
        let (q, h) = self.sched.blocks().prefix_stats();
        EngineStats::set(&s.prefix_queried, q);
        EngineStats::set(&s.prefix_hits, h);
        let (q, h) = self.sched.prefix_tokens();
        EngineStats::set(&s.prefix_query_tokens, q);
        EngineStats::set(&s.prefix_hit_tokens, h);
    }
}
