//! The Gemma 3 architecture (`general.architecture = gemma3`).
//!
//! Differences from Llama, all read from the GGUF or fixed by the architecture:
//! - embeddings are scaled by `√n_embd`;
//! - every sub-block has a norm before *and* after it (`attn_norm` /
//!   `post_attention_norm`, `ffn_norm` / `post_ffw_norm`); the GGUF stores Gemma's
//!   `(1 + w)` norm weights with the 1 already added, so they multiply as they are;
//! - queries and keys get a per-head RMSNorm (`attn_q_norm`, `attn_k_norm`) before
//!   RoPE, which rotates halves (NeoX style);
//! - queries are scaled by `1/√head_dim` before attention (so the scale is part of
//!   the f16-rounded query, as in llama.cpp);
//! - five of every six layers attend through a sliding window
//!   (`attention.sliding_window`) with RoPE base 10 000; every sixth layer is global
//!   with `rope.freq_base`;
//! - the feed-forward block is GeGLU (tanh-approximated GELU);
//! - the output matrix is the token embedding.

use std::sync::Arc;

use kernels::matmul::{matmul, matmul_multi};
use kernels::ops::{
    add_inplace, geglu, glu_rows, rms_norm, rms_norm_inplace, rope, rope_cos_sin, scale_inplace, RopeStyle,
};
use kernels::ThreadPool;

use crate::attention::{attend, AttnShape};
use crate::batch::{buf, SeqBatch, Workspace};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::weights::{load_vector, Matrix};

/// Every `SWA_PERIOD`-th layer (the last of each group) attends globally.
const SWA_PERIOD: usize = 6;
/// RoPE base of the sliding-window layers.
const SWA_ROPE_BASE: f32 = 10_000.0;

/// One transformer block's weights.
struct Layer {
    attn_norm: Vec<f32>,      // (n_embd,)
    wq: Matrix,               // (n_head * head_dim, n_embd)
    wk: Matrix,               // (n_head_kv * head_dim, n_embd)
    wv: Matrix,               // (n_head_kv * head_dim_v, n_embd)
    q_norm: Vec<f32>,         // (head_dim,)
    k_norm: Vec<f32>,         // (head_dim,)
    wo: Matrix,               // (n_embd, n_head * head_dim_v)
    post_attn_norm: Vec<f32>, // (n_embd,)
    ffn_norm: Vec<f32>,       // (n_embd,)
    ffn_gate: Matrix,         // (n_ff, n_embd)
    ffn_up: Matrix,           // (n_ff, n_embd)
    ffn_down: Matrix,         // (n_embd, n_ff)
    post_ffn_norm: Vec<f32>,  // (n_embd,)
    /// Sliding-window layer (local RoPE base, limited attention span).
    sliding: bool,
}

/// A loaded Gemma 3 model.
pub struct Gemma3 {
    hp: HParams,
    tok_embd: Matrix, // (n_vocab, n_embd), also the output matrix
    layers: Vec<Layer>,
    output_norm: Vec<f32>, // (n_embd,)
}

