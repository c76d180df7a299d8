//! `seed run`: chat with a model in the terminal.
//!
//! With a prompt argument, one answer is streamed to stdout and the program exits;
//! without, it is a multi-turn chat that keeps the conversation (and the KV cache
//! of the turns so far, so a follow-up only computes what is new). In a terminal
//! the input line can be edited, earlier inputs come back with the arrow keys, and
//! `"""` opens (and closes) a message of several lines, as does a line ending in `\`.
//! Slash commands (`/help` lists them) change settings, save and load the
//! conversation, or switch models. Ctrl-C stops the answer being written, not the
//! program; Ctrl-D or `/bye` leaves. When stdin is not a terminal, lines are read
//! from it one by one (commands included), so a chat can be scripted. A model
//! without a chat template (a base model) is used for plain completion.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use model::chat::reasoning::{Piece, ThinkStream, Thinking};
use model::chat::Message;
use model::sampler::SamplingParams;
use model::session::Session;
use model::LoadedModel;
use serde::{Deserialize, Serialize};

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
    #[arg(short = 'n', long = "max-tokens", default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Print load figures, and prompt and decode speed after each answer, to stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Answer only with JSON valid against the JSON schema in FILE (the decoding is
    /// constrained; an answer cut by --max-tokens is a prefix of such JSON).
    #[arg(long, value_name = "FILE")]
    json_schema: Option<std::path::PathBuf>,
    /// Further chat-template variables as a JSON object, like llama.cpp's flag of that name:
    /// `{"enable_thinking": false}` (Qwen 3), `{"thinking_budget": 512}` (Seed-OSS).
    #[arg(long, value_name = "JSON", value_parser = parse_kwargs)]
    chat_template_kwargs: Option<serde_json::Map<String, serde_json::Value>>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// A JSON object of template variables, none of the chat's own.
fn parse_kwargs(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    match map.keys().find(|k| model::chat::RESERVED_VARIABLES.contains(&k.as_str())) {
        Some(name) => Err(format!("`{name}` is set by the chat itself")),
        None => Ok(map),
    }
}

/// The answer limit when `--max-tokens` is not given: long enough for any ordinary answer,
/// short enough that a model stuck in a loop stops within seconds.
const DEFAULT_MAX_TOKENS: usize = 1024;

/// The sampling of a chat with `loaded`: the model file's recommendations over Ollama-like
/// defaults ([`model::recommended::chat_defaults`]), then the flags given. `--temperature 0`
/// is exactly greedy: no penalty either, unless one is asked for by its flag.
fn chat_sampling(args: &SamplingArgs, loaded: &LoadedModel) -> anyhow::Result<SamplingParams> {
    let defaults = if args.temperature == Some(0.0) {
        SamplingParams::greedy()
    } else {
        loaded.recommended_sampling.over(model::recommended::chat_defaults())
    };
    args.params(defaults)
}

/// One line naming the sampling in use and where it came from.
fn describe_sampling(p: &SamplingParams, loaded: &LoadedModel) -> String {
    let source = if loaded.recommended_sampling.is_empty() { "defaults" } else { "the model's recommendations" };
    if p.temperature == 0.0 {
        return "sampling: greedy (--temperature 0)".to_string();
    }
    format!(
        "sampling: temperature {} top_k {} top_p {} min_p {} repeat_penalty {} (last {} tokens), from {source} and flags",
        p.temperature, p.top_k, p.top_p, p.min_p, p.repetition_penalty, p.penalty_last_n
    )
}

const HELP: &str = "\
Commands:
  /help                 this list
  /clear                forget the conversation (the system message stays)
  /system [TEXT]        set the system message (without TEXT: show it; /system - removes it)
  /set                  show the settings
  /set NAME VALUE       change one: temperature, top_k, top_p, min_p, repeat_penalty,
                        frequency_penalty, presence_penalty, seed (or none), max_tokens
  /save FILE            write the conversation and settings to FILE (JSON)
  /load FILE            continue a conversation saved with /save
  /model [NAME]         switch to another model (catalogue name or .gguf path), keeping the conversation
  /stats                figures of the last answer and of the conversation
  /bye                  leave (so does Ctrl-D)
