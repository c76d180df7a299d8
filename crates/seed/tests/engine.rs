//! The engine on the real default model: continuous batching gives every request
//! the tokens it gets alone, prefix caching reuses a shared prompt, stop strings
//! and cancellation work, and every KV block comes back.

mod common;

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use engine::scheduler::SchedulerConfig;
use engine::{Engine, EngineConfig, Event, EventSender, FinishReason, Request, Usage};
use model::sampler::SamplingParams;
use model::LoadedModel;

fn engine(n_blocks: usize) -> (Engine, Arc<LoadedModel>) {
    let path = seed::catalogue::ensure_model("smollm2-135m-instruct").expect("model");
    let m = Arc::new(LoadedModel::open(&path).expect("load"));
    let cfg = EngineConfig {
        scheduler: SchedulerConfig {
            block_size: 32,
            n_blocks,
            max_seq_len: 2048,
            prefill_chunk: 512,
            max_batch_tokens: 2048,
            max_running: 64,
        },
        max_waiting: 64,
        threads: 2,
        cpus: Vec::new(),
    };
    (Engine::start(Arc::clone(&m), cfg).expect("engine"), m)
}

fn request(id: u64, prompt: Vec<u32>, max_tokens: usize, stop: &[&str]) -> (Request, Receiver<Event>) {
    let (events, rx) = EventSender::channel();
    let req = Request {
        id,
        prompt,
        sampling: SamplingParams::greedy(),
        max_tokens,
        stop: stop.iter().map(|s| s.to_string()).collect(),
        ignore_eos: false,
        logprobs: None,
        cache_salt: 0,
        share: engine::Share::default(),
        constraint: None,
        embed: false,
        events,
    };
    (req, rx)
}

/// Collects a request's tokens, text and final event.
fn collect(rx: &Receiver<Event>) -> (Vec<u32>, String, FinishReason, Usage) {
    let (mut ids, mut text) = (Vec::new(), String::new());
    loop {
        match rx.recv_timeout(Duration::from_secs(120)).expect("event") {
            Event::Token { id, text: t, .. } => {
                ids.push(id);
                text.push_str(&t);
            }
            Event::Done { finish_reason, usage, text: t, .. } => {
                text.push_str(&t);
                return (ids, text, finish_reason, usage);
            }
            Event::Error { message } => panic!("error event: {message}"),
            Event::Embedding { .. } => panic!("an embedding for a generation"),
        }
    }
}

/// The 16 golden prompts: 8 raw and 8 chat-templated.
fn prompts(m: &LoadedModel) -> Vec<Vec<u32>> {
    let golden = common::golden_json("smollm2-135m-instruct-q4_1.json");
    let raw = golden["raw_completions"].as_array().expect("raw").iter().map(|r| r["prompt"].as_str().expect("prompt"));
    let chat =
        golden["chat_completions"].as_array().expect("chat").iter().map(|c| c["templated_prompt"].as_str().expect("t"));
    raw.chain(chat).map(|text| m.tokenize_chat_prompt(text)).collect()
}

#[test]
fn greedy_output_in_a_batch_of_16_equals_each_request_alone() {
    let (e, m) = engine(512);
    let prompts = prompts(&m);
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (req, rx) = request(i as u64, p.clone(), 24, &[]);
            e.submit(req).expect("submit");
            collect(&rx).0
        })
        .collect();
    let rxs: Vec<Receiver<Event>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (req, rx) = request(100 + i as u64, p.clone(), 24, &[]);
            e.submit(req).expect("submit");
            rx
        })
        .collect();
    for (i, rx) in rxs.iter().enumerate() {
        assert_eq!(collect(rx).0, alone[i], "prompt {i} differs in a batch");
    }
    assert!(settles_to_zero(&e), "KV blocks still in use after every request finished");
}

/// Waits (up to 2 s) for the engine to report no running sequence and no KV block in use.
fn settles_to_zero(e: &Engine) -> bool {
    let s = e.stats();
    (0..200).any(|_| {
        let done =
            engine::stats::EngineStats::get(&s.running) == 0 && engine::stats::EngineStats::get(&s.kv_blocks_used) == 0;
        if !done {
            std::thread::sleep(Duration::from_millis(10));
        }
        done
    })
}

#[test]
fn a_follow_up_reuses_the_cached_prefix() {
    let (e, m) = engine(512);
    let long: Vec<u32> = m.tokenizer.encode(&"The quick brown fox jumps over the lazy dog. ".repeat(30), true, true);
    let (req, rx) = request(1, long.clone(), 4, &[]);
    e.submit(req).expect("submit");
    let (_, _, _, first) = collect(&rx);
    assert_eq!(first.cached_tokens, 0);
    let mut follow = long.clone();
    follow.extend(m.tokenizer.encode(" And then?", false, false));
    let (req, rx) = request(2, follow.clone(), 4, &[]);
    e.submit(req).expect("submit");
    let (_, _, _, second) = collect(&rx);
    assert_eq!(second.prompt_tokens, follow.len());
    assert!(second.cached_tokens >= long.len() / 32 * 32 - 32, "cached {} of {}", second.cached_tokens, long.len());
}

