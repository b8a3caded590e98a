//! Command-line arguments. Every flag maps onto a library option.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Examples and the exit codes, shown at the end of `--help`.
pub const EXIT_CODES: &str = "\
Examples:
  squash app.tar --from-layer base --base base.tar -o app-squashed.tar
  squash oci:layout:app --from-layer 3 -o oci:out:app
  docker save app | squash - --from-layer base --base base.tar -o - | docker load
  squash oci:layout:app --from-layer 2 -o oci:out:app        (every platform of an index)
  squash report app.tar --from-layer base --fail-if-wasted-over 50MB

Exit codes:
  0    success
  1    a report gate failed (the rule is named on stderr)
  2    usage or input error, or the output could not be written (the message names the file,
       layer and entry)
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM. Nothing is left at the destination
  141  (SIGPIPE) standard output was closed, as in `squash inspect IMG | head -1`: the command ends
       quietly by SIGPIPE, as coreutils do";

/// Squash container image layers offline, with a filesystem provably identical to the original's.
#[derive(Debug, Parser)]
#[command(
    name = "squash",
    version,
    override_usage = "squash [OPTIONS] <IMAGE>\n       squash <COMMAND> [OPTIONS]",
    subcommand_negates_reqs = true,     arg_required_else_help = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub squash: SquashArgs,
    #[command(flatten)]
    pub verbosity: Verbosity,
}

impl Cli {
    /// Parses the command line: clap's parse, and the one rule it cannot state (a squash run's
    /// options are not options of a subcommand: `squash --from-layer 2 inspect IMG` is refused).
    pub fn parse_checked() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        let matches = command.get_matches_mut();
        if let Some((name, _)) = matches.subcommand() {
            let global = ["quiet", "verbose"];
            let stray = matches.ids().map(|id| id.as_str()).find(|id| {
                !global.contains(id)
                    && command.get_arguments().any(|a| a.get_id() == *id)
                    && matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            });
            if let Some(id) = stray {
                let flag = command.get_arguments().find(|a| a.get_id() == id).map_or(
                    id.to_string(),
                    |a| match a.get_long() {
                        Some(long) => format!("--{long}"),
                        None => format!("<{}>", id.to_uppercase()),
                    },
                );
                command
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!("{flag} belongs to a squash run; it cannot come before `{name}`"),
                    )
                    .exit();
            }
        }
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// How much a command says on stderr, for every command.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct Verbosity {
    /// Print only what was asked for and errors: no plan, notes, summary or progress bar.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also log each step on stderr as it begins, with the seconds since the start.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show an image's layers: digests, sizes, compression and the history step of each.
    Inspect(InspectArgs),
    /// Measure how many bytes each layer wastes and what a squash would reclaim.
    Report(Box<ReportArgs>),
    /// Compare the final root filesystems of two images, entry by entry, without unpacking them,
    /// and their configs and manifests (exit 0: equal, 1: different, 2: error).
    Diff(DiffArgs),
    /// Build a small example image, squash it, and show the report and the new digests.
    Demo(DemoArgs),
    /// Print a shell completion script: `squash completions bash > /etc/bash_completion.d/squash`.
    Completions(CompletionsArgs),
    /// Print the man page (roff); with a directory, write a page per command there
    /// (`squash.1`, `squash-report.1`, …), as `cargo xtask man` does.
    #[command(hide = true)]
    Manpage(ManpageArgs),
}

/// `squash diff A B`.
#[derive(Debug, Args, Clone)]
pub struct DiffArgs {
    /// The first image, in any form `squash` reads (`-` for standard input).
    pub a: String,
    /// The second image.
    pub b: String,
    /// Platform of an input that is a multi-platform index, as os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    /// Attributes not to compare, comma-separated: type, mode, uid, gid, size, content, link,
    /// device, xattrs, mtime, hardlinks; and config, for the configs and manifests (labels,
    /// env, entrypoint, cmd, user, workdir, ports, volumes, stop signal, history, annotations).
    #[arg(long, value_delimiter = ',', value_name = "ATTRS")]
    pub ignore: Vec<String>,
    /// Threads in all (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to spool an image read from standard input, or decompress a compressed archive
    /// (default: TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
    /// Print the differences as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `squash manpage [DIR]`.
#[derive(Debug, Args, Clone)]
pub struct ManpageArgs {
    /// Write every page into this directory instead of printing the main one.
    pub dir: Option<PathBuf>,
}

/// `squash completions SHELL`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How registries are reached, for `docker://` images (the flags skopeo users know).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Credentials for the registries, `USER[:PASSWORD]` (default: the Docker configuration and
    /// its credential helpers, or podman's auth.json). Prefer the SQUASH_CREDS environment
    /// variable, which `ps` does not show.
    #[arg(long, value_name = "USER[:PASSWORD]", env = "SQUASH_CREDS", hide_env_values = true)]
    pub creds: Option<String>,
    /// Read credentials from FILE first (the format of `~/.docker/config.json` and podman's
    /// auth.json).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Trust the certificates `*.crt` in DIR beside the system's, and present the client
    /// certificate `*.cert` with its `*.key` (as Docker's certs.d directories hold them).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Verify TLS certificates and require HTTPS (plain HTTP is allowed to loopback addresses
    /// only); `--tls-verify=false` allows plain HTTP and any certificate.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Times a registry request is tried again after a 429, a 5xx or a dropped connection.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
}

