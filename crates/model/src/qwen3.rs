//! The Qwen3 architecture (`general.architecture = qwen3`, dense Qwen3 models).
//!
//! The Llama layout (see [`crate::llama`]) without Q/K/V biases, with a per-head
//! RMSNorm of queries and keys before RoPE (`attn_q_norm`, `attn_k_norm`: one
//! `(head_dim,)` weight shared by all heads), RoPE on halves of each head (NeoX
//! style), and usually an untied `output.weight`. The forward pass is the shared
//! [`crate::decoder`].

use std::sync::Arc;

use kernels::ops::RopeStyle;
use kernels::ThreadPool;

use crate::batch::{SeqBatch, Workspace};
use crate::decoder::{AttnOptions, Decoder};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::llama::load_dense;

/// A loaded Qwen3 model.
pub struct Qwen3(Decoder);

impl Qwen3 {
    /// Loads the weights of `file`, checking every shape against `hp`.
    pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Qwen3, ModelError> {
        let opts = AttnOptions { biases: false, qk_norm: true };
        load_dense(file, hp, opts, RopeStyle::Neox).map(Qwen3)
    }

    /// The hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        self.0.hparams()
    }

    /// Bytes of weights read per decode step.
    pub fn weight_bytes(&self) -> usize {
        self.0.weight_bytes()
    }

    /// Runs `batch` through the model (see [`crate::llama::Llama::forward`]).
    pub fn forward(
        &self,
        batch: &[SeqBatch],
        kv: &mut KvCache,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<(), ModelError> {
        self.0.forward(batch, kv, ws, pool)
    }
}
