//! MaskBench conformance over a whole `maskbench/data` folder (JSONSchemaBench, public), with
//! SmolLM2's tokenizer: compile coverage, valid instances refused, invalid instances accepted,
//! and the time per schema. The committed sample (`testdata/maskbench/`) runs in the test suite;
//! this runs the ~10k files of a local copy.
//!
//! `cargo run --release -p seed --example maskbench -- PATH/TO/maskbench/data`

#[path = "../tests/common/maskbench.rs"]
mod maskbench;

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: maskbench DIR (JSONSchemaBench's maskbench/data)")?;
    let path = seed::catalogue::ensure_model("smollm2-135m-instruct")?;
    let model = model::LoadedModel::open(&path)?;
    let vocab = model.grammar_vocab()?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    let (mut schemas, mut compiled, mut with_tests) = (0, 0, 0);
    let (mut valid_ok, mut valid_bad, mut invalid_ok, mut invalid_bad) = (0, 0, 0, 0);
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    let start = Instant::now();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        let Ok(file) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        schemas += 1;
        let o = maskbench::check_file(&vocab, &model.tokenizer, &file);
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match &o.compile_error {
            Some(e) => {
                let key: String = e.split([':', '(']).next().unwrap_or(e).chars().take(60).collect();
                *reasons.entry(key).or_default() += 1;
            }
            None => {
                compiled += 1;
                with_tests += usize::from(file["tests"].as_array().is_some_and(|t| !t.is_empty()));
            }
        }
        valid_ok += o.valid_ok;
        invalid_ok += o.invalid_ok;
        valid_bad += o.valid_refused.len();
        invalid_bad += o.invalid_accepted.len();
        for m in o
            .valid_refused
            .iter()
            .map(|m| ("valid refused", m))
            .chain(o.invalid_accepted.iter().map(|m| ("invalid accepted", m)))
        {
            println!("{name}: {}: {}", m.0, m.1);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "schemas {schemas}; compiled {compiled} ({:.1}%), {with_tests} of them with instances",
        100.0 * compiled as f64 / schemas.max(1) as f64
    );
    println!("valid instances: {valid_ok} allowed, {valid_bad} refused; invalid instances: {invalid_ok} refused, {invalid_bad} accepted");
    println!("{secs:.1} s in all, {:.1} ms per schema", 1000.0 * secs / schemas.max(1) as f64);
    println!("compile errors by kind:");
    let mut by: Vec<_> = reasons.into_iter().collect();
    by.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (k, n) in by.iter().take(15) {
        println!("  {n:5}  {k}");
    }
    Ok(())
}
