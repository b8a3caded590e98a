//! `squash demo`: a built-in example, so a new user needs no image of their own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{noise, read_oci_layout, ImageBuilder, LayerBuilder, LayerCompression, RootFs};

use crate::exit::out;
use crate::render;

pub fn run(keep: Option<PathBuf>) -> Result<ExitCode> {
    let temp = tempfile::tempdir()?;
    let dir = keep.unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let layout = dir.join("demo-oci");
    let dest = dir.join("demo-squashed");
    let _ = std::fs::remove_dir_all(&layout);
    let _ = std::fs::remove_dir_all(&dest);

    let base = LayerBuilder::new()
        .dir("etc")
        .file("etc/os-release", b"NAME=demo\n")
        .dir("usr")
        .dir("usr/bin")
        .file_with("usr/bin/sh", &noise(200_000, 1), 0o755, 0, 0, &[])
        .finish();
    let lists = {
        let mut l = LayerBuilder::new();
        l.dir("var").dir("var/lib").dir("var/lib/apt").dir("var/lib/apt/lists");
        for i in 0..20 {
            l.file(format!("var/lib/apt/lists/repo_{i}_Packages"), "Package: demo\nVersion: 1.0\n".repeat(2000).as_bytes());
        }
        l.finish()
    };
    let install = LayerBuilder::new().file_with("usr/bin/tool", &noise(300_000, 2), 0o755, 0, 0, &[]).finish();
    let cleanup = LayerBuilder::new().whiteout("var/lib/apt/lists").finish();
    let chmod = LayerBuilder::new().file_with("usr/bin/tool", &noise(300_000, 2), 0o700, 0, 0, &[]).finish();

    let mut base_image = ImageBuilder::new(LayerCompression::Gzip);
    base_image.layer(base.clone(), "ADD rootfs.tar /");
    base_image.write_oci_layout(&layout, "base");
    let mut app = ImageBuilder::new(LayerCompression::Gzip);
    app.layer(base, "ADD rootfs.tar /")
        .empty_step("ENV DEBIAN_FRONTEND=noninteractive")
        .layer(lists, "RUN apt-get update")
        .layer(install, "RUN apt-get install -y tool")
        .layer(cleanup, "RUN rm -rf /var/lib/apt/lists")
        .layer(chmod, "RUN chmod 700 /usr/bin/tool");
    app.write_oci_layout(&layout, "app");

    let reference = format!("oci:{}:app", layout.display());
    out(&format!("example image: {reference}\n\n"))?;
    let image = Image::open(&reference)?;
    let options = SquashOptions::default().with_selector(LayerSelector::Base);
    out(&format!("$ squash report {reference}\n"))?;
    out(&render::report(&image.report(&options, 10)?))?;
    let plan = image.plan(&options)?;
    out(&format!("\n$ squash {reference} --from-layer base -o oci:{}:app\n", dest.display()))?;
    out(&render::plan(&image, &plan))?;
    let outcome = plan.execute(&image, &Output { path: dest.clone(), format: OutputFormat::OciLayout, tag: Some("app".into()) })?;
    out(&render::outcome(&image, &plan, &outcome))?;

    // Check with the reference model that both images give the same root filesystem.
    let (before, _) = read_oci_layout(&layout, Some("app"));
    let (after, _) = read_oci_layout(&dest, Some("app"));
    let a = RootFs::from_layers(before.iter().map(|(_, t)| t.as_slice())).map_err(anyhow::Error::msg).context("original image")?;
    let b = RootFs::from_layers(after.iter().map(|(_, t)| t.as_slice())).map_err(anyhow::Error::msg).context("squashed image")?;
    let diff = a.diff(&b);
    if diff.is_empty() {
        out(&format!(
            "\nroot filesystems identical ({} entries compared); base layer kept: {}\n",
            a.nodes().len(),
            before[0].0 == after[0].0
        ))?;
        Ok(ExitCode::SUCCESS)
    } else {
        out(&format!("\nroot filesystems DIFFER:\n{}\n", diff.join("\n")))?;
        Ok(ExitCode::from(1))
    }
}
