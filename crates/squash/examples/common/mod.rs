// Shared by the examples: an image to work on when none is given on the command line.

use std::path::Path;

use squash_testkit::{noise, ImageBuilder, LayerBuilder, LayerCompression};

/// Writes a small OCI layout at `dir` holding `base` (one layer) and `app` (the base plus
/// three `RUN`-like layers that add, overwrite and delete), and returns the two references.
pub fn example_images(dir: &Path) -> (String, String) {
    let mut builder = ImageBuilder::new(LayerCompression::Gzip);
    builder.layer(
        LayerBuilder::new().dir("etc").file("etc/os-release", b"NAME=example\n").finish(),
        "ADD rootfs /",
    );
    let layout = dir.join("layout");
    builder.write_oci_layout(&layout, "base");
    builder.layer(
        LayerBuilder::new()
            .dir("var")
            .dir("var/cache")
            .file("var/cache/index", &noise(200_000, 1))
            .finish(),
        "RUN fetch",
    );
    builder.layer(
        LayerBuilder::new().dir("app").file("app/bin", &noise(50_000, 2)).finish(),
        "COPY app /app",
    );
    builder.layer(
        LayerBuilder::new().dir("var").whiteout("var/cache").finish(),
        "RUN rm -rf /var/cache",
    );
    builder.write_oci_layout(&layout, "app");
    (format!("oci:{}:app", layout.display()), format!("oci:{}:base", layout.display()))
}

/// The image named by the first argument, else the example app image written under `dir`.
#[allow(dead_code, reason = "not every example takes one image")]
pub fn image_argument(dir: &Path) -> String {
    std::env::args().nth(1).unwrap_or_else(|| example_images(dir).0)
}
