//! Checks Seed's chat-template renderer against Python's jinja2 with Hugging Face's settings:
//! reads the renders `scripts/compare-templates.py` wrote for a set of templates and
//! conversations, renders the same with [`model::chat::ChatTemplate`], and says which agree.
//!
//! ```text
//! python3 scripts/compare-templates.py templates/*.jinja > /tmp/renders.json
//! cargo run -p model --example compare_templates -- /tmp/renders.json
//! ```

use model::chat::{ChatTemplate, Message, ToolCall};
use serde_json::Value;

/// A conversation message as the script wrote it (Seed's own serialization of [`Message`]).
fn message(v: &Value) -> Message {
    let text = |k: &str| v[k].as_str().map(str::to_string);
    let tool_calls = v["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: c["id"].as_str().unwrap_or_default().to_string(),
            name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
            arguments: match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        })
        .collect();
    Message {
        role: text("role").unwrap_or_default(),
        content: text("content").unwrap_or_default(),
        tool_calls,
        tool_call_id: text("tool_call_id"),
        name: text("name"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: compare_templates RENDERS.json")?;
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let (bos, eos) = (doc["bos"].as_str().unwrap_or_default(), doc["eos"].as_str().unwrap_or_default());
    let contexts = doc["contexts"].as_array().ok_or("no contexts")?;
    let renders = doc["renders"].as_object().ok_or("no renders")?;
    let (mut same_all, mut templates) = (0, 0);
    for (file, by_context) in renders {
        templates += 1;
        let source = std::fs::read_to_string(file)?;
        let name = std::path::Path::new(file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let template = ChatTemplate::new(&source, bos, eos);
        let mut verdicts = Vec::new();
        for c in contexts {
            let cname = c["name"].as_str().unwrap_or_default();
            let messages: Vec<Message> = c["messages"].as_array().into_iter().flatten().map(message).collect();
            let tools = (!c["tools"].is_null()).then(|| c["tools"].clone());
            let ours = match &template {
                Ok(t) => t.render_with_tools(&messages, tools.as_ref(), true).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let theirs = &by_context[cname];
            let verdict = match (ours, theirs.get("ok").and_then(Value::as_str)) {
                (Ok(a), Some(b)) if a == b => "same".to_string(),
                (Ok(a), Some(b)) => {
                    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                    let show = |s: &str| {
                        let (mut lo, mut hi) = (at.saturating_sub(20), (at + 40).min(s.len()));
                        while !s.is_char_boundary(lo) {
                            lo -= 1;
                        }
                        while !s.is_char_boundary(hi) {
                            hi += 1;
                        }
                        s[lo..hi].to_string()
                    };
                    format!("DIFFERENT at byte {at}: ours {:?} jinja2 {:?}", show(&a), show(b))
                }
                (Err(_), None) => "same (both refuse)".to_string(),
                (Err(e), Some(_)) => format!("DIFFERENT: only we refuse: {e}"),
                (Ok(_), None) => format!("DIFFERENT: only jinja2 refuses: {}", theirs["error"]),
            };
            verdicts.push((cname.to_string(), verdict));
        }
        let all_same = verdicts.iter().all(|(_, v)| v.starts_with("same"));
        same_all += usize::from(all_same);
        println!("{} {name}", if all_same { "SAME     " } else { "DIFFERENT" });
        for (c, v) in verdicts.iter().filter(|(_, v)| !v.starts_with("same")) {
            println!("    {c}: {v}");
        }
    }
    println!(
        "{same_all} of {templates} templates render identically to jinja2 in all {} conversations",
        contexts.len()
    );
    Ok(())
}
