//! The model layer's one error type.

use kernels::GgmlType;

use crate::chat::ChatTemplateError;
use crate::gguf::GgufError;
use crate::tokenizer::TokenizerError;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file is not a valid GGUF file.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A metadata value is present but unusable.
    #[error("metadata '{key}': {problem}")]
    Metadata {
        /// The GGUF key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The architecture has no forward pass in Seed.
    #[error("architecture '{0}' is not supported (supported: {supported})", supported = crate::supported_architectures().collect::<Vec<_>>().join(", "))]
    UnsupportedArchitecture(String),
    /// A tensor the architecture needs is absent.
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    /// A tensor's shape disagrees with the hyper-parameters.
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// Tensor name.
        name: String,
        /// Shape from the hyper-parameters (ggml order).
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's type is one the kernels cannot compute with (or wrong for its role).
    #[error("tensor '{name}' has type {ty}, which is not supported {role}")]
    UnsupportedType {
        /// Tensor name.
        name: String,
        /// Its type.
        ty: GgmlType,
        /// Where it was used (e.g. "for a norm weight").
        role: &'static str,
    },
    /// The kernels rejected a weight.
    #[error("tensor '{name}': {source}")]
    Kernel {
        /// Tensor name.
        name: String,
        /// The kernels' reason.
        source: kernels::KernelError,
    },
    /// The vocabulary could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The chat template could not be compiled.
    #[error(transparent)]
    ChatTemplate(#[from] ChatTemplateError),
    /// A request the model cannot serve (e.g. past the KV cache).
    #[error("{0}")]
    Request(String),
}

impl ModelError {
    /// A [`ModelError::Metadata`] for `key`.
    pub fn metadata(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ModelError::Metadata { key: key.into(), problem: problem.into() }
    }
}
