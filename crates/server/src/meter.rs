//! What a generation leaves behind: its usage record (the engine's token counts, the cost at
//! the edition's prices) and, for a chat bound to a conversation, the new turn(s) and the answer.
//!
//! A [`Meter`] is finished exactly once: when the generation ends (stop, length, error, shutdown)
//! or, through [`MeterGuard`] and the stream's drop, when the client goes away (`cancelled`,
//! with the tokens generated until then). The conversation is written before the usage, each in
//! one transaction; the client hears of success only after both committed.

use std::sync::Arc;

use platform::store::usage::{cost, UsageRecord};
use platform::Store;

use crate::error::ApiError;
use crate::generate::{ChoiceResult, Submission};
use crate::schema::{finish_reason, UsageBody};
use crate::state::unix_now;

/// Where and what to record for one request.
pub struct Meter {
    /// The caller's store.
    pub store: Arc<Store>,
    /// The caller's tenant.
    pub tenant: String,
    /// The key used, if any.
    pub key_id: Option<String>,
    /// The edition (the request's `model`).
    pub edition: String,
    /// Its prices per million tokens.
    pub prices: platform::config::Prices,
    /// The conversation and the request's new messages (role, content), for a chat bound to one.
    pub conversation: Option<(String, Vec<(String, String)>)>,
    /// The request's usage row, written at admission; completed here. Without one (never
    /// admitted through the store), the usage is written as a new row.
    pub row: Option<crate::quota::OpenRow>,
}

/// How a generation ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its counts (prompt counted once per prompt).
    pub usage: UsageBody,
    /// `stop`, `length`, `cancelled` or `error`.
    pub finish_reason: &'static str,
    /// The first choice's text (the conversation's answer).
    pub text: String,
}

impl Outcome {
    /// A whole (not streamed) request's outcome: the usage summed over its choices (each
    /// prompt counted once), the first choice's finish reason and, with `keep_text`, its text.
    pub fn of(results: &[ChoiceResult], sub: &Submission, keep_text: bool) -> Outcome {
        let mut usage = UsageBody::default();
        for (index, r) in results.iter().enumerate() {
            usage.add(&r.usage, sub.first_of_prompt(index));
        }
        let first = results.first();
        Outcome {
            usage,
            finish_reason: first.and_then(|r| r.finish).map_or("stop", finish_reason),
            text: first.filter(|_| keep_text).map(|r| r.text.clone()).unwrap_or_default(),
        }
    }
}

impl Meter {
    /// Writes the conversation turn (if any), then completes the usage row. Blocking: call it
    /// on the blocking pool, never on an async worker.
    pub fn finish(self, o: &Outcome) -> Result<(), ApiError> {
        let now = unix_now();
        if let Some((id, mut turn)) = self.conversation {
            turn.push(("assistant".into(), o.text.clone()));
            match self.store.append_messages(&self.tenant, &id, &turn, now) {
                // Deleted while generating: nothing to append to.
                Ok(()) | Err(platform::StoreError::NotFound) => {}
                Err(e) => return Err(ApiError::from_store(e, &id)),
            }
        }
        let (p, c, g) = (
            o.usage.prompt_tokens as u64,
            o.usage.prompt_tokens_details.cached_tokens as u64,
            o.usage.completion_tokens as u64,
        );
        let record = UsageRecord {
            tenant: self.tenant,
            key_id: self.key_id,
            edition: self.edition,
            created: now,
            prompt_tokens: p,
            cached_tokens: c,
            completion_tokens: g,
            finish_reason: o.finish_reason.to_string(),
            cost: cost(&self.prices, p, c, g),
        };
        match self.row {
            // A row that is gone (never, unless removed by hand) must not lose the usage.
            Some(row) => row.close(&record).or_else(|e| match e {
                platform::StoreError::NotFound => self.store.record_usage(&record),
                e => Err(e),
            }),
            None => self.store.record_usage(&record),
        }
        .map_err(|e| ApiError::from_store(e, ""))
    }
}

