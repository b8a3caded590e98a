//! `squash demo`: a built-in example, so a new user needs no image of their own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use squash::present::human;
use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};

use crate::exit::out;
use crate::render;

mod sample;
use sample::{noise, Layer, Sample};

pub fn run(keep: Option<PathBuf>) -> Result<ExitCode> {
    let temp = tempfile::tempdir()?;
    let kept = keep.is_some();
    let dir = keep.unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let layout = dir.join("demo-oci");
    let dest = dir.join("demo-squashed");
    let _ = std::fs::remove_dir_all(&layout);
    let _ = std::fs::remove_dir_all(&dest);

    let base = {
        let mut l = Layer::new();
        l.dir("etc")?.file("etc/os-release", 0o644, b"NAME=demo\n")?.dir("usr")?.dir("usr/bin")?;
        l.file("usr/bin/sh", 0o755, &noise(200_000, 1))?;
        l.finish()?
    };
    let lists = {
        let mut l = Layer::new();
        l.dir("var")?.dir("var/lib")?.dir("var/lib/apt")?.dir("var/lib/apt/lists")?;
        for i in 0..20 {
            l.file(
                &format!("var/lib/apt/lists/repo_{i}_Packages"),
                0o644,
                "Package: demo\nVersion: 1.0\n".repeat(2000).as_bytes(),
            )?;
        }
        l.finish()?
    };
    let tool = noise(300_000, 2);
    let install = {
        let mut l = Layer::new();
        l.file("usr/bin/tool", 0o755, &tool)?;
        l.finish()?
    };
    let cleanup = {
        let mut l = Layer::new();
        l.whiteout("var/lib/apt", "lists")?;
        l.finish()?
    };
    let chmod = {
        let mut l = Layer::new();
        l.file("usr/bin/tool", 0o700, &tool)?;
        l.finish()?
    };

    let mut base_image = Sample::default();
    base_image.layer(base.clone(), "ADD rootfs.tar /")?;
    base_image.write_oci_layout(&layout, "base")?;
    let mut app = Sample::default();
    app.layer(base, "ADD rootfs.tar /")?;
    app.empty_step("ENV DEBIAN_FRONTEND=noninteractive");
    app.layer(lists, "RUN apt-get update")?;
    app.layer(install, "RUN apt-get install -y tool")?;
    app.layer(cleanup, "RUN rm -rf /var/lib/apt/lists")?;
    app.layer(chmod, "RUN chmod 700 /usr/bin/tool")?;
    app.write_oci_layout(&layout, "app")?;

    let reference = format!("oci:{}:app", layout.display());
    out(&format!("example image: {reference}\n\n"))?;
    let image = Image::open(&reference)?;
    let options = SquashOptions::default().with_selector(LayerSelector::Base);
    out(&format!("$ squash report {reference}\n"))?;
    out(&render::report(&image.report(&options, 10)?))?;
    let plan = image.plan(&options)?;
    out(&format!("\n$ squash {reference} --from-layer base -o oci:{}:app\n", dest.display()))?;
    out(&render::plan(&image, &plan))?;
    let outcome =
        plan.execute(&image, &Output::new(dest.clone(), OutputFormat::OciLayout).with_tag("app"))?;
    out(&render::outcome(&image, &plan, &outcome))?;

    // Read the result back as any consumer would: every blob's size and digest and every
    // layer's diff_id are checked on the way, and its report shows what is left to waste.
    let squashed = Image::open(&format!("oci:{}:app", dest.display()))?;
    let after = squashed.report(&SquashOptions::default(), 10)?;
    let before = image.report(&SquashOptions::default(), 10)?;
    let base_kept = squashed.layers().first().and_then(|l| l.digest())
        == image.layers().first().and_then(|l| l.digest());
    if kept {
        out(&format!("\nboth images are in {}", dir.display()))?;
    } else {
        out(
            "\nthe example images are in a temporary directory, removed at the end; `squash demo \
             --keep DIR` keeps them to try the other commands on",
        )?;
    }
    out(&format!(
        "\nsquashed image read back, every blob and diff_id verified: {} layers (was {}), {} \
            wasted (was {}); base layer kept: {base_kept}\n",
        squashed.layers().len(),
        image.layers().len(),
        human(after.wasted_bytes),
        human(before.wasted_bytes),
    ))?;

    Ok(if base_kept && after.wasted_bytes == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
