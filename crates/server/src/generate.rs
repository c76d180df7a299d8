//! Between the routes and the engine: tokenized prompts become engine
//! requests (one per choice), and their events come back on one channel,
//! tagged with the choice's index.
//!
//! Every request's [`EventSender`] wraps the same tokio sender: the engine
//! polls `is_closed` every step, so when the [`Submission`] is dropped — the
//! client went away and the handler or the SSE stream with it — every choice is
//! cancelled within a step and its KV blocks are freed.

use engine::{Event, EventSender, FinishReason, Logprobs, Request, Usage};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::error::ApiError;
use crate::extract::Caller;
use crate::quota::Reservation;
use crate::state::{AppState, Backend};
use crate::validate::GenParams;

/// A prompt ready for the engine.
#[derive(Clone, Debug)]
pub struct Tokenized {
    /// Its token ids.
    pub ids: Vec<u32>,
    /// Most tokens to generate for it.
    pub max_tokens: usize,
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

/// A request's admission by its tenant's quotas: its share of the engine and
/// its hold on the quotas (released, the unused tokens refunded, when the
/// [`Submission`] that carries it is dropped: on finish or disconnect).
#[derive(Debug)]
pub struct Ticket {
    /// The tenant's share of the engine's admission.
    pub share: engine::Share,
    /// The quota reservation.
    pub hold: Reservation,
}

impl Ticket {
    /// No tenant: the anonymous share, no quotas.
    pub fn none() -> Self {
        Ticket { share: engine::Share::default(), hold: Reservation::none() }
    }
}

/// Checks and reserves the caller's quotas for `prompts` with `n` choices each
/// (prompt tokens + `max_tokens × n`); 429 naming the limit when one is hit.
pub fn admit(state: &AppState, caller: Option<&Caller>, prompts: &[Tokenized], n: usize) -> Result<Ticket, ApiError> {
    let Some(caller) = caller else { return Ok(Ticket::none()) };
    let cfg = state.config();
    let weight = cfg.platform.as_ref().and_then(|p| p.tenant(&caller.tenant)).map_or(1, |t| t.weight);
    let share = engine::Share { tenant: tenant_number(&caller.tenant), weight };
    let Some(keeper) = &cfg.quotas else { return Ok(Ticket { share, hold: Reservation::none() }) };
    let tokens: u64 = prompts.iter().map(|p| (p.ids.len() + p.max_tokens.saturating_mul(n)) as u64).sum();
    let hold = keeper.reserve(&caller.tenant, tokens).map_err(ApiError::Quota)?;
    Ok(Ticket { share, hold })
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
    /// The quota hold, released when the submission is dropped.
    hold: Reservation,
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
    ticket: Ticket,
) -> Result<Submission, ApiError> {
    let Ticket { share, mut hold } = ticket;
    let (tx, rx) = unbounded_channel();
    let n = params.n;
    let base_seed = params.sampling.seed.unwrap_or_else(rand::random);
    let n_choices = prompts.len() * n;
    for (p, prompt) in prompts.into_iter().enumerate() {
        for j in 0..n {
            let index = p * n + j;
            let (send_tx, closed_tx) = (tx.clone(), tx.clone());
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
                events: EventSender::new(move |e| send_tx.send((index, e)).is_ok(), move || closed_tx.is_closed()),
            };
            // On failure the receiver drops with this function's frame, which
            // cancels the choices already submitted.
            backend.engine.submit(req).map_err(|e| {
                if matches!(e, engine::SubmitError::QueueFull { .. }) {
                    crate::metrics::count(&state.counters().rejected_busy);
                }
                ApiError::from_submit(e, param)
            })?;
            if j == 0 {
                hold.used(prompt.ids.len() as u64);
            }
        }
    }
    Ok(Submission { rx, hold, n_choices, n })
}

impl Submission {
    /// The next event of any choice; `None` once the engine holds no sender
    /// (every choice has ended).
    pub async fn next(&mut self) -> Option<(usize, Event)> {
        let ev = self.rx.recv().await;
        if let Some((_, Event::Token { .. })) = &ev {
            self.hold.used(1);
        }
        ev
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
            Event::Done { finish_reason, usage, text } => {
                c.text.push_str(&text);
                c.finish = Some(finish_reason);
                c.usage = usage;
                remaining -= 1;
            }
            Event::Error { message } => return Err(ApiError::Internal(format!("generation failed: {message}"))),
        }
    }
    Ok((out, sub))
}
