//! The sampler settings a model's publisher recommends, from `general.sampling.*`.
//!
//! llama.cpp's converter writes a model's `generation_config.json` into these keys
//! (`temp`, `top_k`, `top_p`, `min_p`, `penalty_repeat`, `penalty_last_n`, and a few for
//! samplers Seed does not have), often only some of them. A chat front end (`seed run`,
//! the chat page) takes each setting the file gives and its own default for the rest;
//! the HTTP API does not (a client of the API chooses for itself).

use crate::gguf::{GgufFile, Value};
use crate::sampler::SamplingParams;
use crate::ModelError;

/// The recommendations a model file makes; `None` where it makes none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecommendedSampling {
    /// `general.sampling.temp`.
    pub temperature: Option<f32>,
    /// `general.sampling.top_k` (0: off).
    pub top_k: Option<usize>,
    /// `general.sampling.top_p`.
    pub top_p: Option<f32>,
    /// `general.sampling.min_p`.
    pub min_p: Option<f32>,
    /// `general.sampling.penalty_repeat`.
    pub repetition_penalty: Option<f32>,
    /// `general.sampling.penalty_last_n` (-1 in the file: the whole history).
    pub penalty_last_n: Option<usize>,
}

const PREFIX: &str = "general.sampling.";

impl RecommendedSampling {
    /// No recommendation at all.
    pub const NONE: RecommendedSampling = RecommendedSampling {
        temperature: None,
        top_k: None,
        top_p: None,
        min_p: None,
        repetition_penalty: None,
        penalty_last_n: None,
    };

    /// Reads the recommendations of `file`. A key of the wrong type or out of range is
    /// an error naming it (the file is malformed); keys Seed has no sampler for
    /// (`mirostat*`, `xtc_*`, `sequence`) are ignored.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let float = |name: &str, ok: fn(f32) -> bool, range: &str| -> Result<Option<f32>, ModelError> {
            let key = format!("{PREFIX}{name}");
            let x = match file.get(&key) {
                None => return Ok(None),
                Some(Value::F32(x)) => *x,
                Some(Value::F64(x)) => *x as f32,
                Some(v) => return Err(ModelError::metadata(key, format!("found {}, expected a float", v.type_name()))),
            };
            if x.is_finite() && ok(x) {
                Ok(Some(x))
            } else {
                Err(ModelError::metadata(key, format!("{x} is out of range ({range})")))
            }
        };
        let int = |name: &str| -> Result<Option<i128>, ModelError> {
            let key = format!("{PREFIX}{name}");
            match file.get(&key) {
                None => Ok(None),
                Some(v) => match v.as_integer() {
                    Some(n) => Ok(Some(n)),
                    None => Err(ModelError::metadata(key, format!("found {}, expected an integer", v.type_name()))),
                },
            }
        };
        let top_k = match int("top_k")? {
            None => None,
            Some(k) if k <= 0 => Some(0),
            Some(k) => Some(usize::try_from(k).unwrap_or(usize::MAX)),
        };
        let penalty_last_n = match int("penalty_last_n")? {
            None => None,
            Some(-1) => Some(usize::MAX),
            Some(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Some(n) => {
                return Err(ModelError::metadata(
                    format!("{PREFIX}penalty_last_n"),
                    format!("{n} is out of range (-1 for the whole history, or >= 0)"),
                ))
            }
        };
        Ok(RecommendedSampling {
            temperature: float("temp", |x| x >= 0.0, ">= 0")?,
            top_k,
            top_p: float("top_p", |x| x > 0.0 && x <= 1.0, "(0, 1]")?,
            min_p: float("min_p", |x| (0.0..=1.0).contains(&x), "[0, 1]")?,
            repetition_penalty: float("penalty_repeat", |x| x > 0.0, "> 0")?,
            penalty_last_n,
        })
    }

    /// Whether the file recommends anything.
    pub fn is_empty(&self) -> bool {
        *self == RecommendedSampling::default()
    }

    /// These recommendations, with `fallback`'s for the settings these leave unsaid.
    pub fn or(&self, fallback: &RecommendedSampling) -> RecommendedSampling {
        RecommendedSampling {
            temperature: self.temperature.or(fallback.temperature),
            top_k: self.top_k.or(fallback.top_k),
            top_p: self.top_p.or(fallback.top_p),
            min_p: self.min_p.or(fallback.min_p),
            repetition_penalty: self.repetition_penalty.or(fallback.repetition_penalty),
            penalty_last_n: self.penalty_last_n.or(fallback.penalty_last_n),
        }
    }

    /// `defaults` with every recommended setting put in its place.
    pub fn over(&self, defaults: SamplingParams) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_k: self.top_k.unwrap_or(defaults.top_k),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(defaults.repetition_penalty),
            penalty_last_n: self.penalty_last_n.unwrap_or(defaults.penalty_last_n),
            ..defaults
        }
    }
}

