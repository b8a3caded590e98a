//! Integration tests of the squash library, one binary.

/// Shared helpers: build an image, squash it, read it back independently.
mod support;

/// The library's shape: modules import only modules below them; the code map names them all.
mod architecture;
/// `diff`: final filesystems against the model, and every single-attribute change found.
mod diff;
/// docs/json.md: its examples are the library's document types.
mod docs;
/// Property tests: rootfs(squash(image)) == rootfs(image), against the testkit model.
mod equivalence;
/// `--exclude` in a range, below it, above every range; against the model and umoci.
mod exclude;
/// Corrupt, truncated and unsupported inputs: the named error, no output left behind.
mod failure;
/// Every image in the shared fixtures: open, inspect, copy, squash.
mod fixtures;
/// The fuzzer's saved findings, and a short fuzzing run.
mod fuzz;
/// Multi-platform indexes: every platform, chosen platforms, attestations, nested indexes.
mod index;
/// umoci and skopeo read what we write (a loud skip locally, fatal with SQUASH_REQUIRE_INTEROP=1).
mod interop;
/// Real appliers (Docker, containerd, podman, umoci) unpack the regression cases and random
/// stacks, squashed and not; the model judges.
mod matrix;
/// One test per rule of docs/layer-rules.md, named after it.
mod regression;
/// `report`: compressed sizes estimated within 3% and exact ones equal to a squash; clutter.
mod report;
/// Round trips, layout additions, determinism across thread counts.
mod roundtrip;
/// Each wasted path's story and the causes of waste, on images built like the guides' Dockerfiles.
mod story;
