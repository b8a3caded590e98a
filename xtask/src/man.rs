//! `cargo xtask man`: a man page per command (`squash.1`, `squash-report.1`, …, each naming
//! the others under SEE ALSO) in target/man, written by the CLI's hidden `manpage` command. Only
//! the CLI is built for it.

use anyhow::Result;

use crate::{cargo, root, run_command};

pub fn run() -> Result<()> {
    let dir = root().join("target/man");
    run_command(cargo().args(["run", "--quiet", "-p", "squash-cli", "--", "manpage"]).arg(&dir))?;
    Ok(())
}