/// The sampling a chat front end uses for a model that recommends nothing: Ollama's
/// defaults (temperature 0.8, top-k 40, top-p 0.9, no min-p, repetition penalty 1.1 over
/// the last 64 tokens). A small model answering greedily falls into loops ("la femme au
/// roi, la femme au roi, …"); sampling with a light repetition penalty does not.
pub fn chat_defaults() -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.9,
        min_p: 0.0,
        repetition_penalty: 1.1,
        penalty_last_n: 64,
        ..SamplingParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::GgufBuilder;

    fn file(kvs: &[(&str, Value)]) -> GgufFile {
        let mut b = GgufBuilder::new();
        b.add_kv("general.architecture", Value::String("llama".into()));
        for (k, v) in kvs {
            b.add_kv(k, v.clone());
        }
        GgufFile::from_bytes(b.build()).unwrap()
    }

    #[test]
    fn a_file_without_recommendations_leaves_the_defaults() {
        let r = RecommendedSampling::from_gguf(&file(&[])).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.over(chat_defaults()), chat_defaults());
    }

    #[test]
    fn each_recommendation_replaces_its_default_and_only_it() {
        let r = RecommendedSampling::from_gguf(&file(&[
            ("general.sampling.temp", Value::F32(0.6)),
            ("general.sampling.top_k", Value::I32(20)),
            ("general.sampling.min_p", Value::F64(0.0)),
            ("general.sampling.penalty_last_n", Value::I32(-1)),
            ("general.sampling.mirostat", Value::I32(0)),
            ("general.sampling.sequence", Value::String("penalties;top_k;top_p;temp".into())),
        ]))
        .unwrap();
        let p = r.over(chat_defaults());
        assert_eq!((p.temperature, p.top_k, p.min_p, p.penalty_last_n), (0.6, 20, 0.0, usize::MAX));
        assert_eq!((p.top_p, p.repetition_penalty), (0.9, 1.1), "not in the file: the defaults stay");
        p.validate().unwrap();
        let card = RecommendedSampling { temperature: Some(0.2), top_p: Some(0.5), ..Default::default() };
        let both = r.or(&card);
        assert_eq!((both.temperature, both.top_p, both.top_k), (Some(0.6), Some(0.5), Some(20)), "the file's own win");
    }

    #[test]
    fn a_malformed_recommendation_is_an_error_naming_its_key() {
        for (key, value, says) in [
            ("general.sampling.temp", Value::String("hot".into()), "expected a float"),
            ("general.sampling.top_p", Value::F32(1.5), "out of range"),
            ("general.sampling.penalty_repeat", Value::F32(f32::NAN), "out of range"),
            ("general.sampling.top_k", Value::F32(40.0), "expected an integer"),
            ("general.sampling.penalty_last_n", Value::I32(-2), "out of range"),
        ] {
            let err = RecommendedSampling::from_gguf(&file(&[(key, value)])).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{err}");
        }
    }
}
