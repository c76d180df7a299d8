//! Comparing our numbers with llama.cpp's golden files, by the rules of
//! `testdata/golden/README.md`.

use kernels::ThreadPool;
use model::sampler::{argmax, logprobs};
use model::session::Session;
use model::LoadedModel;
use serde_json::Value;

/// One golden sequence: prompt ids, llama.cpp's greedy continuation and its
/// teacher-forced top-5 log-probs at each generated position.
pub struct Case {
    /// The prompt text (raw prompt or rendered template), for messages.
    pub label: String,
    pub prompt_ids: Vec<u32>,
    pub generated: Vec<u32>,
    /// Per generated position: llama.cpp's teacher-forced values.
    pub forced: Vec<Forced>,
}

/// (target id, its log-prob if in llama.cpp's top 5, the top 5 as (id, log-prob)).
pub type Forced = (u32, Option<f32>, Vec<(u32, f32)>);

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

impl Case {
    pub fn from_json(v: &Value, prompt_key: &str, gen_key: &str, label: &str) -> Case {
        let forced = v["teacher_forced"]
            .as_array()
            .expect("teacher_forced")
            .iter()
            .map(|p| {
                let top = p["top_logprobs"]
                    .as_array()
                    .expect("top_logprobs")
                    .iter()
                    .map(|t| (t["id"].as_u64().expect("id") as u32, t["logprob"].as_f64().expect("lp") as f32))
                    .collect();
                (
                    p["target_id"].as_u64().expect("target") as u32,
                    p["target_logprob_if_in_top5"].as_f64().map(|x| x as f32),
                    top,
                )
            })
            .collect();
        Case { label: label.to_string(), prompt_ids: ids(&v[prompt_key]), generated: ids(&v[gen_key]), forced }
    }

    /// llama.cpp's top-2 margin at generated position `p`.
    fn margin(&self, p: usize) -> f32 {
        let top = &self.forced[p].2;
        top[0].1 - top[1].1
    }
}

/// The cases a run checks: every one, or the first `SEED_GOLDEN_CASES` of them where
/// that is set (`scripts/test-aarch64.sh` sets it: under an emulator a full run takes
/// hours). Returns the cases and the share of them kept, for thresholds on counts.
pub fn selected(mut cases: Vec<Case>) -> (Vec<Case>, f64) {
    let total = cases.len().max(1);
    if let Some(n) = std::env::var("SEED_GOLDEN_CASES").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        cases.truncate(n.max(1));
    }
    let share = cases.len() as f64 / total as f64;
    (cases, share)
}

/// Running statistics of |ours − theirs|.
#[derive(Default)]
pub struct Stats {
    pub n: usize,
    pub sum: f64,
    pub max: f32,
    pub argmax_checked: usize,
    /// Positions skipped as exempt.
    pub exempt: usize,
}

impl Stats {
    pub fn mean(&self) -> f64 {
        self.sum / self.n.max(1) as f64
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} positions, |Δ logprob| mean {:.4} max {:.4}; argmax checked at {} positions",
            self.n,
            self.mean(),
            self.max,
            self.argmax_checked
        )?;
        if self.exempt > 0 {
            write!(f, "; {} exempt", self.exempt)?;
        }
        Ok(())
    }
}

/// Checks every generated position against llama.cpp's teacher-forced values.
///
/// llama.cpp computed position `p` with a fresh prefill of `prompt + generated[..p]`
/// (`L` tokens), whose attention kernel depends on `L`: the one-row kernel below 64
/// rows, the tiled one from 64. Our sessions choose the same way by run length, and
/// every row only depends on the rows before it, so two prefills reproduce all
/// positions: the first 63 tokens in one run (one-row kernel) for `L < 64`, and all
/// tokens in one run (tiled) for `L >= 64`.
pub fn check_teacher_forced(m: &LoadedModel, pool: &ThreadPool, case: &Case, tol: f32, stats: &mut Stats) {
    check_teacher_forced_except(m, pool, case, tol, &[], stats);
}

/// [`check_teacher_forced`], with the generated positions in `exempt` neither
/// bounded nor counted (e.g. a mixture of experts' router near-ties).
pub fn check_teacher_forced_except(
    m: &LoadedModel,
    pool: &ThreadPool,
    case: &Case,
    tol: f32,
    exempt: &[usize],
    stats: &mut Stats,
) {
    let mut tokens = case.prompt_ids.clone();
    tokens.extend_from_slice(&case.generated);
    let first = case.prompt_ids.len() - 1; // row whose logits predict generated[0]
    let short = tokens.len().min(model::attention::TILED_MIN_RUN - 1);
    let mut rows: Vec<(usize, f32, u32)> = Vec::new(); // (position, our target logprob, our argmax)
    let mut record = |i: usize, logits: &[f32]| {
        if i >= first && i - first < case.forced.len() {
            let p = i - first;
            let (lp, _) = logprobs(logits, &[case.forced[p].0], 0);
            rows.push((p, lp[0], argmax(logits)));
        }
    };
    let mut session = Session::new(&m.model, pool, tokens.len() + 1).expect("session");
    session.feed_scoring(&tokens[..short], &mut record).expect("forward");
    if tokens.len() > short {
        let mut session = Session::new(&m.model, pool, tokens.len() + 1).expect("session");
        session
            .feed_scoring(&tokens, |i, logits| {
                if i >= short {
                    record(i, logits)
                }
            })
            .expect("forward");
    }
    assert_eq!(rows.len(), case.forced.len());
    for (p, ours, our_argmax) in rows {
        if exempt.contains(&p) {
            stats.exempt += 1;
            continue;
        }
        let (target, theirs, ref top) = case.forced[p];
        if let Some(theirs) = theirs {
            let d = (ours - theirs).abs();
            assert!(
                d <= tol,
                "{:?} position {p}: logprob of {target} is {ours}, llama.cpp {theirs} (Δ {d})",
                case.label
            );
            stats.n += 1;
            stats.sum += f64::from(d);
            stats.max = stats.max.max(d);
        }
        if case.margin(p) > tol {
            assert_eq!(
                our_argmax,
                top[0].0,
                "{:?} position {p}: argmax differs (margin {})",
                case.label,
                case.margin(p)
            );
            stats.argmax_checked += 1;
        }
    }
}

/// Greedy decoding, token by token, compared with llama.cpp's continuation up to
/// the first position whose top-2 margin is below `tol`. Returns the number of
/// positions compared.
pub fn check_greedy(m: &LoadedModel, pool: &ThreadPool, case: &Case, tol: f32) -> usize {
    check_greedy_until(m, pool, case, tol, case.generated.len())
}

/// [`check_greedy`], comparing at most the first `limit` generated tokens.
pub fn check_greedy_until(m: &LoadedModel, pool: &ThreadPool, case: &Case, tol: f32, limit: usize) -> usize {
    let comparable = (0..case.generated.len().min(limit)).take_while(|&p| case.margin(p) >= tol).count();
    let mut session = Session::new(&m.model, pool, case.prompt_ids.len() + comparable + 1).expect("session");
    let mut logits = session.feed(&case.prompt_ids).expect("prefill").to_vec();
    for p in 0..comparable {
        let ours = argmax(&logits);
        assert_eq!(ours, case.generated[p], "{:?}: greedy token {p} differs", case.label);
        logits.copy_from_slice(session.decode(ours).expect("decode"));
    }
    comparable
}
