//! The tokenizer on tiny hand-made vocabularies, written as GGUF files in memory:
//! merge order, byte fallback, special-token partitioning, BOS/EOS, decoding, the
//! end-of-generation set, and the errors for broken vocabularies.

#![allow(clippy::unwrap_used)] // in tests an unwrap is an assertion

use model::gguf::{Array, GgufBuilder, GgufFile, Value};
use model::tokenizer::{Tokenizer, TokenizerError};

/// GPT-2's byte alphabet, written independently of the crate's: printable Latin-1
/// bytes spell themselves, the others are U+0100 + n in byte order.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(0x100 + n).unwrap()
}

fn spell(s: &str) -> String {
    s.bytes().map(byte_char).collect()
}

/// A vocabulary under construction.
struct Spec {
    model: &'static str,
    tokens: Vec<(String, i32, f32)>,
    merges: Vec<String>,
    kvs: Vec<(&'static str, Value)>,
}

impl Spec {
    /// A byte-level vocabulary: the 256 byte tokens (id = byte), then `extra` normal tokens
    /// (written in plain text, spelt here), then the merge rules (plain text, spelt here).
    fn bpe(extra: &[&str], merges: &[(&str, &str)]) -> Spec {
        let mut tokens: Vec<(String, i32, f32)> = (0..=255u8).map(|b| (byte_char(b).to_string(), 1, 0.0)).collect();
        tokens.extend(extra.iter().map(|t| (spell(t), 1, 0.0)));
        let merges = merges.iter().map(|(l, r)| format!("{} {}", spell(l), spell(r))).collect();
        Spec { model: "gpt2", tokens, merges, kvs: vec![("tokenizer.ggml.pre", Value::String("smollm".into()))] }
    }

    /// A SentencePiece vocabulary from `(text, type, score)`.
    fn spm(tokens: &[(&str, i32, f32)]) -> Spec {
        let tokens = tokens.iter().map(|&(t, ty, s)| (t.to_string(), ty, s)).collect();
        Spec { model: "llama", tokens, merges: Vec::new(), kvs: Vec::new() }
    }

    fn token(mut self, text: &str, ty: i32) -> Spec {
        self.tokens.push((text.to_string(), ty, 0.0));
        self
    }

    fn kv(mut self, key: &'static str, value: Value) -> Spec {
        self.kvs.retain(|(k, _)| *k != key);
        self.kvs.push((key, value));
        self
    }

    fn id(&self, text: &str) -> u32 {
        self.tokens.iter().position(|(t, _, _)| t == text).unwrap() as u32
    }

    fn file(&self) -> GgufFile {
        let texts = self.tokens.iter().map(|t| t.0.clone()).collect();
        let mut kvs = vec![
            ("tokenizer.ggml.model", Value::String(self.model.into())),
            ("tokenizer.ggml.tokens", Value::Array(Array::String(texts))),
            ("tokenizer.ggml.token_type", Value::Array(Array::I32(self.tokens.iter().map(|t| t.1).collect()))),
        ];
        if self.model == "llama" {
            kvs.push(("tokenizer.ggml.scores", Value::Array(Array::F32(self.tokens.iter().map(|t| t.2).collect()))));
        } else {
            kvs.push(("tokenizer.ggml.merges", Value::Array(Array::String(self.merges.clone()))));
        }
        // Keys set with `kv` replace the generated ones.
        kvs.retain(|(k, _)| !self.kvs.iter().any(|(o, _)| o == k));
        let mut b = GgufBuilder::new();
        for (k, v) in kvs.iter().chain(&self.kvs) {
            b.add_kv(k, v.clone());
        }
        GgufFile::from_bytes(b.build()).unwrap()
    }

