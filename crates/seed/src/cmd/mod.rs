//! One module per subcommand.

pub mod common;
pub mod generate;
pub mod models;
pub mod perplexity;
pub mod run;
