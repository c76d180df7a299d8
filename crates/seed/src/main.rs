//! The `seed` command line.
fn main() {}
