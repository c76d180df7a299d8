//! The decoder stack the Llama-family architectures share (`llama`, `qwen2`,
//! `qwen3`, `qwen3moe`, `seed_oss`): pre-norm blocks
//! `x += Wo · attn(rope(q), rope(k), v)` and `x += ffn(n(x))` with RMSNorm `n`,
//! grouped-query attention over the paged cache, and an output matrix that is the
//! token embedding when the file has no `output.weight`.
//!
//! What differs between the architectures is data, chosen at load by their own
//! files: Q/K/V biases ([`BlockOptions::biases`]), a per-head RMSNorm on queries and
//! keys before RoPE ([`BlockOptions::qk_norm`]), the pre-FFN norm's tensor name, the
//! RoPE pairing, and the feed-forward block ([`Ffn`]: dense SwiGLU or a mixture of
//! experts, [`crate::moe`]). The head width comes from `attention.key_length`, so
//! `n_head × head_dim` need not equal `n_embd` (Seed-OSS).

use std::sync::Arc;

use kernels::matmul::{matmul, matmul_multi, MatmulScratch};
use kernels::ops::{add_inplace, glu_rows, rms_norm, rms_norm_inplace, rope, rope_cos_sin, swiglu, RopeStyle};
use kernels::ThreadPool;

use crate::attention::{attend, AttnShape};
use crate::batch::{buf, SeqBatch, Workspace};
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::kv_cache::KvCache;
use crate::moe::MoeFfn;
use crate::weights::{load_vector, Matrix};

/// What differs between the architectures' blocks: optional parts and tensor names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockOptions {
    /// Biases on the Q, K and V projections (`attn_{q,k,v}.bias`).
    pub biases: bool,
    /// Per-head RMSNorm of queries and keys before RoPE (`attn_{q,k}_norm`).
    pub qk_norm: bool,
    /// The name of the RMSNorm weight before the feed-forward block: `ffn_norm`, or
    /// `post_attention_norm` where the converter stores it so (`seed_oss`).
    pub ffn_norm: &'static str,
}

impl BlockOptions {
    /// Llama's blocks: no biases, no Q/K norm, `ffn_norm`.
    pub(crate) const LLAMA: BlockOptions = BlockOptions { biases: false, qk_norm: false, ffn_norm: "ffn_norm" };
}

/// One block's attention weights.
pub(crate) struct Attention {
    norm: Vec<f32>,                 // (n_embd,)
    wq: Matrix,                     // (n_head * head_dim, n_embd)
    wk: Matrix,                     // (n_head_kv * head_dim, n_embd)
    wv: Matrix,                     // (n_head_kv * head_dim_v, n_embd)
    bias: Option<[Vec<f32>; 3]>,    // q, k, v biases
    qk_norm: Option<[Vec<f32>; 2]>, // (head_dim,) each, shared by all heads
    wo: Matrix,                     // (n_embd, n_head * head_dim_v)
}

impl Attention {
    /// Loads block `i`'s attention weights.
    pub(crate) fn load(
        file: &Arc<GgufFile>,
        hp: &HParams,
        i: usize,
        opts: BlockOptions,
    ) -> Result<Attention, ModelError> {
        let (e, q, kd, vd) = (hp.n_embd, hp.q_dim(), hp.k_dim(), hp.v_dim());
        let name = |t: &str| format!("blk.{i}.{t}.weight");
        let bias = |t: &str, n: usize| load_vector(file, &format!("blk.{i}.{t}.bias"), n);
        Ok(Attention {
            norm: load_vector(file, &name("attn_norm"), e)?,
            wq: Matrix::load(file, &name("attn_q"), q, e)?,
            wk: Matrix::load(file, &name("attn_k"), kd, e)?,
            wv: Matrix::load(file, &name("attn_v"), vd, e)?,
            bias: if opts.biases { Some([bias("attn_q", q)?, bias("attn_k", kd)?, bias("attn_v", vd)?]) } else { None },
            qk_norm: if opts.qk_norm {
                Some([
                    load_vector(file, &name("attn_q_norm"), hp.head_dim)?,
                    load_vector(file, &name("attn_k_norm"), hp.head_dim)?,
                ])
            } else {
                None
            },
            wo: Matrix::load(file, &name("attn_output"), e, hp.n_head * hp.head_dim_v)?,
        })
    }

