//! Streaming responses: engine events become server-sent events.
//!
//! The [`Streamer`] reads a submission's events, tracks each choice for metering and records
//! the request when it ends; a [`Shape`] turns what happened into frames — OpenAI's chunks here
//! ([`OpenAi`]), Anthropic's and the Responses API's events in their adapters.
//!
//! In OpenAI's shape each event is one `data: <json>\n\n` frame; the stream ends with
//! `data: [DONE]`. Chat streams open with a `role` chunk per choice; text
//! chunks follow (the engine never splits a UTF-8 character, and holds back
//! text that may begin a stop string); each choice closes with a chunk that
//! carries its `finish_reason`; with `stream_options.include_usage` every chunk
//! has `"usage": null` and a last chunk with no choices carries the usage. An
//! engine error, or an abort at shutdown, is sent as an `{"error":…}` frame
//! before `[DONE]`.
//!
//! With tools ([`chat_with_tools`]), each choice's text goes through the tool format's reader:
//! text before a call streams as `content`, each call opens with a `tool_calls` delta carrying
//! its index, id, type and name (arguments `""`), its arguments follow in pieces, and the choice
//! ends with `finish_reason: "tool_calls"` — as OpenAI streams them.
//!
//! The stream owns the [`Submission`]: when the client disconnects, the server
//! drops the stream, and the engine cancels every choice within a step.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use engine::{Event, FinishReason};
use serde::Serialize;

use crate::error::ApiError;
use crate::generate::Submission;
use crate::meter::{MeterGuard, Outcome};
use crate::schema::{
    finish_reason, ChatChunk, ChatLogprobs, ChatTokenLogprob, ChunkChoice, Completion, CompletionChoice,
    CompletionLogprobs, Delta, FunctionCall, Head, ToolCallDelta, UsageBody,
};
use model::chat::tools::{self, Plan};

/// Which API's chunk shapes to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `chat.completion.chunk`.
    Chat,
    /// `text_completion`.
    Completion,
}

/// How long a stream may stay silent (queued, or a long prompt) before a
/// keep-alive comment is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// One server-sent event: an optional `event:` name and its `data:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The `event:` line (Anthropic's and the Responses API's streams name every event).
    pub event: Option<&'static str>,
    /// The `data:` payload.
    pub data: String,
}

impl Frame {
    /// A frame with data only.
    pub fn data(data: String) -> Frame {
        Frame { event: None, data }
    }
}

/// How a stream looks to its client: the frames for each thing that happens.
pub trait Shape: Send {
    /// Frames that open the stream.
    fn open(&mut self) -> Vec<Frame>;
    /// Choice `index` has new text (maybe empty) and, when asked for, its token's log-probs.
    fn text(&mut self, index: usize, text: &str, lp: Option<&engine::Logprobs>) -> Vec<Frame>;
    /// Choice `index` ended (with the last `text` it held back) for `reason`; `stop` is the stop
    /// string that ended it, if one did.
    fn done(
        &mut self,
        index: usize,
        text: &str,
        reason: FinishReason,
        stop: Option<&str>,
        usage: &engine::Usage,
    ) -> Vec<Frame>;
    /// Every choice ended and the request is recorded: the closing frames.
    fn close(&mut self, usage: &UsageBody) -> Vec<Frame>;
    /// An error ends the stream: its frames.
    fn fail(&mut self, e: &ApiError) -> Vec<Frame>;
}

/// The SSE response for a submission.
pub fn response(sub: Submission, api: Api, head: Head, include_usage: bool) -> Response {
    let guard = MeterGuard::new(None, 0, sub.n_choices);
    response_metered(sub, api, head, include_usage, guard)
}

/// As [`response`], finishing `guard` when the stream ends: before `[DONE]` (a failure to store
/// becomes the error frame), or as `cancelled` when the client goes away first.
pub fn response_metered(sub: Submission, api: Api, head: Head, include_usage: bool, guard: MeterGuard) -> Response {
    let shape = OpenAi::new(api, head, include_usage, sub.n_choices, None);
    shaped(sub, Box::new(shape), guard)
}

