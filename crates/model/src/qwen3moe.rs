//! The Qwen3 mixture-of-experts architecture (`general.architecture = qwen3moe`).
//!
//! Attention as in [`crate::qwen3`] (per-head Q/K RMSNorm before NeoX RoPE, no
//! biases); each block's feed-forward is a mixture of experts ([`crate::moe`]). The
//! forward pass is the shared [`crate::decoder`].

use std::sync::Arc;

use kernels::ops::RopeStyle;

use crate::decoder::{BlockOptions, Decoder, Ffn, Layer};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::moe::MoeFfn;

/// Loads the weights of `file`, checking every shape against `hp`.
pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Decoder, ModelError> {
    let opts = BlockOptions { qk_norm: true, ..BlockOptions::LLAMA };
    let layers = (0..hp.n_layer)
        .map(|i| Layer::load(file, &hp, i, opts, Ffn::Moe(MoeFfn::load(file, &hp, i)?)))
        .collect::<Result<Vec<_>, ModelError>>()?;
    Decoder::load(file, hp, RopeStyle::Neox, layers)
}
