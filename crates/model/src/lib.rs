//! Seed's model layer: from a GGUF file to logits and text.
//!
//! - [`gguf`]: the GGUF reader (the file is hostile input);
//! - [`hparams`], [`weights`]: hyper-parameters and weights, checked against each other;
//! - [`llama`], [`qwen2`], [`qwen3`], [`qwen3moe`], [`seed_oss`], [`gemma3`]: one file per
//!   architecture, listed once in the table `ARCHITECTURES`; all but Gemma 3 share the decoder
//!   stack in `decoder` and say only what they load (a mixture of experts is `moe`);
//! - [`attention`], [`kv_cache`], [`batch`]: what the architectures share: paged KV
//!   cache, causal attention over it, and the multi-sequence batch;
//! - [`tokenizer`]: byte-level BPE (gpt2), SentencePiece-style (llama) and WordPiece (bert)
//!   vocabularies;
//! - [`chat`]: the chat template, rendered in a sandbox;
//! - [`sampler`]: choosing the next token (the random number passed in);
//! - [`pooling`]: how a sequence's hidden states become one embedding;
//! - [`session`]: one sequence with its own cache, for the command line and tests;
//! - [`tiny`]: a tiny random-weight Llama written from code, for tests that must not download.
//!
//! Synchronous code only: no async runtime, no threads of its own beyond the
//! kernels' pool.

use std::path::Path;
use std::sync::Arc;

use kernels::ThreadPool;

pub mod attention;
pub mod batch;
pub mod chat;
mod decoder;
pub mod error;
pub mod gemma3;
pub mod gguf;
pub mod grammar;
pub mod hparams;
pub mod kv_cache;
pub mod llama;
mod moe;
pub mod pooling;
pub mod qwen2;
pub mod qwen3;
pub mod qwen3moe;
pub mod recommended;
pub mod sampler;
pub mod seed_oss;
pub mod session;
pub mod tiny;
pub mod tokenizer;
pub mod weights;

pub use batch::{GivenTextOrder, Logits, SeqBatch, Workspace};
pub use decoder::Decoder;
pub use error::ModelError;
pub use hparams::HParams;
pub use kv_cache::{BlockAllocator, KvCache};
pub use recommended::RecommendedSampling;

use chat::ChatTemplate;
use gguf::GgufFile;
use tokenizer::Tokenizer;

/// One architecture: its `general.architecture` name and how its weights load.
struct Architecture {
    name: &'static str,
    load: fn(&Arc<GgufFile>, HParams) -> Result<Model, ModelError>,
}

/// Every architecture with a forward pass; adding one is one row (and its file).
static ARCHITECTURES: &[Architecture] = &[
    Architecture { name: "llama", load: |f, hp| Ok(Model::Decoder(llama::load(f, hp)?)) },
    Architecture { name: "gemma3", load: |f, hp| Ok(Model::Gemma3(gemma3::Gemma3::load(f, hp)?)) },
    Architecture { name: "qwen2", load: |f, hp| Ok(Model::Decoder(qwen2::load(f, hp)?)) },
    Architecture { name: "qwen3", load: |f, hp| Ok(Model::Decoder(qwen3::load(f, hp)?)) },
    Architecture { name: "qwen3moe", load: |f, hp| Ok(Model::Decoder(qwen3moe::load(f, hp)?)) },
    Architecture { name: "seed_oss", load: |f, hp| Ok(Model::Decoder(seed_oss::load(f, hp)?)) },
];

/// The `general.architecture` names Seed runs.
pub fn supported_architectures() -> impl Iterator<Item = &'static str> {
    ARCHITECTURES.iter().map(|a| a.name)
}

/// A model's forward pass.
pub enum Model {
    /// The shared Llama-family decoder (`llama`, `qwen2`, `qwen3`, `qwen3moe`, `seed_oss`).
    Decoder(Decoder),
    /// `gemma3`.
    Gemma3(gemma3::Gemma3),
}

impl Model {
    /// Loads the architecture named in `file`'s metadata.
    pub fn load(file: &Arc<GgufFile>) -> Result<Model, ModelError> {
        let name = file.get_str("general.architecture")?;
        let arch = ARCHITECTURES
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| ModelError::UnsupportedArchitecture(name.to_string()))?;
        let hp = HParams::from_gguf(file)?;
        // Repacked weights go side by side into huge-page slabs (`weights::packed`).
        weights::packed(|| (arch.load)(file, hp))
    }

    /// The hyper-parameters.
    pub fn hparams(&self) -> &HParams {
        match self {
            Model::Decoder(m) => m.hparams(),
            Model::Gemma3(m) => m.hparams(),
        }
    }

    /// Bytes of weights read by one decode step.
    pub fn weight_bytes(&self) -> usize {
        match self {
            Model::Decoder(m) => m.weight_bytes(),
            Model::Gemma3(m) => m.weight_bytes(),
        }
    }

    /// Runs one batch (see [`Decoder::forward`]); logits end up in `ws`.
    pub fn forward(
        &self,
        batch: &[SeqBatch],
        kv: &mut KvCache,
        ws: &mut Workspace,
        pool: &ThreadPool,
    ) -> Result<(), ModelError> {
        match self {
            Model::Decoder(m) => m.forward(batch, kv, ws, pool),
            Model::Gemma3(m) => m.forward(batch, kv, ws, pool),
        }
    }
}

