//! OpenAI's response shapes, field for field: chat completions and their
//! stream chunks, text completions (whole and streamed), usage, log-probs and
//! the model list.

use std::collections::BTreeMap;

use engine::{FinishReason, TokenLogprob, Usage};
use serde::Serialize;

/// What every response and chunk of one request repeats.
#[derive(Clone, Debug)]
pub struct Head {
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Unix seconds when the request arrived.
    pub created: u64,
    /// The model as the client named it.
    pub model: String,
    /// The backend's fingerprint.
    pub fingerprint: String,
}

/// `usage`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct UsageBody {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Their sum.
    pub total_tokens: usize,
    /// Of the prompt tokens, those served from the prefix cache.
    pub prompt_tokens_details: PromptTokensDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose keys and values came from the prefix cache.
    pub cached_tokens: usize,
}

impl UsageBody {
    /// Sums the usage of a request's choices: prompt counts once per prompt
    /// (`first_of_prompt` marks the choice that speaks for its prompt).
    pub fn add(&mut self, u: &Usage, first_of_prompt: bool) {
        if first_of_prompt {
            self.prompt_tokens += u.prompt_tokens;
            self.prompt_tokens_details.cached_tokens += u.cached_tokens;
        }
        self.completion_tokens += u.completion_tokens;
        self.total_tokens = self.prompt_tokens + self.completion_tokens;
    }
}

/// OpenAI's name of a finish reason (`Cancelled` is reported as an error, not
/// through this).
pub fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "abort",
    }
}

/// A whole chat completion.
#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Model name.
    pub model: String,
    /// Backend fingerprint.
    pub system_fingerprint: String,
    /// One per choice.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: UsageBody,
}

/// One choice of a chat completion.
#[derive(Debug, Serialize)]
pub struct ChatChoice {
    /// Its index.
    pub index: usize,
    /// The answer.
    pub message: ChatMessage,
    /// Log-probs, when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
}

/// The assistant's message.
#[derive(Debug, Serialize)]
pub struct ChatMessage {
    /// `assistant`.
    pub role: &'static str,
    /// The text; null when the answer is only tool calls.
    pub content: Option<String>,
    /// The model's reasoning, read out of its thinking tags (llama.cpp's and vLLM's field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Always null.
    pub refusal: Option<String>,
    /// The tools the answer calls, when it calls any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallBody>,
}

/// One call in an answer: `{"id", "type": "function", "function": {"name", "arguments"}}`.
#[derive(Debug, Serialize)]
pub struct ToolCallBody {
    /// `call_…`, unique per call.
    pub id: String,
    /// `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The function and its arguments (JSON text).
    pub function: FunctionCall,
}

/// A called function: its name and arguments, each present only when sent (streams send the
/// name once, then the arguments in pieces).
#[derive(Debug, Default, Serialize)]
pub struct FunctionCall {
    /// The function's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Arguments as JSON text (or the next piece of it).
    pub arguments: String,
}

/// A piece of a streamed call: its index, and on its first piece its id, type and name.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta {
    /// Which call of the answer, from 0.
    pub index: usize,
    /// The call's id, on its first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on its first piece.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The name (first piece) and arguments text.
    pub function: FunctionCall,
}

/// `choices[].logprobs` of chat.
#[derive(Debug, Default, Serialize)]
pub struct ChatLogprobs {
    /// One entry per generated token.
    pub content: Vec<ChatTokenLogprob>,
    /// Always null.
    pub refusal: Option<String>,
}

/// A generated token and its alternatives.
#[derive(Debug, Serialize)]
pub struct ChatTokenLogprob {
    /// The token's text (lossy UTF-8).
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The most likely tokens at this position.
    pub top_logprobs: Vec<TopLogprob>,
}

/// One alternative token.
#[derive(Debug, Serialize)]
pub struct TopLogprob {
    /// Its text (lossy UTF-8).
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

fn top(t: &TokenLogprob) -> TopLogprob {
    TopLogprob { token: String::from_utf8_lossy(&t.bytes).into_owned(), logprob: t.logprob, bytes: t.bytes.clone() }
}

impl ChatTokenLogprob {
    /// From the engine's log-probs of one token.
    pub fn from_engine(lp: &engine::Logprobs) -> Self {
        let c = top(&lp.chosen);
        ChatTokenLogprob {
            token: c.token,
            logprob: c.logprob,
            bytes: c.bytes,
            top_logprobs: lp.top.iter().map(top).collect(),
        }
    }
}

/// A streamed chat chunk.
#[derive(Debug, Serialize)]
pub struct ChatChunk {
    /// Same id for every chunk of a request.
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Model name.
    pub model: String,
    /// Backend fingerprint.
    pub system_fingerprint: String,
    /// The choices this chunk advances (empty in the usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Absent without `include_usage`; null in every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageBody>>,
}

/// One choice's step in a chat chunk.
#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    /// The choice.
    pub index: usize,
    /// What is new.
    pub delta: Delta,
    /// Log-probs of the tokens in this chunk.
    pub logprobs: Option<ChatLogprobs>,
    /// Set in the choice's last chunk.
    pub finish_reason: Option<&'static str>,
}

