//! MaskBench conformance of the grammar layer on a committed sample (`testdata/maskbench/`, 160
//! real-world schemas with valid and invalid instances), with SmolLM2's tokenizer: of the
//! schemas llguidance compiles, no valid instance is refused and no invalid one accepted. The
//! whole set runs with `examples/maskbench.rs`.

mod common;

#[path = "common/maskbench.rs"]
mod maskbench;

use serde_json::Value;

#[test]
fn compiled_schemas_allow_every_valid_instance_and_refuse_every_invalid_one() {
    let (model, _) = common::shared_model("smollm2-135m-instruct");
    let vocab = model.grammar_vocab().expect("vocab");
    let text = std::fs::read_to_string(common::testdata().join("maskbench/sample.jsonl")).expect("the sample");
    let (mut compiled, mut valid, mut invalid) = (0, 0, 0);
    let mut failures = Vec::new();
    for line in text.lines() {
        let file: Value = serde_json::from_str(line).expect("a sample line");
        let o = maskbench::check_file(&vocab, &model.tokenizer, &file);
        if o.compile_error.is_some() {
            continue;
        }
        compiled += 1;
        valid += o.valid_ok;
        invalid += o.invalid_ok;
        let name = file["file"].as_str().unwrap_or_default();
        failures.extend(o.valid_refused.iter().map(|m| format!("{name}: valid refused: {m}")));
        failures.extend(o.invalid_accepted.iter().map(|m| format!("{name}: invalid accepted: {m}")));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // Most of the sample compiles, and the checks have something to check.
    assert!(compiled >= 120, "only {compiled} of 160 schemas compiled");
    assert!(valid >= compiled && invalid >= compiled, "{valid} valid and {invalid} invalid instances checked");
    eprintln!("MaskBench sample: {compiled} of 160 schemas compiled; {valid} valid instances allowed, {invalid} invalid refused");
}