/// A chat stream whose choices are read by `plan`: tool calls, reasoning apart.
pub fn chat_with_tools(sub: Submission, head: Head, include_usage: bool, guard: MeterGuard, plan: Plan) -> Response {
    let shape = OpenAi::new(Api::Chat, head, include_usage, sub.n_choices, Some(&plan));
    shaped(sub, Box::new(shape), guard)
}

/// The SSE response for a submission in any [`Shape`], finishing `guard` when it ends.
pub fn shaped(sub: Submission, shape: Box<dyn Shape>, guard: MeterGuard) -> Response {
    let streamer = Streamer::new(sub, shape, guard);
    let stream = futures_util::stream::unfold(streamer, |mut s| async move {
        let frame = s.next_frame().await?;
        let mut event = SseEvent::default().data(frame.data);
        if let Some(name) = frame.event {
            event = event.event(name);
        }
        Some((Ok::<_, Infallible>(event), s))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}

/// The `data:` payload that ends every OpenAI stream.
pub const DONE: &str = "[DONE]";

/// Reads a submission's events into frames of its [`Shape`], and records the request.
struct Streamer {
    sub: Submission,
    shape: Box<dyn Shape>,
    /// Frames ready to send.
    queue: VecDeque<Frame>,
    /// Choices not finished yet.
    remaining: usize,
    usage: UsageBody,
    ended: bool,
    /// Records the request when it ends; tracks each choice's text and tokens.
    guard: MeterGuard,
    /// How the first choice ended.
    first_finish: Option<FinishReason>,
}

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":{{\"message\":\"serializing: {e}\"}}}}"))
}

impl Streamer {
    fn new(sub: Submission, mut shape: Box<dyn Shape>, guard: MeterGuard) -> Self {
        let queue = shape.open().into();
        let remaining = sub.n_choices;
        Streamer { sub, shape, queue, remaining, usage: UsageBody::default(), ended: false, guard, first_finish: None }
    }

    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.queue.pop_front() {
                return Some(f);
            }
            if self.ended {
                return None;
            }
            if self.remaining == 0 {
                self.finish().await;
                continue;
            }
            match self.sub.next().await {
                Some((index, event)) => self.on_event(index, event),
                None => self.fail(ApiError::Internal("the engine stopped before the request finished".into())),
            }
        }
    }

    fn on_event(&mut self, index: usize, event: Event) {
        match event {
            Event::Token { text, logprobs, .. } => {
                if let Some(p) = self.guard.progress.get_mut(index) {
                    p.0.push_str(&text);
                    p.1 += 1;
                }
                let frames = self.shape.text(index, &text, logprobs.as_ref());
                self.queue.extend(frames);
            }
            Event::Done { finish_reason: FinishReason::Cancelled, .. } => {
                self.fail(ApiError::Unavailable("the request was aborted: the server is shutting down".into()))
            }
            Event::Done { finish_reason: reason, usage, text, stop_sequence } => {
                let first = self.sub.first_of_prompt(index);
                self.usage.add(&usage, first);
                if let Some(p) = self.guard.progress.get_mut(index) {
                    p.0.push_str(&text);
                }
                if index == 0 {
                    self.first_finish = Some(reason);
                }
                let frames = self.shape.done(index, &text, reason, stop_sequence.as_deref(), &usage);
                self.queue.extend(frames);
                self.remaining = self.remaining.saturating_sub(1);
            }
            Event::Error { message } => self.fail(ApiError::Internal(format!("generation failed: {message}"))),
            Event::Embedding { .. } => {} // never sent to a generation
        }
    }

    /// Every choice is done: the records written (on the blocking pool: the store syncs to
    /// disk), then the shape's closing frames. A client that goes away meanwhile does not stop
    /// the write: the guard has moved to the blocking task.
    async fn finish(&mut self) {
        let outcome = Outcome {
            usage: self.usage,
            finish_reason: self.first_finish.map_or("stop", finish_reason),
            text: self.guard.progress.first().map(|p| p.0.clone()).unwrap_or_default(),
        };
        let mut guard = std::mem::replace(&mut self.guard, MeterGuard::new(None, 0, 0));
        let written = tokio::task::spawn_blocking(move || guard.finish(&outcome)).await;
        if let Err(e) = written.unwrap_or_else(|e| Err(ApiError::Internal(format!("recording the request: {e}")))) {
            self.fail(e);
            return;
        }
        let frames = self.shape.close(&self.usage);
        self.queue.extend(frames);
        self.ended = true;
    }

    /// Ends the stream with the shape's error frames.
    fn fail(&mut self, e: ApiError) {
        let frames = self.shape.fail(&e);
        self.queue.extend(frames);
        self.ended = true;
    }
}

