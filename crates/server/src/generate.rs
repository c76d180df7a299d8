//! Between the routes and the engine: tokenized prompts become engine
//! requests (one per choice), and their events come back on one channel,
//! tagged with the choice's index.
//!
//! Every request's [`EventSender`] wraps the same tokio sender: the engine
//! polls `is_closed` every step, so when the [`Submission`] is dropped — the
//! client went away and the handler or the SSE stream with it — every choice is
//! cancelled within a step and its KV blocks are freed.

use engine::{Event, EventSender, FinishReason, Logprobs, Request, Usage};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::error::ApiError;
use crate::extract::Caller;
use std::sync::Arc;

use platform::store::usage::Admit;

use crate::meter::Meter;
use crate::quota::OpenRow;
use crate::state::{AppState, Backend};
use crate::validate::{GenParams, Prompt};

/// A prompt ready for the engine.
#[derive(Clone, Debug)]
pub struct Tokenized {
    /// Its token ids.
    pub ids: Vec<u32>,
    /// Most tokens to generate for it.
    pub max_tokens: usize,
}

/// Tokenizes prompts on the blocking pool: text as a rendered prompt is (special tokens parsed,
/// BOS as the vocabulary asks), token ids as they are.
pub async fn tokenize(backend: &Backend, prompts: Vec<Prompt>) -> Result<Vec<Vec<u32>>, ApiError> {
    let model = Arc::clone(&backend.model);
    tokio::task::spawn_blocking(move || {
        prompts
            .into_iter()
            .map(|p| match p {
                Prompt::Text(t) => model.tokenize_chat_prompt(&t),
                Prompt::Tokens(ids) => ids,
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("tokenizing failed: {e}")))
}

/// Resolves `max_tokens` for a prompt of `n_prompt` tokens (`None`: up to the
/// context) and checks that the request can ever run; the 400 names both counts.
pub fn plan(backend: &Backend, ids: Vec<u32>, max_tokens: Option<usize>, param: &str) -> Result<Tokenized, ApiError> {
    let n_prompt = ids.len();
    let max_tokens = match max_tokens {
        Some(m) => m,
        // Up to the context; a prompt that fills it is refused below.
        None => backend.max_sequence().saturating_sub(n_prompt).max(1),
    };
    backend.engine.check(n_prompt, max_tokens).map_err(|e| ApiError::from_admit(e, param))?;
    Ok(Tokenized { ids, max_tokens })
}

/// A request's admission: its tenant's share of the engine and, where its usage is recorded,
/// its open usage row (written under the tenant's quotas; completed by the request's meter, or
/// removed if the ticket is dropped before the request ran).
#[derive(Debug, Default)]
pub struct Ticket {
    /// The tenant's share of the engine's admission.
    pub share: engine::Share,
    /// The request's usage row.
    pub row: Option<OpenRow>,
}

/// Admits a request of `prompts` with `n` choices each: with a meter (a store records its
/// usage), the caller's region store checks the tenant's quotas (prompt tokens + `max_tokens ×
/// n` charged, across every replica of the region) and writes its running row, on the blocking
/// pool; 429 naming the limit when one is hit.
pub async fn admit(
    state: &AppState,
    caller: Option<&Caller>,
    meter: Option<&Meter>,
    prompts: &[Tokenized],
    n: usize,
) -> Result<Ticket, ApiError> {
    let cfg = state.config();
    let tenant = caller.and_then(|c| cfg.platform.as_ref().and_then(|p| p.tenant(&c.tenant)));
    let share = match caller {
        Some(c) => engine::Share { tenant: tenant_number(&c.tenant), weight: tenant.map_or(1, |t| t.weight) },
        None => engine::Share::default(),
    };
    let Some(meter) = meter else { return Ok(Ticket { share, row: None }) };
    let quotas = tenant.map(|t| t.quotas);
    let prompt_tokens: u64 = prompts.iter().map(|p| p.ids.len() as u64).sum();
    let charge: u64 = prompts.iter().map(|p| (p.ids.len() + p.max_tokens.saturating_mul(n)) as u64).sum();
    let (store, who, key_id, edition) =
        (Arc::clone(&meter.store), meter.tenant.clone(), meter.key_id.clone(), meter.edition.clone());
    let cost = platform::store::usage::cost(&meter.prices, prompt_tokens, 0, 0);
    let now = crate::state::unix_now();
    let lease_until = now + state.leases().ttl().as_secs();
    let admitting = Arc::clone(&store);
    let admitted = tokio::task::spawn_blocking(move || {
        admitting.admit(&Admit {
            tenant: &who,
            key_id: key_id.as_deref(),
            edition: &edition,
            prompt_tokens,
            charge,
            cost,
            quotas: quotas.as_ref(),
            now,
            lease_until,
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("admission failed: {e}")))?;
    match admitted {
        Ok(Ok(id)) => Ok(Ticket { share, row: Some(OpenRow::new(store, id, state.leases())) }),
        Ok(Err(exceeded)) => Err(ApiError::Quota(exceeded)),
        Err(e) => Err(ApiError::from_store(e, "")),
    }
}

/// The longest a request's schema or grammar may take to compile.
pub const GRAMMAR_COMPILE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Compiles the request's schema or grammar for `backend`'s vocabulary, on the blocking pool and
/// within [`GRAMMAR_COMPILE_LIMIT`]; a schema or grammar that cannot be used is a 400 naming why,
/// charged to `param` (else to `grammar` or `response_format`, whichever it came from).
pub async fn compile_grammar(
    backend: &Backend,
    params: &GenParams,
    param: Option<&'static str>,
) -> Result<Option<model::grammar::Constraint>, ApiError> {
    let Some(spec) = params.grammar.clone() else { return Ok(None) };
    let param =
        param.unwrap_or(if matches!(spec, model::grammar::Spec::Lark(_)) { "grammar" } else { "response_format" });
    let model = Arc::clone(&backend.model);
    let compiling = tokio::task::spawn_blocking(move || model.grammar_vocab().and_then(|v| v.compile(&spec)));
    match tokio::time::timeout(GRAMMAR_COMPILE_LIMIT, compiling).await {
        Err(_) => Err(ApiError::invalid(
            param,
            format!("the schema or grammar did not compile within {} s", GRAMMAR_COMPILE_LIMIT.as_secs()),
        )),
        Ok(Err(e)) => Err(ApiError::Internal(format!("compiling the grammar failed: {e}"))),
        Ok(Ok(Err(e))) => Err(ApiError::invalid(param, format!("the schema or grammar cannot be used: {e}"))),
        Ok(Ok(Ok(c))) => Ok(Some(c)),
    }
}

/// A stable number for a tenant id (the scheduler's tenant key).
fn tenant_number(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The requests of one HTTP call, in flight.
pub struct Submission {
    rx: UnboundedReceiver<(usize, Event)>,
    /// Choices in all.
    pub n_choices: usize,
    /// Choices per prompt.
    pub n: usize,
}

/// Submits `n` choices for each prompt. Choice `j` of prompt `p` has index
/// `p·n + j` and seed `seed + j` (a random base when no seed is given), so a
/// seeded request repeats itself and its choices differ.
pub fn submit(
    state: &AppState,
    backend: &Backend,
    prompts: Vec<Tokenized>,
    params: &GenParams,
    param: &str,
    share: engine::Share,
    constraint: Option<&model::grammar::Constraint>,
) -> Result<Submission, ApiError> {
    let (tx, rx) = unbounded_channel();
    let n = params.n;
    let base_seed = params.sampling.seed.unwrap_or_else(rand::random);
    let n_choices = prompts.len() * n;
    for (p, prompt) in prompts.into_iter().enumerate() {
        for j in 0..n {
            let index = p * n + j;
            let mut sampling = params.sampling.clone();
            sampling.seed = Some(base_seed.wrapping_add(j as u64));
            let req = Request {
                id: state.next_request_id(),
                prompt: prompt.ids.clone(),
                sampling,
                max_tokens: prompt.max_tokens,
                stop: params.stop.clone(),
                ignore_eos: params.ignore_eos,
                logprobs: params.logprobs,
                cache_salt: 0,
                share,
                constraint: constraint.map(model::grammar::Constraint::fork),
                embed: false,
                events: sender(&tx, index),
            };
            // On failure the receiver drops with this function's frame, which
            // cancels the choices already submitted.
            hand_over(state, backend, req, param)?;
        }
    }
    Ok(Submission { rx, n_choices, n })
}

/// Submits one embedding request per input (index = input order): each reads its prompt and
/// answers with [`Event::Embedding`], generating nothing.
pub fn submit_embeddings(
    state: &AppState,
    backend: &Backend,
    inputs: Vec<Tokenized>,
    share: engine::Share,
) -> Result<Submission, ApiError> {
    let (tx, rx) = unbounded_channel();
    let n_choices = inputs.len();
    for (index, input) in inputs.into_iter().enumerate() {
        let req = Request {
            id: state.next_request_id(),
            prompt: input.ids,
            sampling: model::sampler::SamplingParams::greedy(),
            max_tokens: input.max_tokens,
            stop: Vec::new(),
            ignore_eos: false,
            logprobs: None,
            cache_salt: 0,
            share,
            constraint: None,
            embed: true,
            events: sender(&tx, index),
        };
        hand_over(state, backend, req, "input")?;
    }
    Ok(Submission { rx, n_choices, n: 1 })
}

/// The events of choice `index`, into the submission's channel (closed when it is dropped).
fn sender(tx: &UnboundedSender<(usize, Event)>, index: usize) -> EventSender {
    let (send_tx, closed_tx) = (tx.clone(), tx.clone());
    EventSender::new(move |e| send_tx.send((index, e)).is_ok(), move || closed_tx.is_closed())
}

/// Hands `req` to the engine; a refusal is the API's error (a full queue also counted).
fn hand_over(state: &AppState, backend: &Backend, req: Request, param: &str) -> Result<(), ApiError> {
    backend.engine.submit(req).map_err(|e| {
        if matches!(e, engine::SubmitError::QueueFull { .. }) {
            crate::metrics::count(&state.counters().rejected_busy);
        }
        ApiError::from_submit(e, param)
    })
}

impl Submission {
    /// The next event of any choice; `None` once the engine holds no sender
    /// (every choice has ended).
    pub async fn next(&mut self) -> Option<(usize, Event)> {
        self.rx.recv().await
    }

    /// Whether choice `index` is the first of its prompt (its usage carries the
    /// prompt's count).
    pub fn first_of_prompt(&self, index: usize) -> bool {
        index.is_multiple_of(self.n.max(1))
    }
}

/// A finished choice, for the non-streaming responses.
#[derive(Debug, Default)]
pub struct ChoiceResult {
    /// The whole text.
    pub text: String,
    /// Log-probs of each streamed token, with the text offset where it starts.
    pub logprobs: Vec<(Logprobs, usize)>,
    /// Why it ended.
    pub finish: Option<FinishReason>,
    /// Its counts.
    pub usage: Usage,
    /// The stop string that ended it, if one did.
    pub stop_sequence: Option<String>,
}

/// Waits for every choice to finish. An engine error is a 500; a choice cut
/// short by shutdown is a 503.
pub async fn collect(sub: Submission) -> Result<(Vec<ChoiceResult>, Submission), ApiError> {
    let mut progress = vec![(String::new(), 0); sub.n_choices];
    collect_tracked(sub, &mut progress).await
}

/// As [`collect`], keeping each choice's text and generated-token count so far in `progress`
/// (for a request cut short, whose future is dropped mid-way).
pub async fn collect_tracked(
    mut sub: Submission,
    progress: &mut [(String, usize)],
) -> Result<(Vec<ChoiceResult>, Submission), ApiError> {
    let mut out: Vec<ChoiceResult> = (0..sub.n_choices).map(|_| ChoiceResult::default()).collect();
    let mut remaining = sub.n_choices;
    while remaining > 0 {
        let Some((i, event)) = sub.next().await else {
            return Err(ApiError::Internal("the engine stopped before the request finished".into()));
        };
        let Some(c) = out.get_mut(i) else { continue };
        match event {
            Event::Token { text, logprobs, .. } => {
                if let Some(lp) = logprobs {
                    c.logprobs.push((lp, c.text.len()));
                }
                if let Some(p) = progress.get_mut(i) {
                    p.0.push_str(&text);
                    p.1 += 1;
                }
                c.text.push_str(&text);
            }
            Event::Done { finish_reason: FinishReason::Cancelled, .. } => {
                return Err(ApiError::Unavailable("the request was aborted: the server is shutting down".into()));
            }
            Event::Done { finish_reason, usage, text, stop_sequence } => {
                c.text.push_str(&text);
                c.finish = Some(finish_reason);
                c.stop_sequence = stop_sequence;
                c.usage = usage;
                remaining -= 1;
            }
            Event::Error { message } => return Err(ApiError::Internal(format!("generation failed: {message}"))),
            Event::Embedding { .. } => {} // never sent to a generation
        }
    }
    Ok((out, sub))
}
