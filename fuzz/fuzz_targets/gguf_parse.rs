//! A GGUF file from a stranger: parse it and, when it parses, load everything a
//! model needs from it (hyper-parameters, weights, tokenizer, chat template).
//! Every input must end in a value or a typed error; a panic is a crash.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use model::gguf::GgufFile;
use model::LoadedModel;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else { return };
    for (key, value) in file.metadata() {
        let _ = (key.len(), value.to_string());
    }
    for t in file.tensors() {
        let bytes = file.tensor_data(t);
        let _ = (t.n_elements(), t.row_len(), t.n_rows(), bytes.len());
    }
    if let Ok(m) = LoadedModel::from_file(Arc::new(file)) {
        let ids = m.tokenizer.encode("Hello, world! <|im_start|>", true, true);
        let _ = m.tokenizer.decode(&ids, true);
        if let Some(t) = &m.chat_template {
            let _ = t.render(&[model::chat::Message::new("user", "hi")], true);
        }
    }
});
