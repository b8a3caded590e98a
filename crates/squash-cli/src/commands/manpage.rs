//! `squash manpage` (hidden): the man page in roff on standard output, as `cargo xtask man`
//! writes it.

use std::process::ExitCode;

use anyhow::Result;

use crate::args::Cli;
use crate::exit::out;

pub fn run() -> Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page)?;
    out(&String::from_utf8_lossy(&page))?;
    Ok(ExitCode::SUCCESS)
}
