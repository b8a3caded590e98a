//! `squash diff A B`: the final root filesystems of two images compared entry by entry; exit 0
//! when they are equal, 1 when they differ.

use std::process::ExitCode;

use anyhow::{anyhow, Context as _, Result};
use squash::document::DiffDocument;
use squash::{diff_trees, Attribute, Context, Image, OpenOptions, Platform};

use super::json_line;
use crate::args::DiffArgs;
use crate::exit::{self, out};
use crate::{options, render};

pub fn run(args: &DiffArgs) -> Result<ExitCode> {
    let ignore: Vec<Attribute> = args
        .ignore
        .iter()
        .map(|a| a.trim().parse::<Attribute>().map_err(|e| anyhow!("--ignore {e}")))
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
    let equal = diff.is_empty();
    if args.json {
        out(&json_line(&DiffDocument::new(&a, &b, ignore, diff))?)?;
    } else {
        out(&render::diff(&diff, &ignore))?;
    }
    Ok(if equal { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
