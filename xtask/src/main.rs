//! Project chores, one file each: `cargo xtask ci` runs the checks CI runs; `cargo xtask man`
//! writes a man page per command; `cargo xtask fuzz` runs the fuzzer for a time; `cargo xtask
//! bench` times squash on large generated images against the physical limit and installed peers.

mod bench;
mod ci;
mod fuzz;
mod man;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("{USAGE}");
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("ci") => ci::run(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("man") => man::run(),
        _ => {
            eprintln!("{USAGE}");
            Ok(())
        }
    }
}

/// What each chore takes.
const USAGE: &str = "usage: cargo xtask bench [--scale S] [--runs N] [--dir DIR] [--peers-only] \
[--shape five|many] [--keep] [--squash BIN] [--entries N,N,…]
       cargo xtask fuzz [--seconds N] [--seed S] [--registry]
       cargo xtask man
       cargo xtask ci";

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs `cmd`, failing unless it succeeds.
fn run_command(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `cargo` in the workspace root.
fn cargo() -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(root());
    command
}
