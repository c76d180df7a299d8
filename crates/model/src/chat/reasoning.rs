//! Thinking models write their reasoning between tags before the answer — `<think>…</think>`
//! (Qwen 3, DeepSeek R1 and its distills), `<seed:think>…</seed:think>` (Seed-OSS). As
//! llama.cpp's server does by default (its `deepseek` reasoning format), the reasoning is
//! taken out of the answer's text and returned on its own (`reasoning_content`).
//!
//! The tags come from the chat template. Some templates end the prompt inside the thinking
//! (DeepSeek R1's adds `<think>\n`; Seed-OSS's, for a thinking budget of 0, its opening tag and
//! a budget note), so the answer starts with reasoning and has only the closing tag;
//! [`Thinking::for_prompt`] sees that in the rendered prompt. An answer whose
//! reasoning never closes (cut by `max_tokens`) is all reasoning; an answer that does not
//! open with the tag (after white space) is all answer.

/// A template's thinking tags, and whether the prompt leaves the model inside them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thinking {
    open: &'static str,
    close: &'static str,
    /// The prompt ends with the opening tag: the answer begins as reasoning.
    pub inside: bool,
}

const TAGS: &[(&str, &str)] = &[("<seed:think>", "</seed:think>"), ("<think>", "</think>")];

impl Thinking {
    /// The thinking tags `template` (its source) writes, with `prompt` (rendered by it) telling
    /// whether the answer starts inside them; `None` for templates of models that do not think.
    pub fn for_prompt(template: &str, prompt: &str) -> Option<Thinking> {
        let &(open, close) = TAGS.iter().find(|(open, close)| template.contains(open) && template.contains(close))?;
        // Inside when the prompt's last opening tag has no closing tag after it: DeepSeek R1's
        // `…<think>\n`, Seed-OSS's `…<seed:think><seed:cot_budget_reflect>` (a budget of 0); not
        // Qwen 3's `<think>\n\n</think>\n\n` (thinking off) nor earlier turns' closed reasoning.
        let inside = prompt.rfind(open).is_some_and(|o| prompt.rfind(close).is_none_or(|c| c < o));
        Some(Thinking { open, close, inside })
    }

    /// The opening tag.
    pub fn open(&self) -> &'static str {
        self.open
    }

    /// The closing tag.
    pub fn close(&self) -> &'static str {
        self.close
    }

    /// Splits a whole answer into its reasoning and its text.
    pub fn split(&self, text: &str) -> (String, String) {
        let mut stream = ThinkStream::new(*self);
        let mut pieces = stream.push(text);
        pieces.extend(stream.finish());
        let (mut reasoning, mut content) = (String::new(), String::new());
        for p in pieces {
            match p {
                Piece::Reasoning(t) => reasoning.push_str(&t),
                Piece::Content(t) => content.push_str(&t),
            }
        }
        (reasoning, content)
    }
}

/// A part of an answer as it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Reasoning text.
    Reasoning(String),
    /// Answer text.
    Content(String),
}

/// Reads an answer as it is generated, sending reasoning and answer text apart; what it sends,
/// put together, is [`Thinking::split`] of the whole.
#[derive(Clone, Debug)]
pub struct ThinkStream {
    thinking: Thinking,
    pending: String,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before anything but white space: the opening tag may still come.
    Start,
    /// Inside the reasoning.
    Reasoning,
    /// Just past the closing tag: white space before the answer is dropped.
    AfterClose,
    /// The answer.
    Content,
}

impl ThinkStream {
    /// A reader for an answer under `thinking`.
    pub fn new(thinking: Thinking) -> ThinkStream {
        let state = if thinking.inside { State::Reasoning } else { State::Start };
        ThinkStream { thinking, pending: String::new(), state }
    }

