//! Which type each tensor gets: `llama-quantize`'s file types ("presets") and its
//! per-tensor rules, for the types Seed writes.
//!
//! The rules are llama.cpp's `llama_tensor_get_type` at the golden commit, kept to
//! the branches these file types reach: the output matrix (and a tied embedding)
//! at Q6_K, more bits for `attn_v`, `attn_output` and `ffn_down` in the mixes
//! (some by layer), Q8_0 for `attn_v`/`attn_k` of 8-expert models, Q5_K for their
//! `attn_output`, and the fallbacks for rows that are not whole super-blocks
//! (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, IQ4_XS → IQ4_NL,
//! then F16). Counters advance in the order
//! llama.cpp visits tensors (by layer, then by name), which is why
//! [`Planner::choose`] must be called in that order.

use kernels::GgmlType;

/// A file type: what `llama-quantize` takes as its TYPE argument, with
/// llama.cpp's number for it (written as `general.file_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// Every tensor F32 (dequantized).
    F32,
    /// Matrices F16.
    F16,
    /// Matrices BF16.
    BF16,
    /// Q4_0 (output Q6_K).
    Q4_0,
    /// Q4_1 (output Q6_K).
    Q4_1,
    /// Q5_0 (output Q6_K).
    Q5_0,
    /// Q5_1 (output Q6_K).
    Q5_1,
    /// Q8_0 everywhere.
    Q8_0,
    /// Q4_K, `attn_v` of the first 4 layers and the first eighth of `ffn_down` Q5_K.
    Q4KS,
    /// Q4_K, with about half of `attn_v` and `ffn_down` Q6_K.
    Q4KM,
    /// Q5_K.
    Q5KS,
    /// Q5_K, with about half of `attn_v` and `ffn_down` Q6_K.
    Q5KM,
    /// Q6_K.
    Q6K,
    /// Q2_K, with `attn_output`/`ffn_down` Q3_K and `attn_v` Q3_K or (GQA ≥ 4) Q4_K.
    Q2K,
    /// Q3_K.
    Q3KS,
    /// Q3_K, `attn_output`/`ffn_down` Q4_K, the first two `attn_v` Q5_K, the rest Q4_K.
    Q3KM,
    /// Q3_K, `attn_output`/`ffn_down`/`attn_v` Q5_K.
    Q3KL,
    /// IQ4_NL (`attn_v` Q5_K with GQA ≥ 4).
    Iq4Nl,
    /// IQ4_XS (`attn_v` Q5_K with GQA ≥ 4).
    Iq4Xs,
}

/// Every file type, with its name.
pub const FILE_TYPES: [(FileType, &str); 19] = [
    (FileType::F32, "F32"),
    (FileType::F16, "F16"),
    (FileType::BF16, "BF16"),
    (FileType::Q4_0, "Q4_0"),
    (FileType::Q4_1, "Q4_1"),
    (FileType::Q5_0, "Q5_0"),
    (FileType::Q5_1, "Q5_1"),
    (FileType::Q8_0, "Q8_0"),
    (FileType::Q4KS, "Q4_K_S"),
    (FileType::Q4KM, "Q4_K_M"),
    (FileType::Q5KS, "Q5_K_S"),
    (FileType::Q5KM, "Q5_K_M"),
    (FileType::Q6K, "Q6_K"),
    (FileType::Q2K, "Q2_K"),
    (FileType::Q3KS, "Q3_K_S"),
    (FileType::Q3KM, "Q3_K_M"),
    (FileType::Q3KL, "Q3_K_L"),
    (FileType::Iq4Nl, "IQ4_NL"),
    (FileType::Iq4Xs, "IQ4_XS"),
];

impl FileType {
    /// Parses a name (any case; `Q3_K`, `Q4_K` and `Q5_K` mean their `_M` mix, as
    /// in llama-quantize) or llama.cpp's number.
    pub fn parse(s: &str) -> Option<FileType> {
        let upper = s.to_ascii_uppercase();
        let name = match upper.as_str() {
            "Q3_K" => "Q3_K_M",
            "Q4_K" => "Q4_K_M",
            "Q5_K" => "Q5_K_M",
            other => other,
        };
        FILE_TYPES.iter().find(|(t, n)| *n == name || s.parse::<u32>().ok() == Some(t.id())).map(|&(t, _)| t)
    }

