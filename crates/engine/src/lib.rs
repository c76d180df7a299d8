//! Seed's engine: turns a stream of requests into batched forward passes.
//!
//! - [`request`]: the validated [`Request`] (with its own [`EventSender`]) and the
//!   [`Event`]s it receives;
//! - [`scheduler`]: continuous batching — admission, prompt chunks, decode steps,
//!   preemption — over the [`blocks`] manager (paged KV cache, prefix caching);
//! - [`detok`]: UTF-8-safe streaming text and stop strings;
//! - [`engine`]: the thread that owns the model and runs the loop.
//!
//! The engine knows nothing of HTTP; async lives only in the server.

pub mod blocks;
pub mod detok;
pub mod engine;
pub mod request;
pub mod scheduler;
pub mod stats;

pub use engine::{Engine, EngineConfig, SubmitError};
pub use request::{Event, EventSender, FinishReason, Logprobs, Request, RequestId, TokenLogprob, Usage};
pub use scheduler::Share;
