//! The synthetic Qwen-family models (`qwen2`, `qwen3`, `qwen3moe`) and Seed-OSS
//! (`seed_oss`), each in Q8_0 and Q4_K_M, against llama.cpp's outputs, with the rules of the fixtures'
//! README: prompt ids exact; teacher-forced log-probs within 0.15 nats at every
//! position and 0.05 on average; the same argmax wherever llama.cpp's top-2 margin
//! exceeds 0.15; greedy tokens identical up to the first position whose margin is
//! below 0.15. For `qwen3moe`, positions listed in `router_near_ties` (where the
//! choice of expert is a near coin-flip) are exempt, and greedy decoding is only
//! compared before the first of them.
//!
//! The fixtures (13–36 MB each) are not in the repository: they are read from
//! `../shared/golden/synthetic/` beside the repository root when it is there, and
//! each test says clearly that it skipped them when it is not. The Q5_1, Q2_K and
//! IQ4_NL files are not shipped there; they are made (`common::synthetic::made`).

mod common;

use std::path::PathBuf;

use common::golden::{check_greedy_until, check_teacher_forced_except, Case, Stats};
use kernels::ThreadPool;
use model::LoadedModel;
use serde_json::Value;

const TOL: f32 = 0.15;
const MEAN_TOL: f64 = 0.05;

/// `../shared/golden/synthetic/` relative to the repository root.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/synthetic")
}

/// A golden record with its exempt positions (router near-ties).
struct Record {
    case: Case,
    exempt: Vec<usize>,
}

/// The model `name` and its records, or `None` (with a message) when absent.
fn load(name: &str) -> Option<(LoadedModel, Vec<Record>)> {
    let dir = fixtures();
    let (mut gguf, json) = (dir.join(format!("{name}.gguf")), dir.join(format!("{name}.json")));
    if !gguf.is_file() && json.is_file() {
        // Not shipped: made from the regenerated F32 original with `seed quantize`.
        gguf = common::synthetic::made(name).unwrap_or(gguf);
    }
    if !gguf.is_file() || !json.is_file() {
        eprintln!("SKIPPED {name}: synthetic fixtures not found at {} (see issue 9)", dir.display());
        return None;
    }
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("reading {}: {e}", json.display()));
    let golden: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", json.display()));
    let records = golden["raw_completions"]
        .as_array()
        .expect("raw_completions")
        .iter()
        .map(|r| {
            let label = r["prompt"].as_str().expect("prompt");
            let exempt = r["router_near_ties"]
                .as_array()
                .map(|ts| ts.iter().map(|t| t["gen_index"].as_u64().expect("gen_index") as usize).collect())
                .unwrap_or_default();
            Record { case: Case::from_json(r, "prompt_token_ids", "generated_token_ids", label), exempt }
        })
        .collect();
    let model = LoadedModel::open(&gguf).unwrap_or_else(|e| panic!("loading {}: {e}", gguf.display()));
    Some((model, records))
}

fn pool() -> &'static ThreadPool {
    static POOL: std::sync::OnceLock<ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(ThreadPool::with_available_parallelism)
}

fn check(name: &str, arch: &str) {
    let Some((m, records)) = load(name) else { return };
    assert_eq!(m.model.hparams().arch, arch);
    let mut stats = Stats::default();
    let mut greedy = 0;
    for r in &records {
        let ids = m.tokenizer.encode(&r.case.label, true, true);
        assert_eq!(ids, r.case.prompt_ids, "{name}: prompt {:?}", r.case.label);
        check_teacher_forced_except(&m, pool(), &r.case, TOL, &r.exempt, &mut stats);
        let limit = r.exempt.iter().copied().min().unwrap_or(usize::MAX);
        greedy += check_greedy_until(&m, pool(), &r.case, TOL, limit);
    }
    eprintln!("{name}: {stats}; {greedy} greedy tokens compared");
    assert!(stats.mean() <= MEAN_TOL, "{name}: mean |Δ logprob| {} > {MEAN_TOL} ({stats})", stats.mean());
    assert!(stats.n >= 150, "{name}: too few positions compared ({stats})");
    assert!(greedy >= 6, "{name}: too few greedy tokens compared: {greedy}");
}

#[test]
fn qwen2_q8_0() {
    check("qwen2-tiny-q8_0", "qwen2");
}

#[test]
fn qwen2_q4_k_m() {
    check("qwen2-tiny-q4_k_m", "qwen2");
}