/// Which image inside the input.
#[derive(Debug, Args, Clone)]
pub struct ImageArgs {
    /// The image: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:NAME:TAG]`,
    /// `dir:PATH`, `docker://HOST/REPO[:TAG|@DIGEST]` (a registry), a path whose format is
    /// detected, or `-` for an archive on standard input (`docker save app | squash - …`).
    #[arg(required_unless_present = "from_file")]
    pub image: Option<String>,
    /// Platform of a multi-platform index, as os/arch[/variant]. A squash writes every
    /// platform of an index and squashes these only (repeatable; default: all); inspect,
    /// report and a docker-archive output take one (default: the only one, else this host's).
    #[arg(long)]
    pub platform: Vec<String>,
    /// Where to spool an image read from standard input or a pipe (or decompress a compressed
    /// archive), the new layers of an image written to standard output, and the copies of each
    /// squashed range's surviving entries kept while it is read (default: TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// A fleet's list: one `IMAGE OUTPUT` pair per line (blank lines and `#` comments
    /// skipped), of which `--index` chooses the one this run squashes, as a Kubernetes indexed
    /// Job or a CI matrix runs one task per image; the other options apply to each.
    #[arg(long, value_name = "FILE", requires = "index", conflicts_with = "image")]
    pub from_file: Option<PathBuf>,
    /// Which line of `--from-file` (0 for the first; `$(JOB_COMPLETION_INDEX)` in a
    /// Kubernetes indexed Job).
    #[arg(long, value_name = "N", requires = "from_file")]
    pub index: Option<usize>,
}