impl Gemma3 {
    /// Loads the weights of `file`, checking every shape against `hp`.
    pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Gemma3, ModelError> {
        if hp.sliding_window.is_none() {
            return Err(ModelError::metadata("gemma3.attention.sliding_window", "is required for gemma3"));
        }
        let (e, q, kd, vd, ff, hd) = (hp.n_embd, hp.q_dim(), hp.k_dim(), hp.v_dim(), hp.n_ff, hp.head_dim);
        let layers = (0..hp.n_layer)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}.weight");
                Ok(Layer {
                    attn_norm: load_vector(file, &name("attn_norm"), e)?,
                    wq: Matrix::load(file, &name("attn_q"), q, e)?,
                    wk: Matrix::load(file, &name("attn_k"), kd, e)?,
                    wv: Matrix::load(file, &name("attn_v"), vd, e)?,
                    q_norm: load_vector(file, &name("attn_q_norm"), hd)?,
                    k_norm: load_vector(file, &name("attn_k_norm"), hd)?,
                    wo: Matrix::load(file, &name("attn_output"), e, hp.n_head * hp.head_dim_v)?,
                    post_attn_norm: load_vector(file, &name("post_attention_norm"), e)?,
                    ffn_norm: load_vector(file, &name("ffn_norm"), e)?,
                    ffn_gate: Matrix::load(file, &name("ffn_gate"), ff, e)?,
                    ffn_up: Matrix::load(file, &name("ffn_up"), ff, e)?,
                    ffn_down: Matrix::load(file, &name("ffn_down"), e, ff)?,
                    post_ffn_norm: load_vector(file, &name("post_ffw_norm"), e)?,
                    sliding: i % SWA_PERIOD < SWA_PERIOD - 1,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Gemma3 {
            tok_embd: Matrix::load(file, "token_embd.weight", hp.n_vocab, e)?,
            output_norm: load_vector(file, "output_norm.weight", e)?,
            layers,
            hp,
        })
    }

