//! A mixture-of-experts feed-forward block, for the architectures that have one
//! (`qwen3moe` today).
//!
//! Each block's feed-forward is a mixture of `expert_count` SwiGLU experts: a router
//! `ffn_gate_inp` scores them, the softmax of the scores picks the top
//! `expert_used_count`, their probabilities are renormalised to sum to 1
//! (`expert_weights_norm`, true unless the file says otherwise), and the chosen experts'
//! outputs are summed with those weights, in the order of the choice (highest probability
//! first). The experts are stacked in `ffn_{gate,up,down}_exps` (`[n_embd, n_ff_exp,
//! n_expert]` …).
//!
//! A batch is run expert by expert: the rows routed to one expert are gathered and
//! go through that expert's three matrices together, so every expert's weights are
//! read at most once per forward pass, however many tokens it serves.

use std::sync::Arc;

use kernels::matmul::{matmul, matmul_multi, MatmulScratch};
use kernels::ops::{softmax, swiglu};
use kernels::ThreadPool;

use crate::batch::buf;
use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::hparams::HParams;
use crate::weights::Matrix;

/// Most experts accepted (guards buffer sizing against absurd metadata).
const MAX_EXPERTS: usize = 1 << 12;

/// One block's mixture of experts.
pub(crate) struct MoeFfn {
    router: Matrix, // (n_expert, n_embd)
    gate: Matrix,   // n_expert stacked (n_ff_exp, n_embd)
    up: Matrix,     // n_expert stacked (n_ff_exp, n_embd)
    down: Matrix,   // n_expert stacked (n_embd, n_ff_exp)
    n_expert: usize,
    n_used: usize,
    n_ff: usize,
    n_embd: usize,
    norm_weights: bool,
}

/// The mixture's buffers, reused across passes.
#[derive(Default)]
pub(crate) struct MoeScratch {
    /// Router probabilities `(n_rows, n_expert)`.
    probs: Vec<f32>,
    /// Chosen experts and their weights `(n_rows, n_used)`.
    chosen: Vec<(usize, f32)>,
    /// Slots `(row, k)` routed to the current expert, as `row * n_used + k`.
    slots: Vec<usize>,
    /// Gathered input rows of the current expert `(m, n_embd)`.
    xe: Vec<f32>,
    /// Its gate and up projections `(m, n_ff_exp)`.
    gate: Vec<f32>,
    up: Vec<f32>,
    /// Its output `(m, n_embd)`.
    ye: Vec<f32>,
    /// Weighted expert output per slot `(n_rows, n_used, n_embd)`.
    outs: Vec<f32>,
}

impl MoeFfn {
    /// Loads block `i`'s router and experts (`{arch}.expert_count` and the other keys).
    pub(crate) fn load(file: &Arc<GgufFile>, hp: &HParams, i: usize) -> Result<MoeFfn, ModelError> {
        let key = |k: &str| format!("{}.{k}", hp.arch);
        let n_expert = file.get_u32(&key("expert_count"))? as usize;
        let n_used = file.get_u32(&key("expert_used_count"))? as usize;
        if n_expert == 0 || n_expert > MAX_EXPERTS {
            return Err(ModelError::metadata(key("expert_count"), format!("{n_expert} is outside 1..={MAX_EXPERTS}")));
        }
        if n_used == 0 || n_used > n_expert {
            return Err(ModelError::metadata(
                key("expert_used_count"),
                format!("{n_used} must be between 1 and the {n_expert} experts"),
            ));
        }
        let n_ff = match file.get(&key("expert_feed_forward_length")) {
            Some(_) => file.get_u32(&key("expert_feed_forward_length"))? as usize,
            None => hp.n_ff / n_used,
        };
        if n_ff == 0 {
            return Err(ModelError::metadata(key("expert_feed_forward_length"), "must be at least 1"));
        }
        let norm_weights = match file.get(&key("expert_weights_norm")) {
            Some(_) => file.get_bool(&key("expert_weights_norm"))?,
            None => true,
        };
        let e = hp.n_embd;
        let name = |t: &str| format!("blk.{i}.{t}.weight");
        Ok(MoeFfn {
            router: Matrix::load(file, &name("ffn_gate_inp"), n_expert, e)?,
            gate: Matrix::load_stacked(file, &name("ffn_gate_exps"), n_expert, n_ff, e)?,
            up: Matrix::load_stacked(file, &name("ffn_up_exps"), n_expert, n_ff, e)?,
            down: Matrix::load_stacked(file, &name("ffn_down_exps"), n_expert, e, n_ff)?,
            n_expert,
            n_used,
            n_ff,
            n_embd: e,
            norm_weights,
        })
    }