/// OpenAI's chunks: `chat.completion.chunk` or `text_completion`, then `[DONE]`.
pub struct OpenAi {
    api: Api,
    head: Head,
    include_usage: bool,
    /// Bytes of text sent so far, per choice (completions' `text_offset`).
    offsets: Vec<usize>,
    /// With tools: each choice's reader.
    tools: Option<ToolStreams>,
    out: Vec<Frame>,
}

/// Each choice's tool-call reader, and how many calls it has opened.
struct ToolStreams {
    readers: Vec<tools::Stream>,
    calls: Vec<usize>,
}

impl OpenAi {
    /// Chunks of `api` for `n` choices; with `tools`, chat text is read for calls.
    pub fn new(api: Api, head: Head, include_usage: bool, n: usize, tools: Option<&Plan>) -> OpenAi {
        OpenAi {
            api,
            head,
            include_usage,
            offsets: vec![0; n],
            tools: tools.map(|p| ToolStreams { readers: (0..n).map(|_| p.stream()).collect(), calls: vec![0; n] }),
            out: Vec::new(),
        }
    }

    fn take(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.out)
    }
}

impl Shape for OpenAi {
    fn open(&mut self) -> Vec<Frame> {
        if self.api == Api::Chat {
            for index in 0..self.offsets.len() {
                let delta = Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() };
                self.push_chat(ChunkChoice { index, delta, logprobs: None, finish_reason: None });
            }
        }
        self.take()
    }

    fn text(&mut self, index: usize, text: &str, lp: Option<&engine::Logprobs>) -> Vec<Frame> {
        if self.tools.is_some() {
            self.push_tool_text(index, text, lp, false);
        } else if !text.is_empty() || lp.is_some() {
            self.push_text(index, text.to_string(), lp, None);
        }
        self.take()
    }

    fn done(
        &mut self,
        index: usize,
        text: &str,
        reason: FinishReason,
        _stop: Option<&str>,
        _usage: &engine::Usage,
    ) -> Vec<Frame> {
        if self.tools.is_some() {
            self.push_tool_text(index, text, None, true);
            let called = self.tools.as_ref().is_some_and(|t| t.calls.get(index).is_some_and(|&c| c > 0));
            let finish = match reason {
                FinishReason::Stop if called => "tool_calls",
                other => finish_reason(other),
            };
            self.push_chat(ChunkChoice { index, delta: Delta::default(), logprobs: None, finish_reason: Some(finish) });
        } else if self.api == Api::Chat && !text.is_empty() {
            self.push_text(index, text.to_string(), None, None);
            self.push_text(index, String::new(), None, Some(reason));
        } else {
            self.push_text(index, text.to_string(), None, Some(reason));
        }
        self.take()
    }

    fn close(&mut self, usage: &UsageBody) -> Vec<Frame> {
        if self.include_usage {
            let usage = Some(Some(*usage));
            match self.api {
                Api::Chat => self.push_chat_chunk(Vec::new(), usage),
                Api::Completion => self.push_completion(Vec::new(), usage),
            }
        }
        self.out.push(Frame::data(DONE.into()));
        self.take()
    }

    fn fail(&mut self, e: &ApiError) -> Vec<Frame> {
        self.out.push(Frame::data(json(&e.body())));
        self.out.push(Frame::data(DONE.into()));
        self.take()
    }
}

