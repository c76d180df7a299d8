//! How a sequence becomes one embedding: the pooling its GGUF declares (`{arch}.pooling_type`,
//! llama.cpp's numbers), or the last token's for a decoder that declares none, over the
//! final-normed hidden states ([`crate::Workspace::hidden_row`]), then scaled to unit length.

use crate::error::ModelError;
use crate::gguf::GgufFile;

/// A model's pooling of hidden states into one embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// None: one embedding per token (declared by files meant for token-level use).
    None,
    /// The mean over the sequence's tokens.
    Mean,
    /// The first token's (BERT's `[CLS]`).
    Cls,
    /// The last token's: what a causal model has read the whole input by.
    Last,
    /// A reranker's score head.
    Rank,
}

impl Pooling {
    /// The file's declared pooling; [`Pooling::Last`] when it declares none (a decoder model).
    pub fn from_gguf(file: &GgufFile) -> Result<Pooling, ModelError> {
        let arch = file.get_str("general.architecture")?;
        let key = format!("{arch}.pooling_type");
        if file.get(&key).is_none() {
            return Ok(Pooling::Last);
        }
        match file.get_u32(&key)? {
            0 => Ok(Pooling::None),
            1 => Ok(Pooling::Mean),
            2 => Ok(Pooling::Cls),
            3 => Ok(Pooling::Last),
            4 => Ok(Pooling::Rank),
            other => Err(ModelError::metadata(key, format!("pooling type {other} is not one of 0..=4"))),
        }
    }

    /// Its name, as llama.cpp's `--pooling` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::None => "none",
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Last => "last",
            Pooling::Rank => "rank",
        }
    }
}

/// Scales `v` to unit Euclidean length, as llama.cpp's default (`--embd-normalize 2`) does: the
/// sum of squares in f64, its reciprocal root as an f32 factor; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let sum: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let norm = sum.sqrt();
    let scale = if norm > 0.0 { (1.0 / norm) as f32 } else { 0.0 };
    for x in v.iter_mut() {
        *x *= scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufBuilder, Value};

    fn file(pooling: Option<u32>) -> GgufFile {
        let mut b = GgufBuilder::new();
        b.add_kv("general.architecture", Value::String("llama".into()));
        if let Some(p) = pooling {
            b.add_kv("llama.pooling_type", Value::U32(p));
        }
        GgufFile::from_bytes(b.build()).expect("a valid file")
    }

    #[test]
    fn the_declared_pooling_is_read_and_a_decoder_without_one_pools_its_last_token() {
        assert_eq!(Pooling::from_gguf(&file(None)).expect("none declared"), Pooling::Last);
        assert_eq!(Pooling::from_gguf(&file(Some(1))).expect("mean"), Pooling::Mean);
        assert_eq!(Pooling::from_gguf(&file(Some(2))).expect("cls"), Pooling::Cls);
        let e = Pooling::from_gguf(&file(Some(9))).expect_err("out of range").to_string();
        assert!(e.contains("llama.pooling_type") && e.contains('9'), "{e}");
    }

    #[test]
    fn normalized_vectors_have_unit_length_and_zero_stays_zero() {
        let mut v = [3.0f32, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0f32; 4];
        normalize(&mut z);
        assert_eq!(z, [0.0; 4]);
    }
}
