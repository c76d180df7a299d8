//! The `seed` command's library half: the model catalogue, cache and fetching (from pip
//! and from the hubs), quantization,
//! and the one-sequence generation loop, shared by the binary and by the
//! integration tests that need real models.

pub mod atomic;
pub mod bench;
pub mod catalogue;
pub mod fetch;
pub mod generate;
pub mod hub;
pub mod perplexity;
pub mod quantize;
