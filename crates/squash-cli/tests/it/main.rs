//! Tests of the `squash` command, one binary: the binary built by this package is run as a user
//! runs it.

/// Each command end to end: inspect, report, squash, diff, the demo, completions, gates.
mod cli;
/// The command line's contract at its edges: dry runs, modes, pipes, locks, signals, errors.
mod contract;
/// docker-squash 1.2.2 and squash, on the same Docker-built images: the same history.
mod docker_squash;
/// Docker and podman load, run and unpack what squash writes to a pipe.
mod engines;
/// report's causes and stories, diff's config edits, inspect's run settings; a Docker-built image.
mod explain;
/// A new user's first hour: names kept, early and plain errors, wording.
mod first_hour;
/// Registries in and out: a real `docker-registry` over HTTP, TLS with htpasswd, and tokens;
/// skopeo and Docker read what squash pushes; faults from a proxy.
mod registry;
/// Standard input, pipes and compressed archives in; standard output out.
mod streams;
