//! `squash completions SHELL`: a shell completion script.

use std::process::ExitCode;

use anyhow::Result;

use crate::args::{Cli, CompletionsArgs};
use crate::exit::out;

pub fn run(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "squash", &mut script);
    out(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}
