//! What an edition adds to a request that names it: its default sampling for every field the
//! client left out, and (chat only) its system persona.
//!
//! Defaults are written into the request body before validation, so they pass the same range
//! checks as a client's values and a client's own value always wins. The persona goes first in
//! the conversation when no system message is present; a client's own system message replaces
//! it (the client asked for a different persona, and chat templates take one system turn).

use model::chat::Message;
use platform::config::Sampling;
use serde_json::{Number, Value};

/// Fills the body fields the client did not set (absent or `null`) from the edition's sampling
/// defaults: `temperature`, `top_p`, `top_k`, and `max_tokens` (unless `max_completion_tokens`
/// is given). A body that is not an object is left for validation to refuse.
pub fn apply_sampling(body: &mut Value, defaults: &Sampling) {
    let Value::Object(map) = body else { return };
    let float = |v: f32| Number::from_f64(f64::from(v)).map(Value::Number);
    let wants_max_tokens = map.get("max_completion_tokens").is_none_or(Value::is_null);
    let mut fill = |name: &str, value: Option<Value>| {
        if let Some(v) = value {
            if map.get(name).is_none_or(Value::is_null) {
                map.insert(name.to_string(), v);
            }
        }
    };
    fill("temperature", defaults.temperature.and_then(float));
    fill("top_p", defaults.top_p.and_then(float));
    fill("top_k", defaults.top_k.map(Value::from));
    if wants_max_tokens {
        fill("max_tokens", defaults.max_tokens.map(Value::from));
    }
}

/// Puts `persona` first as a system message unless the conversation already has a system
/// message (the client's persona wins). Returns whether it was added.
pub fn apply_persona(messages: &mut Vec<Message>, persona: &str) -> bool {
    if persona.is_empty() || messages.iter().any(|m| m.role == "system") {
        return false;
    }
    messages.insert(0, Message::new("system", persona));
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaults() -> Sampling {
        Sampling { temperature: Some(0.5), top_p: Some(0.75), top_k: Some(40), max_tokens: Some(256) }
    }

    #[test]
    fn defaults_fill_only_what_the_client_left_out() {
        let mut body = json!({"model": "cici", "temperature": 0, "top_p": null, "messages": []});
        apply_sampling(&mut body, &defaults());
        assert_eq!(body["temperature"], json!(0), "the client's value wins");
        assert_eq!(body["top_p"], json!(0.75), "null counts as unset");
        assert_eq!(body["top_k"], json!(40));
        assert_eq!(body["max_tokens"], json!(256));
    }

    #[test]
    fn max_completion_tokens_stands_for_max_tokens() {
        let mut body = json!({"max_completion_tokens": 8});
        apply_sampling(&mut body, &defaults());
        assert!(body.get("max_tokens").is_none(), "{body}");
        let mut body = json!({"max_tokens": 8});
        apply_sampling(&mut body, &Sampling::default());
        assert_eq!(body, json!({"max_tokens": 8}), "no defaults, no change");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_left_alone() {
        let mut body = json!([1, 2]);
        apply_sampling(&mut body, &defaults());
        assert_eq!(body, json!([1, 2]));
    }

    #[test]
    fn the_persona_goes_first_unless_the_client_sent_a_system_message() {
        let mut plain = vec![Message::new("user", "hi")];
        assert!(apply_persona(&mut plain, "You are Cici."));
        assert_eq!(plain, vec![Message::new("system", "You are Cici."), Message::new("user", "hi")]);
        let mut own = vec![Message::new("user", "hi"), Message::new("system", "Be terse.")];
        assert!(!apply_persona(&mut own, "You are Cici."));
        assert_eq!(own.len(), 2);
        let mut empty = vec![Message::new("user", "hi")];
        assert!(!apply_persona(&mut empty, ""));
    }
}
