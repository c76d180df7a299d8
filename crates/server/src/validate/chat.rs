//! `POST /v1/chat/completions` bodies: messages, tools and chat log-prob settings.

use model::chat::Message;
use serde_json::Value;

use super::fields::{self, wrong_type, Fields};
use super::tools::{self, Tools};
use super::{gen_params, model_name, top_logprobs, Context, GenParams};
use crate::error::ApiError;

/// A validated chat request.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// The model asked for (checked against the served names by the route).
    pub model: String,
    /// The conversation: roles `system`, `user`, `assistant`, `tool`.
    pub messages: Vec<Message>,
    /// The tools offered and what to do with them.
    pub tools: Tools,
    /// Further chat-template variables (`chat_template_kwargs`, as vLLM and llama.cpp take them).
    pub template_kwargs: serde_json::Map<String, Value>,
    /// Whether a thinking model's reasoning is read out of the text (`reasoning_format`
    /// `auto`/`deepseek`, the default) or left in it (`none`), as llama.cpp's server offers.
    pub separate_reasoning: bool,
    /// Everything else.
    pub params: GenParams,
}

/// Validates a chat request body.
pub fn parse(body: &Value, ctx: Context) -> Result<ChatRequest, ApiError> {
    let f = fields::object("", body)?;
    let model = model_name(&f)?.to_string();
    let messages = messages(&f, ctx)?;
    // `logprobs` is a boolean here; `top_logprobs` needs it.
    let wants = f.boolean("logprobs")?.unwrap_or(false);
    let top = top_logprobs(&f, "top_logprobs", ctx.limits)?;
    if top.is_some() && !wants {
        return Err(ApiError::invalid("top_logprobs", "`top_logprobs` needs `logprobs` set to true"));
    }
    let logprobs = wants.then(|| top.unwrap_or(0));
    let params = gen_params(&f, ctx, logprobs)?;
    let tools = tools::parse(&f)?;
    if tools.active() && params.grammar.is_some() {
        let param = if f.has("grammar") { "grammar" } else { "response_format" };
        return Err(ApiError::invalid(
            param,
            format!("`{param}` and `tools` exclude each other (or send `tool_choice: \"none\"`)"),
        ));
    }
    let template_kwargs = template_kwargs(&f)?;
    let separate_reasoning = match f.string("reasoning_format")? {
        None | Some("auto") | Some("deepseek") => true,
        Some("none") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "reasoning_format",
                format!("`{other}` is not a reasoning format: `auto`, `deepseek` or `none`"),
            ))
        }
    };
    Ok(ChatRequest { model, messages, tools, template_kwargs, separate_reasoning, params })
}

/// `chat_template_kwargs`: an object of further template variables, none of the chat's own.
fn template_kwargs(f: &Fields) -> Result<serde_json::Map<String, Value>, ApiError> {
    let map = match f.get("chat_template_kwargs") {
        None | Some(Value::Null) => return Ok(serde_json::Map::new()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(wrong_type("chat_template_kwargs", "an object of template variables", other)),
    };
    if let Some(name) = map.keys().find(|k| model::chat::RESERVED_VARIABLES.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            format!("chat_template_kwargs.{name}"),
            format!("`{name}` is set by the request itself, not by chat_template_kwargs"),
        ));
    }
    Ok(map.clone())
}

fn messages(f: &Fields, ctx: Context) -> Result<Vec<Message>, ApiError> {
    let v = f.get("messages").ok_or_else(|| ApiError::invalid("messages", "`messages` is required"))?;
    let Value::Array(items) = v else { return Err(wrong_type("messages", "an array of messages", v)) };
    if items.is_empty() {
        return Err(ApiError::invalid("messages", "`messages` must contain at least one message"));
    }
    if items.len() > ctx.limits.max_messages {
        return Err(ApiError::invalid(
            "messages",
            format!("{} messages given; at most {}", items.len(), ctx.limits.max_messages),
        ));
    }
    let messages = items.iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>, _>>()?;
    tools::check_tool_turns(&messages)?;
    Ok(messages)
}

fn message(i: usize, v: &Value) -> Result<Message, ApiError> {
    let name = format!("messages[{i}]");
    let m = fields::object(&name, v)?;
    let role = match m.required_string("role")? {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        "tool" => "tool",
        other => {
            return Err(ApiError::invalid(
                m.param("role"),
                format!(
                    "`{}` is `{other}`; this server accepts system, developer, user, assistant and tool",
                    m.param("role")
                ),
            ))
        }
    };
    let tool_calls = match m.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) if role == "assistant" => tools::tool_calls(&m.param("tool_calls"), v)?,
        Some(_) => return Err(ApiError::invalid(m.param("tool_calls"), "only assistant messages carry `tool_calls`")),
    };
    let tool_call_id = match role {
        "tool" => Some(m.required_string("tool_call_id")?.to_string()),
        _ => None,
    };
    let content = match m.get("content") {
        // An assistant turn may carry no text (OpenAI allows null there).
        None | Some(Value::Null) if role == "assistant" => String::new(),
        None => return Err(ApiError::invalid(m.param("content"), format!("`{}` is required", m.param("content")))),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => text_parts(&m.param("content"), parts)?,
        Some(other) => return Err(wrong_type(&m.param("content"), "a string or an array of text parts", other)),
    };
    let name = m.string("name")?.map(str::to_string);
    Ok(Message { tool_calls, tool_call_id, name, ..Message::new(role, content) })
}

/// Joins the text parts of a content array; any other part type is refused.
fn text_parts(param: &str, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let name = format!("{param}[{j}]");
        let part = fields::object(&name, p)?;
        match part.required_string("type")? {
            "text" => texts.push(part.required_string("text")?),
            other => {
                return Err(ApiError::invalid(
                    part.param("type"),
                    format!("content parts of type `{other}` are not supported; only `text`"),
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}