    fn build(&self) -> Tokenizer {
        Tokenizer::from_gguf(&self.file()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(&self) -> String {
        match Tokenizer::from_gguf(&self.file()) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }
}

/// The vocabulary texts of `ids`, unspelt back to plain text where byte-level.
fn texts(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&id| String::from_utf8_lossy(&tok.token_to_piece(id, true)).into_owned()).collect()
}

#[test]
fn bpe_merges_lowest_rank_first() {
    // "b c" outranks "a b": abc -> a|bc -> abc.
    let tok = Spec::bpe(&["bc", "ab", "abc"], &[("b", "c"), ("a", "b"), ("a", "bc")]).build();
    assert_eq!(texts(&tok, &tok.encode("abc", false, false)), ["abc"]);
    // "a b" first: ab|c, and no rule joins "ab" and "c".
    let tok = Spec::bpe(&["bc", "ab", "abc"], &[("a", "b"), ("b", "c"), ("a", "bc")]).build();
    assert_eq!(texts(&tok, &tok.encode("abc", false, false)), ["ab", "c"]);
}

#[test]
fn bpe_ties_merge_leftmost_first_and_words_stay_apart() {
    let tok = Spec::bpe(&["aa", " a"], &[("a", "a"), (" ", "a")]).build();
    assert_eq!(texts(&tok, &tok.encode("aaa", false, false)), ["aa", "a"]);
    // " aa": "a a" (rank 0) beats "Ġ a" (rank 1), and nothing joins "Ġ" and "aa".
    assert_eq!(texts(&tok, &tok.encode("aaaa aa", false, false)), ["aa", "aa", " ", "aa"]);
}

#[test]
fn bpe_merge_result_missing_from_vocab_falls_back_to_ascii_bytes() {
    // The rule makes "xy", which is no token: llama.cpp then emits the byte tokens of
    // the printable ASCII bytes and drops the rest.
    let spec = Spec::bpe(&[], &[("x", "y")]);
    let tok = spec.build();
    assert_eq!(tok.encode("xy", false, false), [u32::from(b'x'), u32::from(b'y')]);
    assert_eq!(tok.encode("q", false, false), [u32::from(b'q')]);
    assert_eq!(tok.encode("é", false, false), [0xC3, 0xA9]);
}

#[test]
fn bpe_bad_merge_line_is_an_error() {
    let mut spec = Spec::bpe(&[], &[("a", "b")]);
    spec.merges.push("nospace".into());
    assert_eq!(spec.error(), "tokenizer.ggml.merges[1] is \"nospace\": expected two pieces separated by a space");
}

#[test]
fn byte_level_round_trip_and_digits_split() {
    let tok = Spec::bpe(&[" the", "12"], &[(" ", "t"), (" t", "h"), (" th", "e"), ("1", "2")]).build();
    let ids = tok.encode("in the 12", false, false);
    assert_eq!(texts(&tok, &ids), ["i", "n", " the", " ", "1", "2"]);
    for s in ["", "héllo wörld\n\t", "日本語 🎉\r\n", "\u{0}\u{7f}\u{ad}", "a  b   c    "] {
        assert_eq!(tok.decode(&tok.encode(s, true, true), false), s.as_bytes(), "{s:?}");
    }
}

#[test]
fn special_tokens_are_cut_out_with_parse_special() {
    let spec = Spec::bpe(&[], &[]).token("<|im_start|>", 3).token("<|im_end|>", 3).token("<tag>", 4);
    let (start, end, tag) = (spec.id("<|im_start|>"), spec.id("<|im_end|>"), spec.id("<tag>"));
    let tok = spec.build();
    let a = u32::from(b'a');
    assert_eq!(tok.encode("<|im_start|>a<|im_end|>", false, true), [start, a, end]);
    // Without parse_special the control texts are plain text; user-defined ones still match.
    let plain = tok.encode("<|im_start|>a<tag>", false, false);
    assert!(!plain.contains(&start));
    assert_eq!(plain.last(), Some(&tag));
    assert_eq!(tok.decode(&plain, false), b"<|im_start|>a<tag>");
    // Control tokens show only with `special`.
    assert_eq!(tok.decode(&[start, a, end], false), b"a");
    assert_eq!(tok.decode(&[start, a, end], true), b"<|im_start|>a<|im_end|>");
    assert!(tok.is_control(start));
    assert!(!tok.is_control(tag));
    // <|im_end|> ends generation even without an eot key, and becomes the end of turn.
    assert!(tok.is_eog(end));
    assert_eq!(tok.eot(), Some(end));
}

#[test]
fn add_special_follows_the_metadata() {
    let spec = Spec::bpe(&[], &[]).token("<s>", 3).token("</s>", 3);
    let (bos, eos) = (spec.id("<s>"), spec.id("</s>"));
    let spec = spec
        .kv("tokenizer.ggml.bos_token_id", Value::U32(bos))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(eos))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(true))
        .kv("tokenizer.ggml.add_eos_token", Value::Bool(true));
    let tok = spec.build();
    let x = u32::from(b'x');
    assert_eq!(tok.encode("x", true, false), [bos, x, eos]);
    assert_eq!(tok.encode("x", false, false), [x]);
    assert_eq!(tok.encode("", true, false), [bos, eos]);
    assert!(tok.add_bos());
    assert_eq!((tok.bos(), tok.eos()), (Some(bos), Some(eos)));
    assert!(tok.is_eog(eos));
    // smollm's default is no BOS.
    let tok = Spec::bpe(&[], &[]).kv("tokenizer.ggml.bos_token_id", Value::U32(0)).build();
    assert!(!tok.add_bos());
    assert_eq!(tok.encode("x", true, false), [x]);
}

