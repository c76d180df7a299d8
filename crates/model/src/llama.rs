//! The Llama architecture (SmolLM2 and other `general.architecture = llama` files).
//!
//! Pre-norm decoder blocks: `x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))`,
//! `x += Wdown · (silu(Wgate·n(x)) ⊙ Wup·n(x))`, with RMSNorm `n`, grouped-query
//! attention, RoPE on adjacent pairs (the GGUF converter permutes Q/K for it), and
//! the output matrix tied to the token embedding when the file has no `output.weight`.
//! The forward pass is the shared [`crate::decoder`].

use std::sync::Arc;

use kernels::ops::RopeStyle;

use crate::decoder::{BlockOptions, Decoder, DenseFfn, Ffn, Layer};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;

/// Loads a stack of dense blocks (the Llama layout with `opts`) and its RoPE pairing.
pub(crate) fn load_dense(
    file: &Arc<GgufFile>,
    hp: HParams,
    opts: BlockOptions,
    rope: RopeStyle,
) -> Result<Decoder, ModelError> {
    let layers = (0..hp.n_layer)
        .map(|i| Layer::load(file, &hp, i, opts, Ffn::Dense(DenseFfn::load(file, &hp, i)?)))
        .collect::<Result<Vec<_>, ModelError>>()?;
    Decoder::load(file, hp, rope, layers)
}

/// Loads the weights of `file`, checking every shape against `hp`.
pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Decoder, ModelError> {
    load_dense(file, hp, BlockOptions::LLAMA, RopeStyle::Interleaved)
}