    fn size_bytes(&self) -> usize {
        [&self.wq, &self.wk, &self.wv, &self.wo].iter().map(|m| m.size_bytes()).sum()
    }
}

/// A dense SwiGLU feed-forward block.
pub(crate) struct DenseFfn {
    gate: Matrix, // (n_ff, n_embd)
    up: Matrix,   // (n_ff, n_embd)
    down: Matrix, // (n_embd, n_ff)
}

impl DenseFfn {
    /// Loads block `i`'s `ffn_gate`, `ffn_up`, `ffn_down`.
    pub(crate) fn load(file: &Arc<GgufFile>, hp: &HParams, i: usize) -> Result<DenseFfn, ModelError> {
        let (e, ff) = (hp.n_embd, hp.n_ff);
        let name = |t: &str| format!("blk.{i}.{t}.weight");
        Ok(DenseFfn {
            gate: Matrix::load(file, &name("ffn_gate"), ff, e)?,
            up: Matrix::load(file, &name("ffn_up"), ff, e)?,
            down: Matrix::load(file, &name("ffn_down"), e, ff)?,
        })
    }

    /// `out = Wdown · (silu(Wgate·xn) ⊙ Wup·xn)` for `n` rows; `gate`, `up` are `(n, n_ff)` buffers.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        xn: &[f32],
        n: usize,
        gate: &mut [f32],
        up: &mut [f32],
        out: &mut [f32],
        scratch: &mut MatmulScratch,
        pool: &ThreadPool,
    ) {
        let gate_up = [self.gate.qmatrix(), self.up.qmatrix()];
        matmul_multi(&gate_up, xn, n, &mut [&mut *gate, &mut *up], scratch, pool);
        glu_rows(pool, gate, up, self.gate.qmatrix().rows(), swiglu);
        matmul(&self.down.qmatrix(), gate, n, out, scratch, pool);
    }
}

/// A block's feed-forward part.
pub(crate) enum Ffn {
    /// Dense SwiGLU.
    Dense(DenseFfn),
    /// Mixture of experts (see [`crate::moe`]).
    Moe(MoeFfn),
}

/// One transformer block.
pub(crate) struct Layer {
    pub(crate) attn: Attention,
    pub(crate) ffn_norm: Vec<f32>, // (n_embd,)
    pub(crate) ffn: Ffn,
}

impl Layer {
    /// Loads block `i`: attention and the pre-FFN norm as `opts` say, and the feed-forward `ffn`.
    pub(crate) fn load(
        file: &Arc<GgufFile>,
        hp: &HParams,
        i: usize,
        opts: BlockOptions,
        ffn: Ffn,
    ) -> Result<Layer, ModelError> {
        Ok(Layer {
            attn: Attention::load(file, hp, i, opts)?,
            ffn_norm: load_vector(file, &format!("blk.{i}.{}.weight", opts.ffn_norm), hp.n_embd)?,
            ffn,
        })
    }
}

/// A loaded decoder stack: the forward pass of the Llama family (`llama`, `qwen2`,
/// `qwen3`, `qwen3moe`, `seed_oss`); each architecture's file says only what it loads.
pub struct Decoder {
    hp: HParams,
    tok_embd: Matrix, // (n_vocab, n_embd)
    layers: Vec<Layer>,
    output_norm: Vec<f32>,  // (n_embd,)
    output: Option<Matrix>, // (n_vocab, n_embd); None: tied to tok_embd
    rope_style: RopeStyle,
}

impl Decoder {
    /// Loads the embedding, final norm and (optional) output matrix around `layers`.
    pub(crate) fn load(
        file: &Arc<GgufFile>,
        hp: HParams,
        rope_style: RopeStyle,
        layers: Vec<Layer>,
    ) -> Result<Decoder, ModelError> {
        let e = hp.n_embd;
        Ok(Decoder {
            tok_embd: Matrix::load(file, "token_embd.weight", hp.n_vocab, e)?,
            output_norm: load_vector(file, "output_norm.weight", e)?,
            output: Matrix::load_optional(file, "output.weight", hp.n_vocab, e)?,
            layers,
            hp,
            rope_style,
        })
    }

