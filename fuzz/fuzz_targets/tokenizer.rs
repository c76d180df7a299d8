//! The real vocabularies on arbitrary bytes. The first byte picks the model and
//! the flags; the rest is text (seen through a lossy UTF-8 decode, as the server
//! sees a body) and, read as little-endian u32s, token ids to decode. For valid
//! UTF-8 without special-token parsing, `decode(encode(s)) == s` must hold, but
//! for the bytes the vocabulary has no token for.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use model::gguf::GgufFile;
use model::tokenizer::Tokenizer;

fn tokenizers() -> &'static [Tokenizer] {
    static T: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    T.get_or_init(|| {
        seed_fuzz::MODELS
            .iter()
            .map(|name| {
                let path = seed_fuzz::model_path(name);
                let file = GgufFile::open(&path)
                    .unwrap_or_else(|e| panic!("{}: {e} (run `seed pull {name}` first)", path.display()));
                Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{name}: {e}"))
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let all = tokenizers();
    let t = &all[usize::from(flags & 1) % all.len()];
    let add_special = flags & 2 != 0;
    let parse_special = flags & 4 != 0;
    if flags & 8 != 0 {
        // Arbitrary ids, most of them out of the vocabulary.
        let ids: Vec<u32> =
            rest.chunks(4).map(|c| c.iter().rev().fold(0u32, |a, &b| (a << 8) | u32::from(b))).collect();
        let _ = t.decode(&ids, flags & 16 != 0);
        for &id in &ids {
            let _ = (t.token_to_piece(id, true), t.token_text(id), t.is_eog(id), t.is_control(id));
        }
        return;
    }
    match std::str::from_utf8(rest) {
        Ok(s) => {
            let ids = t.encode(s, add_special, parse_special);
            let back = t.decode(&ids, false);
            if !add_special && !parse_special {
                // A byte-level vocabulary may lack the token of a byte (SmolLM2 has
                // none for 21 of them, `\u{4}` among them); llama.cpp drops such bytes
                // and so do we. So the text must come back as each of its characters
                // comes back alone: whole, or without the bytes that have no token.
                let want: Vec<u8> = s
                    .chars()
                    .flat_map(|c| t.decode(&t.encode(c.encode_utf8(&mut [0; 4]), false, false), false))
                    .collect();
                assert!(
                    back == want,
                    "round trip of {s:?} gave {:?}, want {:?}",
                    String::from_utf8_lossy(&back),
                    String::from_utf8_lossy(&want)
                );
            }
        }
        Err(_) => {
            let s = String::from_utf8_lossy(rest);
            let ids = t.encode(&s, add_special, parse_special);
            let _ = t.decode(&ids, true);
        }
    }
});
