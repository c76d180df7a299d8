//! Seed's compute kernels.
//!
//! Everything that touches numbers in bulk lives here, so that the rest of Seed is
//! free of `unsafe` and of CPU-specific code:
//! - [`types`]: the ggml tensor types (ids, block sizes);
//! - [`pool`]: the thread pool that runs each parallel region;
//! - [`ops`]: RMSNorm, RoPE, softmax, activations.
//!
//! Every SIMD kernel has a scalar twin that is always compiled and tested against it.
#![allow(unsafe_code)] // SIMD intrinsics and the pool's job pointer; each block says why it is sound.

pub mod ops;
pub mod pool;
pub mod types;

pub use pool::ThreadPool;
pub use types::{GgmlType, QK_K};
