//! `cargo xtask fuzz [--seconds N] [--seed S] [--registry]`: the fuzzer (`squash-fuzz`'s binary)
//! for a time, on files or (`--registry`) on images served by a faulty registry of its own;
//! findings are saved under target/fuzz/crashes and make it fail. Copy each into
//! tests/fuzz-corpus/ once fixed.

use anyhow::Result;

use crate::{cargo, run_command};

pub fn run(args: &[String]) -> Result<()> {
    run_command(cargo().args(["run", "--quiet", "-p", "squash-fuzz", "--"]).args(args))
}
