//! `tools`, `tool_choice` and `parallel_tool_calls` of a chat request, and the tool parts of its
//! messages (assistant `tool_calls`, `tool` turns).

use model::chat::tools::{Choice, Tool};
use model::chat::ToolCall;
use serde_json::Value;

use super::fields::{self, wrong_type, Fields};
use super::MAX_GRAMMAR_BYTES;
use crate::error::ApiError;

/// The most tools one request may offer.
pub const MAX_TOOLS: usize = 128;

/// A request's tools, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tools {
    /// The functions offered (empty: none).
    pub tools: Vec<Tool>,
    /// `tool_choice`: `auto` by default when tools are given, `none` without.
    pub choice: Option<Choice>,
    /// `parallel_tool_calls` (default true).
    pub parallel: bool,
}

impl Tools {
    /// The choice in effect.
    pub fn choice(&self) -> Choice {
        self.choice.clone().unwrap_or(if self.tools.is_empty() { Choice::None } else { Choice::Auto })
    }

    /// Whether the model is to call tools (some are given and the choice is not `none`).
    pub fn active(&self) -> bool {
        !self.tools.is_empty() && self.choice() != Choice::None
    }
}

/// Reads `tools`, `tool_choice` and `parallel_tool_calls`.
pub fn parse(f: &Fields) -> Result<Tools, ApiError> {
    if f.has("functions") || f.has("function_call") {
        let name = if f.has("functions") { "functions" } else { "function_call" };
        return Err(ApiError::invalid(
            name,
            format!("`{name}` is the deprecated form of tools; send `tools` and `tool_choice`"),
        ));
    }
    let tools = match f.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_TOOLS {
                return Err(ApiError::invalid("tools", format!("{} tools given; at most {MAX_TOOLS}", items.len())));
            }
            let size = serde_json::to_string(items).map_or(0, |s| s.len());
            if size > MAX_GRAMMAR_BYTES {
                return Err(ApiError::invalid(
                    "tools",
                    format!("the tools are {size} bytes; at most {MAX_GRAMMAR_BYTES}"),
                ));
            }
            let tools = items.iter().enumerate().map(|(i, t)| tool(i, t)).collect::<Result<Vec<_>, _>>()?;
            for (i, t) in tools.iter().enumerate() {
                if tools[..i].iter().any(|u| u.name == t.name) {
                    return Err(ApiError::invalid(
                        format!("tools[{i}].function.name"),
                        format!("two tools are named `{}`", t.name),
                    ));
                }
            }
            tools
        }
        Some(v) => return Err(wrong_type("tools", "an array of tools", v)),
    };
    let choice = match f.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "none" => Choice::None,
            "auto" => Choice::Auto,
            "required" => Choice::Required,
            other => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!("`tool_choice` `{other}` is not one of none, auto, required or a named function"),
                ))
            }
        }),
        Some(v @ Value::Object(_)) => {
            let o = fields::object("tool_choice", v)?;
            if o.required_string("type")? != "function" {
                return Err(ApiError::invalid("tool_choice.type", "`tool_choice.type` must be `function`"));
            }
            let func = o.get("function").ok_or_else(|| {
                ApiError::invalid("tool_choice.function", "`tool_choice.function` (with its `name`) is required")
            })?;
            let name = fields::object("tool_choice.function", func)?.required_string("name")?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(ApiError::invalid(
                    "tool_choice.function.name",
                    format!("`tool_choice` names `{name}`, which is not one of the request's tools"),
                ));
            }
            Some(Choice::Function(name.to_string()))
        }
        Some(v) => return Err(wrong_type("tool_choice", "a string or an object", v)),
    };
    if tools.is_empty() && matches!(choice, Some(Choice::Required | Choice::Function(_))) {
        return Err(ApiError::invalid("tool_choice", "`tool_choice` asks for a tool call but no `tools` are given"));
    }
    let parallel = f.boolean("parallel_tool_calls")?.unwrap_or(true);
    Ok(Tools { tools, choice, parallel })
}

/// A function name as OpenAI allows: 1 to 64 letters, digits, `_` or `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn tool(i: usize, v: &Value) -> Result<Tool, ApiError> {
    let t = fields::object(&format!("tools[{i}]"), v)?;
    if t.required_string("type")? != "function" {
        return Err(ApiError::invalid(t.param("type"), "only tools of type `function` are supported"));
    }
    let fv = t.get("function").ok_or_else(|| ApiError::invalid(t.param("function"), "`function` is required"))?;
    let func = fields::object(&t.param("function"), fv)?;
    let name = func.required_string("name")?;
    if !valid_name(name) {
        return Err(ApiError::invalid(
            func.param("name"),
            "a function name must be 1 to 64 letters, digits, `_` or `-`",
        ));
    }
    let description = func.string("description")?.map(str::to_string);
    func.boolean("strict")?;
    let parameters = match func.get("parameters") {
        None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(o)) => {
            if o.get("type").is_some_and(|ty| ty != "object") {
                return Err(ApiError::invalid(
                    func.param("parameters"),
                    "a function's `parameters` must be a JSON schema of `type` object",
                ));
            }
            p.clone()
        }
        Some(other) => return Err(wrong_type(&func.param("parameters"), "a JSON schema (an object)", other)),
    };
    Ok(Tool { name: name.to_string(), description, parameters, definition: v.clone() })
}

/// An assistant message's `tool_calls`.
pub fn tool_calls(param: &str, v: &Value) -> Result<Vec<ToolCall>, ApiError> {
    let Value::Array(items) = v else { return Err(wrong_type(param, "an array of tool calls", v)) };
    items
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let c = fields::object(&format!("{param}[{j}]"), c)?;
            if let Some(ty) = c.string("type")? {
                if ty != "function" {
                    return Err(ApiError::invalid(c.param("type"), "only tool calls of type `function` are supported"));
                }
            }
            let id = c.required_string("id")?;
            let fv =
                c.get("function").ok_or_else(|| ApiError::invalid(c.param("function"), "`function` is required"))?;
            let func = fields::object(&c.param("function"), fv)?;
            let name = func.required_string("name")?;
            // OpenAI sends arguments as JSON text; an object is taken too.
            let arguments = match func.get("arguments") {
                None | Some(Value::Null) => "{}".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(o @ Value::Object(_)) => o.to_string(),
                Some(other) => return Err(wrong_type(&func.param("arguments"), "a string of JSON", other)),
            };
            Ok(ToolCall { id: id.to_string(), name: name.to_string(), arguments })
        })
        .collect()
}

/// Every `tool` turn must answer a call an earlier assistant turn made.
pub fn check_tool_turns(messages: &[model::chat::Message]) -> Result<(), ApiError> {
    let mut calls: Vec<&str> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        calls.extend(m.tool_calls.iter().map(|c| c.id.as_str()));
        if m.role == "tool" {
            let id = m.tool_call_id.as_deref().unwrap_or_default();
            if !calls.contains(&id) {
                return Err(ApiError::invalid(
                    format!("messages[{i}].tool_call_id"),
                    format!("`messages[{i}]` answers tool call `{id}`, which no earlier assistant message made"),
                ));
            }
        }
    }
    Ok(())
}
