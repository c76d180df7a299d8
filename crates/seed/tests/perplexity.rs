//! `seed::perplexity` on `testdata/golden/ppl_text.txt` at ctx 512 against
//! llama-perplexity's figures in `testdata/golden/README.md`: within 0.3% (the rule there).

mod common;

use common::{shared_model, testdata};

fn ppl_of(model: &str) -> f64 {
    let (m, pool) = shared_model(model);
    let text = std::fs::read_to_string(testdata().join("golden/ppl_text.txt")).expect("ppl_text.txt");
    let r = seed::perplexity::perplexity(m, pool, &text, 512, |_, _| {}).expect("perplexity");
    assert_eq!(r.n_chunks, r.running.len());
    assert!(r.ppl_err > 0.0 && r.ppl_err < r.ppl, "uncertainty {} of {}", r.ppl_err, r.ppl);
    eprintln!("{model}: PPL {:.4} ± {:.4} over {} chunks", r.ppl, r.ppl_err, r.n_chunks);
    r.ppl
}

#[test]
fn smollm2_perplexity_matches_llama_cpp() {
    let ppl = ppl_of("smollm2-135m-instruct");
    assert!((ppl / 13.1301 - 1.0).abs() < 0.003, "PPL {ppl} vs llama.cpp 13.1301");
}

#[test]
fn gemma3_perplexity_matches_llama_cpp() {
    let ppl = ppl_of("gemma3-270m");
    assert!((ppl / 14.4540 - 1.0).abs() < 0.003, "PPL {ppl} vs llama.cpp 14.4540");
}
