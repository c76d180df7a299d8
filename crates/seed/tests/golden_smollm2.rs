//! SmolLM2-135M-Instruct (Q4_1) against llama.cpp's outputs in
//! `testdata/golden/smollm2-135m-instruct-q4_1.json`, with the tolerances of
//! `testdata/golden/README.md`:
//! - prompt token ids (raw and chat-templated) equal exactly;
//! - teacher-forced log-probs of the target token within 0.45 nats everywhere,
//!   mean within 0.05, and the same argmax wherever llama.cpp's top-2 margin
//!   exceeds 0.45 nats;
//! - greedy tokens identical up to the first position whose margin is below 0.45.
//!
//! 0.45 nats is llama.cpp's own spread on this model (its prefill and decode paths
//! differ by up to 0.44); prompts here take Seed's fast order, which differs from
//! ggml's (the README's KL-divergence rule is `golden_kld.rs`).
//!
//! The model is fetched into the cache on first use (`seed::catalogue`).

mod common;

use common::golden::{check_greedy, check_teacher_forced, selected, Case, Stats};
use common::{golden_json, shared_model};
use model::chat::Message;

const MODEL: &str = "smollm2-135m-instruct";
const GOLDEN: &str = "smollm2-135m-instruct-q4_1.json";
/// The README's tolerance for this model, in nats.
const TOL: f32 = 0.45;

fn raw_cases() -> Vec<Case> {
    let golden = golden_json(GOLDEN);
    golden["raw_completions"]
        .as_array()
        .expect("raw_completions")
        .iter()
        .map(|r| Case::from_json(r, "prompt_token_ids", "generated_token_ids", r["prompt"].as_str().expect("prompt")))
        .collect()
}

fn chat_cases() -> Vec<Case> {
    let golden = golden_json(GOLDEN);
    golden["chat_completions"]
        .as_array()
        .expect("chat_completions")
        .iter()
        .map(|c| {
            Case::from_json(
                c,
                "templated_prompt_token_ids",
                "generated_token_ids_via_completion_on_templated_prompt",
                c["templated_prompt"].as_str().expect("templated_prompt"),
            )
        })
        .collect()
}

#[test]
fn raw_prompts_tokenize_like_llama_cpp() {
    let (m, _) = shared_model(MODEL);
    for case in raw_cases() {
        assert_eq!(m.tokenizer.encode(&case.label, true, true), case.prompt_ids, "prompt {:?}", case.label);
    }
}

#[test]
fn chat_prompts_render_and_tokenize_like_llama_cpp() {
    let (m, _) = shared_model(MODEL);
    let golden = golden_json(GOLDEN);
    let template = m.chat_template.as_ref().expect("SmolLM2 has a chat template");
    for (c, case) in golden["chat_completions"].as_array().expect("chat").iter().zip(chat_cases()) {
        let messages: Vec<Message> = c["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| Message::new(m["role"].as_str().expect("role"), m["content"].as_str().expect("content")))
            .collect();
        let text = template.render(&messages, true).expect("render");
        assert_eq!(text, case.label, "rendered template");
        assert_eq!(m.tokenize_chat_prompt(&text), case.prompt_ids, "templated ids of {messages:?}");
    }
}

#[test]
fn teacher_forced_logprobs_match_llama_cpp() {
    let (m, pool) = shared_model(MODEL);
    let mut stats = Stats::default();
    let ((raw, _), (chat, _)) = (selected(raw_cases()), selected(chat_cases()));
    for case in raw.iter().chain(chat.iter()) {
        check_teacher_forced(m, pool, case, TOL, &mut stats);
    }
    eprintln!("{MODEL}: {stats}");
    assert!(stats.mean() <= 0.05, "mean |Δ logprob| {} > 0.05 ({stats})", stats.mean());
}

#[test]
fn greedy_continuations_match_llama_cpp() {
    let (m, pool) = shared_model(MODEL);
    let mut compared = 0;
    let ((raw, share), (chat, _)) = (selected(raw_cases()), selected(chat_cases()));
    for case in raw.iter().chain(chat.iter()) {
        compared += check_greedy(m, pool, case, TOL);
    }
    eprintln!("{MODEL}: {compared} greedy tokens compared");
    // Before each case's first margin under 0.45 nats: 73 positions in all 16 cases,
    // 5 in the first raw case alone (what `scripts/test-aarch64.sh` runs).
    let expected = if share < 1.0 { 5 } else { 73 };
    assert!(compared >= expected, "too few positions were comparable: {compared}");
}

#[test]
fn the_golden_tests_pass_at_the_other_kernel_levels() {
    common::rerun_at_levels("llama_cpp", &common::OTHER_LEVELS);
}
