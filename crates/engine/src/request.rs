//! What goes into the engine and what comes out: a validated [`Request`] that
//! carries its own [`EventSender`], and the [`Event`]s of its stream.

use model::sampler::SamplingParams;
use serde::Serialize;

/// Identifies a request for its whole life in the engine.
pub type RequestId = u64;

/// A generation request, already validated and tokenized.
pub struct Request {
    /// Unique id (chosen by the caller).
    pub id: RequestId,
    /// Prompt token ids (not empty).
    pub prompt: Vec<u32>,
    /// Sampling settings (validated).
    pub sampling: SamplingParams,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Stop strings: generation ends before the first occurrence, which is not
    /// sent.
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Report the top-`k` log-probabilities of each generated token.
    pub logprobs: Option<usize>,
    /// Prefix-cache salt: requests share cached blocks only with equal salts
    /// (the tenant's, so tenants never share).
    pub cache_salt: u64,
    /// Its tenant and weight, for fair admission between tenants.
    pub share: crate::scheduler::Share,
    /// A grammar the output must follow ([`model::grammar`]): before each sample it masks the
    /// tokens it forbids, and it ends the output when complete.
    pub constraint: Option<model::grammar::Constraint>,
    /// Embed instead of generating: the prompt's last token's final-normed hidden state comes
    /// back as one [`Event::Embedding`] (not normalized), then [`Event::Done`] with no tokens.
    pub embed: bool,
    /// Where this request's events go.
    pub events: EventSender,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("prompt_tokens", &self.prompt.len())
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

/// Delivers a request's events; `send` returns `false` once the receiver is
/// gone (the client disconnected), which cancels the request. `is_closed` lets
/// the engine notice a departed client before it has anything to send.
pub struct EventSender {
    send: Box<dyn FnMut(Event) -> bool + Send>,
    closed: Box<dyn Fn() -> bool + Send>,
}

impl EventSender {
    /// Wraps a send callback and a "receiver gone?" check.
    pub fn new(send: impl FnMut(Event) -> bool + Send + 'static, closed: impl Fn() -> bool + Send + 'static) -> Self {
        EventSender { send: Box::new(send), closed: Box::new(closed) }
    }

    /// A sender into a standard channel (closure noticed on the next send).
    pub fn channel() -> (EventSender, std::sync::mpsc::Receiver<Event>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (EventSender::new(move |e| tx.send(e).is_ok(), || false), rx)
    }

    /// Delivers `event`; `false` if nobody listens any more.
    pub fn send(&mut self, event: Event) -> bool {
        (self.send)(event)
    }

    /// Whether the receiver is known to be gone.
    pub fn is_closed(&self) -> bool {
        (self.closed)()
    }
}

/// Why a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` or the context length.
    Length,
    /// The client went away, or the engine shut down.
    Cancelled,
}

/// Token counts of a finished request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub cached_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}

/// A token and its natural-log probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenLogprob {
    /// Token id.
    pub id: u32,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// log p.
    pub logprob: f32,
}

/// The log-probabilities of one generated token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Logprobs {
    /// The chosen token.
    pub chosen: TokenLogprob,
    /// The most likely tokens, most likely first.
    pub top: Vec<TokenLogprob>,
}

/// What the engine tells a request's listener.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A generated token. `text` is the new text it completes (UTF-8 is never
    /// split, and text that may begin a stop string is held back), so it may be
    /// empty.
    Token {
        /// Token id.
        id: u32,
        /// Newly releasable text.
        text: String,
        /// Log-probabilities, when asked for.
        logprobs: Option<Logprobs>,
    },
    /// The request is finished; `text` is any text released at the end.
    Done {
        /// Why.
        finish_reason: FinishReason,
        /// Token counts.
        usage: Usage,
        /// Text still held back when generation ended.
        text: String,
        /// The stop string that ended it (`finish_reason` is then `Stop`); `None` when an
        /// end-of-generation token, the grammar or a limit did.
        stop_sequence: Option<String>,
    },
    /// An embedding request's vector (before [`Event::Done`]).
    Embedding {
        /// The final-normed hidden state at the prompt's last token (`n_embd` values).
        vector: Vec<f32>,
    },
    /// The request failed; nothing more follows.
    Error {
        /// What went wrong.
        message: String,
    },
}
