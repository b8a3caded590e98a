//! `squash manpage [DIR]` (hidden): the man page in roff on standard output, or with a directory
//! a page per command written there (`squash.1`, `squash-inspect.1`, …), each naming the others
//! under SEE ALSO, as `cargo xtask man` writes them.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::args::Cli;
use crate::exit::{note, out};

pub fn run(dir: Option<&Path>) -> Result<ExitCode> {
    let mut command = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        out(&String::from_utf8_lossy(&page))?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let subcommands: Vec<clap::Command> =
        command.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    // Once built, a subcommand's display name is `squash-NAME`, which titles its page.
    let names: Vec<String> =
        subcommands.iter().map(|s| format!("squash-{}", s.get_name())).collect();
    let main_see_also: Vec<&str> = names.iter().map(String::as_str).collect();
    write_page(dir, "squash", command.clone(), &main_see_also)?;
    for (subcommand, name) in subcommands.into_iter().zip(&names) {
        let others: Vec<&str> = std::iter::once("squash")
            .chain(names.iter().map(String::as_str).filter(|n| n != name))
            .collect();
        write_page(dir, name, subcommand, &others)?;
    }
    note(&format!("wrote {} pages into {}", names.len() + 1, dir.display()));
    Ok(ExitCode::SUCCESS)
}

/// Writes `name.1` for `command`, its SEE ALSO section naming `see_also`.
fn write_page(dir: &Path, name: &str, command: clap::Command, see_also: &[&str]) -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    let references: Vec<String> =
        see_also.iter().map(|page| format!("\\fB{page}\\fR(1)")).collect();
    writeln!(page, ".SH \"SEE ALSO\"\n{}", references.join(", "))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(())
}