    /// The hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        &self.hp
    }

    /// Bytes of weights read per decode step.
    pub fn weight_bytes(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down]
                    .iter()
                    .map(|m| m.size_bytes())
                    .sum::<usize>()
            })
            .sum();
        per_layer + self.tok_embd.size_bytes()
    }

    /// Runs `batch` through the model (see [`crate::Decoder::forward`]).
    pub fn forward(
        &self,
        batch: &[SeqBatch],
        kv: &mut KvCache,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<(), ModelError> {
        let hp = &self.hp;
        let n = ws.plan(batch, hp.n_vocab, kv)?;
        let (e, ff, hd) = (hp.n_embd, hp.n_ff, hp.head_dim);
        let (qd, kd, vd, ad) = (hp.q_dim(), hp.k_dim(), hp.v_dim(), hp.n_head * hp.head_dim_v);
        let half_rot = hp.n_rot / 2;
        let bs = kv.block_size();
        let q_scale = 1.0 / (hd as f32).sqrt();
        let shape = |sliding: bool| AttnShape {
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hd,
            head_dim_v: hp.head_dim_v,
            scale: 1.0,
            window: if sliding { hp.sliding_window } else { None },
        };

        let x = buf(&mut ws.x, n * e); // (n, n_embd)
        let xn = buf(&mut ws.xn, n * e); // (n, n_embd)
        let q = buf(&mut ws.q, n * qd); // (n, n_head * head_dim)
        let k = buf(&mut ws.k, n * kd); // (n, n_head_kv * head_dim)
        let v = buf(&mut ws.v, n * vd); // (n, n_head_kv * head_dim_v)
        let att = buf(&mut ws.att, n * ad); // (n, n_head * head_dim_v)
        let tmp = buf(&mut ws.tmp, n * e); // (n, n_embd)
        let gate = buf(&mut ws.gate, n * ff); // (n, n_ff)
        let up = buf(&mut ws.up, n * ff); // (n, n_ff)
                                          // Rotation angles per row: global layers first, then sliding ones.
        let cos = buf(&mut ws.rope_cos, 2 * n * half_rot); // (2, n, n_rot / 2)
        let sin = buf(&mut ws.rope_sin, 2 * n * half_rot); // (2, n, n_rot / 2)
        let scratch = &mut ws.scratch;

        // Scaled token embeddings, and both sets of rotation angles per row.
        let embd_scale = (e as f32).sqrt();
        for (t, (&tok, row)) in ws.tokens.iter().zip(&ws.rows).enumerate() {
            let xr = &mut x[t * e..(t + 1) * e];
            self.tok_embd.dequantize_row_into(tok as usize, xr);
            scale_inplace(xr, embd_scale);
            for (set, base) in [hp.rope_freq_base, SWA_ROPE_BASE].into_iter().enumerate() {
                let o = (set * n + t) * half_rot;
                let (c, s) = (&mut cos[o..o + half_rot], &mut sin[o..o + half_rot]);
                rope_cos_sin(row.pos, hp.n_rot, base, hp.rope_freq_scale, c, s);
            }
        }

        for (l, layer) in self.layers.iter().enumerate() {
            // Attention block: norm → q/k/v → per-head q/k norms → RoPE → attention → Wo → post-norm.
            for (xr, xnr) in x.chunks_exact(e).zip(xn.chunks_exact_mut(e)) {
                rms_norm(xr, &layer.attn_norm, hp.rms_eps, xnr);
            }
            let qkv = [layer.wq.qmatrix(), layer.wk.qmatrix(), layer.wv.qmatrix()];
            matmul_multi(&qkv, xn, n, &mut [&mut *q, &mut *k, &mut *v], scratch, pool);
            let set = usize::from(layer.sliding);
            for (t, row) in ws.rows.iter().enumerate() {
                let o = (set * n + t) * half_rot;
                let (c, s) = (&cos[o..o + half_rot], &sin[o..o + half_rot]);
                let qt = &mut q[t * qd..(t + 1) * qd];
                for head in qt.chunks_exact_mut(hd) {
                    rms_norm_inplace(head, &layer.q_norm, hp.rms_eps);
                }
                rope(qt, hd, c, s, RopeStyle::Neox);
                scale_inplace(qt, q_scale);
                let kt = &mut k[t * kd..(t + 1) * kd];
                for head in kt.chunks_exact_mut(hd) {
                    rms_norm_inplace(head, &layer.k_norm, hp.rms_eps);
                }
                rope(kt, hd, c, s, RopeStyle::Neox);
                let block = batch[row.seq].block_table[row.pos / bs] as usize;
                kv.store(l, block, row.pos % bs, kt, &v[t * vd..(t + 1) * vd]);
            }
            attend(&shape(layer.sliding), l, q, att, &ws.rows, batch, kv, &mut ws.attn, pool);
            matmul(&layer.wo.qmatrix(), att, n, tmp, scratch, pool);
            for row in tmp.chunks_exact_mut(e) {
                rms_norm_inplace(row, &layer.post_attn_norm, hp.rms_eps);
            }
            add_inplace(x, tmp);

            // Feed-forward block: norm → GeGLU → down → post-norm.
            for (xr, xnr) in x.chunks_exact(e).zip(xn.chunks_exact_mut(e)) {
                rms_norm(xr, &layer.ffn_norm, hp.rms_eps, xnr);
            }
            let gate_up = [layer.ffn_gate.qmatrix(), layer.ffn_up.qmatrix()];
            matmul_multi(&gate_up, xn, n, &mut [&mut *gate, &mut *up], scratch, pool);
            glu_rows(pool, gate, up, hp.n_ff, geglu);
            matmul(&layer.ffn_down.qmatrix(), gate, n, tmp, scratch, pool);
            for row in tmp.chunks_exact_mut(e) {
                rms_norm_inplace(row, &layer.post_ffn_norm, hp.rms_eps);
            }
            add_inplace(x, tmp);
        }

        // Final norm and the tied output matrix, for the rows that want logits.
        let n_out = ws.out_rows.len();
        ws.n_embd = e;
        let hidden = buf(&mut ws.hidden_out, n_out * e); // (n_out, n_embd)
        for (i, &r) in ws.out_rows.iter().enumerate() {
            rms_norm(&x[r * e..(r + 1) * e], &self.output_norm, hp.rms_eps, &mut hidden[i * e..(i + 1) * e]);
        }
        let logits = buf(&mut ws.logits, n_out * hp.n_vocab); // (n_out, n_vocab)
                                                              // Each output row keeps its own order (the products' flags follow the rows).
        scratch.set_fast_tokens(ws.out_rows.iter().map(|&r| ws.fast[r]));
        if n_out > 0 {
            matmul(&self.tok_embd.qmatrix(), hidden, n_out, logits, scratch, pool);
        }
        Ok(())
    }
}