/// Everything loaded from one GGUF file: weights, vocabulary, chat template.
pub struct LoadedModel {
    /// The mapped file.
    pub file: Arc<GgufFile>,
    /// The forward pass.
    pub model: Model,
    /// The vocabulary.
    pub tokenizer: Tokenizer,
    /// The chat template, if the file has one (base models often do not).
    pub chat_template: Option<ChatTemplate>,
    /// The sampler settings the file recommends (`general.sampling.*`).
    pub recommended_sampling: RecommendedSampling,
    /// How its hidden states become an embedding ([`pooling::Pooling`]).
    pub pooling: pooling::Pooling,
    /// The vocabulary indexed for grammars, built on the first constrained request.
    grammar: std::sync::OnceLock<Result<Arc<grammar::Vocab>, grammar::GrammarError>>,
}

impl LoadedModel {
    /// Opens and loads `path`.
    pub fn open(path: &Path) -> Result<LoadedModel, ModelError> {
        LoadedModel::from_file(Arc::new(GgufFile::open(path)?))
    }

    /// Loads a parsed file: weights, vocabulary and chat template, each checked
    /// against the others.
    pub fn from_file(file: Arc<GgufFile>) -> Result<LoadedModel, ModelError> {
        if let Some(count) = file.get("split.count").filter(|v| !matches!(v, gguf::Value::U16(0 | 1))) {
            let no = file.get("split.no").map_or_else(|| "?".to_string(), |n| n.to_string());
            return Err(ModelError::metadata(
                "split.count",
                format!(
                    "this file is part {no} (from 0) of a split model of {count} parts: join the parts first \
                     (`seed pull` joins the parts it downloads; `llama-gguf-split --merge` does it too)"
                ),
            ));
        }
        let model = Model::load(&file)?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        if tokenizer.n_vocab() != model.hparams().n_vocab {
            return Err(ModelError::metadata(
                "tokenizer.ggml.tokens",
                format!("{} tokens, but the embedding has {} rows", tokenizer.n_vocab(), model.hparams().n_vocab),
            ));
        }
        let chat_template = match file.get("tokenizer.chat_template") {
            None => None,
            Some(_) => {
                let source = file.get_str("tokenizer.chat_template")?;
                Some(template_for(&tokenizer, source)?)
            }
        };
        let recommended_sampling = RecommendedSampling::from_gguf(&file)?;
        let pooling = pooling::Pooling::from_gguf(&file)?;
        Ok(LoadedModel {
            file,
            model,
            tokenizer,
            chat_template,
            recommended_sampling,
            pooling,
            grammar: std::sync::OnceLock::new(),
        })
    }

    /// The vocabulary indexed for constrained decoding (built once, on first use: a walk over
    /// every token).
    pub fn grammar_vocab(&self) -> Result<Arc<grammar::Vocab>, grammar::GrammarError> {
        self.grammar.get_or_init(|| grammar::Vocab::new(&self.tokenizer).map(Arc::new)).clone()
    }

    /// Compiles another chat template for this model (`source`: the name of a built-in format,
    /// see [`chat::builtin_template`], or a Jinja template's source), with this model's BOS
    /// and EOS texts.
    pub fn compile_template(&self, source: &str) -> Result<ChatTemplate, chat::ChatTemplateError> {
        template_for(&self.tokenizer, chat::builtin_template(source).unwrap_or(source))
    }

    /// Tokenizes a rendered chat prompt: special tokens parsed, and BOS added only
    /// when the vocabulary asks for it and the template did not already write it.
    pub fn tokenize_chat_prompt(&self, text: &str) -> Vec<u32> {
        let starts_with_bos = self
            .tokenizer
            .bos()
            .and_then(|b| self.tokenizer.token_text(b))
            .is_some_and(|b| !b.is_empty() && text.starts_with(b));
        self.tokenizer.encode(text, !starts_with_bos, true)
    }
}

/// `source` compiled with `tokenizer`'s BOS and EOS texts.
fn template_for(tokenizer: &Tokenizer, source: &str) -> Result<ChatTemplate, chat::ChatTemplateError> {
    let text = |id: Option<u32>| id.and_then(|i| tokenizer.token_text(i)).unwrap_or("").to_string();
    ChatTemplate::new(source, &text(tokenizer.bos()), &text(tokenizer.eos()))
}