    /// The hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        &self.hp
    }

    /// Bytes of weights read per single-token decode step: every matrix once (for
    /// a mixture of experts, the router and the experts one token uses), plus the output.
    pub fn weight_bytes(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                l.attn.size_bytes()
                    + match &l.ffn {
                        Ffn::Dense(f) => [&f.gate, &f.up, &f.down].iter().map(|m| m.size_bytes()).sum(),
                        Ffn::Moe(m) => m.bytes_per_token(),
                    }
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
        let (e, ff, hd) = (hp.n_embd, hp.n_ff, hp.head_dim);
        let (qd, kd, vd, ad) = (hp.q_dim(), hp.k_dim(), hp.v_dim(), hp.n_head * hp.head_dim_v);
        let half_rot = hp.n_rot / 2;
        let bs = kv.block_size();
        let shape = AttnShape {
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            head_dim: hd,
            head_dim_v: hp.head_dim_v,
            scale: 1.0 / (hd as f32).sqrt(),
            window: None,
        };
        let dense = self.layers.iter().any(|l| matches!(l.ffn, Ffn::Dense(_)));

        let x = buf(&mut ws.x, n * e); // (n, n_embd)
        let xn = buf(&mut ws.xn, n * e); // (n, n_embd)
        let q = buf(&mut ws.q, n * qd); // (n, n_head * head_dim)
        let k = buf(&mut ws.k, n * kd); // (n, n_head_kv * head_dim)
        let v = buf(&mut ws.v, n * vd); // (n, n_head_kv * head_dim_v)
        let att = buf(&mut ws.att, n * ad); // (n, n_head * head_dim_v)
        let tmp = buf(&mut ws.tmp, n * e); // (n, n_embd)
        let ffn_rows = if dense { n } else { 0 };
        let gate = buf(&mut ws.gate, ffn_rows * ff); // (n, n_ff)
        let up = buf(&mut ws.up, ffn_rows * ff); // (n, n_ff)
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
            let a = &layer.attn;
            for (xr, xnr) in x.chunks_exact(e).zip(xn.chunks_exact_mut(e)) {
                rms_norm(xr, &a.norm, hp.rms_eps, xnr);
            }
            let qkv = [a.wq.qmatrix(), a.wk.qmatrix(), a.wv.qmatrix()];
            matmul_multi(&qkv, xn, n, &mut [&mut *q, &mut *k, &mut *v], scratch, pool);
            if let Some([bq, bk, bv]) = &a.bias {
                for (out, b) in [(&mut *q, bq), (&mut *k, bk), (&mut *v, bv)] {
                    for row in out.chunks_exact_mut(b.len()) {
                        add_inplace(row, b);
                    }
                }
            }
            for (t, row) in ws.rows.iter().enumerate() {
                let (c, s) = (&cos[t * half_rot..][..half_rot], &sin[t * half_rot..][..half_rot]);
                let (qt, kt) = (&mut q[t * qd..(t + 1) * qd], &mut k[t * kd..(t + 1) * kd]);
                if let Some([qn, kn]) = &a.qk_norm {
                    for head in qt.chunks_exact_mut(hd) {
                        rms_norm_inplace(head, qn, hp.rms_eps);
                    }
                    for head in kt.chunks_exact_mut(hd) {
                        rms_norm_inplace(head, kn, hp.rms_eps);
                    }
                }
                rope(qt, hd, c, s, self.rope_style);
                rope(kt, hd, c, s, self.rope_style);
                let block = batch[row.seq].block_table[row.pos / bs] as usize;
                kv.store(l, block, row.pos % bs, kt, &v[t * vd..(t + 1) * vd]);
            }
            attend(&shape, l, q, att, &ws.rows, batch, kv, &mut ws.attn, pool);
            matmul(&a.wo.qmatrix(), att, n, tmp, scratch, pool);
            add_inplace(x, tmp);

            // Feed-forward block.
            for (xr, xnr) in x.chunks_exact(e).zip(xn.chunks_exact_mut(e)) {
                rms_norm(xr, &layer.ffn_norm, hp.rms_eps, xnr);
            }
            match &layer.ffn {
                Ffn::Dense(f) => f.forward(xn, n, gate, up, tmp, scratch, pool),
                Ffn::Moe(m) => m.forward(xn, n, tmp, &ws.fast, &mut ws.moe, scratch, pool),
            }
            add_inplace(x, tmp);
        }

        // Final norm and output projection, only for the rows that want logits.
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
            let output = self.output.as_ref().unwrap_or(&self.tok_embd);
            matmul(&output.qmatrix(), hidden, n_out, logits, scratch, pool);
        }
        Ok(())
    }
}