    /// Bytes one token reads: the router and `n_used` experts.
    pub(crate) fn bytes_per_token(&self) -> usize {
        let experts = self.gate.size_bytes() + self.up.size_bytes() + self.down.size_bytes();
        self.router.size_bytes() + experts / self.n_expert * self.n_used
    }

    /// Chooses each row's experts from the router probabilities in `s.probs`:
    /// the `n_used` most probable (lower index first on equal probability), with
    /// their probabilities, renormalised if the model says so.
    fn route(&self, n: usize, s: &mut MoeScratch) {
        s.chosen.clear();
        let mut order: Vec<usize> = Vec::with_capacity(self.n_expert);
        for p in s.probs[..n * self.n_expert].chunks_exact(self.n_expert) {
            order.clear();
            order.extend(0..self.n_expert);
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            let start = s.chosen.len();
            s.chosen.extend(order[..self.n_used].iter().map(|&x| (x, p[x])));
            if self.norm_weights {
                let picked = &mut s.chosen[start..];
                let sum = picked.iter().fold(0.0f32, |acc, &(_, w)| acc + w);
                for (_, w) in picked.iter_mut() {
                    *w /= sum;
                }
            }
        }
    }

    /// `out = Σ_k w_k · expert_k(xn)` for `n` rows of `xn` `(n, n_embd)`; `fast`
    /// flags the rows the products may compute in their fast order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward(
        &self,
        xn: &[f32],
        n: usize,
        out: &mut [f32],
        fast: &[bool],
        s: &mut MoeScratch,
        scratch: &mut MatmulScratch,
        pool: &ThreadPool,
    ) {
        let (e, ff, nu) = (self.n_embd, self.n_ff, self.n_used);
        let probs = buf(&mut s.probs, n * self.n_expert);
        matmul(&self.router.qmatrix(), xn, n, probs, scratch, pool);
        for row in probs.chunks_exact_mut(self.n_expert) {
            softmax(row);
        }
        self.route(n, s);
        let outs = buf(&mut s.outs, n * nu * e);
        for x in 0..self.n_expert {
            s.slots.clear();
            s.slots.extend(s.chosen.iter().enumerate().filter(|(_, c)| c.0 == x).map(|(slot, _)| slot));
            let m = s.slots.len();
            if m == 0 {
                continue;
            }
            let xe = buf(&mut s.xe, m * e);
            for (dst, &slot) in xe.chunks_exact_mut(e).zip(&s.slots) {
                let r = slot / nu;
                dst.copy_from_slice(&xn[r * e..(r + 1) * e]);
            }
            let gate = buf(&mut s.gate, m * ff);
            let up = buf(&mut s.up, m * ff);
            let ye = buf(&mut s.ye, m * e);
            let gate_up = [self.gate.rows_view(x * ff, ff), self.up.rows_view(x * ff, ff)];
            scratch.set_fast_tokens(s.slots.iter().map(|&slot| fast[slot / nu]));
            matmul_multi(&gate_up, xe, m, &mut [&mut *gate, &mut *up], scratch, pool);
            swiglu(gate, up);
            matmul(&self.down.rows_view(x * e, e), gate, m, ye, scratch, pool);
            for (y, &slot) in ye.chunks_exact(e).zip(&s.slots) {
                let w = s.chosen[slot].1;
                for (o, &v) in outs[slot * e..(slot + 1) * e].iter_mut().zip(y) {
                    *o = v * w;
                }
            }
        }
        scratch.set_fast_tokens(fast.iter().copied());
        // Sum each row's weighted expert outputs in the order they were chosen.
        for (o, slots) in out[..n * e].chunks_exact_mut(e).zip(outs.chunks_exact(nu * e)) {
            o.copy_from_slice(&slots[..e]);
            for k in 1..nu {
                for (a, &b) in o.iter_mut().zip(&slots[k * e..(k + 1) * e]) {
                    *a += b;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moe(n_expert: usize, n_used: usize, norm_weights: bool) -> MoeFfn {
        let m = || Matrix::f32_for_tests(1, 32, &[0.0; 32]);
        MoeFfn { router: m(), gate: m(), up: m(), down: m(), n_expert, n_used, n_ff: 1, n_embd: 1, norm_weights }
    }

    #[test]
    fn routing_picks_the_most_probable_and_renormalises() {
        let f = moe(4, 2, true);
        let mut s = MoeScratch { probs: vec![0.1, 0.4, 0.2, 0.3, 0.25, 0.25, 0.4, 0.1], ..Default::default() };
        f.route(2, &mut s);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert_eq!((s.chosen[0].0, s.chosen[1].0), (1, 3));
        assert!(close(s.chosen[0].1, 0.4 / 0.7) && close(s.chosen[1].1, 0.3 / 0.7));
        // Row 2: expert 2 first; the tie between 0 and 1 goes to the lower index.
        assert_eq!((s.chosen[2].0, s.chosen[3].0), (2, 0));
        assert!(close(s.chosen[2].1 + s.chosen[3].1, 1.0));
        let f = moe(4, 2, false);
        f.route(1, &mut s);
        assert_eq!(s.chosen, vec![(1, 0.4), (3, 0.3)]);
    }
    /// Pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn forward_matches_a_naive_mixture_for_every_row_of_a_batch() {
        let (ne, nu, e, ff, n) = (5, 2, 32, 8, 7);
        let (router, gate, up, down) =
            (values(ne * e, 1), values(ne * ff * e, 2), values(ne * ff * e, 3), values(ne * e * ff, 4));
        let f = MoeFfn {
            router: Matrix::f32_for_tests(ne, e, &router),
            gate: Matrix::f32_for_tests(ne * ff, e, &gate),
            up: Matrix::f32_for_tests(ne * ff, e, &up),
            down: Matrix::f32_for_tests(ne * e, ff, &down),
            n_expert: ne,
            n_used: nu,
            n_ff: ff,
            n_embd: e,
            norm_weights: true,
        };
        let xn = values(n * e, 5);
        let mut out = vec![f32::NAN; n * e];
        let pool = ThreadPool::new(1);
        f.forward(&xn, n, &mut out, &vec![false; n], &mut MoeScratch::default(), &mut MatmulScratch::default(), &pool);

        let dot = |w: &[f32], x: &[f32]| w.iter().zip(x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
        let mut experts_used = std::collections::HashSet::new();
        for t in 0..n {
            let x = &xn[t * e..(t + 1) * e];
            let logits: Vec<f64> = (0..ne).map(|j| dot(&router[j * e..(j + 1) * e], x)).collect();
            let mut order: Vec<usize> = (0..ne).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            // A softmax renormalised over the top nu is a softmax over the top nu.
            let top = &order[..nu];
            experts_used.extend(top.iter().copied());
            let z: f64 = top.iter().map(|&j| (logits[j] - logits[top[0]]).exp()).sum();
            let mut want = vec![0.0f64; e];
            for &j in top {
                let w = (logits[j] - logits[top[0]]).exp() / z;
                let h: Vec<f64> = (0..ff)
                    .map(|i| {
                        let r = (j * ff + i) * e;
                        let g = dot(&gate[r..r + e], x);
                        g / (1.0 + (-g).exp()) * dot(&up[r..r + e], x)
                    })
                    .collect();
                for (o, wo) in want.iter_mut().enumerate() {
                    let r = (j * e + o) * ff;
                    *wo += w * down[r..r + ff].iter().zip(&h).map(|(a, b)| f64::from(*a) * b).sum::<f64>();
                }
            }
            for (o, (&got, &w)) in out[t * e..(t + 1) * e].iter().zip(&want).enumerate() {
                assert!((f64::from(got) - w).abs() < 1e-4 * (1.0 + w.abs()), "row {t} output {o}: {got} vs {w}");
            }
        }
        assert!(experts_used.len() >= 3, "the batch should exercise several experts");
    }
}
