//! An HTTP body → the validated chat or completion request, as the routes do it.
//! Every input must end in a request whose values are in range or an
//! `ApiError` that is a client error (4xx); a panic is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use server::validate::{chat, completion, parse_json, Context};
use server::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let ctx = Context { n_vocab: 49_152, limits: &limits };
    let body = match parse_json(data) {
        Ok(v) => v,
        Err(e) => {
            assert!(e.status().is_client_error(), "{e}");
            return;
        }
    };
    match chat::parse(&body, ctx) {
        Ok(r) => {
            assert!(!r.messages.is_empty() && r.params.n >= 1 && r.params.n <= limits.max_choices);
            assert!(r.params.stop.len() <= limits.max_stop);
            r.params.sampling.validate().expect("validated sampling is valid");
        }
        Err(e) => assert!(e.status().is_client_error(), "{e}"),
    }
    match completion::parse(&body, ctx) {
        Ok(r) => {
            assert!(r.params.n >= 1 && r.params.stop.len() <= limits.max_stop);
            r.params.sampling.validate().expect("validated sampling is valid");
        }
        Err(e) => assert!(e.status().is_client_error(), "{e}"),
    }
});
