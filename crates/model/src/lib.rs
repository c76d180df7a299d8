//! Seed's model layer: from a GGUF file to logits and text.
//!
//! - [`gguf`]: the GGUF reader (the file is hostile input);
//! - [`tokenizer`]: byte-level BPE (gpt2) and SentencePiece-style (llama) vocabularies;
//! - [`chat`]: the chat template, rendered in a sandbox;
//! - [`sampler`]: choosing the next token (the random number passed in);
//!
//! Synchronous code only: no async runtime, no threads of its own beyond the
//! kernels' pool.

pub mod chat;
pub mod gguf;
pub mod sampler;
pub mod tokenizer;