Input: \"\"\" starts and ends a message of several lines; so does ending a line with \\.
Ctrl-C stops an answer; the arrow keys bring back earlier inputs.";

/// Runs `seed run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut model_args = args.model.clone();
    let (mut loaded, mut pool, _) = model_args.load(args.verbose)?;
    let sampling = chat_sampling(&args.sampling, &loaded)?;
    if args.verbose {
        eprintln!("{}", describe_sampling(&sampling, &loaded));
    }
    if loaded.chat_template.is_none() {
        eprintln!(
            "note: this model has no chat template (a base model); it will continue your text instead of answering"
        );
    }

    let constraint = match &args.json_schema {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let schema: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            let vocab = loaded.grammar_vocab()?;
            let spec = model::grammar::Spec::JsonSchema(schema);
            Some(vocab.compile(&spec).with_context(|| format!("the schema in {} cannot be used", path.display()))?)
        }
        None => None,
    };

    // Ctrl-C stops the current answer; otherwise (outside the line editor, which
    // reads Ctrl-C itself) it exits.
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

    let mut chat = Chat {
        model: model_args.model.clone(),
        messages: Vec::new(),
        system: args.system.clone(),
        template_kwargs: args.chat_template_kwargs.clone().unwrap_or_default(),
        opts: GenerateOptions { max_tokens: args.max_tokens, sampling, logprobs: None, constraint },
        verbose: args.verbose,
        last: None,
        answering,
        stop,
    };
    if let Some(prompt) = &args.prompt {
        let mut session = Session::new(&loaded.model, &pool, model_args.n_ctx(&loaded))?;
        chat.answer(&loaded, &mut session, prompt)?;
        return Ok(());
    }

    let mut input = Input::new()?;
    if input.is_terminal() {
        eprintln!("Chatting with {}. Type /help for commands, /bye or Ctrl-D to leave.", model_args.model);
    }
    loop {
        let outcome = {
            let mut session = Session::new(&loaded.model, &pool, model_args.n_ctx(&loaded))?;
            chat.converse(&loaded, &mut session, &mut input)?
        };
        match outcome {
            Outcome::Bye => break,
            Outcome::Switch(name) => {
                let next_args = ModelArgs { model: name, ..model_args.clone() };
                match next_args.load(args.verbose) {
                    Ok((next, next_pool, _)) => {
                        (loaded, pool, model_args) = (next, next_pool, next_args);
                        chat.model = model_args.model.clone();
                        eprintln!("(now chatting with {})", model_args.model);
                    }
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
        }
    }
    Ok(())
}

/// How a stretch of conversation with one model ended.
enum Outcome {
    /// The user left.
    Bye,
    /// The user asked for another model.
    Switch(String),
}

/// Figures of one answer.
struct AnswerStats {
    prompt_tokens: usize,
    prompt_time: Duration,
    answer_tokens: usize,
    decode_time: Duration,
    finish_reason: FinishReason,
}

impl AnswerStats {
    fn prompt_speed(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }

    /// The first answer token comes from the prompt's logits, so decode speed
    /// counts the tokens after it.
    fn decode_speed(&self) -> f64 {
        self.answer_tokens.saturating_sub(1) as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// The conversation so far and its settings.
struct Chat {
    model: String,
    messages: Vec<Message>,
    system: Option<String>,
    /// `--chat-template-kwargs`.
    template_kwargs: serde_json::Map<String, serde_json::Value>,
    opts: GenerateOptions,
    verbose: bool,
    last: Option<AnswerStats>,
    answering: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// What `/save` writes and `/load` reads.
#[derive(Serialize, Deserialize)]
struct SavedChat {
    model: String,
    system: Option<String>,
    messages: Vec<SavedMessage>,
    settings: Settings,
}

#[derive(Serialize, Deserialize)]
struct SavedMessage {
    role: String,
    content: String,
}

/// The settings `/set` changes.
#[derive(Serialize, Deserialize)]
struct Settings {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
    repeat_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    seed: Option<u64>,
    max_tokens: usize,
}

impl Settings {
    fn of(opts: &GenerateOptions) -> Self {
        let s = &opts.sampling;
        Settings {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repetition_penalty,
            frequency_penalty: s.frequency_penalty,
            presence_penalty: s.presence_penalty,
            seed: s.seed,
            max_tokens: opts.max_tokens,
        }
    }

    /// Applies these settings to `opts` if they are valid.
    fn apply(&self, opts: &mut GenerateOptions) -> anyhow::Result<()> {
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            seed: self.seed,
            ..opts.sampling.clone()
        };
        sampling.validate()?;
        if self.max_tokens == 0 {
            bail!("max_tokens must be at least 1");
        }
        opts.sampling = sampling;
        opts.max_tokens = self.max_tokens;
        Ok(())
    }

    fn show(&self) -> String {
        format!(
            "temperature {}  top_k {}  top_p {}  min_p {}  repeat_penalty {}  frequency_penalty {}  presence_penalty {}  seed {}  max_tokens {}",
            self.temperature,
            self.top_k,
            self.top_p,
            self.min_p,
            self.repeat_penalty,
            self.frequency_penalty,
            self.presence_penalty,
            self.seed.map_or("none".to_string(), |s| s.to_string()),
            self.max_tokens
        )
    }
}

/// Parses `/set NAME VALUE` into `settings`.
fn set(settings: &mut Settings, name: &str, value: &str) -> anyhow::Result<()> {
    fn num<T: std::str::FromStr>(name: &str, value: &str) -> anyhow::Result<T> {
        value.parse().map_err(|_| anyhow::anyhow!("{name}: {value:?} is not a number"))
    }
    match name.replace('-', "_").as_str() {
        "temperature" | "temp" => {
            settings.temperature = num(name, value)?;
            if settings.temperature == 0.0 {
                // Greedy is exactly greedy, as with --temperature 0.
                settings.repeat_penalty = 1.0;
                settings.frequency_penalty = 0.0;
                settings.presence_penalty = 0.0;
            }
        }
        "top_k" => settings.top_k = num(name, value)?,
        "top_p" => settings.top_p = num(name, value)?,
        "min_p" => settings.min_p = num(name, value)?,
        "repeat_penalty" | "repetition_penalty" => settings.repeat_penalty = num(name, value)?,
        "frequency_penalty" => settings.frequency_penalty = num(name, value)?,
        "presence_penalty" => settings.presence_penalty = num(name, value)?,
        "seed" => settings.seed = if value == "none" { None } else { Some(num(name, value)?) },
        "max_tokens" | "num_predict" => settings.max_tokens = num(name, value)?,
        _ => bail!("unknown setting {name:?}; /help lists them"),
    }
    Ok(())
}

impl Chat {
    /// Reads inputs and answers them until the user leaves or switches models.
    fn converse(&mut self, loaded: &LoadedModel, session: &mut Session, input: &mut Input) -> anyhow::Result<Outcome> {
        loop {
            let Some(text) = input.read_message()? else { return Ok(Outcome::Bye) };
            let trimmed = text.trim();
            if trimmed.is_empty() {
                continue;
            }
            if let Some(command) = trimmed.strip_prefix('/') {
                let (name, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
                match self.command(name, rest.trim(), session) {
                    Ok(Some(outcome)) => return Ok(outcome),
                    Ok(None) => {}
                    Err(e) => eprintln!("error: {e:#}"),
                }
                continue;
            }
            if let Err(e) = self.answer(loaded, session, &text) {
                // The turn is dropped; the conversation goes on (e.g. after /clear).
                if loaded.chat_template.is_some() {
                    self.messages.pop();
                }
                eprintln!("error: {e:#}");
            }
        }
    }

    /// Runs one slash command; `Some` when the conversation with this model ends.
    fn command(&mut self, name: &str, arg: &str, session: &mut Session) -> anyhow::Result<Option<Outcome>> {
        match name {
            "bye" | "exit" | "quit" => return Ok(Some(Outcome::Bye)),
            "help" | "?" => eprintln!("{HELP}"),
            "clear" => {
                self.messages.clear();
                session.truncate(0);
                eprintln!("(conversation cleared)");
            }
            "system" => {
                if arg.is_empty() {
                    match &self.system {
                        Some(s) => eprintln!("system: {s}"),
                        None => eprintln!("(no system message)"),
                    }
                } else {
                    self.system = (arg != "-").then(|| arg.to_string());
                    if self.messages.first().is_some_and(|m| m.role == "system") {
                        self.messages.remove(0);
                    }
                    if let (Some(system), false) = (&self.system, self.messages.is_empty()) {
                        self.messages.insert(0, Message::new("system", system));
                    }
                    eprintln!("(system message {})", if self.system.is_some() { "set" } else { "removed" });
                }
            }
            "set" => {
                let mut settings = Settings::of(&self.opts);
                if !arg.is_empty() {
                    let mut words = arg.split_whitespace();
                    let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
                        bail!("usage: /set NAME VALUE (e.g. /set temperature 0.7)");
                    };
                    set(&mut settings, key, value)?;
                    settings.apply(&mut self.opts)?;
                }
                eprintln!("{}", settings.show());
            }
            "save" => {
                if arg.is_empty() {
                    bail!("usage: /save FILE");
                }
                self.save(Path::new(arg))?;
                eprintln!("(saved {} messages to {arg})", self.messages.len());
            }
            "load" => {
                if arg.is_empty() {
                    bail!("usage: /load FILE");
                }
                self.load(Path::new(arg))?;
                eprintln!("(loaded {} messages from {arg})", self.messages.len());
            }
            "model" => {
                if arg.is_empty() {
                    bail!("usage: /model NAME (see `seed models`)");
                }
                return Ok(Some(Outcome::Switch(arg.to_string())));
            }
            "stats" => {
                match &self.last {
                    Some(s) => eprintln!(
                        "last answer: prompt {} tokens in {:.0} ms ({:.1} tok/s), answer {} tokens in {:.0} ms ({:.1} tok/s), ended by {:?}",
                        s.prompt_tokens,
                        s.prompt_time.as_secs_f64() * 1e3,
                        s.prompt_speed(),
                        s.answer_tokens,
                        s.decode_time.as_secs_f64() * 1e3,
                        s.decode_speed(),
                        s.finish_reason
                    ),
                    None => eprintln!("(no answer yet)"),
                }
                eprintln!(
                    "conversation: {} messages, {} of {} context tokens in use",
                    self.messages.len(),
                    session.tokens().len(),
                    session.n_ctx()
                );
            }
            _ => bail!("unknown command /{name}; /help lists them"),
        }
        Ok(None)
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let saved = SavedChat {
            model: self.model.clone(),
            system: self.system.clone(),
            messages: self
                .messages
                .iter()
                .map(|m| SavedMessage { role: m.role.clone(), content: m.content.clone() })
                .collect(),
            settings: Settings::of(&self.opts),
        };
        let json = serde_json::to_string_pretty(&saved)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    fn load(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let saved: SavedChat =
            serde_json::from_str(&text).with_context(|| format!("{} is not a saved chat", path.display()))?;
        saved.settings.apply(&mut self.opts)?;
        self.system = saved.system;
        self.messages = saved.messages.into_iter().map(|m| Message::new(m.role, m.content)).collect();
        Ok(())
    }

    /// Adds the user's turn, streams the answer, and records it.
    fn answer(&mut self, loaded: &LoadedModel, session: &mut Session, input: &str) -> anyhow::Result<()> {
        let (prompt, thinking) = match &loaded.chat_template {
            Some(template) => {
                if self.messages.is_empty() {
                    if let Some(system) = &self.system {
                        self.messages.push(Message::new("system", system));
                    }
                }
                self.messages.push(Message::new("user", input));
                let text = template.render_with(&self.messages, None, true, &self.template_kwargs)?;
                (loaded.tokenize_chat_prompt(&text), Thinking::for_prompt(template.source(), &text))
            }
            None => (loaded.tokenizer.encode(input, true, true), None),
        };
        self.stop.store(false, Ordering::SeqCst);
        self.answering.store(true, Ordering::SeqCst);
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        // On a terminal, a thinking model's reasoning is shown dimmed, without its tags.
        let mut shown = Shown::new(thinking.filter(|_| std::io::stdout().is_terminal()));
        let result = generate(session, &loaded.tokenizer, &prompt, &self.opts, Some(&self.stop), |_, bytes| {
            shown.push(bytes, &mut out);
        });
        shown.finish(&mut out);
        self.answering.store(false, Ordering::SeqCst);
        let result = result?;
        writeln!(out)?;
        out.flush()?;
        match result.finish_reason {
            FinishReason::Cancelled => eprintln!("(stopped)"),
            FinishReason::Length if result.token_ids.len() < self.opts.max_tokens => {
                eprintln!("(the conversation fills the context of {} tokens; /clear starts afresh)", session.n_ctx())
            }
            FinishReason::Length => eprintln!(
                "(answer cut at {} tokens; --max-tokens N or /set max_tokens N allows longer ones)",
                self.opts.max_tokens
            ),
            FinishReason::Stop => {}
        }
        if loaded.chat_template.is_some() {
            let text = loaded.tokenizer.decode(&result.token_ids, false);
            self.messages.push(Message::new("assistant", String::from_utf8_lossy(&text)));
        }
        let stats = AnswerStats {
            prompt_tokens: result.prompt_tokens_computed,
            prompt_time: result.prompt_time,
            answer_tokens: result.token_ids.len(),
            decode_time: result.decode_time,
            finish_reason: result.finish_reason,
        };
        if self.verbose {
            eprintln!(
                "prompt {} tokens {:.0} tok/s, answer {} tokens {:.0} tok/s",
                stats.prompt_tokens,
                stats.prompt_speed(),
                stats.answer_tokens,
                stats.decode_speed()
            );
        }
        self.last = Some(stats);
        Ok(())
    }
}

/// An answer on its way to the terminal: bytes as they come, or — for a thinking model — the
/// reasoning dimmed and the answer plain (whole characters only, so a split character waits).
struct Shown {
    think: Option<ThinkStream>,
    bytes: Vec<u8>,
    /// The last thing written was reasoning (the answer then starts on a new line).
    thinking: bool,
}

impl Shown {
    const DIM: &'static str = "\x1b[2m";
    const PLAIN: &'static str = "\x1b[0m";

    fn new(thinking: Option<Thinking>) -> Shown {
        Shown { think: thinking.map(ThinkStream::new), bytes: Vec::new(), thinking: false }
    }

    fn push(&mut self, bytes: &[u8], out: &mut impl Write) {
        let Some(think) = &mut self.think else {
            let _ = out.write_all(bytes);
            let _ = out.flush();
            return;
        };
        self.bytes.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = String::from_utf8_lossy(&self.bytes[..valid]).into_owned();
        self.bytes.drain(..valid);
        let pieces = think.push(&text);
        self.write(pieces, out);
    }

    fn finish(&mut self, out: &mut impl Write) {
        if let Some(think) = &mut self.think {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.bytes)).into_owned();
            let mut pieces = think.push(&rest);
            pieces.extend(think.finish());
            self.write(pieces, out);
        }
    }

    fn write(&mut self, pieces: Vec<Piece>, out: &mut impl Write) {
        for p in pieces {
            let _ = match p {
                Piece::Reasoning(t) => {
                    self.thinking = true;
                    write!(out, "{}{t}{}", Self::DIM, Self::PLAIN)
                }
                Piece::Content(t) if std::mem::take(&mut self.thinking) => write!(out, "\n\n{t}"),
                Piece::Content(t) => write!(out, "{t}"),
            };
        }
        let _ = out.flush();
    }
}

/// Where inputs come from: a line editor on a terminal, else stdin's lines.
enum Input {
    Editor(Box<rustyline::DefaultEditor>),
    Lines(std::io::Lines<std::io::StdinLock<'static>>),
}

impl Input {
    fn new() -> anyhow::Result<Self> {
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            let config = rustyline::Config::builder().auto_add_history(false).max_history_size(1000)?.build();
            Ok(Input::Editor(Box::new(rustyline::DefaultEditor::with_config(config)?)))
        } else {
            Ok(Input::Lines(std::io::stdin().lock().lines()))
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, Input::Editor(_))
    }

    /// One line; `None` at the end of input. Ctrl-C at the prompt gives an empty line.
    fn line(&mut self, prompt: &str) -> anyhow::Result<Option<String>> {
        match self {
            Input::Editor(editor) => match editor.readline(prompt) {
                Ok(line) => Ok(Some(line)),
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    eprintln!("(Ctrl-D or /bye leaves)");
                    Ok(Some(String::new()))
                }
                Err(rustyline::error::ReadlineError::Eof) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Input::Lines(lines) => Ok(lines.next().transpose()?),
        }
    }

    /// One message: a line, several lines between `"""`s, or lines joined by a
    /// trailing `\`. `None` at the end of input.
    fn read_message(&mut self) -> anyhow::Result<Option<String>> {
        let Some(first) = self.line(">>> ")? else { return Ok(None) };
        let mut text;
        if let Some(rest) = first.trim_start().strip_prefix("\"\"\"") {
            // A block: up to the line that ends with """.
            text = String::new();
            let mut line = rest.to_string();
            loop {
                if let Some(body) = line.trim_end().strip_suffix("\"\"\"") {
                    text.push_str(body);
                    break;
                }
                text.push_str(&line);
                text.push('\n');
                match self.line("... ")? {
                    Some(next) => line = next,
                    None => break,
                }
            }
        } else {
            text = first;
            while let Some(head) = text.strip_suffix('\\') {
                text = head.to_string();
                text.push('\n');
                match self.line("... ")? {
                    Some(next) => text.push_str(&next),
                    None => break,
                }
            }
        }
        if let Input::Editor(editor) = self {
            if !text.trim().is_empty() {
                let _ = editor.add_history_entry(text.as_str());
            }
        }
        Ok(Some(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_is_shown_dimmed_and_the_answer_on_its_own_line() {
        let thinking = Thinking::for_prompt("{{ '<think>' }}{{ '</think>' }}", "assistant\n");
        let mut out = Vec::new();
        let mut shown = Shown::new(thinking);
        // "é" cut between two pieces waits for its second byte.
        let text = "<think>Hmm é</think>\n\nParis.".as_bytes();
        let cut = text.iter().position(|&b| b == 0xC3).expect("é") + 1;
        shown.push(&text[..cut], &mut out);
        shown.push(&text[cut..], &mut out);
        shown.finish(&mut out);
        let shown_text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(
            shown_text.replace(Shown::DIM, "<dim>").replace(Shown::PLAIN, "</dim>"),
            "<dim>Hmm </dim><dim>é</dim>\n\nParis."
        );
        // Without thinking tags the bytes pass as they are.
        let mut out = Vec::new();
        let mut plain = Shown::new(None);
        plain.push(text, &mut out);
        plain.finish(&mut out);
        assert_eq!(out, text);
    }
}
