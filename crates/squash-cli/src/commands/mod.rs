//! The commands, one file each; this file only dispatches, and holds what several commands
//! print alike.

mod completions;
mod demo;
mod diff;
mod inspect;
mod manpage;
mod report;
mod squash;

use std::process::ExitCode;

use ::squash::Image;
use anyhow::Result;

use crate::args::{Cli, Command, Verbosity};
use crate::exit::note;
use crate::render;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Inspect(args)) => {
            inspect::run(&args.image, args.json, args.verify, cli.verbosity)
        }
        Some(Command::Report(args)) => report::run(*args, cli.verbosity),
        Some(Command::Diff(args)) => diff::run(&args),
        Some(Command::Demo(args)) => demo::run(args.keep),
        Some(Command::Completions(args)) => completions::run(&args),
        Some(Command::Manpage(args)) => manpage::run(args.dir.as_deref()),
        None => squash::run(cli.squash, cli.verbosity),
    }
}

/// Whether the command line asks for JSON, errors included.
pub fn wants_json(cli: &Cli) -> bool {
    match &cli.command {
        Some(Command::Inspect(args)) => args.json,
        Some(Command::Report(args)) => args.json || args.format.as_deref() == Some("json"),
        Some(Command::Diff(args)) => args.json,
        Some(Command::Demo(_)) | Some(Command::Completions(_)) | Some(Command::Manpage(_)) => false,
        None => cli.squash.json,
    }
}

/// A JSON document as printed: pretty, one trailing newline.
fn json_line(value: &impl serde::Serialize) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// With `--verbose`: that `image` was read, and when.
fn log_read(verbosity: Verbosity, image: &Image, started: std::time::Instant) {
    if verbosity.verbose > 0 {
        let platform = image.platform().map(|p| format!(" ({p})")).unwrap_or_default();
        note(&format!(
            "squash: [{:6.2} s] read {}{platform}: every blob's size and sha256 and every layer's \
                diff_id checked",
            started.elapsed().as_secs_f64(),
            render::count(image.layers().len(), "layer", "layers")
        ));
    }
}
