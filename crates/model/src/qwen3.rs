//! The Qwen3 architecture (`general.architecture = qwen3`, dense Qwen3 models).
//!
//! The Llama layout (see [`crate::llama`]) without Q/K/V biases, with a per-head
//! RMSNorm of queries and keys before RoPE (`attn_q_norm`, `attn_k_norm`: one
//! `(head_dim,)` weight shared by all heads), RoPE on halves of each head (NeoX
//! style), and usually an untied `output.weight`. The forward pass is the shared
//! [`crate::decoder`].

use std::sync::Arc;

use kernels::ops::RopeStyle;

use crate::decoder::{BlockOptions, Decoder};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::llama::load_dense;

/// Loads the weights of `file`, checking every shape against `hp`.
pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Decoder, ModelError> {
    let opts = BlockOptions { qk_norm: true, ..BlockOptions::LLAMA };
    load_dense(file, hp, opts, RopeStyle::Neox)
}
