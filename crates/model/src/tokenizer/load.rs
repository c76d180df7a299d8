//! Reading a tokenizer from GGUF metadata, with llama.cpp's defaults and fix-ups.
//!
//! Keys (all under `tokenizer.ggml.`): `model` (required), `pre`, `tokens` (required),
//! `scores`, `token_type`, `merges` (required for gpt2), the special-token ids
//! (`bos_token_id`, `eos_token_id`, `eot_token_id`, `eom_token_id`,
//! `unknown_token_id`, `padding_token_id`, `fim_pad_token_id`, `fim_rep_token_id`,
//! `fim_sep_token_id`) and the flags `add_bos_token`, `add_eos_token`, `add_space_prefix`.
//!
//! Where llama.cpp warns and carries on, Seed refuses: a special-token id outside
//! the vocabulary, a malformed merge rule or byte token, duplicate token texts. Where
//! llama.cpp finds tokens by their text (end of turn, fill-in-middle, end of
//! generation), Seed uses the same lists; when several candidates of one list are in
//! the vocabulary, the first in list order wins (llama.cpp takes whichever its hash
//! map yields first; the end-of-generation set is the same either way).

use std::collections::BTreeSet;

use super::bpe::Bpe;
use super::decode::Pieces;
use super::pretokenize::{known_names, pre_type};
use super::special::SpecialTokens;
use super::spm::ByteFallback;
use super::vocab::{byte_token_text, parse_byte_token, Attr, Vocab};
use super::wpm::Wpm;
use super::{Model, Tokenizer, TokenizerError};
use crate::gguf::{Array, GgufFile, Value};

/// End-of-turn token texts (`eot` when the file names none).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// Tokens that end generation, by text.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Tokens llama.cpp always renders (gpt-oss), by text.
const ALWAYS_RENDERED: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

