//! Seed's compute kernels.
//!
//! Everything that touches numbers in bulk lives here, so that the rest of Seed is
//! free of `unsafe` and of CPU-specific code:
//! - [`types`]: the ggml tensor types (ids, block sizes);
//! - [`quant`]: ggml's block formats with scalar reference dequantize / quantize / dot;
//! - [`matmul`]: [`QMatrix`] and the batched, threaded `y = x·Wᵀ` on quantized weights;
//! - [`cpu`]: which instruction set the kernels use ([`Isa`], `SEED_KERNELS`);
//! - [`pool`]: the thread pool that runs each parallel region;
//! - [`affinity`]: which CPUs a thread may run on (pinning compute threads);
//! - [`memory`]: large buffers backed by huge pages (the weights' slabs);
//! - [`ops`]: RMSNorm, RoPE, softmax, activations.
//!
//! Every SIMD kernel has a scalar twin that is always compiled and tested against it.
#![allow(unsafe_code)] // SIMD intrinsics and the pool's job pointer; each block says why it is sound.

mod act;
pub mod affinity;
#[cfg(target_arch = "aarch64")]
mod arm;
pub mod attention;
pub mod cpu;
mod error;
pub mod matmul;
pub mod memory;
pub mod ops;
pub mod pool;
pub mod quant;
mod scalar;
mod tiles;
pub mod types;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use cpu::{active_isa, active_width, Isa, Width};
pub use error::KernelError;
pub use matmul::{dequantize_row, matmul, matmul_multi, MatmulScratch, QMatrix};
pub use pool::ThreadPool;
pub use types::{GgmlType, QK_K};
