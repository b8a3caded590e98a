//! Squash everything above a base image and print the new digests.
//!
//! `cargo run -p squash --example squash_above_base [IMAGE BASE OUT]`; without arguments it
//! builds a small example image first.

use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};

#[path = "common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (image, base, out) = match args.as_slice() {
        [image, base, out] => (image.clone(), base.clone(), out.into()),
        _ => {
            let (image, base) = common::example_images(scratch.path());
            (image, base, scratch.path().join("squashed"))
        }
    };
    let image = Image::open(&image)?;
    let options =
        SquashOptions::default().with_selector(LayerSelector::Base).with_base(Image::open(&base)?);
    let plan = image.plan(&options)?;
    for range in &plan.ranges {
        println!(
            "{}: {} -> {} bytes uncompressed",
            range.range,
            range.uncompressed_size_before(),
            range.uncompressed_size()
        );
    }
    let outcome =
        plan.execute(&image, &Output::new(out, OutputFormat::OciLayout).with_tag("squashed"))?;
    println!("manifest {}\nconfig   {}", outcome.manifest_digest, outcome.config_digest);
    for layer in &outcome.layers {
        let what = if layer.squashed_from.is_some() { "new" } else { "kept" };
        println!(
            "layer {} {} {} ({} bytes)",
            layer.index, what, layer.digest, layer.compressed_size
        );
    }
    Ok(())
}
