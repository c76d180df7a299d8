//! The Qwen2 architecture (`general.architecture = qwen2`; Qwen2 and Qwen2.5).
//!
//! The Llama layout (see [`crate::llama`]) with biases on the Q, K and V
//! projections, RoPE on halves of each head (NeoX style), and usually the output
//! matrix tied to the token embedding. The forward pass is the shared [`crate::decoder`].

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

/// A loaded Qwen2 model.
pub struct Qwen2(Decoder);

impl Qwen2 {
    /// Loads the weights of `file`, checking every shape against `hp`.
    pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Qwen2, ModelError> {
        let opts = AttnOptions { biases: true, qk_norm: false };
        load_dense(file, hp, opts, RopeStyle::Neox).map(Qwen2)
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