pub(super) fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer, TokenizerError> {
    let model_name = gguf.get_str("tokenizer.ggml.model")?;
    let (byte_level, wordpiece) = match model_name {
        "gpt2" => (true, false),
        "llama" => (false, false),
        "bert" => (false, true),
        other => return Err(TokenizerError::UnknownModel { model: other.to_owned() }),
    };
    let texts = gguf.get_str_array("tokenizer.ggml.tokens")?;
    let scores = read_scores(gguf)?;
    let types = optional(gguf, "tokenizer.ggml.token_type", |k| gguf.get_i32_array(k))?;
    let mut vocab = Vocab::new(texts, scores, types)?;
    let n = vocab.len();
    for (id, text, attr) in vocab.iter() {
        if attr.has(Attr::BYTE) && parse_byte_token(text).is_none() {
            return Err(TokenizerError::BadByteToken { id, text: text.to_owned() });
        }
    }

    // Defaults as llama.cpp sets them per tokenizer model, dropped when outside the vocabulary.
    let in_vocab = |id: u32| (id as usize) < n;
    let (default_bos, default_eos, default_unk) = match (byte_level, wordpiece) {
        (true, _) => (11, Some(11), None),
        (false, true) => (101, None, Some(100)), // [CLS], no EOS, [UNK]
        (false, false) => (1, Some(2), Some(0)),
    };
    let ids = SpecialIds {
        bos: read_id(gguf, "tokenizer.ggml.bos_token_id", n)?.or(Some(default_bos).filter(|&i| in_vocab(i))),
        eos: read_id(gguf, "tokenizer.ggml.eos_token_id", n)?.or(default_eos.filter(|&i| in_vocab(i))),
        unk: read_id(gguf, "tokenizer.ggml.unknown_token_id", n)?.or(default_unk.filter(|&i| in_vocab(i))),
        eot: read_id(gguf, "tokenizer.ggml.eot_token_id", n)?,
        eom: read_id(gguf, "tokenizer.ggml.eom_token_id", n)?,
    };
    let pad = read_id(gguf, "tokenizer.ggml.padding_token_id", n)?;
    let fim_pad = read_id(gguf, "tokenizer.ggml.fim_pad_token_id", n)?;
    let fim_rep = read_id(gguf, "tokenizer.ggml.fim_rep_token_id", n)?;
    let fim_sep = read_id(gguf, "tokenizer.ggml.fim_sep_token_id", n)?;

    let (model, add_bos_default, clean_spaces) = if wordpiece {
        // llama.cpp's key name (sic); [SEP] by default.
        let sep = read_id(gguf, "tokenizer.ggml.seperator_token_id", n)?.or(Some(102).filter(|&i| in_vocab(i)));
        (Model::Wpm { wpm: Box::new(Wpm::new(&vocab)), sep }, true, true)
    } else if byte_level {
        let pre_name = optional(gguf, "tokenizer.ggml.pre", |k| gguf.get_str(k))?.unwrap_or("");
        let pre = pre_type(pre_name)
            .ok_or_else(|| TokenizerError::UnknownPreTokenizer { pre: pre_name.to_owned(), known: known_names() })?;
        let merges = gguf.get_str_array("tokenizer.ggml.merges")?;
        (Model::Bpe { bpe: Box::new(Bpe::new(merges, &vocab)?), pre }, pre.add_bos, pre.clean_spaces)
    } else {
        let mut tokens = [None; 256];
        for (b, slot) in (0..=255u8).zip(tokens.iter_mut()) {
            let single = if b.is_ascii() { vocab.id(char::from(b).encode_utf8(&mut [0; 4])) } else { None };
            *slot = vocab.id(&byte_token_text(b)).or(single).or(ids.unk);
        }
        (Model::Spm { bytes: Box::new(ByteFallback { tokens }) }, true, false)
    };
    let add_bos = optional(gguf, "tokenizer.ggml.add_bos_token", |k| gguf.get_bool(k))?.unwrap_or(add_bos_default);
    let add_eos = optional(gguf, "tokenizer.ggml.add_eos_token", |k| gguf.get_bool(k))?.unwrap_or(false);
    let add_space_prefix =
        optional(gguf, "tokenizer.ggml.add_space_prefix", |k| gguf.get_bool(k))?.unwrap_or(!byte_level && !wordpiece);
    if add_bos && ids.bos.is_none() {
        return Err(TokenizerError::MissingSpecialToken { flag: "add_bos_token", key: "bos_token_id" });
    }
    if add_eos && ids.eos.is_none() {
        return Err(TokenizerError::MissingSpecialToken { flag: "add_eos_token", key: "eos_token_id" });
    }

    let mut ids = ids;
    let eog = end_of_generation(&mut vocab, &mut ids, [fim_pad, fim_rep, fim_sep]);
    let special = SpecialTokens::new(&vocab)?;
    let pieces = Pieces::new(&vocab, byte_level);
    Ok(Tokenizer {
        vocab,
        model,
        special,
        pieces,
        bos: ids.bos,
        eos: ids.eos,
        eot: ids.eot,
        unk: ids.unk,
        pad,
        eog,
        add_bos,
        add_eos,
        add_space_prefix,
        clean_spaces,
    })
}

struct SpecialIds {
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
}

