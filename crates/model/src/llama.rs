//! The Llama architecture (SmolLM2 and other `general.architecture = llama` files).
//!
//! Pre-norm decoder blocks: `x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))`,
//! `x += Wdown · (silu(Wgate·n(x)) ⊙ Wup·n(x))`, with RMSNorm `n`, grouped-query
//! attention, RoPE on adjacent pairs (the GGUF converter permutes Q/K for it), and
//! the output matrix tied to the token embedding when the file has no `output.weight`.

use std::sync::Arc;

use kernels::matmul::{matmul, matmul_multi};
use kernels::ops::{add_inplace, rms_norm, rope, rope_cos_sin, swiglu, RopeStyle};
use kernels::ThreadPool;

use crate::attention::{attend, AttnShape};
use crate::batch::{buf, SeqBatch, Workspace};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::weights::{load_vector, Matrix};

/// One transformer block's weights.
struct Layer {
    attn_norm: Vec<f32>, // (n_embd,)
    wq: Matrix,          // (n_head * head_dim, n_embd)
    wk: Matrix,          // (n_head_kv * head_dim, n_embd)
    wv: Matrix,          // (n_head_kv * head_dim_v, n_embd)
    wo: Matrix,          // (n_embd, n_head * head_dim_v)
    ffn_norm: Vec<f32>,  // (n_embd,)
    ffn_gate: Matrix,    // (n_ff, n_embd)
    ffn_up: Matrix,      // (n_ff, n_embd)
    ffn_down: Matrix,    // (n_embd, n_ff)
}

/// A loaded Llama model.
pub struct Llama {
    hp: HParams,
    tok_embd: Matrix, // (n_vocab, n_embd)
    layers: Vec<Layer>,
    output_norm: Vec<f32>,  // (n_embd,)
    output: Option<Matrix>, // (n_vocab, n_embd); None: tied to tok_embd
}

impl Llama {
    /// Loads the weights of `file`, checking every shape against `hp`.
    pub fn load(file: &Arc<GgufFile>, hp: HParams) -> Result<Llama, ModelError> {
        let (e, q, kd, vd, ff) = (hp.n_embd, hp.q_dim(), hp.k_dim(), hp.v_dim(), hp.n_ff);
        let layers = (0..hp.n_layer)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}.weight");
                Ok(Layer {
                    attn_norm: load_vector(file, &name("attn_norm"), e)?,
                    wq: Matrix::load(file, &name("attn_q"), q, e)?,
                    wk: Matrix::load(file, &name("attn_k"), kd, e)?,
                    wv: Matrix::load(file, &name("attn_v"), vd, e)?,
                    wo: Matrix::load(file, &name("attn_output"), e, hp.n_head * hp.head_dim_v)?,
                    ffn_norm: load_vector(file, &name("ffn_norm"), e)?,
                    ffn_gate: Matrix::load(file, &name("ffn_gate"), ff, e)?,
                    ffn_up: Matrix::load(file, &name("ffn_up"), ff, e)?,
                    ffn_down: Matrix::load(file, &name("ffn_down"), e, ff)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Llama {
            tok_embd: Matrix::load(file, "token_embd.weight", hp.n_vocab, e)?,
            output_norm: load_vector(file, "output_norm.weight", e)?,
            output: Matrix::load_optional(file, "output.weight", hp.n_vocab, e)?,
            layers,
            hp,
        })
    }

    /// The hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        &self.hp
    }

    /// Bytes of weights read per decode step (every matrix once, plus the output).
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
        per_layer + self.output.as_ref().unwrap_or(&self.tok_embd).size_bytes()
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
        let hp = &self.hp;
        let n = ws.plan(batch, hp.n_vocab, kv)?;
        let (e, ff) = (hp.n_embd, hp.n_ff);
        let (qd, kd, vd, ad) = (hp.q_dim(), hp.k_dim(), hp.v_dim(), hp.n_head * hp.head_dim_v);
        let half_rot = hp.n_rot / 2;
        let bs = kv.block_size();
        let shape = AttnShape {
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hp.head_dim,
            head_dim_v: hp.head_dim_v,
            scale: 1.0 / (hp.head_dim as f32).sqrt(),
            window: None,
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
        let cos = buf(&mut ws.rope_cos, n * half_rot); // (n, n_rot / 2)
        let sin = buf(&mut ws.rope_sin, n * half_rot); // (n, n_rot / 2)
        let scratch = &mut ws.scratch;

        // Token embeddings, and the rotation angles of every row's position.
        for (t, (&tok, row)) in ws.tokens.iter().zip(&ws.rows).enumerate() {
            self.tok_embd.dequantize_row_into(tok as usize, &mut x[t * e..(t + 1) * e]);
            let (c, s) = (&mut cos[t * half_rot..][..half_rot], &mut sin[t * half_rot..][..half_rot]);
            rope_cos_sin(row.pos, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, c, s);
        }

        for (l, layer) in self.layers.iter().enumerate() {
            // Attention block.
            for (xr, xnr) in x.chunks_exact(e).zip(xn.chunks_exact_mut(e)) {
                rms_norm(xr, &layer.attn_norm, hp.rms_eps, xnr);
            }
            let qkv = [layer.wq.qmatrix(), layer.wk.qmatrix(), layer.wv.qmatrix()];
            matmul_multi(&qkv, xn, n, &mut [&mut *q, &mut *k, &mut *v], scratch, pool);
            for (t, row) in ws.rows.iter().enumerate() {
                let (c, s) = (&cos[t * half_rot..][..half_rot], &sin[t * half_rot..][..half_rot]);
                rope(&mut q[t * qd..(t + 1) * qd], hp.head_dim, c, s, RopeStyle::Interleaved);
                rope(&mut k[t * kd..(t + 1) * kd], hp.head_dim, c, s, RopeStyle::Interleaved);
                let block = batch[row.seq].block_table[row.pos / bs] as usize;
                kv.store(l, block, row.pos % bs, &k[t * kd..(t + 1) * kd], &v[t * vd..(t + 1) * vd]);
            }
            attend(&shape, l, q, att, &ws.rows, batch, kv, &mut ws.attn, pool);
            matmul(&layer.wo.qmatrix(), att, n, tmp, scratch, pool);
            add_inplace(x, tmp);

            // Feed-forward block (SwiGLU).
            for (xr, xnr) in x.chunks_exact(e).zip(xn.chunks_exact_mut(e)) {
                rms_norm(xr, &layer.ffn_norm, hp.rms_eps, xnr);
            }
            let gate_up = [layer.ffn_gate.qmatrix(), layer.ffn_up.qmatrix()];
            matmul_multi(&gate_up, xn, n, &mut [&mut *gate, &mut *up], scratch, pool);
            swiglu(gate, up);
            matmul(&layer.ffn_down.qmatrix(), gate, n, tmp, scratch, pool);
            add_inplace(x, tmp);
        }

        // Final norm and output projection, only for the rows that want logits.
        let n_out = ws.out_rows.len();
        let hidden = buf(&mut ws.hidden_out, n_out * e); // (n_out, n_embd)
        for (i, &r) in ws.out_rows.iter().enumerate() {
            rms_norm(&x[r * e..(r + 1) * e], &self.output_norm, hp.rms_eps, &mut hidden[i * e..(i + 1) * e]);
        }
        let logits = buf(&mut ws.logits, n_out * hp.n_vocab); // (n_out, n_vocab)
        if n_out > 0 {
            let output = self.output.as_ref().unwrap_or(&self.tok_embd);
            matmul(&output.qmatrix(), hidden, n_out, logits, scratch, pool);
        }
        Ok(())
    }
}
