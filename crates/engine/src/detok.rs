//! Turning generated tokens into text for streaming: never splitting a UTF-8
//! character across events, and holding back text that might begin a stop
//! string until it is known not to.

/// Incremental detokenizer with stop strings.
#[derive(Debug, Default)]
pub struct TextStream {
    /// Bytes not yet turned into text (an incomplete UTF-8 sequence).
    pending: Vec<u8>,
    /// Decoded text not yet released (could be the start of a stop string).
    held: String,
    stops: Vec<String>,
    /// Longest stop string, in bytes.
    max_stop: usize,
    /// The stop string that ended the stream, once one has.
    matched: Option<String>,
}

/// What a token did to the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Text that can be released now (possibly empty).
    Text(String),
    /// A stop string appeared: release this text (before the stop string) and end.
    Stop(String),
}

impl TextStream {
    /// A stream that stops at any of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        let stops: Vec<String> = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let max_stop = stops.iter().map(String::len).max().unwrap_or(0);
        TextStream { pending: Vec::new(), held: String::new(), stops, max_stop, matched: None }
    }

    /// The stop string that ended the stream, if one did.
    pub fn matched(&self) -> Option<&str> {
        self.matched.as_deref()
    }

    /// Adds a token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Push {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => {
                // Invalid bytes (not just incomplete): replace them and go on.
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return self.add_text(&text);
            }
            Err(e) => e.valid_up_to(),
        };
        let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        self.add_text(&text)
    }

    fn add_text(&mut self, text: &str) -> Push {
        self.held.push_str(text);
        if self.stops.is_empty() {
            return Push::Text(std::mem::take(&mut self.held));
        }
        // The earliest stop string in the held text ends the stream (the longest of those
        // starting there).
        let found = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s)))
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.len().cmp(&a.1.len())));
        if let Some((at, stop)) = found {
            self.matched = Some(stop.clone());
            let out = self.held[..at].to_string();
            self.held.clear();
            return Push::Stop(out);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let keep = self.partial_stop_suffix();
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        Push::Text(out)
    }

    /// Length of the longest suffix of `held` that begins some stop string.
    fn partial_stop_suffix(&self) -> usize {
        let h = self.held.as_str();
        let longest = self.max_stop.saturating_sub(1).min(h.len());
        for len in (1..=longest).rev() {
            let start = h.len() - len;
            if !h.is_char_boundary(start) {
                continue;
            }
            let tail = &h[start..];
            if self.stops.iter().any(|s| s.starts_with(tail)) {
                return len;
            }
        }
        0
    }

    /// Everything still held when generation ends (an incomplete UTF-8 tail is
    /// dropped, as OpenAI's API does).
    pub fn finish(&mut self) -> String {
        self.pending.clear();
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(stops: &[&str]) -> TextStream {
        TextStream::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn utf8_is_never_split() {
        let mut s = stream(&[]);
        let bytes = "é中".as_bytes();
        assert_eq!(s.push(&bytes[..1]), Push::Text(String::new()));
        assert_eq!(s.push(&bytes[1..3]), Push::Text("é".into()));
        assert_eq!(s.push(&bytes[3..]), Push::Text("中".into()));
    }

    #[test]
    fn stop_strings_end_the_stream_without_being_sent() {
        let mut s = stream(&["END"]);
        assert_eq!(s.push(b"hello E"), Push::Text("hello ".into()));
        assert_eq!(s.push(b"N"), Push::Text(String::new()));
        assert_eq!(s.push(b"Dx"), Push::Stop(String::new()));
        let mut s = stream(&["END"]);
        assert_eq!(s.push(b"ab EN"), Push::Text("ab ".into()));
        assert_eq!(s.push(b"Xcd"), Push::Text("ENXcd".into()));
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        let mut s = stream(&["yz", "b"]);
        assert_eq!(s.push(b"aXyzb"), Push::Stop("aX".into()));
        assert_eq!(s.matched(), Some("yz"));
    }

    #[test]
    fn held_text_is_released_at_the_end_and_invalid_bytes_are_replaced() {
        let mut s = stream(&["STOP"]);
        assert_eq!(s.push(b"go ST"), Push::Text("go ".into()));
        assert_eq!(s.finish(), "ST");
        let mut s = stream(&[]);
        assert_eq!(s.push(&[0xff, b'a']), Push::Text("\u{fffd}a".into()));
        assert_eq!(s.push(&[0xe4, 0xb8]), Push::Text(String::new()));
        assert_eq!(s.finish(), "");
    }
}
