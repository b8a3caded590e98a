//! Test support for squash, independent of the library's own reader and writer:
//! - [`LayerBuilder`] writes layer tars with the `tar` crate (long names, PAX xattrs, hard links,
//!   whiteouts, non-UTF-8 names);
//! - [`ImageBuilder`] packs layers into an OCI layout, an OCI archive or a `docker save` tarball;
//! - [`RootFs`] is the reference model: it applies layers to an in-memory tree following the OCI
//!   image-spec `layer.md` rules, and [`RootFs::diff`] explains how two trees differ;
//! - [`random_stack`] generates random, valid layer stacks for property tests, and
//!   [`random_changeset_stack`] random stacks written as container engines write layers;
//! - [`cases`] holds the engine's regression cases;
//! - [`engines`] starts real appliers (Docker, containerd, podman, umoci) and reads what they
//!   unpack.

mod builder;
pub mod cases;
mod changeset;
pub mod engines;
mod generate;
pub mod large;
mod model;
mod random;
mod realistic;
pub mod registry;

pub use builder::{
    decompress, gzip_members, read_oci_layout, ImageBuilder, LayerBuilder, LayerCompression,
};
pub use changeset::random_changeset_stack;
pub use generate::{random_stack, random_stack_implicit_parents, random_stack_whiteouts_first};
pub use model::{Node, NodeKind, RootFs};
pub use random::{noise, Noise, Rng};
pub use realistic::{binary, realistic_image, text};

/// `(created_by, empty_layer)` of each entry of a `history` list (a config's, or `squash
/// inspect --json`'s).
pub fn history_steps(history: &serde_json::Value) -> Vec<(String, bool)> {
    history
        .as_array()
        .expect("history")
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap_or("").to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Whether what a test needs (`what`) is `present`. Missing, it is a loud skip, and a failure
/// when `SQUASH_REQUIRE_INTEROP` is set (as `.ci/run` sets it).
pub fn required(what: &str, present: bool) -> bool {
    if !present {
        assert!(
            std::env::var("SQUASH_REQUIRE_INTEROP").is_err(),
            "{what} required (SQUASH_REQUIRE_INTEROP is set) but missing"
        );
        eprintln!("SKIPPED: {what} missing; the test that needs it did not check anything");
    }
    present
}

/// Whether the external `tool` runs (`tool --version`), as [`required`] asks.
pub fn tool_available(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    required(&format!("`{tool}`"), found)
}
