//! `seed tokenize`: a model's tokens for a text, like `llama-tokenize`. Only the vocabulary is
//! read, so it works on vocabulary-only GGUF files (llama.cpp's `ggml-vocab-*.gguf`) too.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use model::gguf::GgufFile;
use model::tokenizer::Tokenizer;
use seed::catalogue;

/// `seed tokenize` flags.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// A catalogue name, hub reference, or path to a .gguf file (weights optional).
    #[arg(long, short = 'm', default_value = catalogue::DEFAULT_MODEL)]
    pub model: String,
    /// Print only the ids, as a list: [1, 2, 3].
    #[arg(long, conflicts_with = "pieces")]
    pub ids: bool,
    /// Print only the pieces, as a JSON array (a piece that is not UTF-8 alone as its bytes).
    #[arg(long)]
    pub pieces: bool,
    /// Do not add the model's BOS/EOS tokens.
    #[arg(long)]
    pub no_bos: bool,
    /// Treat special-token texts such as `<|im_start|>` as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Read the text from this file.
    #[arg(long, short = 'f', conflicts_with = "text")]
    pub file: Option<PathBuf>,
    /// The text (else --file, else standard input).
    pub text: Option<String>,
}

/// Runs the command.
pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    let path = catalogue::resolve_model(&args.model)?;
    let file = GgufFile::open(&path).with_context(|| format!("reading {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(&file).with_context(|| format!("the vocabulary of {}", path.display()))?;
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the text from standard input")?;
            s
        }
    };
    let ids = tokenizer.encode(&text, !args.no_bos, !args.no_parse_special);
    let piece = |id: u32| {
        let bytes = tokenizer.token_to_piece(id, true);
        match std::str::from_utf8(&bytes) {
            Ok(s) => serde_json::json!(s),
            Err(_) => serde_json::json!(bytes.to_vec()),
        }
    };
    if args.ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("[{}]", list.join(", "));
    } else if args.pieces {
        println!("{}", serde_json::Value::Array(ids.iter().map(|&id| piece(id)).collect()));
    } else {
        for &id in &ids {
            let bytes = tokenizer.token_to_piece(id, true);
            println!("{id:>6} -> '{}'", String::from_utf8_lossy(&bytes));
        }
    }
    Ok(())
}
