//! `seed generate`: one completion of a prompt, as text or as JSON.

use std::io::Write;

use clap::Args;
use model::chat::Message;
use model::sampler::SamplingParams;
use model::session::Session;
use serde_json::json;

use super::common::{ModelArgs, SamplingArgs};
use seed::generate::{generate, GenerateOptions};

/// Arguments of `seed generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt.
    #[arg(long, short = 'p')]
    prompt: String,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 48)]
    n: usize,
    /// Complete the prompt as it is, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// With --json: the top-K log-probabilities at each generated position.
    #[arg(long, value_name = "K")]
    logprobs: Option<usize>,
    /// Print load and speed figures to stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Runs `seed generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let (loaded, pool, _) = args.model.load(args.verbose)?;
    let sampling = args.sampling.params(SamplingParams::greedy())?;
    let templated = !args.raw && loaded.chat_template.is_some();
    let prompt_ids = match (&loaded.chat_template, templated) {
        (Some(t), true) => loaded.tokenize_chat_prompt(&t.render(&[Message::new("user", &args.prompt)], true)?),
        _ => loaded.tokenizer.encode(&args.prompt, true, true),
    };
    let mut session = Session::new(&loaded.model, &pool, args.model.n_ctx(&loaded))?;
    let opts = GenerateOptions {
        max_tokens: args.n,
        sampling,
        logprobs: args.logprobs.filter(|_| args.json),
        constraint: None,
    };

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let streaming = !args.json;
    let result = generate(&mut session, &loaded.tokenizer, &prompt_ids, &opts, None, |_, bytes| {
        if streaming {
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }
    })?;

    let text_bytes = loaded.tokenizer.decode(&result.token_ids, false);
    let prompt_s = result.prompt_time.as_secs_f64();
    let decode_s = result.decode_time.as_secs_f64();
    // The first generated token comes from the prompt pass; the rest are decode steps.
    let decode_steps = result.token_ids.len().saturating_sub(1).max(1);
    if args.json {
        let mut obj = json!({
            "prompt_token_ids": prompt_ids,
            "token_ids": result.token_ids,
            "text": String::from_utf8_lossy(&text_bytes),
            "finish_reason": result.finish_reason,
            "chat_template": templated,
            "timings": {
                "prompt_tokens": result.prompt_tokens_computed,
                "prompt_ms": prompt_s * 1e3,
                "prompt_tokens_per_s": result.prompt_tokens_computed as f64 / prompt_s.max(1e-9),
                "decode_ms": decode_s * 1e3,
                "decode_tokens_per_s": decode_steps as f64 / decode_s.max(1e-9),
            },
        });
        if args.logprobs.is_some() {
            obj["logprobs"] = serde_json::to_value(&result.logprobs)?;
        }
        writeln!(out, "{obj}")?;
    } else {
        writeln!(out)?;
    }
    if args.verbose {
        eprintln!(
            "prompt: {} tokens in {:.1} ms ({:.1} tok/s); decode: {} tokens in {:.1} ms ({:.1} tok/s); finish: {:?}",
            result.prompt_tokens_computed,
            prompt_s * 1e3,
            result.prompt_tokens_computed as f64 / prompt_s.max(1e-9),
            result.token_ids.len(),
            decode_s * 1e3,
            decode_steps as f64 / decode_s.max(1e-9),
            result.finish_reason
        );
    }
    Ok(())
}
