//! The `seed` command's library half: the model catalogue, cache and fetching,
//! and the one-sequence generation loop, shared by the binary and by the
//! integration tests that need real models.

pub mod bench;
pub mod catalogue;
pub mod fetch;
pub mod generate;
pub mod perplexity;
