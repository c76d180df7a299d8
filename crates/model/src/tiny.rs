//! A tiny Llama model written from code: random weights, a byte-level BPE vocabulary of 320
//! tokens with ChatML's special tokens and template, about 130 KB in all.
//!
//! The engine, server and command-line tests run on it, so a fresh clone tests most of Seed's
//! behaviour offline and in seconds: batching, caching, streaming, limits, stores, grammars. What
//! it writes is noise, so whatever judges text (the golden tests, answers that must name Paris)
//! keeps the real models. Its tokenizer is the SmolLM2 kind (`gpt2` model, `smollm`
//! pre-tokenizer, `<|im_start|>`/`<|im_end|>`), its weights Q8_0 matrices and F32 norms: the
//! real models' paths, at a toy's size.
//!
//! The same [`TinyLlama`] always gives the same bytes, on every machine (the weights come from
//! a fixed generator seeded by [`TinyLlama::seed`], quantized by ggml's reference quantizer): the
//! catalogue's `tiny-llama` is the default one, checked against its sha256 when it is written.

use kernels::GgmlType;

use crate::gguf::{Array, GgufBuilder, Value};
use crate::tokenizer::byte_to_char;

/// The chat template: ChatML, with no default system message.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + \
     message['content'] + '<|im_end|>' + '\n' }}{% endfor %}\
     {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The special tokens, ids 0, 1, 2 (end of text, start and end of a ChatML message).
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Merges of the vocabulary (byte-level spelling, `Ġ` is a space), common English pairs, then
/// one of two merged tokens (` the`); each adds its pair as one token after the 256 byte tokens.
const MERGES: &str = "Ġ t h e i n e r a n r e o n Ġ a e n a t o u e d n d Ġ s Ġ w o r i s i t e s Ġ c Ġ o Ġ f \
     a r a l l e Ġ b Ġ p s t t e t i Ġ m n g a s Ġ h s e Ġ d r i v e r a r o i c n e c o d e e a m e \
     Ġ i l i c e Ġ l o t i l e l u r h i c h l y m a h o Ġ e Ġt he";

/// The shape of a tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinyLlama {
    /// Width of the residual stream (a multiple of 32: the matrices are Q8_0).
    pub n_embd: usize,
    /// Decoder blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Width of the feed-forward layer (a multiple of 32).
    pub n_ff: usize,
    /// Training context written into the file.
    pub n_ctx_train: usize,
    /// Seed of the weights' generator.
    pub seed: u64,
}

impl Default for TinyLlama {
    fn default() -> TinyLlama {
        TinyLlama { n_embd: 64, n_layer: 2, n_head: 4, n_head_kv: 2, n_ff: 128, n_ctx_train: 4096, seed: 0x5eed }
    }
}

impl TinyLlama {
    /// The vocabulary: the special tokens, the 256 byte tokens, then one token per merge.
    pub fn tokens() -> Vec<String> {
        let mut tokens: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
        tokens.extend((0..=255u8).map(|b| byte_to_char(b).to_string()));
        tokens.extend(merges().iter().map(|(a, b)| format!("{a}{b}")));
        tokens
    }

