//! A hostile chat template (it comes from a stranger's GGUF) rendered over a
//! conversation. The input is `template \0 role \0 content \0 role \0 content …`.
//! Compiling or rendering must end in text or a typed error within the fuel
//! budget and the output cap; a panic or a hang is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::chat::{ChatTemplate, Message};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let messages: Vec<Message> = rest.chunks(2).map(|c| Message::new(c[0], c.get(1).copied().unwrap_or(""))).collect();
    // A smaller budget than the server's keeps each run fast; the limits are the same code.
    let Ok(t) = ChatTemplate::with_limits(source, "<s>", "</s>", 200_000, 1 << 20) else { return };
    let _ = t.render(&messages, true);
    let _ = t.render(&messages, false);
});