/// A SentencePiece vocabulary with byte tokens for every byte.
fn spm_spec(extra: &[(&str, i32, f32)]) -> Spec {
    let mut tokens: Vec<(String, i32, f32)> =
        vec![("<unk>".into(), 2, 0.0), ("<s>".into(), 3, 0.0), ("</s>".into(), 3, 0.0)];
    tokens.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 6, 0.0)));
    tokens.extend(extra.iter().map(|&(t, ty, s)| (t.to_string(), ty, s)));
    Spec { model: "llama", tokens, merges: Vec::new(), kvs: Vec::new() }
}

#[test]
fn spm_merges_by_score() {
    let extra = [("▁", 1, -1.0), ("a", 1, -1.0), ("b", 1, -1.0), ("c", 1, -1.0), ("ab", 1, -5.0), ("bc", 1, -2.0)];
    let tok = spm_spec(&extra).build();
    // "bc" scores higher than "ab", so a|bc.
    assert_eq!(texts(&tok, &tok.encode("abc", false, false)), [" ", "a", "bc"]);
    let extra = [("▁", 1, -1.0), ("a", 1, -1.0), ("b", 1, -1.0), ("c", 1, -1.0), ("ab", 1, -2.0), ("bc", 1, -5.0)];
    let tok = spm_spec(&extra).build();
    assert_eq!(texts(&tok, &tok.encode("abc", false, false)), [" ", "ab", "c"]);
    // Equal scores: leftmost first.
    let extra = [("a", 1, -1.0), ("aa", 1, -1.0)];
    let tok = spm_spec(&extra).kv("tokenizer.ggml.add_space_prefix", Value::Bool(false)).build();
    assert_eq!(texts(&tok, &tok.encode("aaa", false, false)), ["aa", "a"]);
}

#[test]
fn spm_bos_space_prefix_and_byte_fallback() {
    let extra = [("▁", 1, -1.0), ("▁hi", 1, -1.0), ("h", 1, -2.0), ("i", 1, -2.0), ("▁h", 1, -3.0)];
    let spec = spm_spec(&extra).token("<sep>", 3);
    let (sep, hi) = (spec.id("<sep>"), spec.id("▁hi"));
    let tok = spec.build();
    // llama defaults: BOS = 1 added, a space before the text.
    assert_eq!(tok.encode("hi", true, false), [1, hi]);
    // The space prefix also follows each special token.
    assert_eq!(tok.encode("hi<sep>hi", false, true), [hi, sep, hi]);
    // "é" is no token: its two UTF-8 bytes as byte tokens (ids 3 + byte).
    assert_eq!(tok.encode("é", false, false), [tok.token_id("▁").unwrap(), 3 + 0xC3, 3 + 0xA9]);
    // Decoding drops the prefix space of the first piece and hides control tokens; as in
    // llama.cpp, a leading BOS is that first piece, so the space after it stays.
    assert_eq!(tok.decode(&tok.encode("hi é", false, false), false), b"hi \xC3\xA9");
    assert_eq!(tok.decode(&tok.encode("hi é", true, false), false), b" hi \xC3\xA9");
    assert_eq!(tok.decode(&[1], true), b"<s>");
    assert_eq!(tok.decode(&[u32::MAX, 999_999], true), b"");
}

#[test]
fn spm_without_byte_tokens_uses_unknown() {
    let tok = Spec::spm(&[("<unk>", 2, 0.0), ("<s>", 3, 0.0), ("</s>", 3, 0.0), ("▁", 1, -1.0), ("a", 1, -1.0)])
        .kv("tokenizer.ggml.add_space_prefix", Value::Bool(false))
        .build();
    assert_eq!(tok.encode("a中", false, false), [4, 0, 0, 0]);
    assert_eq!(tok.encode("a", false, false), [4]);
}

