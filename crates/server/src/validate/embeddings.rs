//! `POST /v1/embeddings` bodies (OpenAI's shape): `input` in the four shapes a completion's
//! prompt takes, `encoding_format` `float` or `base64`, and `dimensions`.

use serde_json::Value;

use super::completion::prompts;
use super::fields;
use super::{model_name, Context, Prompt};
use crate::error::ApiError;

/// A validated embeddings request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddingRequest {
    /// The model asked for.
    pub model: String,
    /// One embedding is made for each.
    pub inputs: Vec<Prompt>,
    /// Send each vector as base64 of its little-endian f32 values instead of a JSON array.
    pub base64: bool,
    /// The length asked for, checked against the model's by the route.
    pub dimensions: Option<usize>,
}

/// Validates an embeddings request body.
pub fn parse(body: &Value, ctx: Context) -> Result<EmbeddingRequest, ApiError> {
    let f = fields::object("", body)?;
    let model = model_name(&f)?.to_string();
    let inputs = prompts("input", f.get("input"), ctx)?;
    if inputs.len() > ctx.limits.max_embedding_inputs {
        return Err(ApiError::invalid(
            "input",
            format!("{} inputs; at most {} in one request", inputs.len(), ctx.limits.max_embedding_inputs),
        ));
    }
    let base64 = match f.string("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("`encoding_format` must be `float` or `base64`, not {other:?}"),
            ))
        }
    };
    let dimensions = f.integer("dimensions", 1, i64::from(u32::MAX))?.map(|d| d as usize);
    // OpenAI's end-user id: accepted, not used.
    f.string("user")?;
    Ok(EmbeddingRequest { model, inputs, base64, dimensions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use serde_json::json;

    fn parse_with(body: Value) -> Result<EmbeddingRequest, ApiError> {
        parse(&body, Context { n_vocab: 100, limits: &Limits::default() })
    }

    #[test]
    fn every_input_shape_reads_and_the_format_defaults_to_float() {
        let r = parse_with(json!({"model": "m", "input": "hi"})).expect("one string");
        assert_eq!((r.inputs, r.base64, r.dimensions), (vec![Prompt::Text("hi".into())], false, None));
        let r = parse_with(json!({"model": "m", "input": ["a", "b"], "encoding_format": "base64"})).expect("two");
        assert_eq!((r.inputs.len(), r.base64), (2, true));
        let r = parse_with(json!({"model": "m", "input": [[1, 2], [3]], "dimensions": 8})).expect("ids");
        assert_eq!((r.inputs[1].clone(), r.dimensions), (Prompt::Tokens(vec![3]), Some(8)));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        for (body, param) in [
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": ""}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m", "input": [1, 100]}), "input[1]"),
            (json!({"model": "m", "input": ["a", 1]}), "input[1]"),
            (json!({"model": "m", "input": "a", "encoding_format": "int8"}), "encoding_format"),
            (json!({"model": "m", "input": "a", "dimensions": 0}), "dimensions"),
            (json!({"model": "m", "input": vec!["a"; 257]}), "input"),
            (json!({"input": "a"}), "model"),
        ] {
            let e = parse_with(body.clone()).expect_err("refused");
            let named = match &e {
                ApiError::Invalid { param, .. } => param.as_deref(),
                _ => None,
            };
            assert_eq!(named, Some(param), "{body}: {e:?}");
        }
    }
}
