//! `seed run`: chat with a model in the terminal.
//!
//! With a prompt argument, one answer is streamed to stdout and the program exits;
//! without, it is a multi-turn chat that keeps the conversation (and the KV cache
//! of the turns so far, so a follow-up only computes what is new). Ctrl-C stops
//! the answer being written, not the program; Ctrl-D or `/bye` leaves. A model
//! without a chat template (a base model) is used for plain completion.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use model::chat::Message;
use model::sampler::SamplingParams;
use model::session::Session;
use model::LoadedModel;

use super::common::{ModelArgs, SamplingArgs};
use seed::generate::{generate, FinishReason, GenerateOptions};

/// Arguments of `seed run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Ask one question and exit.
    prompt: Option<String>,
    /// A system message for the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Tokens per answer at most.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 512)]
    max_tokens: usize,
    /// Print load and speed figures to stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Sampling defaults for chat: greedy. The catalogue's small models put the
/// first word of an answer nearly at a tie (SmolLM2 gives "The" 13.7% and "L" 13.1%
/// for "What is the capital of France?"), so even temperature 0.2, which its model
/// card suggests, wanders off into French half the time; `--temperature 0.7` (with
/// the default top-k 40, top-p 0.95, min-p 0.05) gives variety when wanted.
fn chat_defaults() -> SamplingParams {
    SamplingParams::greedy()
}

/// Runs `seed run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let (loaded, pool, _) = args.model.load(args.verbose)?;
    let sampling = args.sampling.params(chat_defaults())?;
    let mut session = Session::new(&loaded.model, &pool, args.model.n_ctx(&loaded))?;
    let opts = GenerateOptions { max_tokens: args.max_tokens, sampling, logprobs: None };
    if loaded.chat_template.is_none() {
        eprintln!(
            "note: this model has no chat template (a base model); it will continue your text instead of answering"
        );
    }

    // Ctrl-C stops the current answer; while waiting for input it exits.
    let answering = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (answering, stop) = (Arc::clone(&answering), Arc::clone(&stop));
        ctrlc::set_handler(move || {
            if answering.load(Ordering::SeqCst) {
                stop.store(true, Ordering::SeqCst);
            } else {
                std::process::exit(130);
            }
        })?;
    }

    let mut chat = Chat { loaded: &loaded, messages: Vec::new(), system: args.system.clone() };
    if let Some(prompt) = &args.prompt {
        chat.answer(&mut session, prompt, &opts, &answering, &stop, args.verbose)?;
        return Ok(());
    }

    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Chatting with {}. Type /bye or press Ctrl-D to leave, /clear to start over.", args.model.model);
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!(">>> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        match input {
            "" => continue,
            "/bye" | "/exit" | "/quit" => break,
            "/clear" => {
                chat.messages.clear();
                session.truncate(0);
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        if let Err(e) = chat.answer(&mut session, input, &opts, &answering, &stop, args.verbose) {
            // The turn is dropped; the conversation goes on (e.g. after /clear).
            chat.messages.pop();
            eprintln!("error: {e:#}");
        }
    }
    Ok(())
}

/// The conversation so far.
struct Chat<'a> {
    loaded: &'a LoadedModel,
    messages: Vec<Message>,
    system: Option<String>,
}

impl Chat<'_> {
    /// Adds the user's turn, streams the answer, and records it.
    fn answer(
        &mut self,
        session: &mut Session,
        input: &str,
        opts: &GenerateOptions,
        answering: &AtomicBool,
        stop: &AtomicBool,
        verbose: bool,
    ) -> anyhow::Result<()> {
        let prompt = match &self.loaded.chat_template {
            Some(template) => {
                if self.messages.is_empty() {
                    if let Some(system) = &self.system {
                        self.messages.push(Message::new("system", system));
                    }
                }
                self.messages.push(Message::new("user", input));
                self.loaded.tokenize_chat_prompt(&template.render(&self.messages, true)?)
            }
            None => self.loaded.tokenizer.encode(input, true, true),
        };
        stop.store(false, Ordering::SeqCst);
        answering.store(true, Ordering::SeqCst);
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let result = generate(session, &self.loaded.tokenizer, &prompt, opts, Some(stop), |_, bytes| {
            let _ = out.write_all(bytes);
            let _ = out.flush();
        });
        answering.store(false, Ordering::SeqCst);
        let result = result?;
        writeln!(out)?;
        if result.finish_reason == FinishReason::Cancelled {
            eprintln!("(stopped)");
        }
        if self.loaded.chat_template.is_some() {
            let text = self.loaded.tokenizer.decode(&result.token_ids, false);
            self.messages.push(Message::new("assistant", String::from_utf8_lossy(&text)));
        }
        if verbose {
            let (p, d) = (result.prompt_time.as_secs_f64(), result.decode_time.as_secs_f64());
            eprintln!(
                "prompt {} tokens {:.0} tok/s, answer {} tokens {:.0} tok/s",
                result.prompt_tokens_computed,
                result.prompt_tokens_computed as f64 / p.max(1e-9),
                result.token_ids.len(),
                result.token_ids.len().saturating_sub(1) as f64 / d.max(1e-9)
            );
        }
        Ok(())
    }
}
