//! `squash diff A B`: the final root filesystems of two images compared entry by entry, and
//! their configs and manifests field by field; exit 0 when they are equal, 1 when they differ.

use std::process::ExitCode;

use anyhow::{anyhow, Context as _, Result};
use squash::document::DiffDocument;
use squash::{diff_configs, diff_trees, Attribute, Context, Image, OpenOptions, Platform};

use super::json_line;
use crate::args::DiffArgs;
use crate::exit::{self, out};
use crate::{options, render};

pub fn run(args: &DiffArgs) -> Result<ExitCode> {
    let config_ignored = args.ignore.iter().any(|a| a.trim() == "config");
    let ignore: Vec<Attribute> = args
        .ignore
        .iter()
        .filter(|a| a.trim() != "config")
        .map(|a| a.trim().parse::<Attribute>().map_err(|e| anyhow!("--ignore {e}, or config")))
        .collect::<Result<_>>()?;
    let open = |reference: &str| -> Result<Image> {
        let mut options = OpenOptions::default()
            .with_cancel(exit::cancelled)
            .with_registry(options::registry(&args.registry));
        if let Some(p) = &args.platform {
            options = options
                .with_platform(p.parse::<Platform>().map_err(|e| anyhow!("--platform {e}"))?);
        }
        if let Some(dir) = &args.tmp_dir {
            options = options.with_tmp_dir(dir);
        }
        Image::open_with(reference, &options).with_context(|| format!("opening `{reference}`"))
    };
    let (a, b) = (open(&args.a)?, open(&args.b)?);
    let context = Context::new().with_threads(args.threads.unwrap_or(0));
    let diff = diff_trees(&a.tree_in(&context)?, &b.tree_in(&context)?, &ignore);
    let config = if config_ignored { Vec::new() } else { diff_configs(&a, &b) };
    let equal = diff.is_empty() && config.is_empty();
    if args.json {
        let mut document = DiffDocument::new(&a, &b, ignore, diff);
        if !config_ignored {
            document = document.with_config(config);
        }
        out(&json_line(&document)?)?;
    } else {
        let mut text = render::config_changes(&config);
        text.push_str(&render::diff(&diff, &ignore));
        out(&text)?;
    }
    Ok(if equal { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