/// Where a request's finish is counted on `/metrics` by tenant and edition (a server with a
/// platform config; see [`crate::metrics::Labelled`]).
pub struct Tally {
    state: crate::state::AppState,
    tenant: String,
    edition: String,
}

impl Tally {
    /// The tally of `caller`'s request on `edition` (the tenant `local` without a caller), or
    /// none when the server counts no labels (no platform config).
    pub fn new(state: &crate::state::AppState, caller: Option<&crate::extract::Caller>, edition: &str) -> Option<Self> {
        state.labelled().enabled().then(|| Tally {
            state: state.clone(),
            tenant: caller.map_or_else(|| crate::config::LOCAL_TENANT.to_string(), |c| c.tenant.clone()),
            edition: edition.to_string(),
        })
    }

    fn add(&self, o: &Outcome) {
        let u = &o.usage;
        self.state.labelled().record(
            &self.tenant,
            &self.edition,
            u.prompt_tokens as u64,
            u.prompt_tokens_details.cached_tokens as u64,
            u.completion_tokens as u64,
        );
    }
}

/// A meter that records the request as `cancelled` if it is dropped unfinished (the client
/// went away during a non-streaming generation); the same for its [`Tally`].
pub struct MeterGuard {
    meter: Option<Meter>,
    tally: Option<Tally>,
    /// Prompt tokens submitted (counted when nothing finished).
    pub prompt_tokens: usize,
    /// Progress so far, per choice: text and tokens generated.
    pub progress: Vec<(String, usize)>,
}

impl MeterGuard {
    /// Guards `meter` (none: nothing to record).
    pub fn new(meter: Option<Meter>, prompt_tokens: usize, n_choices: usize) -> Self {
        MeterGuard { meter, tally: None, prompt_tokens, progress: vec![(String::new(), 0); n_choices] }
    }

    /// Also counts the request's finish on `/metrics` by tenant and edition.
    pub fn counted(mut self, tally: Option<Tally>) -> Self {
        self.tally = tally;
        self
    }

    /// Finishes the meter with the generation's outcome.
    pub fn finish(&mut self, o: &Outcome) -> Result<(), ApiError> {
        if let Some(t) = self.tally.take() {
            t.add(o);
        }
        match self.meter.take() {
            Some(m) => m.finish(o),
            None => Ok(()),
        }
    }
}

impl Drop for MeterGuard {
    fn drop(&mut self) {
        if self.meter.is_none() && self.tally.is_none() {
            return;
        }
        let usage = UsageBody {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.progress.iter().map(|p| p.1).sum(),
            total_tokens: self.prompt_tokens + self.progress.iter().map(|p| p.1).sum::<usize>(),
            ..UsageBody::default()
        };
        let text = self.progress.first().map(|p| p.0.clone()).unwrap_or_default();
        let write = || {
            if let Err(e) = self.finish(&Outcome { usage, finish_reason: "cancelled", text }) {
                eprintln!("warning: recording a cancelled request failed: {e}");
            }
        };
        // Dropped on an async worker (a client gone mid-request): the write blocks on the
        // disk, so the worker hands its other tasks on first. It still completes before the
        // drop returns, so a shutdown cannot lose it.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
            _ => write(),
        }
    }
}

/// The meter of a request, or none when the server has no store for the caller (a bare
/// router in tests).
pub fn meter_for(
    state: &crate::state::AppState,
    caller: Option<&crate::extract::Caller>,
    edition: &str,
    conversation: Option<(String, Vec<(String, String)>)>,
) -> Result<Option<Meter>, ApiError> {
    let cfg = state.config();
    if cfg.stores.local.is_none() && cfg.stores.regions.is_empty() {
        return Ok(None);
    }
    let (store, tenant) = cfg.store_for(caller)?;
    Ok(Some(Meter {
        store,
        tenant,
        key_id: caller.map(|c| c.key_id.clone()),
        edition: edition.to_string(),
        prices: cfg.prices(edition),
        conversation,
        row: None,
    }))
}