#[test]
fn a_prompt_sharing_part_of_a_block_reuses_it_and_gets_the_tokens_it_gets_alone() {
    let (e, m) = engine(256);
    let shared = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nExplain briefly what you know about";
    let first = m.tokenize_chat_prompt(&format!("{shared} the moon.<|im_end|>\n<|im_start|>assistant\n"));
    let second = m.tokenize_chat_prompt(&format!("{shared} volcanoes.<|im_end|>\n<|im_start|>assistant\n"));
    let common = first.iter().zip(&second).take_while(|(a, b)| a == b).count();
    assert!(common % 32 != 0 && common < second.len(), "the prompts must part inside a block ({common})");

    let (req, rx) = request(1, first, 8, &[]);
    e.submit(req).expect("submit");
    collect(&rx);
    let (req, rx) = request(2, second.clone(), 16, &[]);
    e.submit(req).expect("submit");
    let (reused, _, _, usage) = collect(&rx);
    assert_eq!(usage.cached_tokens, common, "every agreeing position is reused, not only whole blocks");
    assert!(settles_to_zero(&e));

    let (fresh, _) = engine(256);
    let (req, rx) = request(3, second, 16, &[]);
    fresh.submit(req).expect("submit");
    let (alone, _, _, usage) = collect(&rx);
    assert_eq!(usage.cached_tokens, 0);
    assert_eq!(reused, alone, "the copied positions must give the tokens computed from scratch");
}

#[test]
fn stop_strings_end_generation_and_are_not_sent() {
    let (e, m) = engine(256);
    let p = m.tokenizer.encode("The capital of France is", true, true);
    let (req, rx) = request(1, p, 48, &["United"]);
    e.submit(req).expect("submit");
    let (_, text, reason, _) = collect(&rx);
    // Greedy: " Paris.\n\nThe United States ..." — cut before "United".
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(text, " Paris.\n\nThe ");
}

#[test]
fn a_disconnected_client_is_cancelled_and_its_blocks_freed() {
    let (e, m) = engine(256);
    let p = m.tokenizer.encode("Once upon a time", true, true);
    let (req, rx) = request(1, p.clone(), 500, &[]);
    e.submit(req).expect("submit");
    // Read a few tokens, then hang up.
    for _ in 0..3 {
        rx.recv_timeout(Duration::from_secs(60)).expect("token");
    }
    drop(rx);
    assert!(settles_to_zero(&e), "KV blocks still in use after the client left");
    assert_eq!(engine::stats::EngineStats::get(&e.stats().finished[2]), 1, "one cancelled request");
}

#[test]
fn requests_that_cannot_fit_are_refused_and_shutdown_ends_streams() {
    let (e, m) = engine(16); // 16 blocks × 32 positions
    let p = m.tokenizer.encode("Hello", true, true);
    let (req, _rx) = request(1, p.clone(), 4000, &[]);
    let err = e.submit(req).expect_err("too long");
    assert!(err.to_string().contains("exceed the context"), "{err}");
    let (req, _rx) = request(2, p.clone(), 1000, &[]);
    let err = e.submit(req).expect_err("too big");
    assert!(err.to_string().contains("KV blocks"), "{err}");
    let (req, rx) = request(3, p, 400, &[]);
    e.submit(req).expect("fits");
    rx.recv_timeout(Duration::from_secs(60)).expect("first token");
    e.shutdown(Duration::ZERO);
    let (_, _, reason, _) = collect(&rx);
    assert_eq!(reason, FinishReason::Cancelled);
}

#[test]
fn the_engine_benchmark_times_the_same_decode_through_the_engine() {
    let path = seed::catalogue::ensure_model("smollm2-135m-instruct").expect("model");
    let m = Arc::new(LoadedModel::open(&path).expect("load"));
    let pool = kernels::ThreadPool::new(2);
    let (plain, served) = seed::bench::bench_tg_engine(&m, &pool, 8, 2).expect("bench");
    assert_eq!((plain.test.as_str(), served.test.as_str()), ("tg8", "tg8 engine"));
    for r in [&plain, &served] {
        assert_eq!((r.tokens, r.samples.len()), (8, 2));
        assert!(r.samples.iter().all(|&s| s.is_finite() && s > 0.0), "{r:?}");
    }
}
