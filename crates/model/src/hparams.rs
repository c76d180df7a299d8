//! Hyper-parameters, read only from GGUF metadata (`<arch>.block_count`, …), with
//! llama.cpp's names and defaults, and checked for consistency before any buffer
//! is sized from them.

use crate::error::ModelError;
use crate::gguf::GgufFile;

/// The shape of a transformer, as the GGUF metadata gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct HParams {
    /// `general.architecture`, e.g. `llama`.
    pub arch: String,
    /// Embedding width.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when < `n_head`).
    pub n_head_kv: usize,
    /// Width of one key head (`attention.key_length`, default `n_embd / n_head`).
    pub head_dim: usize,
    /// Width of one value head (`attention.value_length`, default `head_dim`).
    pub head_dim_v: usize,
    /// Hidden width of the feed-forward block.
    pub n_ff: usize,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
    /// Vocabulary size (rows of the embedding matrix).
    pub n_vocab: usize,
    /// Dimensions of each head that RoPE rotates.
    pub n_rot: usize,
    /// RoPE base frequency.
    pub rope_freq_base: f32,
    /// RoPE frequency scale (1 / linear scaling factor).
    pub rope_freq_scale: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Window of the sliding-window attention layers, if the model has them.
    pub sliding_window: Option<usize>,
}

/// Largest value accepted for any width or count (guards buffer sizing against
/// absurd metadata).
const MAX_DIM: usize = 1 << 20;
/// Largest training context accepted.
const MAX_CTX: usize = 1 << 24;

impl HParams {
    /// Reads the hyper-parameters of `gguf`'s architecture.
    pub fn from_gguf(gguf: &GgufFile) -> Result<HParams, ModelError> {
        let arch = gguf.get_str("general.architecture")?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let req = |k: &str| -> Result<usize, ModelError> { Ok(gguf.get_u32(&key(k))? as usize) };
        let opt = |k: &str| -> Result<Option<usize>, ModelError> {
            match gguf.get(&key(k)) {
                None => Ok(None),
                Some(_) => Ok(Some(gguf.get_u32(&key(k))? as usize)),
            }
        };
        let opt_f32 = |k: &str| -> Result<Option<f32>, ModelError> {
            match gguf.get(&key(k)) {
                None => Ok(None),
                Some(_) => Ok(Some(gguf.get_f32(&key(k))?)),
            }
        };

        let n_embd = req("embedding_length")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = opt("attention.head_count_kv")?.unwrap_or(n_head);
        if n_head == 0 {
            return Err(ModelError::metadata(key("attention.head_count"), "must be at least 1"));
        }
        let head_dim = opt("attention.key_length")?.unwrap_or(n_embd / n_head);
        let n_vocab = match opt("vocab_size")? {
            Some(v) => v,
            None => gguf.get_str_array("tokenizer.ggml.tokens")?.len(),
        };
        let hp = HParams {
            n_embd,
            n_layer: req("block_count")?,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v: opt("attention.value_length")?.unwrap_or(head_dim),
            n_ff: req("feed_forward_length")?,
            n_ctx_train: req("context_length")?,
            n_vocab,
            n_rot: opt("rope.dimension_count")?.unwrap_or(head_dim),
            rope_freq_base: opt_f32("rope.freq_base")?.unwrap_or(10_000.0),
            rope_freq_scale: match opt_f32("rope.scaling.factor")? {
                Some(f) if f > 0.0 => 1.0 / f,
                _ => 1.0,
            },
            rms_eps: opt_f32("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
            sliding_window: opt("attention.sliding_window")?.filter(|&w| w > 0),
            arch,
        };
        hp.check()?;
        Ok(hp)
    }

    /// Rejects shapes no buffer should be sized from.
    fn check(&self) -> Result<(), ModelError> {
        let k = |s: &str| format!("{}.{s}", self.arch);
        for (name, v) in [
            ("embedding_length", self.n_embd),
            ("block_count", self.n_layer),
            ("attention.head_count", self.n_head),
            ("attention.head_count_kv", self.n_head_kv),
            ("attention.key_length", self.head_dim),
            ("attention.value_length", self.head_dim_v),
            ("feed_forward_length", self.n_ff),
            ("context_length", self.n_ctx_train),
            ("vocab_size", self.n_vocab),
        ] {
            let max = if name == "context_length" { MAX_CTX } else { MAX_DIM };
            if v == 0 || v > max {
                return Err(ModelError::metadata(k(name), format!("value {v} is outside 1..={max}")));
            }
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return Err(ModelError::metadata(
                k("attention.head_count_kv"),
                format!("{} query heads are not a multiple of {} key/value heads", self.n_head, self.n_head_kv),
            ));
        }
        if self.n_rot > self.head_dim || !self.n_rot.is_multiple_of(2) {
            return Err(ModelError::metadata(
                k("rope.dimension_count"),
                format!("{} must be even and at most the head width {}", self.n_rot, self.head_dim),
            ));
        }
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !positive(self.rope_freq_base) || !positive(self.rope_freq_scale) {
            return Err(ModelError::metadata(k("rope.freq_base"), "must be a positive number"));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return Err(ModelError::metadata(k("attention.layer_norm_rms_epsilon"), "must be a non-negative number"));
        }
        Ok(())
    }

    /// Query heads per key/value head.
    pub fn gqa_group(&self) -> usize {
        self.n_head / self.n_head_kv
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of all key heads together (one row of the K cache).
    pub fn k_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of all value heads together (one row of the V cache).
    pub fn v_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }
}
