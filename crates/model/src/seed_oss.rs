//! ByteDance Seed-OSS (`general.architecture = seed_oss`; Seed-OSS-36B).
//!
//! The Qwen 2 layout (see [`crate::qwen2`]: Q/K/V biases, RoPE on halves of each head)
//! with a head width of its own — `attention.key_length` (128 in the 36B model), so
//! `n_head × head_dim` is not `n_embd` and scores are scaled by `1/sqrt(head_dim)` —
//! and the pre-FFN RMSNorm stored as `post_attention_norm` (Hugging Face's
//! `post_attention_layernorm`, applied to the residual before the feed-forward block,
//! not after attention). RoPE base 1e7 in the released model, read from the file. The
//! output matrix is tied to the embedding when the file has no `output.weight`. The
//! forward pass is the shared [`crate::decoder`].

use std::sync::Arc;

use kernels::ops::RopeStyle;

use crate::decoder::{BlockOptions, Decoder};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::llama::load_dense;

/// Loads the weights of `file`, checking every shape against `hp`.
pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Decoder, ModelError> {
    let opts = BlockOptions { biases: true, qk_norm: false, ffn_norm: "post_attention_norm" };
    load_dense(file, hp, opts, RopeStyle::Neox)
}
