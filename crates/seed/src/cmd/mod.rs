//! One module per subcommand.

pub mod bench;
pub mod common;
pub mod generate;
pub mod keys;
pub mod migrate;
pub mod models;
pub mod perplexity;
pub mod quantize;
pub mod run;
pub mod serve;
pub mod tokenize;
pub mod usage;
