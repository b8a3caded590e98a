//! `cargo xtask ci`: formatting, clippy and the README's test command, as CI runs them.

use anyhow::Result;

use crate::{cargo, run_command};

pub fn run() -> Result<()> {
    run_command(cargo().args(["fmt", "--all", "--check"]))?;
    run_command(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run_command(cargo().args(["test", "--workspace"]))
}