#[test]
fn broken_vocabularies_are_errors() {
    let e = Spec::bpe(&[], &[]).kv("tokenizer.ggml.bos_token_id", Value::U32(300)).error();
    assert_eq!(e, "'tokenizer.ggml.bos_token_id' is 300, but the vocabulary has only 256 tokens");
    let e = Spec::bpe(&[], &[]).kv("tokenizer.ggml.pre", Value::String("nonesuch".into())).error();
    assert!(e.starts_with("tokenizer.ggml.pre is 'nonesuch': Seed knows the pre-tokenizers 'smollm'"), "{e}");
    let mut spec = Spec::bpe(&[], &[]);
    spec.model = "rwkv";
    assert!(spec.error().contains("tokenizer.ggml.model is 'rwkv'"));
    let e = Spec::bpe(&[], &[]).token("a", 1).error();
    assert_eq!(e, "duplicate token \"a\": ids 97 and 256");
    // A one-token SentencePiece vocabulary: the default BOS id (1) is outside it.
    let e = Spec::spm(&[("a", 1, 0.0)]).error();
    assert_eq!(e, "'add_bos_token' is true, but no 'bos_token_id' is set");
    let e = spm_spec(&[]).token("<0xzz>", 6).error();
    assert!(e.starts_with("token 259 has type 6 (byte), but its text \"<0xzz>\""), "{e}");
    let e = Spec::spm(&[]).error();
    assert_eq!(e, "tokenizer.ggml.tokens is empty");
    let e = spm_spec(&[]).kv("tokenizer.ggml.token_type", Value::Array(Array::I32(vec![1; 3]))).error();
    assert_eq!(e, "'tokenizer.ggml.token_type' has 3 entries, but tokenizer.ggml.tokens has 259");
    let e = spm_spec(&[]).kv("tokenizer.ggml.scores", Value::String("x".into())).error();
    assert_eq!(e, "'tokenizer.ggml.scores' is string, expected array of f32 or i32");
    let file = {
        let mut b = GgufBuilder::new();
        b.add_kv("tokenizer.ggml.model", Value::String("gpt2".into()));
        GgufFile::from_bytes(b.build()).unwrap()
    };
    let e = Tokenizer::from_gguf(&file).unwrap_err();
    assert!(matches!(e, TokenizerError::Gguf(_)), "{e}");
    assert!(e.to_string().contains("tokenizer.ggml.tokens"), "{e}");
}

/// A WordPiece vocabulary: `▁` starts a word, continuations have no prefix.
#[test]
fn wordpiece_covers_normalized_words_with_the_longest_tokens() {
    let texts =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u{2581}hello", "\u{2581}play", "ing", "\u{2581},", "\u{2581}!", "in"];
    let mut b = GgufBuilder::new();
    b.add_kv("tokenizer.ggml.model", Value::String("bert".into()));
    b.add_kv("tokenizer.ggml.tokens", Value::Array(Array::String(texts.iter().map(|t| t.to_string()).collect())));
    let types = texts.iter().map(|t| if t.starts_with('[') { 3 } else { 1 }).collect();
    b.add_kv("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    b.add_kv("tokenizer.ggml.bos_token_id", Value::U32(2));
    b.add_kv("tokenizer.ggml.unknown_token_id", Value::U32(1));
    b.add_kv("tokenizer.ggml.seperator_token_id", Value::U32(3));
    let tok = Tokenizer::from_gguf(&GgufFile::from_bytes(b.build()).unwrap()).unwrap();
    // Accents dropped, lowercase, punctuation alone; "playing" is "▁play" + "ing" (longest first,
    // not "in" + …); [CLS] … [SEP] with special tokens.
    assert_eq!(tok.encode("Héllo, PLAYING!", true, false), [2, 4, 7, 5, 6, 8, 3]);
    assert_eq!(tok.encode("Héllo, PLAYING!", false, false), [4, 7, 5, 6, 8]);
    // A word that cannot be covered is one unknown token, whatever part of it matched.
    assert_eq!(tok.encode("hello playx", false, false), [4, 1]);
    assert_eq!(tok.encode("[SEP]hello", false, true), [3, 4]);
    assert_eq!(tok.decode(&[4, 5, 6], false), b" hello playing");
}

#[test]
fn out_of_range_ids_decode_to_nothing() {
    let tok = Spec::bpe(&[], &[]).build();
    assert!(tok.token_to_piece(256, true).is_empty());
    assert_eq!(tok.decode(&[u32::from(b'o'), 70_000, u32::from(b'k')], false), b"ok");
    assert_eq!(tok.token_text(256), None);
    assert!(!tok.is_eog(u32::MAX));
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<TokenizerError>();
}