impl OpenAi {
    /// Queues a chunk with new text (and/or log-probs, and/or the end).
    fn push_text(&mut self, index: usize, text: String, lp: Option<&engine::Logprobs>, end: Option<FinishReason>) {
        let finish = end.map(finish_reason);
        match self.api {
            Api::Chat => {
                let logprobs =
                    lp.map(|l| ChatLogprobs { content: vec![ChatTokenLogprob::from_engine(l)], refusal: None });
                let delta = match end {
                    Some(_) => Delta::default(),
                    None => Delta { content: Some(text), ..Delta::default() },
                };
                self.push_chat(ChunkChoice { index, delta, logprobs, finish_reason: finish });
            }
            Api::Completion => {
                let offset = self.offsets.get(index).copied().unwrap_or(0);
                let logprobs = lp.map(|l| {
                    let mut c = CompletionLogprobs::default();
                    c.push(l, offset);
                    c
                });
                if let Some(o) = self.offsets.get_mut(index) {
                    *o += text.len();
                }
                let choice = CompletionChoice { text, index, logprobs, finish_reason: finish };
                self.push_completion(vec![choice], self.include_usage.then_some(None));
            }
        }
    }

    /// Tools: `text` through the choice's reader, each thing it finds a chunk (the token's
    /// log-probs on the first, or on an empty one); at the `end`, what the reader held back.
    fn push_tool_text(&mut self, index: usize, text: &str, lp: Option<&engine::Logprobs>, end: bool) {
        let Some(t) = self.tools.as_mut() else { return };
        let Some(reader) = t.readers.get_mut(index) else { return };
        let events = if end { reader.end(text) } else { reader.push(text) };
        let mut logprobs = lp.map(|l| ChatLogprobs { content: vec![ChatTokenLogprob::from_engine(l)], refusal: None });
        if events.is_empty() && logprobs.is_some() {
            self.push_chat(ChunkChoice { index, delta: Delta::default(), logprobs, finish_reason: None });
            return;
        }
        for e in events {
            let delta = match e {
                tools::Event::Content(text) => Delta { content: Some(text), ..Delta::default() },
                tools::Event::Reasoning(text) => Delta { reasoning_content: Some(text), ..Delta::default() },
                tools::Event::Call { index: call, name } => {
                    if let Some(c) = self.tools.as_mut().and_then(|t| t.calls.get_mut(index)) {
                        *c += 1;
                    }
                    let piece = ToolCallDelta {
                        index: call,
                        id: Some(crate::routes::response_id("call_")),
                        kind: Some("function"),
                        function: FunctionCall { name: Some(name), arguments: String::new() },
                    };
                    Delta { tool_calls: Some(vec![piece]), ..Delta::default() }
                }
                tools::Event::Arguments { index: call, text } => {
                    let piece = ToolCallDelta {
                        index: call,
                        id: None,
                        kind: None,
                        function: FunctionCall { name: None, arguments: text },
                    };
                    Delta { tool_calls: Some(vec![piece]), ..Delta::default() }
                }
            };
            self.push_chat(ChunkChoice { index, delta, logprobs: logprobs.take(), finish_reason: None });
        }
    }

    fn push_chat(&mut self, choice: ChunkChoice) {
        self.push_chat_chunk(vec![choice], self.include_usage.then_some(None));
    }

    fn push_chat_chunk(&mut self, choices: Vec<ChunkChoice>, usage: Option<Option<UsageBody>>) {
        let h = &self.head;
        let chunk = ChatChunk {
            id: h.id.clone(),
            object: "chat.completion.chunk",
            created: h.created,
            model: h.model.clone(),
            system_fingerprint: h.fingerprint.clone(),
            choices,
            usage,
        };
        self.out.push(Frame::data(json(&chunk)));
    }

    fn push_completion(&mut self, choices: Vec<CompletionChoice>, usage: Option<Option<UsageBody>>) {
        let h = &self.head;
        let chunk = Completion {
            id: h.id.clone(),
            object: "text_completion",
            created: h.created,
            model: h.model.clone(),
            system_fingerprint: h.fingerprint.clone(),
            choices,
            usage,
        };
        self.out.push(Frame::data(json(&chunk)));
    }
}