    /// The name, e.g. `Q4_K_M`.
    pub fn name(self) -> &'static str {
        FILE_TYPES.iter().find(|(t, _)| *t == self).map_or("?", |&(_, n)| n)
    }

    /// llama.cpp's `llama_ftype` number.
    pub fn id(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q8_0 => 7,
            FileType::Q5_0 => 8,
            FileType::Q5_1 => 9,
            FileType::Q4KS => 14,
            FileType::Q4KM => 15,
            FileType::Q5KS => 16,
            FileType::Q5KM => 17,
            FileType::Q6K => 18,
            FileType::Q2K => 10,
            FileType::Q3KS => 11,
            FileType::Q3KM => 12,
            FileType::Q3KL => 13,
            FileType::Iq4Nl => 25,
            FileType::Iq4Xs => 30,
            FileType::BF16 => 32,
        }
    }

    /// The type most matrices get.
    pub fn default_type(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::BF16 => GgmlType::BF16,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q4_1 => GgmlType::Q4_1,
            FileType::Q5_0 => GgmlType::Q5_0,
            FileType::Q5_1 => GgmlType::Q5_1,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q4KS | FileType::Q4KM => GgmlType::Q4_K,
            FileType::Q5KS | FileType::Q5KM => GgmlType::Q5_K,
            FileType::Q6K => GgmlType::Q6_K,
            FileType::Q2K => GgmlType::Q2_K,
            FileType::Q3KS | FileType::Q3KM | FileType::Q3KL => GgmlType::Q3_K,
            FileType::Iq4Nl => GgmlType::IQ4_NL,
            FileType::Iq4Xs => GgmlType::IQ4_XS,
        }
    }
}

/// What the rules need to know about the model.
#[derive(Clone, Debug, Default)]
pub struct ModelFacts {
    /// `general.architecture`.
    pub arch: String,
    /// Layers (`<arch>.block_count`).
    pub n_layer: usize,
    /// Query heads per KV head (`n_head / n_head_kv`, 1 without grouped-query attention).
    pub n_gqa: usize,
    /// Routed experts (0 for a dense model).
    pub n_expert: usize,
    /// Whether llama.cpp classes the model as a 70B Llama (80 layers with GQA).
    pub is_70b: bool,
}

/// The role llama.cpp's rules give a tensor, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl Category {
    fn of(name: &str) -> Category {
        let has = |s: &str| name.contains(s);
        if name == "output.weight" {
            Category::Output
        } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            Category::TokenEmbd
        } else if has("attn_qkv.weight") {
            Category::AttnQkv
        } else if has("attn_kv_b.weight") {
            Category::AttnKvB
        } else if has("attn_v.weight") {
            Category::AttnV
        } else if has("attn_k.weight") {
            Category::AttnK
        } else if has("attn_q.weight") {
            Category::AttnQ
        } else if has("attn_output.weight") {
            Category::AttnOutput
        } else if has("ffn_up") {
            Category::FfnUp
        } else if has("ffn_gate") {
            Category::FfnGate
        } else if has("ffn_down") {
            Category::FfnDown
        } else {
            Category::Other
        }
    }

    /// `attn_v`-like tensors (the most sensitive to quantization).
    fn is_attn_v(self) -> bool {
        matches!(self, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
    }
}

/// Whether llama-quantize quantizes a tensor at all (else it is copied as is):
/// matrices named `*weight`, except norms, routers and the small special tensors
/// of some architectures. `n_dims` counts dimensions ignoring trailing 1s.
pub fn allows_quantization(name: &str, n_dims: usize) -> bool {
    const NEVER: [&str; 31] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        ".rel_pos",
        ".patch_embd",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    n_dims >= 2
        && name.ends_with("weight")
        && !NEVER.iter().any(|s| name.contains(s))
        && !["sam.pos_embd", "sam.neck.", "sam.net_", ".patch_merger"].iter().any(|s| name.contains(s))
        // Positional embeddings and BERT's token types.
        && name != "position_embd.weight"
        && name != "token_types.weight"
}

/// Chooses tensor types for one file, keeping llama.cpp's counters.
pub struct Planner {
    ftype: FileType,
    facts: ModelFacts,
    tied: bool,
    n_attention_wv: usize,
    i_attention_wv: usize,
    i_ffn_down: usize,
}

/// A tensor whose rows fit no type llama-quantize would fall back to.
#[derive(Debug, thiserror::Error)]
#[error("{name}: rows of {cols} values are not whole blocks of {ty} and it has no fallback type")]
pub struct NoFallback {
    /// The tensor.
    pub name: String,
    /// Its row length.
    pub cols: usize,
    /// The type it was to get.
    pub ty: GgmlType,
}

