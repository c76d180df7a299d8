//! `POST /v1/embeddings` (OpenAI's shapes): each input is read by the engine like a prompt, in
//! the same batches as generations, and its last token's final-normed hidden state, scaled to
//! unit length, is its embedding (llama.cpp's `--pooling last` with `--embd-normalize 2`).
//! Tenants, editions, quotas and usage apply as to generations (prompt tokens only).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::{Event, FinishReason};
use model::pooling::{normalize, Pooling};
use serde::Serialize;

use super::tally;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::generate;
use crate::meter::{MeterGuard, Outcome, Tally};
use crate::schema::UsageBody;
use crate::state::AppState;
use crate::validate::{self, Context};

/// The response body.
#[derive(Debug, Serialize)]
struct EmbeddingList {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: String,
    usage: EmbeddingUsage,
}

/// One input's embedding.
#[derive(Debug, Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

/// A vector as numbers, or as base64 of its little-endian f32 values (`encoding_format`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

/// OpenAI's embeddings usage: prompt tokens only.
#[derive(Debug, Serialize)]
struct EmbeddingUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// The handler.
pub async fn handler(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::extract::Caller>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    tally(&state, run(&state, caller.as_ref().map(|c| &c.0), body).await)
}

async fn run(
    state: &AppState,
    caller: Option<&crate::extract::Caller>,
    mut body: serde_json::Value,
) -> Result<Response, ApiError> {
    let routed = super::route(state, &mut body)?;
    let ctx = Context { n_vocab: routed.n_vocab, limits: &state.config().limits };
    let req = validate::embeddings::parse(&body, ctx)?;
    state.config().check_edition(caller, &req.model)?;
    let backend = routed.backend?;
    if backend.model.pooling != Pooling::Last {
        return Err(ApiError::invalid(
            "model",
            format!(
                "`{}` declares `{}` pooling; Seed computes embeddings by last-token pooling only",
                req.model,
                backend.model.pooling.name()
            ),
        ));
    }
    let n_embd = backend.model.model.hparams().n_embd;
    if let Some(d) = req.dimensions.filter(|&d| d != n_embd) {
        return Err(ApiError::invalid(
            "dimensions",
            format!("`{}` makes embeddings of {n_embd} dimensions and cannot shorten them to {d}", req.model),
        ));
    }
    let ids = generate::tokenize(backend, req.inputs).await?;

    let n_prompt: usize = ids.iter().map(Vec::len).sum();
    // One position past the input, as every engine request needs room for a token.
    let planned =
        ids.into_iter().map(|ids| generate::plan(backend, ids, Some(1), "input")).collect::<Result<Vec<_>, _>>()?;
    let mut meter = crate::meter::meter_for(state, caller, &req.model, None)?;
    let mut ticket = generate::admit(state, caller, meter.as_ref(), &planned, 1).await?;
    let mut sub = generate::submit_embeddings(state, backend, planned, ticket.share)?;
    if let Some(m) = meter.as_mut() {
        m.row = ticket.row.take();
    }
    let mut guard = MeterGuard::new(meter, n_prompt, sub.n_choices).counted(Tally::new(state, caller, &req.model));

    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; sub.n_choices];
    let mut usage = UsageBody::default();
    let mut remaining = sub.n_choices;
    while remaining > 0 {
        let Some((i, event)) = sub.next().await else {
            return Err(ApiError::Internal("the engine stopped before the request finished".into()));
        };
        match event {
            Event::Embedding { mut vector } => {
                normalize(&mut vector);
                if let Some(slot) = vectors.get_mut(i) {
                    *slot = Some(vector);
                }
            }
            Event::Done { finish_reason: FinishReason::Cancelled, .. } => {
                return Err(ApiError::Unavailable("the request was aborted: the server is shutting down".into()));
            }
            Event::Done { usage: u, .. } => {
                usage.add(&u, true);
                remaining -= 1;
            }
            Event::Error { message } => return Err(ApiError::Internal(format!("embedding failed: {message}"))),
            Event::Token { .. } => {}
        }
    }
    let outcome = Outcome { usage, finish_reason: "stop", text: String::new() };
    tokio::task::spawn_blocking(move || guard.finish(&outcome))
        .await
        .map_err(|e| ApiError::Internal(format!("storing failed: {e}")))??;

    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let v = v.ok_or_else(|| ApiError::Internal(format!("input {index} finished without its embedding")))?;
            let embedding = if req.base64 { Vector::Base64(base64_f32(&v)) } else { Vector::Float(v) };
            Ok(EmbeddingItem { object: "embedding", index, embedding })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let body = EmbeddingList {
        object: "list",
        data,
        model: req.model,
        usage: EmbeddingUsage { prompt_tokens: usage.prompt_tokens, total_tokens: usage.prompt_tokens },
    };
    Ok(Json(body).into_response())
}

/// Standard base64 (with padding) of `v`'s little-endian bytes: what OpenAI's clients decode
/// as a float32 array.
fn base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_f32;

    #[test]
    fn base64_matches_the_standard_encoding_with_padding() {
        // 1.0f32 is 00 00 80 3f; 2.0 is 00 00 00 40.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 2.0]), "AACAPwAAAEA=");
        assert_eq!(base64_f32(&[1.0, 2.0, 1.0]), "AACAPwAAAEAAAIA/");
        assert_eq!(base64_f32(&[]), "");
    }
}