    /// The whole file.
    pub fn gguf(&self) -> Vec<u8> {
        let tokens = Self::tokens();
        let n_vocab = tokens.len();
        let types: Vec<i32> = (0..n_vocab).map(|i| if i < SPECIAL_TOKENS.len() { 3 } else { 1 }).collect();
        let head_dim = self.n_embd / self.n_head;
        let u32v = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
        let mut b = GgufBuilder::new();
        b.add_kv("general.architecture", Value::String("llama".into()))
            .add_kv("general.name", Value::String("tiny-llama".into()))
            .add_kv("general.file_type", Value::U32(7)) // mostly Q8_0
            .add_kv("llama.context_length", u32v(self.n_ctx_train))
            .add_kv("llama.embedding_length", u32v(self.n_embd))
            .add_kv("llama.block_count", u32v(self.n_layer))
            .add_kv("llama.feed_forward_length", u32v(self.n_ff))
            .add_kv("llama.attention.head_count", u32v(self.n_head))
            .add_kv("llama.attention.head_count_kv", u32v(self.n_head_kv))
            .add_kv("llama.rope.dimension_count", u32v(head_dim))
            .add_kv("llama.rope.freq_base", Value::F32(10_000.0))
            .add_kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
            .add_kv("llama.vocab_size", u32v(n_vocab))
            .add_kv("tokenizer.ggml.model", Value::String("gpt2".into()))
            .add_kv("tokenizer.ggml.pre", Value::String("smollm".into()))
            .add_kv("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
            .add_kv("tokenizer.ggml.token_type", Value::Array(Array::I32(types)))
            .add_kv(
                "tokenizer.ggml.merges",
                Value::Array(Array::String(merges().iter().map(|(a, b)| format!("{a} {b}")).collect())),
            )
            .add_kv("tokenizer.ggml.bos_token_id", Value::U32(1))
            .add_kv("tokenizer.ggml.eos_token_id", Value::U32(2))
            .add_kv("tokenizer.ggml.padding_token_id", Value::U32(2))
            .add_kv("tokenizer.ggml.add_bos_token", Value::Bool(false))
            .add_kv("tokenizer.chat_template", Value::String(CHAT_TEMPLATE.into()));

        let mut rng = SplitMix64(self.seed);
        let (e, kv) = (self.n_embd, self.n_head_kv * head_dim);
        b.add_tensor("token_embd.weight", GgmlType::Q8_0, &[e, n_vocab], q8_0(&mut rng, n_vocab, e, 1.0));
        for i in 0..self.n_layer {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            let scale = |n_in: usize| 1.0 / (n_in as f32).sqrt();
            b.add_tensor(&name("attn_norm"), GgmlType::F32, &[e], ones(e));
            b.add_tensor(&name("attn_q"), GgmlType::Q8_0, &[e, e], q8_0(&mut rng, e, e, scale(e)));
            b.add_tensor(&name("attn_k"), GgmlType::Q8_0, &[e, kv], q8_0(&mut rng, kv, e, scale(e)));
            b.add_tensor(&name("attn_v"), GgmlType::Q8_0, &[e, kv], q8_0(&mut rng, kv, e, scale(e)));
            b.add_tensor(&name("attn_output"), GgmlType::Q8_0, &[e, e], q8_0(&mut rng, e, e, scale(e)));
            b.add_tensor(&name("ffn_norm"), GgmlType::F32, &[e], ones(e));
            b.add_tensor(&name("ffn_gate"), GgmlType::Q8_0, &[e, self.n_ff], q8_0(&mut rng, self.n_ff, e, scale(e)));
            b.add_tensor(&name("ffn_up"), GgmlType::Q8_0, &[e, self.n_ff], q8_0(&mut rng, self.n_ff, e, scale(e)));
            let down = q8_0(&mut rng, e, self.n_ff, scale(self.n_ff));
            b.add_tensor(&name("ffn_down"), GgmlType::Q8_0, &[self.n_ff, e], down);
        }
        b.add_tensor("output_norm.weight", GgmlType::F32, &[e], ones(e));
        // Its own output matrix: tied to the embedding, a random model mostly repeats its
        // last token. Logits then spread with a standard deviation near 2.
        b.add_tensor("output.weight", GgmlType::Q8_0, &[e, n_vocab], q8_0(&mut rng, n_vocab, e, 0.45));
        b.build()
    }
}

/// The merge pairs, in rank order.
fn merges() -> Vec<(&'static str, &'static str)> {
    let parts: Vec<&str> = MERGES.split_whitespace().collect();
    parts.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

fn ones(n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect()
}

/// `rows` × `cols` uniform values in ±`scale`, as Q8_0 (ggml's reference quantizer).
fn q8_0(rng: &mut SplitMix64, rows: usize, cols: usize, scale: f32) -> Vec<u8> {
    let row_bytes = GgmlType::Q8_0.row_size(cols).unwrap_or(0);
    let mut out = Vec::with_capacity(rows * row_bytes);
    // Q8_0 blocks start with an f16: quantize into 2-byte-aligned words.
    let mut words = vec![0u16; row_bytes.div_ceil(2)];
    let mut row = vec![0f32; cols];
    for _ in 0..rows {
        for v in row.iter_mut() {
            *v = scale * (2.0 * rng.unit() - 1.0);
        }
        let dst = &mut bytemuck::cast_slice_mut::<u16, u8>(&mut words)[..row_bytes];
        kernels::quant::quantize_row(GgmlType::Q8_0, &row, dst).expect("Q8_0 rows of whole blocks");
        out.extend_from_slice(dst);
    }
    out
}

/// A small fixed generator (SplitMix64): the same seed, the same weights, on every machine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_has_its_specials_bytes_and_merges() {
        let tokens = TinyLlama::tokens();
        assert_eq!(tokens.len(), 3 + 256 + merges().len());
        assert_eq!(tokens.len(), 320, "a whole number of 16-row groups and 32-value blocks");
        let mut sorted = tokens.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), tokens.len(), "no token twice");
    }

    #[test]
    fn the_same_shape_gives_the_same_bytes_and_another_seed_other_weights() {
        let a = TinyLlama::default();
        assert_eq!(a.gguf(), a.gguf());
        assert_ne!(a.gguf(), TinyLlama { seed: 1, ..a }.gguf());
    }
}