/// Finds end-of-turn and fill-in-middle tokens by text where the file names none,
/// marks them and every end-of-generation text as control, and returns the
/// end-of-generation set (llama.cpp's `special_eog_ids`).
fn end_of_generation(vocab: &mut Vocab, ids: &mut SpecialIds, fim: [Option<u32>; 3]) -> BTreeSet<u32> {
    let [mut fim_pad, mut fim_rep, mut fim_sep] = fim;
    let mut find = |slot: &mut Option<u32>, texts: &[&str]| {
        if slot.is_none() {
            *slot = texts.iter().find_map(|t| vocab.id(t));
            if let Some(id) = *slot {
                vocab.add_attr(id, Attr::CONTROL);
            }
        }
    };
    find(&mut ids.eot, EOT_TEXTS);
    find(&mut ids.eom, EOM_TEXTS);
    let (mut fim_pre, mut fim_suf, mut fim_mid) = (None, None, None);
    find(&mut fim_pre, FIM_PRE_TEXTS);
    find(&mut fim_suf, FIM_SUF_TEXTS);
    find(&mut fim_mid, FIM_MID_TEXTS);
    find(&mut fim_pad, FIM_PAD_TEXTS);
    find(&mut fim_rep, FIM_REP_TEXTS);
    find(&mut fim_sep, FIM_SEP_TEXTS);

    let unused: Vec<u32> =
        vocab.iter().filter(|(_, t, a)| a.has(Attr::CONTROL) && t.contains("unused")).map(|(id, _, _)| id).collect();
    for id in unused {
        vocab.add_attr(id, Attr::UNUSED);
    }

    let mut eog: BTreeSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
    let eog_texts: Vec<u32> = EOG_TEXTS.iter().filter_map(|t| vocab.id(t)).collect();
    for id in eog_texts {
        eog.insert(id);
        vocab.add_attr(id, Attr::CONTROL);
    }
    let rendered: Vec<u32> = ALWAYS_RENDERED.iter().filter_map(|t| vocab.id(t)).collect();
    for id in rendered {
        vocab.set_attr(id, Attr::USER_DEFINED);
    }
    eog.extend([ids.eos, ids.eot, ids.eom].into_iter().flatten());

    // gpt-oss and solar-open end turns with <|end|> but only stop on <|return|>/<|call|>.
    let in_eog = |vocab: &Vocab, eog: &BTreeSet<u32>, text: &str| vocab.id(text).filter(|id| eog.contains(id));
    let end = in_eog(vocab, &eog, "<|end|>");
    let call = in_eog(vocab, &eog, "<|call|>").or(in_eog(vocab, &eog, "<|calls|>"));
    let ret = in_eog(vocab, &eog, "<|return|>");
    let flush = in_eog(vocab, &eog, "<|flush|>");
    if let (Some(end), Some(_)) = (end, call) {
        if ret.is_some() || flush.is_some() {
            eog.remove(&end);
            vocab.set_attr(end, Attr::USER_DEFINED);
        }
    }
    // Gemma 4 (and PaddleOCR) use </s> as text when <|tool_response> is in the set.
    let s = in_eog(vocab, &eog, "</s>");
    if let (Some(s), Some(_)) = (s, in_eog(vocab, &eog, "<|tool_response>")) {
        eog.remove(&s);
        vocab.set_attr(s, Attr::NORMAL);
    }
    eog
}

/// The value of an optional key: `None` when absent, an error when of the wrong type.
fn optional<'a, T>(
    gguf: &'a GgufFile,
    key: &str,
    get: impl FnOnce(&str) -> Result<T, crate::gguf::GgufError>,
) -> Result<Option<T>, TokenizerError>
where
    T: 'a,
{
    match gguf.get(key) {
        None => Ok(None),
        Some(_) => Ok(Some(get(key)?)),
    }
}

/// A special-token id, which must name a token.
fn read_id(gguf: &GgufFile, key: &'static str, n_vocab: usize) -> Result<Option<u32>, TokenizerError> {
    match optional(gguf, key, |k| gguf.get_u32(k))? {
        Some(id) if (id as usize) >= n_vocab => {
            Err(TokenizerError::TokenIdOutOfRange { key, id: u64::from(id), n_vocab })
        }
        id => Ok(id),
    }
}

/// `tokenizer.ggml.scores`: an array of f32 or of i32.
fn read_scores(gguf: &GgufFile) -> Result<Option<Vec<f32>>, TokenizerError> {
    const KEY: &str = "tokenizer.ggml.scores";
    match gguf.get(KEY) {
        None => Ok(None),
        Some(Value::Array(Array::F32(s))) => Ok(Some(s.clone())),
        Some(Value::Array(Array::I32(s))) => Ok(Some(s.iter().map(|&x| x as f32).collect())),
        Some(v) => Err(TokenizerError::WrongType { key: KEY, expected: "array of f32 or i32", found: v.type_name() }),
    }
}
