//! Seed's model layer: from a GGUF file to logits and text.
//!
//! - [`gguf`]: the GGUF reader (the file is hostile input);
//! - [`hparams`], [`weights`]: hyper-parameters and weights, checked against each other;
//! - [`llama`], [`gemma3`]: one file per architecture, each with `forward(batch, kv) -> logits`;
//! - [`attention`], [`kv_cache`], [`batch`]: what the architectures share: paged KV
//!   cache, causal attention over it, and the multi-sequence batch;
//! - [`tokenizer`]: byte-level BPE (gpt2) and SentencePiece-style (llama) vocabularies;
//! - [`chat`]: the chat template, rendered in a sandbox;
//! - [`sampler`]: choosing the next token (the random number passed in);
//! - [`session`]: one sequence with its own cache, for the command line and tests.
//!
//! Synchronous code only: no async runtime, no threads of its own beyond the
//! kernels' pool.

use std::sync::Arc;

use kernels::ThreadPool;

pub mod attention;
pub mod batch;
pub mod chat;
pub mod error;
pub mod gemma3;
pub mod gguf;
pub mod hparams;
pub mod kv_cache;
pub mod llama;
pub mod sampler;
pub mod session;
pub mod tokenizer;
pub mod weights;

pub use batch::{Logits, SeqBatch, Workspace};
pub use error::ModelError;
pub use hparams::HParams;
pub use kv_cache::{BlockAllocator, KvCache};

use gguf::GgufFile;

/// Architectures with a forward pass, by their `general.architecture` name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "gemma3"];

/// A model's forward pass, chosen by architecture.
pub enum Model {
    /// `llama`.
    Llama(llama::Llama),
    /// `gemma3`.
    Gemma3(gemma3::Gemma3),
}

impl Model {
    /// Loads the architecture named in `file`'s metadata.
    pub fn load(file: &Arc<GgufFile>) -> Result<Model, ModelError> {
        let hp = HParams::from_gguf(file)?;
        match hp.arch.as_str() {
            "llama" => Ok(Model::Llama(llama::Llama::load(file, hp)?)),
            "gemma3" => Ok(Model::Gemma3(gemma3::Gemma3::load(file, hp)?)),
            other => Err(ModelError::UnsupportedArchitecture(other.to_string())),
        }
    }

    /// The hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        match self {
            Model::Llama(m) => m.hparams(),
            Model::Gemma3(m) => m.hparams(),
        }
    }

    /// Bytes of weights read by one decode step.
    pub fn weight_bytes(&self) -> usize {
        match self {
            Model::Llama(m) => m.weight_bytes(),
            Model::Gemma3(m) => m.weight_bytes(),
        }
    }

    /// Runs one batch (see [`llama::Llama::forward`]); logits end up in `ws`.
    pub fn forward(
        &self,
        batch: &[SeqBatch],
        kv: &mut KvCache,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<(), ModelError> {
        match self {
            Model::Llama(m) => m.forward(batch, kv, ws, pool),
            Model::Gemma3(m) => m.forward(batch, kv, ws, pool),
        }
    }
}
