//! The `squash` command: parses arguments, calls the library, renders results. No image logic.

mod args;
mod commands;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("squash: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