/// What to squash.
#[derive(Debug, Args, Clone, Default)]
pub struct SelectArgs {
    /// `N`: the top N filesystem layers (history steps that made no layer are NOT counted,
    /// unlike docker-squash); `DIGEST`: every layer above the layer with this diff_id or blob
    /// digest (prefix), which is kept; `base`: every layer above the base image (see --base).
    #[arg(long, value_name = "N|DIGEST|base")]
    pub from_layer: Option<String>,
    /// docker-squash's `-f`: `N` counts history steps, the empty ones (`ENV`, `CMD`, `LABEL`)
    /// included, as docker-squash does (`--from-layer N` counts filesystem layers); `DIGEST` and
    /// `base` as `--from-layer`. With `--drop-history` the steps fold into one.
    #[arg(short = 'f', long, value_name = "N|DIGEST|base", conflicts_with = "from_layer")]
    pub from_step: Option<String>,
    /// Squash layers A to B (inclusive, numbered as `squash inspect` shows); repeatable.
    #[arg(long, value_name = "A..B")]
    pub layers: Vec<String>,
    /// A base image for `--from-layer base` (repeatable); without it the base is looked for in
    /// the same input.
    #[arg(long, value_name = "IMAGE")]
    pub base: Vec<String>,
    /// Squash every layer, the base included, into one (as `crane flatten` and `podman build
    /// --squash-all`): the base image's layers are no longer shared.
    #[arg(long, conflicts_with_all = ["from_layer", "from_step", "layers", "base"])]
    pub all: bool,
    /// Remove every path matching GLOB, with its subtree, from the image's filesystem
    /// (repeatable): gitignore-style (`**`, `*`, `?`, `[…]`, a trailing `/` for directories
    /// only), anchored at the image root. What a squashed range holds is dropped; what a kept
    /// layer below it holds is hidden by whiteouts in the new layer; a path still in a kept
    /// layer above every range is refused.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Read --exclude patterns from FILE, one per line (blank lines and `#` comments skipped).
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct SquashArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Output: a path (same format as the input unless --format), `oci:PATH[:TAG]`,
    /// `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:NAME:TAG]`, `docker://HOST/REPO[:TAG]`
    /// (a push; the tag is put last), or `-` for an archive on standard output
    /// (`… -o - | docker load`; docker-archive unless --format oci-archive).
    #[arg(short, long, value_name = "OUT", visible_alias = "output-path")]
    pub output: Option<String>,
    /// Output format.
    #[arg(long, value_parser = formats())]
    pub format: Option<String>,
    /// Tag of the written image.
    #[arg(short, long)]
    pub tag: Option<String>,
    /// Compression of new layers (default: that of the squashed layers).
    #[arg(long, value_parser = compressions())]
    pub compression: Option<String>,
    /// Compression level (gzip 1-9, default 6; zstd 1-22, default 3).
    #[arg(long)]
    pub level: Option<i32>,
    /// Threads in all (default: all cores): indexing, reading, decoding and compressing share
    /// them; output bytes do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Comment of the history entry that describes the merged layer.
    #[arg(short, long)]
    pub message: Option<String>,
    /// The `created` time of the new history entries and config, in seconds since 1970 (the
    /// `SOURCE_DATE_EPOCH` environment variable means the same; this flag wins).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub source_date_epoch: Option<i64>,
    /// Set a label in the config (`KEY=VALUE`), or remove it (`KEY-`); repeatable.
    #[arg(long, value_name = "KEY=VALUE|KEY-")]
    pub label: Vec<String>,
    /// Set an environment variable in the config (`KEY=VALUE`, replacing it where it is), or
    /// remove it (`KEY-`); repeatable.
    #[arg(long, value_name = "KEY=VALUE|KEY-")]
    pub env: Vec<String>,
    /// The config's entrypoint, as a JSON array (`'["/app", "--serve"]'`), or `null` to remove it.
    #[arg(long, value_name = "JSON")]
    pub entrypoint: Option<String>,
    /// The config's command, as a JSON array, or `null` to remove it.
    #[arg(long, value_name = "JSON")]
    pub cmd: Option<String>,
    /// The config's working directory.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The config's user (`NAME`, `UID`, `UID:GID`).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Set an annotation of the manifest (`KEY=VALUE`), or remove it (`KEY-`); repeatable. Not
    /// with a docker-archive output, which stores no manifest.
    #[arg(long, value_name = "KEY=VALUE|KEY-")]
    pub annotation: Vec<String>,
    /// Lower every time later than the epoch (--source-date-epoch or SOURCE_DATE_EPOCH) of the
    /// entries written into new layers to it: mtimes, and PAX atime and ctime (BuildKit's and
    /// buildah's --rewrite-timestamp). Kept layers are not touched.
    #[arg(long)]
    pub rewrite_timestamp: bool,
    /// Keep the attestation manifests of squashed platforms of an index (they then describe
    /// a manifest no longer in it); by default they are dropped.
    #[arg(long)]
    pub keep_attestations: bool,
    /// Drop the squashed history steps instead of keeping them as empty steps.
    #[arg(long)]
    pub drop_history: bool,
    /// Print the plan and the figures, write nothing (not even with -o).
    #[arg(long)]
    pub dry_run: bool,
    /// Copy the image without squashing anything (a format conversion); without it a range must
    /// be chosen with --from-layer or --layers.
    #[arg(long, conflicts_with_all = ["from_layer", "from_step", "layers", "all"])]
    pub convert: bool,
    /// Also decode every kept layer and check its diff_id (by default kept layers are copied with
    /// their size and sha256 checked, and only squashed layers are decoded).
    #[arg(long)]
    pub verify_all: bool,
    /// After writing, read the new image back and compare its root filesystem with the input's,
    /// entry by entry (as `squash diff` does; mtimes left out with --rewrite-timestamp); for an
    /// index, every image written. The image is written beside the output first and put in
    /// place (a new path, a tag added to an existing layout, a file replaced) only once
    /// verified: on a difference the run fails and the output is left as it was. A push is
    /// made by digest, read back from the registry and tagged only once verified. With `-o -`
    /// the image is written to --tmp-dir first and reaches standard output only once verified.
    #[arg(long)]
    pub verify: bool,
    /// Seconds to wait for another run's lock on an output OCI layout before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub lock_timeout: u64,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// JSON output for machines.
    #[arg(long)]
    pub json: bool,
    /// State what was verified: inspect decodes every layer, checking every blob's size and
    /// sha256 and every layer's diff_id; this prints the verdict of each.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The images, in any form `squash` reads (`-` for standard input, once). With several
    /// (or --from-file), each is reported, then what they store together and what squashing
    /// each would save, each shared blob counted once.
    #[arg(value_name = "IMAGE", required_unless_present = "from_file")]
    pub images: Vec<String>,
    /// Read images from FILE too, one per line (blank lines and `#` comments skipped).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Platform of a multi-platform index, as os/arch[/variant] (default: every image of it).
    #[arg(long)]
    pub platform: Vec<String>,
    /// Where to spool an image read from standard input or a pipe (or decompress a compressed
    /// archive), and the copies of each range's surviving entries kept while it is read
    /// (default: TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// JSON output (field names are stable; see README); the same as --format json.
    #[arg(long)]
    pub json: bool,
    /// Output format.
    #[arg(long, value_parser = ["text", "markdown", "json"], value_name = "FORMAT")]
    pub format: Option<String>,
    /// Write one self-contained HTML page (chart, tables, clutter) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Measure the new layers' compressed sizes exactly, and their digests, by running the real
    /// encoder on every core into a sink that only counts (nothing is written). Without it they
    /// are estimated from samples compressed with the real encoder, or measured whole (without
    /// the digest) where that costs less: zstd up to level 4, on a layer larger than the sample.
    #[arg(long)]
    pub exact: bool,
    /// Compression the squash would use for new layers (default: that of the squashed layers).
    #[arg(long, value_parser = compressions())]
    pub compression: Option<String>,
    /// Compression level the squash would use (gzip 1-9, default 6; zstd 1-22, default 3).
    #[arg(long)]
    pub level: Option<i32>,
    /// Count visible files matching GLOB (an --exclude pattern) as clutter too (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub clutter: Vec<String>,
    /// Use only the --clutter patterns, not the built-in list (README "Clutter").
    #[arg(long)]
    pub no_default_clutter: bool,
    /// Exit 1 if more than SIZE bytes of clutter lie outside the base (SIZE as for
    /// --fail-if-wasted-over).
    #[arg(long, value_name = "SIZE")]
    pub fail_if_clutter_over: Option<String>,
    /// How many wasteful paths, and clutter paths, to list.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Group small wasted files (under 64 KiB each) under their directory N components deep
    /// (or their parent, if shallower).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub depth: u16,
    /// List every wasted file on its own row, small ones included.
    #[arg(long)]
    pub no_group: bool,
    /// Threads in all, for reading and decoding the layers (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write a bar chart of kept and wasted bytes per layer as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Exit 1 if more file bytes than SIZE are wasted outside the base. SIZE is bytes or a
    /// number with a unit: kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (of 1024),
    /// e.g. 50MB.
    #[arg(long, value_name = "SIZE")]
    pub fail_if_wasted_over: Option<String>,
    /// Exit 1 if more than PERCENT (0 to 100, e.g. 20 for a fifth) of the file bytes outside the
    /// base is wasted.
    #[arg(long, value_name = "PERCENT")]
    pub fail_if_wasted_percent_over: Option<f64>,
    /// Exit 1 if the efficiency, the share of stored file bytes that stay visible, a RATIO from
    /// 0 to 1 (e.g. 0.95), is below this.
    #[arg(long, value_name = "RATIO")]
    pub min_efficiency: Option<f64>,
    /// Gates from a dive `.dive-ci` file: `rules:` `lowestEfficiency` (ratio 0 to 1),
    /// `highestWastedBytes` (a SIZE), `highestUserWastedPercent` (a ratio 0 to 1, as in dive:
    /// 0.2 is 20%); `disabled` turns a rule off. The gate flags above win over the file.
    #[arg(long, value_name = "FILE")]
    pub ci_config: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the example images in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// The output formats, as clap lists them (the library's spellings accepted as aliases).
fn formats() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("oci").alias("oci-layout").help("an OCI image layout directory"),
        PossibleValue::new("oci-archive").help("a tar of an OCI image layout"),
        PossibleValue::new("docker-archive")
            .alias("docker")
            .help("a `docker save` tarball (one platform)"),
    ])
}

/// The compressions of new layers, as clap lists them.
fn compressions() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("gzip"),
        PossibleValue::new("zstd"),
        PossibleValue::new("none").alias("uncompressed"),
    ])
}
