//! Human-readable tables; JSON goes through serde.

use squash::present::human;
use squash::{Image, ImageIndex, IndexOutcome, IndexPlan, Outcome, Report, SquashPlan};

fn short(s: &str) -> String {
    s.strip_prefix("sha256:").map(|h| format!("sha256:{}", &h[..12.min(h.len())])).unwrap_or_else(|| s.to_string())
}

/// `text` cut to `width` characters, ending with "…" when cut.
pub fn truncated(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `1 layer`, `3 layers`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `0, 2, 5`: layer numbers as a person reads them.
fn list(numbers: &[usize]) -> String {
    numbers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Pads columns to their widest cell.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| if i + 1 == row.len() { cell.clone() } else { format!("{cell:<w$}", w = widths[i]) })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn plan(image: &Image, plan: &SquashPlan) -> String {
    let mut out = String::new();
    if plan.ranges.is_empty() {
        out.push_str("no range selected: copying the image as it is\n");
    }
    for r in &plan.ranges {
        out.push_str(&format!("squashing {}\n", r.range));
        let before_u = r.uncompressed_size_before();
        out.push_str(&format!(
            "  {} -> 1; uncompressed {} -> {} ({} reclaimed); {} written\n",
            count(r.range.len(), "layer", "layers"),
            human(before_u),
            human(r.uncompressed_size()),
            human(before_u.saturating_sub(r.uncompressed_size())),
            count(r.entries_after(), "entry", "entries")
        ));
    }
    let kept: Vec<usize> = plan.kept_layers(image).collect();
    if !kept.is_empty() {
        let (word, list) = (if kept.len() == 1 { "layer" } else { "layers" }, list(&kept));
        out.push_str(&format!("keeping {word} {list} byte for byte\n"));
    }
    out
}

/// The warning for an image chosen from a multi-platform index: what the output leaves out.
pub fn platforms_left_out(image: &Image) -> String {
    let others: Vec<String> = image.other_platforms().iter().map(ToString::to_string).collect();
    let chosen = image.platform().map(ToString::to_string).unwrap_or_else(|| "one platform".into());
    format!(
        "warning: the index also holds {}; only {chosen} is written (a docker-archive holds one platform; \
         write oci or oci-archive to keep them all)",
        others.join(", ")
    )
}

/// What squashing an index will do, per platform.
pub fn index_plan(index: &ImageIndex, plan: &IndexPlan) -> String {
    let mut out = format!("image index {} ({} images)\n", short(&index.digest().to_string()), index.images().len());
    for (image, p) in plan.images(index) {
        let platform = image.platform().map(ToString::to_string).unwrap_or_else(|| "(no platform)".into());
        if p.ranges.is_empty() {
            out.push_str(&format!("{platform}: copied as it is\n"));
            continue;
        }
        out.push_str(&format!("{platform}:\n"));
        for line in self::plan(image, p).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// What squashing an index wrote.
pub fn index_outcome(outcome: &IndexOutcome) -> String {
    let output = if outcome.output == "-" { "standard output" } else { outcome.output.as_str() };
    let mut out = format!("wrote {output}\n  index: {}\n", outcome.index_digest);
    let mut rows = vec![vec!["PLATFORM".into(), "MANIFEST".into(), "LAYERS".into(), "SIZE".into(), "".into()]];
    for image in &outcome.images {
        let size: u64 = image.outcome.layers.iter().map(|l| l.compressed_size).sum();
        rows.push(vec![
            image.platform.clone().unwrap_or_else(|| "(no platform)".into()),
            short(&image.outcome.manifest_digest.to_string()),
            image.outcome.layers.len().to_string(),
            human(size),
            if image.squashed { "squashed".into() } else { "copied".into() },
        ]);
    }
    out.push_str(&table(&rows));
    if !outcome.dropped_attestations.is_empty() {
        out.push_str(&format!(
            "  dropped {} attestation manifest(s) of squashed images (they describe the old manifests; --keep-attestations keeps them)\n",
            outcome.dropped_attestations.len()
        ));
    }
    if !outcome.stale_attestations.is_empty() {
        out.push_str(&format!(
            "  kept {} attestation manifest(s) that describe manifests no longer in the index\n",
            outcome.stale_attestations.len()
        ));
    }
    if !outcome.absent.is_empty() {
        out.push_str(&format!("  {} entr(ies) listed by the input but not in it: listed as they were\n", outcome.absent.len()));
    }
    out
}

pub fn outcome(image: &Image, plan: &SquashPlan, outcome: &Outcome) -> String {
    let mut out = String::new();
    let before_c: u64 = image.layers().iter().map(|l| l.size()).sum();
    let after_c: u64 = outcome.layers.iter().map(|l| l.compressed_size).sum();
    let output = if outcome.output == "-" { "standard output" } else { outcome.output.as_str() };
    out.push_str(&format!("wrote {output}\n"));
    out.push_str(&format!("  layers: {} -> {}\n", image.layers().len(), outcome.layers.len()));
    for r in &plan.ranges {
        let new = outcome.layers.iter().find(|l| l.squashed_from.as_ref() == Some(&r.range));
        if let Some(new) = new {
            out.push_str(&format!(
                "  layers {}..{}: compressed {} -> {}, uncompressed {} -> {}\n",
                r.range.start,
                r.range.end,
                human(r.compressed_size_before()),
                human(new.compressed_size),
                human(r.uncompressed_size_before()),
                human(new.uncompressed_size.unwrap_or(0))
            ));
        }
    }
    out.push_str(&format!("  image (stored): {} -> {}\n", human(before_c), human(after_c)));
    out.push_str(&format!("  manifest: {}\n  config:   {}\n", outcome.manifest_digest, outcome.config_digest));
    let mut rows = vec![vec!["#".into(), "DIGEST".into(), "SIZE".into(), "".into()]];
    for l in &outcome.layers {
        let note = match &l.squashed_from {
            Some(r) => format!("new: layers {}..{}", r.start, r.end),
            None => "kept".into(),
        };
        rows.push(vec![l.index.to_string(), short(&l.digest.to_string()), human(l.compressed_size), note]);
    }
    out.push_str(&table(&rows));
    out
}

pub fn report(report: &Report) -> String {
    let mut out = String::new();
    let mut rows =
        vec![["#", "COMPRESSED", "UNCOMPRESSED", "ADDED", "CHANGED", "DELETED", "WASTED", "CREATED BY"].map(String::from).to_vec()];
    for l in &report.layers {
        let created = truncated(&l.created_by.clone().unwrap_or_default(), 60);
        rows.push(vec![
            format!("{}{}", l.index, if l.base { " (base)" } else { "" }),
            human(l.compressed_size),
            human(l.uncompressed_size),
            l.added.to_string(),
            l.changed.to_string(),
            l.deleted.to_string(),
            human(l.wasted_bytes),
            created,
        ]);
    }
    out.push_str(&table(&rows));
    out.push_str(&format!(
        "\nwasted: {} in all, {} outside the base ({:.1}% of the non-base file bytes); efficiency {:.4}\n",
        human(report.wasted_bytes),
        human(report.wasted_bytes_non_base),
        report.wasted_percent,
        report.efficiency
    ));
    if !report.wasted_paths.is_empty() {
        out.push_str("\ntop wasted paths:\n");
        let mut rows = vec![["RECLAIMABLE", "COPIES", "LAYERS", "PATH"].map(String::from).to_vec()];
        for p in &report.wasted_paths {
            rows.push(vec![human(p.reclaimable_bytes), p.copies.to_string(), list(&p.layers), p.path.clone()]);
        }
        out.push_str(&table(&rows));
    }
    for r in &report.squash {
        out.push_str(&format!(
            "\nsquash {}\n  uncompressed {} -> {} (exact), compressed {} -> ~{} (estimate), reclaims {:.1}% of the non-base part\n",
            r.range,
            human(r.uncompressed_size_before),
            human(r.uncompressed_size_after),
            human(r.compressed_size_before),
            human(r.compressed_size_after_estimate),
            r.reclaimed_percent
        ));
    }
    out
}

/// What a person sees while a squash writes: a one-line progress display on stderr when it is a
/// terminal (redrawn at most five times a second) unless `--quiet`, notices such as a lock wait
/// unless `--quiet`, each step as a line of its own with `--verbose`, and the cancellation that
/// a signal asks for.
pub struct ProgressLine {
    line: bool,
    notices: bool,
    log_steps: bool,
    started: std::time::Instant,
    state: std::sync::Mutex<(String, u64, std::time::Instant)>,
}

impl ProgressLine {
    /// `terminal`: whether stderr can show a redrawn line.
    pub fn new(terminal: bool, verbosity: crate::args::Verbosity) -> ProgressLine {
        let now = std::time::Instant::now();
        ProgressLine {
            line: terminal && !verbosity.quiet,
            notices: !verbosity.quiet,
            log_steps: verbosity.verbose > 0,
            started: now,
            state: std::sync::Mutex::new((String::new(), 0, now)),
        }
    }

    fn draw(&self, step: &str, written: u64) {
        if self.line {
            use std::io::Write;
            let _ = write!(std::io::stderr(), "\r\x1b[2K{step}: {} written", human(written));
        }
    }

    /// Clears the line.
    pub fn finish(&self) {
        if self.line {
            use std::io::Write;
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
        if self.log_steps {
            crate::exit::note(&format!("squash: [{:6.2} s] done", self.started.elapsed().as_secs_f64()));
        }
    }
}

impl squash::Progress for ProgressLine {
    fn step(&self, description: &str) {
        if let Ok(mut state) = self.state.lock() {
            if self.log_steps {
                if self.line {
                    use std::io::Write;
                    let _ = write!(std::io::stderr(), "\r\x1b[2K");
                }
                crate::exit::note(&format!(
                    "squash: [{:6.2} s] {description} ({} written so far)",
                    self.started.elapsed().as_secs_f64(),
                    human(state.1)
                ));
            }
            state.0 = description.to_string();
            self.draw(&state.0, state.1);
        }
    }

    fn written(&self, bytes: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.1 += bytes;
            if state.2.elapsed() >= std::time::Duration::from_millis(200) {
                state.2 = std::time::Instant::now();
                self.draw(&state.0, state.1);
            }
        }
    }

    fn notice(&self, message: &str) {
        if self.notices {
            self.finish();
            crate::exit::note(&format!("squash: {message}"));
        }
    }

    fn cancelled(&self) -> bool {
        crate::exit::cancelled()
    }
}
