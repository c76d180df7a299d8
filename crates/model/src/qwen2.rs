//! The Qwen2 architecture (`general.architecture = qwen2`; Qwen2 and Qwen2.5).
//!
//! The Llama layout (see [`crate::llama`]) with biases on the Q, K and V
//! projections, RoPE on halves of each head (NeoX style), and usually the output
//! matrix tied to the token embedding. The forward pass is the shared [`crate::decoder`].

use std::sync::Arc;

use kernels::ops::RopeStyle;

use crate::decoder::{BlockOptions, Decoder};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::llama::load_dense;

/// Loads the weights of `file`, checking every shape against `hp`.
pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Decoder, ModelError> {
    let opts = BlockOptions { biases: true, ..BlockOptions::LLAMA };
    load_dense(file, hp, opts, RopeStyle::Neox)
}
