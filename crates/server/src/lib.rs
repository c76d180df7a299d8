//! Seed's OpenAI-compatible HTTP server, over the engine.
//!
//! A request flows: [`extract`] (body limit, JSON, API key) → [`validate`]
//! (typed values, one [`ApiError`] per problem) → [`routes`] (chat template,
//! tokenize, context check) → [`generate`] (one engine request per choice, one
//! event channel back) → [`sse`] (stream chunks) or a whole [`schema`] response.
//! Anthropic's Messages API ([`anthropic`]) and OpenAI's Responses API ([`responses`]) are
//! adapters: translated into a chat request, answered in their own shapes.
//! [`metrics`] renders the engine's counters for Prometheus; [`serve`] runs the
//! listener and the graceful shutdown; [`agent`] answers HAProxy's agent check.
//!
//! Async lives only here; the engine is a plain thread behind a channel.

pub mod agent;
pub mod anthropic;
pub mod config;
pub mod edition;
pub mod error;
pub mod extract;
pub mod generate;
pub mod meter;
pub mod metrics;
pub mod quota;
pub mod responses;
pub mod routes;
pub mod schema;
pub mod serve;
pub mod sse;
pub mod state;
pub mod validate;

pub use config::{ConnLimits, Limits, ServedModel, ServerConfig};
pub use error::ApiError;
pub use routes::router;
pub use serve::{run, serve, Runtime};
pub use state::AppState;