    /// Reads the answer's next piece.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Start => {
                    let t = self.pending.trim_start();
                    if t.is_empty() || (t.len() < self.thinking.open.len() && self.thinking.open.starts_with(t)) {
                        break;
                    }
                    match t.strip_prefix(self.thinking.open) {
                        Some(rest) => {
                            self.pending = rest.to_string();
                            self.state = State::Reasoning;
                        }
                        None => self.state = State::Content,
                    }
                }
                State::Reasoning => {
                    if let Some(i) = self.pending.find(self.thinking.close) {
                        let reasoning: String = self.pending.drain(..i).collect();
                        self.pending.drain(..self.thinking.close.len());
                        out.push(Piece::Reasoning(reasoning));
                        self.state = State::AfterClose;
                        continue;
                    }
                    let send = self.pending.len() - partial_tail(&self.pending, self.thinking.close);
                    out.push(Piece::Reasoning(self.pending.drain(..send).collect()));
                    break;
                }
                State::AfterClose => {
                    let t = self.pending.trim_start();
                    if t.is_empty() {
                        self.pending.clear();
                        break;
                    }
                    self.pending = t.to_string();
                    self.state = State::Content;
                }
                State::Content => {
                    out.push(Piece::Content(std::mem::take(&mut self.pending)));
                    break;
                }
            }
        }
        out.retain(|p| !matches!(p, Piece::Reasoning(t) | Piece::Content(t) if t.is_empty()));
        out
    }

    /// The answer ended: what was held back.
    pub fn finish(&mut self) -> Vec<Piece> {
        let rest = std::mem::take(&mut self.pending);
        let piece = match self.state {
            State::Reasoning => Piece::Reasoning(rest),
            State::AfterClose => Piece::Content(String::new()),
            State::Start | State::Content => Piece::Content(rest),
        };
        self.state = State::Content;
        [piece].into_iter().filter(|p| !matches!(p, Piece::Reasoning(t) | Piece::Content(t) if t.is_empty())).collect()
    }
}

/// Bytes at the end of `text` that may begin `tag` (held back until the next piece says).
pub(super) fn partial_tail(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| text.len() >= n && text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN3: &str =
        "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}";

    #[test]
    fn tags_and_where_the_answer_starts_come_from_the_template_and_prompt() {
        assert_eq!(Thinking::for_prompt("{{ messages }}", "x"), None);
        let t = Thinking::for_prompt(QWEN3, "<|im_start|>assistant\n").unwrap();
        assert!(!t.inside);
        let r1 = Thinking::for_prompt("{{ '<think>' }}{{ '</think>' }}", "<｜Assistant｜><think>\n").unwrap();
        assert!(r1.inside);
        let seed = Thinking::for_prompt("'<seed:think>' '</seed:think>'", "assistant\n").unwrap();
        assert_eq!(seed.split("<seed:think>hm</seed:think>\nHi."), ("hm".into(), "Hi.".into()));
        // Seed-OSS with a thinking budget of 0 opens the reasoning and its budget note itself.
        let zero = "<seed:bos>assistant\n<seed:think><seed:cot_budget_reflect>";
        assert!(Thinking::for_prompt("'<seed:think>' '</seed:think>'", zero).unwrap().inside);
        // Qwen 3 with thinking off closes it in the prompt; earlier turns' reasoning is closed.
        assert!(!Thinking::for_prompt(QWEN3, "assistant\n<think>\n\n</think>\n\n").unwrap().inside);
        assert!(!Thinking::for_prompt(QWEN3, "<think>a</think>b<|im_start|>assistant\n").unwrap().inside);
    }

    #[test]
    fn answers_split_whole_and_streamed_alike() {
        let plain = Thinking::for_prompt(QWEN3, "assistant\n").unwrap();
        let inside = Thinking { inside: true, ..plain };
        let cases = [
            (plain, "\n<think>\nLet me see: 2+2.\n</think>\n\nIt is 4.", ("\nLet me see: 2+2.\n", "It is 4.")),
            (plain, "It is 4, <think> no tags here.", ("", "It is 4, <think> no tags here.")),
            (plain, "<think>cut off before the end", ("cut off before the end", "")),
            (plain, "<think></think>Only the answer.", ("", "Only the answer.")),
            (
                inside,
                "Reasoning é😀 </thi</think>\n\nAnswer </think> stays.",
                ("Reasoning é😀 </thi", "Answer </think> stays."),
            ),
            (inside, "never closed", ("never closed", "")),
        ];
        for (t, text, (reasoning, content)) in cases {
            assert_eq!(t.split(text), (reasoning.to_string(), content.to_string()), "{text:?}");
            for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                let mut s = ThinkStream::new(t);
                let mut pieces = s.push(&text[..cut]);
                pieces.extend(s.push(&text[cut..]));
                pieces.extend(s.finish());
                let (mut r, mut c) = (String::new(), String::new());
                for p in pieces {
                    match p {
                        Piece::Reasoning(x) => r.push_str(&x),
                        Piece::Content(x) => c.push_str(&x),
                    }
                }
                assert_eq!((r.as_str(), c.as_str()), (reasoning, content), "{text:?} cut at {cut}");
            }
        }
    }
}