#[test]
fn qwen3_q8_0() {
    check("qwen3-tiny-q8_0", "qwen3");
}

#[test]
fn qwen3_q4_k_m() {
    check("qwen3-tiny-q4_k_m", "qwen3");
}

#[test]
fn qwen3moe_q8_0() {
    check("qwen3moe-tiny-q8_0", "qwen3moe");
}

#[test]
fn qwen3moe_q4_k_m() {
    check("qwen3moe-tiny-q4_k_m", "qwen3moe");
}

/// Q5_1 (not shipped: `seed quantize` makes it byte-identical to llama-quantize's
/// from the regenerated F32 original).
#[test]
fn qwen3_q5_1() {
    check("qwen3-tiny-q5_1", "qwen3");
}

/// The low-bit types of the mixes people download for larger models (scalar
/// kernels so far); Q2_K's and IQ4_NL's files are made as Q5_1's is.
#[test]
fn qwen3_q2_k() {
    check("qwen3-tiny-q2_k", "qwen3");
}

#[test]
fn qwen3_q3_k_m() {
    check("qwen3-tiny-q3_k_m", "qwen3");
}

#[test]
fn qwen3_iq4_nl() {
    check("qwen3-tiny-iq4_nl", "qwen3");
}

#[test]
fn qwen3_iq4_xs() {
    check("qwen3-tiny-iq4_xs", "qwen3");
}

/// Seed-OSS: Q/K/V biases, a head width (64) that is not `n_embd / n_head` (32), the pre-FFN
/// norm stored as `post_attention_norm`, RoPE base 1e7, the tied output.
#[test]
fn seed_oss_q8_0() {
    check("seed_oss-tiny-q8_0", "seed_oss");
}

#[test]
fn seed_oss_q4_k_m() {
    check("seed_oss-tiny-q4_k_m", "seed_oss");
}

/// Largest |Δ logit| between the six prompts run as one batch (prefill, then one
/// decode step of all six together, so experts serve several sequences at once)
/// and each prompt run alone.
fn batch_vs_alone(name: &str) -> Option<f32> {
    use model::{KvCache, Logits, SeqBatch, Workspace};
    let (m, records) = load(name)?;
    let model = &m.model;
    let (bs, per_seq) = (32, 4);
    let mut kv = KvCache::new(model.hparams(), bs, per_seq * records.len()).expect("cache");
    let tables: Vec<Vec<u32>> =
        (0..records.len()).map(|s| (0..per_seq).map(|b| (s * per_seq + b) as u32).collect()).collect();
    let mut ws = Workspace::default();
    let next: Vec<[u32; 1]> = records.iter().map(|r| [r.case.generated[0]]).collect();
    let mut worst = 0.0f32;
    for step in 0..2 {
        let batch: Vec<SeqBatch> = records
            .iter()
            .zip(&tables)
            .zip(&next)
            .map(|((r, table), tok)| {
                let p = &r.case.prompt_ids;
                let (tokens, pos) = if step == 0 { (&p[..], 0) } else { (&tok[..], p.len()) };
                SeqBatch { tokens, pos, block_table: table, logits: Logits::Last, generated_from: p.len() }
            })
            .collect();
        model.forward(&batch, &mut kv, &mut ws, pool()).expect("batched forward");
        for (i, r) in records.iter().enumerate() {
            let mut alone = model::session::Session::new(model, pool(), 128).expect("session");
            let mut want = alone.feed(&r.case.prompt_ids).expect("prefill").to_vec();
            if step == 1 {
                want = alone.decode(next[i][0]).expect("decode").to_vec();
            }
            for (a, b) in ws.logits_row(i).iter().zip(&want) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    Some(worst)
}

#[test]
fn qwen3moe_batched_equals_alone() {
    // Every row's products are independent of the batch (batch invariance: repacked
    // Q4_K takes one order for every token, see kernels::quant::order), so the logits
    // of a sequence batched with others equal its logits alone, bit for bit.
    for name in ["qwen3moe-tiny-q8_0", "qwen3moe-tiny-q4_k_m"] {
        if let Some(d) = batch_vs_alone(name) {
            assert_eq!(d, 0.0, "{name}: a batched logit differs by {d}");
        }
    }
}

#[test]
fn the_golden_tests_pass_at_the_other_kernel_levels() {
    common::rerun_at_levels("qwen", &common::OTHER_LEVELS);
}