impl Planner {
    /// A planner for a file with these tensor names.
    pub fn new<'a>(ftype: FileType, facts: ModelFacts, names: impl Iterator<Item = &'a str>) -> Planner {
        let (mut n_attention_wv, mut tied) = (0, true);
        for name in names {
            let c = Category::of(name);
            n_attention_wv += usize::from(c.is_attn_v());
            tied &= c != Category::Output;
        }
        Planner { ftype, facts, tied, n_attention_wv, i_attention_wv: 0, i_ffn_down: 0 }
    }

    /// The type of tensor `name` (of type `ty`, row length `cols`, `n_dims`
    /// dimensions ignoring trailing 1s). Call in llama.cpp's tensor order.
    pub fn choose(&mut self, name: &str, ty: GgmlType, cols: usize, n_dims: usize) -> Result<GgmlType, NoFallback> {
        if !allows_quantization(name, n_dims) {
            return Ok(ty);
        }
        let default = self.ftype.default_type();
        if matches!(default, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            return Ok(default);
        }
        let chosen = self.rule(name, default, cols);
        fallback(name, chosen, cols)
    }

    /// llama.cpp's `llama_tensor_get_type_impl` for these file types.
    fn rule(&mut self, name: &str, default: GgmlType, cols: usize) -> GgmlType {
        use FileType as F;
        let category = Category::of(name);
        let f = &self.facts;
        let falcon = f.arch == "falcon";
        let more_bits = |i: usize, n: usize| i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
        let mut ty = default;
        if category == Category::Output || (self.tied && category == Category::TokenEmbd) {
            if falcon || !cols.is_multiple_of(default.block_size()) {
                ty = GgmlType::Q8_0;
            } else if ty != GgmlType::Q8_0 {
                ty = GgmlType::Q6_K;
            }
        } else if category == Category::TokenEmbd {
            // Only the IQ and ternary file types change an untied embedding.
        } else if category.is_attn_v() {
            let i = self.i_attention_wv;
            let gqa4 = f.n_gqa >= 4;
            match self.ftype {
                F::Q2K => ty = if gqa4 { GgmlType::Q4_K } else { GgmlType::Q3_K },
                F::Q3KM => ty = if i < 2 { GgmlType::Q5_K } else { GgmlType::Q4_K },
                F::Q3KL => ty = GgmlType::Q5_K,
                F::Iq4Nl | F::Iq4Xs if gqa4 => ty = GgmlType::Q5_K,
                F::Q4KM | F::Q5KM if more_bits(i, self.n_attention_wv) => ty = GgmlType::Q6_K,
                F::Q4KS if i < 4 => ty = GgmlType::Q5_K,
                _ => {}
            }
            if f.is_70b && matches!(ty, GgmlType::Q3_K | GgmlType::Q4_K) {
                ty = GgmlType::Q5_K;
            }
            if f.n_expert == 8 {
                ty = GgmlType::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if category == Category::AttnK {
            if f.n_expert == 8 {
                ty = GgmlType::Q8_0;
            }
        } else if category == Category::FfnDown {
            // With experts, llama.cpp reads the layer from the name (experts may be
            // stored out of order); else it counts.
            let i_layer = if f.n_expert > 1 { layer_of(name).unwrap_or(self.i_ffn_down) } else { self.i_ffn_down };
            let n = f.n_layer;
            match self.ftype {
                F::Q2K => ty = GgmlType::Q3_K,
                F::Q3KM => {
                    ty = if i_layer < n / 16 {
                        GgmlType::Q5_K
                    } else if !falcon || more_bits(i_layer, n) {
                        GgmlType::Q4_K
                    } else {
                        GgmlType::Q3_K
                    }
                }
                F::Q3KL => ty = if falcon { GgmlType::Q4_K } else { GgmlType::Q5_K },
                F::Q4KM if falcon => {
                    ty = if i_layer < n / 16 {
                        GgmlType::Q6_K
                    } else if more_bits(i_layer, n) {
                        GgmlType::Q5_K
                    } else {
                        GgmlType::Q4_K
                    }
                }
                F::Q4KM | F::Q5KM if more_bits(i_layer, n) => ty = GgmlType::Q6_K,
                F::Iq4Nl | F::Iq4Xs if i_layer < n / 8 => ty = GgmlType::Q5_K,
                F::Q4KS if !falcon && i_layer < n / 8 => ty = GgmlType::Q5_K,
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if category == Category::AttnOutput {
            ty = match (falcon, f.n_expert == 8, self.ftype) {
                (false, true, F::Q2K | F::Q3KS | F::Q3KM | F::Iq4Nl | F::Q4KS | F::Q4KM | F::Iq4Xs) => GgmlType::Q5_K,
                (false, false, F::Q2K) => GgmlType::Q3_K,
                (false, false, F::Q3KM) => GgmlType::Q4_K,
                (false, false, F::Q3KL) => GgmlType::Q5_K,
                (true, _, F::Q3KL) => GgmlType::Q4_K,
                _ => ty,
            };
        }
        ty
    }
}

/// llama.cpp's `tensor_type_fallback`: a type whose blocks divide the rows.
fn fallback(name: &str, ty: GgmlType, cols: usize) -> Result<GgmlType, NoFallback> {
    if cols.is_multiple_of(ty.block_size()) {
        return Ok(ty);
    }
    let next = match ty {
        GgmlType::IQ4_XS => GgmlType::IQ4_NL,
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => return Err(NoFallback { name: name.to_string(), cols, ty }),
    };
    Ok(if cols.is_multiple_of(next.block_size()) { next } else { GgmlType::F16 })
}

/// The layer number of `blk.N.…`.
pub fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    let digits = rest.split('.').next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(n_layer: usize) -> ModelFacts {
        ModelFacts { arch: "qwen3".into(), n_layer, n_gqa: 4, n_expert: 0, is_70b: false }
    }

    #[test]
    fn names_and_numbers_parse() {
        assert_eq!(FileType::parse("q4_k_m"), Some(FileType::Q4KM));
        assert_eq!(FileType::parse("Q4_K"), Some(FileType::Q4KM));
        assert_eq!(FileType::parse("15"), Some(FileType::Q4KM));
        assert_eq!(FileType::parse("0"), Some(FileType::F32));
        assert_eq!(FileType::parse("IQ2_XXS"), None);
    }

    #[test]
    fn q4_k_m_gives_half_the_v_and_down_matrices_six_bits() {
        // Four layers: llama.cpp's use_more_bits(i, 4) holds for layers 2 and 3.
        let names: Vec<String> = (0..4)
            .flat_map(|l| [format!("blk.{l}.attn_v.weight"), format!("blk.{l}.ffn_down.weight")])
            .chain(["output.weight".to_string(), "token_embd.weight".to_string()])
            .collect();
        let mut p = Planner::new(FileType::Q4KM, facts(4), names.iter().map(String::as_str));
        let mut got = Vec::new();
        for l in 0..4 {
            for t in ["attn_v", "ffn_down"] {
                got.push(p.choose(&format!("blk.{l}.{t}.weight"), GgmlType::F32, 256, 2).expect("type"));
            }
        }
        use GgmlType::{Q4_K, Q6_K};
        assert_eq!(got, [Q4_K, Q4_K, Q4_K, Q4_K, Q6_K, Q6_K, Q6_K, Q6_K]);
        assert_eq!(p.choose("output.weight", GgmlType::F32, 256, 2).expect("type"), Q6_K);
        assert_eq!(p.choose("token_embd.weight", GgmlType::F32, 256, 2).expect("type"), Q4_K);
        assert_eq!(p.choose("blk.0.attn_norm.weight", GgmlType::F32, 256, 1).expect("type"), GgmlType::F32);
    }

    #[test]
    fn the_low_bit_mixes_follow_llama_cpp() {
        use GgmlType::{IQ4_XS, Q3_K, Q4_K, Q5_K};
        let names: Vec<String> = (0..4)
            .flat_map(|l| ["attn_output", "attn_v", "ffn_down", "ffn_up"].map(|t| format!("blk.{l}.{t}.weight")))
            .collect();
        let types = |ftype| {
            let mut p = Planner::new(ftype, facts(4), names.iter().map(String::as_str));
            names.iter().map(|n| p.choose(n, GgmlType::F32, 256, 2).expect("type")).collect::<Vec<_>>()
        };
        // Q3_K_M (GQA 4:1, 4 layers): attn_output and ffn_down Q4_K, the first two attn_v Q5_K.
        let q3 = types(FileType::Q3KM);
        assert_eq!(&q3[..4], [Q4_K, Q5_K, Q4_K, Q3_K]);
        assert_eq!(&q3[8..12], [Q4_K, Q4_K, Q4_K, Q3_K]);
        // IQ4_XS: attn_v Q5_K (GQA ≥ 4), the rest IQ4_XS.
        assert_eq!(&types(FileType::Iq4Xs)[..4], [IQ4_XS, Q5_K, IQ4_XS, IQ4_XS]);
    }

    #[test]
    fn rows_that_are_not_super_blocks_fall_back() {
        let names = ["blk.0.attn_q.weight", "token_embd.weight"];
        let mut p = Planner::new(FileType::Q4KM, facts(1), names.into_iter());
        // 576 = 18 × 32 (SmolLM2's width): Q4_K → Q5_0; the tied embedding Q6_K → Q8_0.
        assert_eq!(p.choose("blk.0.attn_q.weight", GgmlType::F32, 576, 2).expect("type"), GgmlType::Q5_0);
        assert_eq!(p.choose("token_embd.weight", GgmlType::F32, 576, 2).expect("type"), GgmlType::Q8_0);
        let mut p = Planner::new(FileType::Q8_0, facts(1), names.into_iter());
        assert!(p.choose("blk.0.attn_q.weight", GgmlType::F32, 100, 2).is_err());
    }
}
