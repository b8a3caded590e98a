//! The `squash` command: what the user typed becomes library options (`options`, `input`), one
//! file per command calls the library (`commands/`), and `render` and `exit` decide what a person
//! sees. Image logic lives in the library.

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod commands;
mod dive_ci;
mod exit;
mod input;
mod options;
mod render;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse_checked();
    let as_json = commands::wants_json(&cli);
    if let Err(error) = exit::install_signal_handlers() {
        return exit::fail(&error, as_json);
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => exit::fail(&error, as_json),
    }
}
