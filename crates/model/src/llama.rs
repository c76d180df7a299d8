//! The Llama architecture (SmolLM2 and other `general.architecture = llama` files).
//!
//! Pre-norm decoder blocks: `x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))`,
//! `x += Wdown · (silu(Wgate·n(x)) ⊙ Wup·n(x))`, with RMSNorm `n`, grouped-query
//! attention, RoPE on adjacent pairs (the GGUF converter permutes Q/K for it), and
//! the output matrix tied to the token embedding when the file has no `output.weight`.
//! The forward pass is the shared [`crate::decoder`].

use std::sync::Arc;

use kernels::ops::RopeStyle;
use kernels::ThreadPool;

use crate::batch::{SeqBatch, Workspace};
use crate::decoder::{AttnOptions, Decoder, DenseFfn, Ffn, Layer};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::kv_cache::KvCache;

/// A loaded Llama model.
pub struct Llama(Decoder);

/// Loads a stack of dense blocks (the Llama layout with `opts`) and its RoPE pairing.
pub(crate) fn load_dense(
    file: &Arc<GgufFile>,
    hp: HParams,
    opts: AttnOptions,
    rope: RopeStyle,
) -> Result<Decoder, ModelError> {
    let layers = (0..hp.n_layer)
        .map(|i| Layer::load(file, &hp, i, opts, Ffn::Dense(DenseFfn::load(file, &hp, i)?)))
        .collect::<Result<Vec<_>, ModelError>>()?;
    Decoder::load(file, hp, rope, layers)
}

impl Llama {
    /// Loads the weights of `file`, checking every shape against `hp`.
    pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Llama, ModelError> {
        load_dense(file, hp, AttnOptions::default(), RopeStyle::Interleaved).map(Llama)
    }

    /// The hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        self.0.hparams()
    }

    /// Bytes of weights read per decode step (every matrix once, plus the output).
    pub fn weight_bytes(&self) -> usize {
        self.0.weight_bytes()
    }

    /// Runs `batch` through the model: stores each token's keys and values in `kv`
    /// and leaves the requested logits in `ws` (see [`Workspace::logits`]).
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