/// The new part of a streamed message.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    /// `assistant`, in the first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// New text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New reasoning text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// New tool calls or pieces of their arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A text completion, whole or one streamed chunk (same shape, as OpenAI's).
#[derive(Debug, Serialize)]
pub struct Completion {
    /// `cmpl-…`.
    pub id: String,
    /// `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Model name.
    pub model: String,
    /// Backend fingerprint.
    pub system_fingerprint: String,
    /// Choices.
    pub choices: Vec<CompletionChoice>,
    /// Always present whole; in a stream, absent without `include_usage` and
    /// null in every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageBody>>,
}

/// One completion choice.
#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    /// The text (new text, in a chunk).
    pub text: String,
    /// Its index: prompt × n + choice.
    pub index: usize,
    /// Log-probs, when asked for.
    pub logprobs: Option<CompletionLogprobs>,
    /// Set when the choice is done.
    pub finish_reason: Option<&'static str>,
}

/// Log-probs in the completions format: parallel arrays.
#[derive(Debug, Default, Serialize)]
pub struct CompletionLogprobs {
    /// Token texts.
    pub tokens: Vec<String>,
    /// Their log-probabilities.
    pub token_logprobs: Vec<f32>,
    /// Per position, the most likely tokens and their log-probabilities.
    pub top_logprobs: Vec<BTreeMap<String, f32>>,
    /// Byte offset of each token in the generated text.
    pub text_offset: Vec<usize>,
}

impl CompletionLogprobs {
    /// Appends one token; `offset` is where its text starts.
    pub fn push(&mut self, lp: &engine::Logprobs, offset: usize) {
        self.tokens.push(String::from_utf8_lossy(&lp.chosen.bytes).into_owned());
        self.token_logprobs.push(lp.chosen.logprob);
        self.top_logprobs
            .push(lp.top.iter().map(|t| (String::from_utf8_lossy(&t.bytes).into_owned(), t.logprob)).collect());
        self.text_offset.push(offset);
    }
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The served model.
    pub data: Vec<ModelCard>,
}

/// One model.
#[derive(Debug, Serialize)]
pub struct ModelCard {
    /// Its name.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// `seed`.
    pub owned_by: &'static str,
    /// Seed's extension: the sampling a chat front end should send for this name (absent while
    /// its model is loading). The API itself keeps its own defaults for fields a client omits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_sampling: Option<ChatSampling>,
    /// Seed's extension: how a chat page presents this name, when it is a configured edition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition: Option<EditionCard>,
}

/// An edition's face on the chat page (`seed.toml`'s `display_name`, `greeting`,
/// `suggestions`, `accent`, `language`) and its persona, which the page shows as the system
/// prompt a user may replace.
#[derive(Debug, Serialize, PartialEq)]
pub struct EditionCard {
    /// The assistant's name as people see it (default: the edition's name).
    pub display_name: String,
    /// The interface language the edition asks for (`zh`, `en`, …).
    pub language: Option<String>,
    /// The greeting of an empty chat.
    pub greeting: Option<String>,
    /// First prompts to offer.
    pub suggestions: Vec<String>,
    /// `#rrggbb`.
    pub accent: Option<String>,
    /// The persona (`system`).
    pub system: Option<String>,
}

/// The sampling of a chat with one model or edition: the edition's own defaults, over the model
/// file's recommendations (`general.sampling.*`), over Ollama-like defaults
/// ([`model::recommended::chat_defaults`]). The chat page sends these as request fields.
#[derive(Debug, Serialize, PartialEq)]
pub struct ChatSampling {
    /// `temperature`.
    pub temperature: f32,
    /// `top_k` (0: off).
    pub top_k: usize,
    /// `top_p`.
    pub top_p: f32,
    /// `min_p`.
    pub min_p: f32,
    /// `repetition_penalty` (over the last 64 tokens).
    pub repetition_penalty: f32,
}
