//! Human-readable tables; JSON goes through serde.

use squash::present::human;
use squash::present::story::layer_step;
use squash::{
    Attribute, ExcludeFigures, Image, ImageIndex, IndexOutcome, IndexPlan, Outcome, Report,
    SquashPlan, TreeDiff,
};

fn short(s: &str) -> String {
    s.strip_prefix("sha256:")
        .map(|h| format!("sha256:{}", &h[..12.min(h.len())]))
        .unwrap_or_else(|| s.to_string())
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
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn plan(image: &Image, plan: &SquashPlan) -> String {
    let mut out = String::new();
    for range in &plan.unchanged {
        out.push_str(&format!(
            "layer {} kept: a range of one layer squashes to itself ({}){}\n",
            range.start,
            range.reason,
            if plan.folds_history() { "; its history steps fold into one" } else { "" }
        ));
    }
    if let Some((first, last)) = plan.folded_steps {
        out.push_str(&format!(
            "history steps {first}..{last} made no filesystem layer: {}\n",
            if plan.folds_history() {
                "they fold into one step"
            } else {
                "nothing to squash (--drop-history folds them into one step)"
            }
        ));
    }
    if plan.ranges.is_empty() && plan.unchanged.is_empty() && plan.folded_steps.is_none() {
        out.push_str("no range selected: copying the image as it is\n");
    }
    for r in &plan.ranges {
        out.push_str(&format!("squashing {} ({})\n", r.range, flag(&plan.options.selector)));
        let before_u = r.uncompressed_size_before();
        out.push_str(&format!(
            "  {} -> 1; uncompressed {} -> {} ({} reclaimed); {} in the new layer\n",
            count(r.range.len(), "layer", "layers"),
            human(before_u),
            human(r.uncompressed_size()),
            human(before_u.saturating_sub(r.uncompressed_size())),
            count(r.entries_after(), "entry", "entries")
        ));
    }
    out.push_str(&excluded(&plan.excluded()));
    let kept: Vec<usize> = plan.kept_layers(image).collect();
    if !kept.is_empty() {
        let (word, list) = (if kept.len() == 1 { "layer" } else { "layers" }, list(&kept));
        out.push_str(&format!("keeping {word} {list} byte for byte\n"));
    }
    out
}

/// One line per `--exclude` pattern: what it drops from squashed ranges (reclaimed) and what it
/// hides that kept layers below still store.
pub fn excluded(figures: &[ExcludeFigures]) -> String {
    figures
        .iter()
        .map(|f| {
            format!(
                "  --exclude {}: {}, {} reclaimed; {}, {} hidden (still stored in kept layers \
                    below)\n",
                f.pattern,
                count(f.entries_reclaimed as usize, "entry", "entries"),
                human(f.bytes_reclaimed),
                count(f.entries_hidden as usize, "entry", "entries"),
                human(f.bytes_hidden)
            )
        })
        .collect()
}

/// The flag that chose ranges as `selector` did, as the user typed it.
fn flag(selector: &squash::LayerSelector) -> String {
    use squash::LayerSelector;
    match selector {
        LayerSelector::Top(n) => format!("--from-layer {n}"),
        LayerSelector::Above(digest) => format!("--from-layer {digest}"),
        LayerSelector::Base => "--from-layer base".into(),
        LayerSelector::Ranges(_) => "--layers".into(),
        LayerSelector::All => "--all".into(),
        LayerSelector::Steps(n) => format!("-f {n}"),
        _ => "chosen".into(),
    }
}

/// The `--exclude` patterns of `given` that remove nothing from the image, a line each.
pub fn excludes_unmatched(given: &[String], figures: &[ExcludeFigures]) -> String {
    given
        .iter()
        .filter(|p| {
            !figures
                .iter()
                .any(|f| &f.pattern == *p && (f.entries_reclaimed > 0 || f.entries_hidden > 0))
        })
        .map(|p| {
            format!(
                "  --exclude {p}: matches nothing in the image (a typo, or a path that is not \
                 there?)\n"
            )
        })
        .collect()
}

/// The warning for an image chosen from a multi-platform index: what the output leaves out.
pub fn platforms_left_out(image: &Image) -> String {
    let others: Vec<String> = image.other_platforms().iter().map(ToString::to_string).collect();
    let chosen = image.platform().map(ToString::to_string).unwrap_or_else(|| "one platform".into());
    format!(
        "warning: the index also holds {}; only {chosen} is written (a docker-archive holds one \
            platform; \
         write oci or oci-archive to keep them all)",
        others.join(", ")
    )
}

/// What squashing an index will do, per platform.
pub fn index_plan(index: &ImageIndex, plan: &IndexPlan) -> String {
    let mut out = format!(
        "image index {} ({} images)\n",
        short(&index.digest().to_string()),
        index.images().len()
    );
    for (image, p) in plan.images(index) {
        let platform =
            image.platform().map(ToString::to_string).unwrap_or_else(|| "(no platform)".into());
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
/// The tag an output carries, and whether it is the input's (which a load into the same engine
/// moves to the new image): a line, or nothing.
fn tagged(tag: Option<&str>, input: Option<&str>) -> String {
    match tag {
        Some(tag) if Some(tag) == input => {
            format!("  tagged:   {tag}, as the input (-t to choose another)\n")
        }
        Some(tag) => format!("  tagged:   {tag}\n"),
        None => "  untagged (-t to name it)\n".to_string(),
    }
}

/// The layers read beyond one read of each squashed layer, grouped by reason: a line each.
fn rereads(layers: &[squash::OutcomeLayer]) -> String {
    let mut by_reason: Vec<(&str, Vec<usize>)> = Vec::new();
    for reread in layers.iter().flat_map(|l| &l.rereads) {
        match by_reason.iter_mut().find(|(reason, _)| *reason == reread.reason) {
            Some((_, layers)) => layers.push(reread.layer),
            None => by_reason.push((&reread.reason, vec![reread.layer])),
        }
    }
    by_reason
        .into_iter()
        .map(|(reason, mut layers)| {
            layers.sort_unstable();
            layers.dedup();
            let list: Vec<String> = layers.iter().map(ToString::to_string).collect();
            format!("  also read layer(s) {}: {reason}\n", list.join(", "))
        })
        .collect()
}

/// What a run moved through registries, as a line: nothing when it touched none.
fn transfer(transfer: Option<&squash::Transfer>) -> String {
    let Some(t) = transfer else { return String::new() };
    format!(
        "  registry: downloaded {}, uploaded {} ({} blobs uploaded, {} mounted, {} already \
         there)\n",
        human(t.downloaded_bytes),
        human(t.uploaded_bytes),
        t.blobs_uploaded,
        t.blobs_mounted,
        t.blobs_present
    )
}

pub fn index_outcome(outcome: &IndexOutcome) -> String {
    let output = if outcome.output == "-" { "standard output" } else { outcome.output.as_str() };
    let mut out = format!("wrote {output}\n  index: {}\n", outcome.index_digest);
    if let Some(tag) = &outcome.tag {
        out.push_str(&format!("  tagged: {tag}\n"));
    }
    if let Some(pushed) = &outcome.pushed {
        out.push_str(&format!("  pushed: {pushed}\n"));
    }
    out.push_str(&transfer(outcome.transfer.as_ref()));
    let mut rows =
        vec![vec!["PLATFORM".into(), "MANIFEST".into(), "LAYERS".into(), "SIZE".into(), "".into()]];
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
            "  dropped {} attestation manifest(s) of squashed images (they describe the old \
                manifests; --keep-attestations keeps them)\n",
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
        out.push_str(&format!(
            "  {} entr(ies) listed by the input but not in it: listed as they were\n",
            outcome.absent.len()
        ));
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
    out.push_str(&excluded(&outcome.excluded));
    out.push_str(&rereads(&outcome.layers));
    out.push_str(&format!("  image (stored): {} -> {}\n", human(before_c), human(after_c)));
    out.push_str(&transfer(outcome.transfer.as_ref()));
    out.push_str(&format!(
        "  manifest: {}\n  config:   {}\n",
        outcome.manifest_digest, outcome.config_digest
    ));
    if let Some(pushed) = &outcome.pushed {
        out.push_str(&format!("  pushed:   {pushed}\n"));
    }
    out.push_str(&tagged(outcome.tag.as_deref(), image.name()));
    let mut rows = vec![vec!["#".into(), "DIGEST".into(), "SIZE".into(), "".into()]];
    for l in &outcome.layers {
        let note = match &l.squashed_from {
            Some(r) => format!("new: layers {}..{}", r.start, r.end),
            None => "kept".into(),
        };
        rows.push(vec![
            l.index.to_string(),
            short(&l.digest.to_string()),
            human(l.compressed_size),
            note,
        ]);
    }
    out.push_str(&table(&rows));
    out
}

/// Causes the text lists; the rest are counted (JSON has them all).
const CAUSES_SHOWN: usize = 10;

/// The causes of waste, largest first, each with what to change and the squash that reclaims it.
fn causes(report: &Report) -> String {
    use squash::present::story::{cause_headline, cause_squash, cause_step};
    if report.causes.is_empty() {
        return String::new();
    }
    let mut out = String::from("the biggest causes and how to fix them:\n");
    for (n, cause) in report.causes.iter().take(CAUSES_SHOWN).enumerate() {
        let step = |c: &squash::CauseLayer| truncated(&cause_step(c), 90);
        out.push_str(&format!("{:>3}. {}\n", n + 1, cause_headline(cause)));
        out.push_str(&format!("     stored by:  {}\n", step(&cause.stored_by)));
        out.push_str(&format!("     wasted by:  {}\n", step(&cause.wasted_by)));
        out.push_str(&format!("     paths:      {}\n", cause.paths.join(", ")));
        out.push_str(&format!("     fix:        {}\n", cause.fix));
        out.push_str(&format!("     or squash:  {}\n", cause_squash(cause)));
    }
    if report.causes.len() > CAUSES_SHOWN {
        out.push_str(&format!(
            "     … and {} smaller causes (--json lists them all)\n",
            report.causes.len() - CAUSES_SHOWN
        ));
    }
    out.push('\n');
    out
}

/// The wasted paths, largest first, each with its story.
fn wasted_paths(report: &Report) -> String {
    use squash::present::story::{event_step, event_words, row_note};
    if report.wasted_paths.is_empty() {
        return String::new();
    }
    let mut out = String::from("\ntop wasted paths (small files grouped by directory):\n");
    for p in &report.wasted_paths {
        out.push_str(&format!(
            "{:>10}  {}  ({})\n",
            human(p.reclaimable_bytes),
            p.path,
            row_note(p)
        ));
        for event in &p.events {
            let step = event_step(event).map(|s| format!("   {}", truncated(&s, 60)));
            out.push_str(&format!(
                "            {}{}\n",
                event_words(event),
                step.unwrap_or_default()
            ));
        }
    }
    out
}

pub fn report(report: &Report) -> String {
    let mut out = causes(report);
    let mut rows = vec![[
        "#",
        "COMPRESSED",
        "UNCOMPRESSED",
        "ADDED",
        "CHANGED",
        "DELETED",
        "WASTED",
        "RECLAIMS (STORED)",
        "CREATED BY",
    ]
    .map(String::from)
    .to_vec()];
    for l in &report.layers {
        let created = truncated(&layer_step(l.created_by.as_deref()), 60);
        let reclaims = if l.base || (l.reclaimed_bytes == 0 && l.reclaimed_compressed_bytes == 0) {
            "-".to_string()
        } else {
            format!("{} ({})", human(l.reclaimed_bytes), human(l.reclaimed_compressed_bytes))
        };
        rows.push(vec![
            format!("{}{}", l.index, if l.base { " (base)" } else { "" }),
            human(l.compressed_size),
            human(l.uncompressed_size),
            l.added.to_string(),
            l.changed.to_string(),
            l.deleted.to_string(),
            human(l.wasted_bytes),
            reclaims,
            created,
        ]);
    }
    out.push_str(&table(&rows));
    out.push_str(&format!(
        "\nwasted: {} in all, {} outside the base ({:.1}% of the non-base file bytes); efficiency \
            {:.4}\n",
        human(report.wasted_bytes),
        human(report.wasted_bytes_non_base),
        report.wasted_percent,
        report.efficiency
    ));
    out.push_str(&wasted_paths(report));
    for r in &report.squash {
        let after = match (&r.compressed_size_after_exact, &r.digest_after) {
            (Some(exact), Some(digest)) => {
                format!("{} (exact, {})", human(*exact), short(&digest.to_string()))
            }
            (Some(exact), None) => format!(
                "{} (exact: all of it compressed with {}, which costs less than samples)",
                human(*exact),
                r.compression
            ),
            _ if r.compression == squash::Compression::None => {
                format!(
                    "{} (the layer is stored uncompressed)",
                    human(r.compressed_size_after_estimate)
                )
            }
            _ if r.sampled_bytes >= r.uncompressed_size_after => {
                format!(
                    "~{} (estimate: all of it compressed with {})",
                    human(r.compressed_size_after_estimate),
                    r.compression
                )
            }
            _ => format!(
                "~{} (estimate: {} of it compressed with {}; --exact to measure all)",
                human(r.compressed_size_after_estimate),
                human(r.sampled_bytes),
                r.compression
            ),
        };
        out.push_str(&format!(
            "\nsquash {}\n  uncompressed {} -> {} (exact), reclaims {:.1}% of the non-base \
             part\n  compressed {} -> {}\n",
            r.range,
            human(r.uncompressed_size_before),
            human(r.uncompressed_size_after),
            r.reclaimed_percent,
            human(r.compressed_size_before),
            after,
        ));
        out.push_str(&excluded(&r.excluded));
    }
    out.push_str(&clutter(report));
    out
}

/// The clutter section: each rule that matched, its layers, the `--exclude` that removes it.
fn clutter(report: &Report) -> String {
    if report.clutter.is_empty() {
        return "\nclutter: none found under the cache and doc paths\n".into();
    }
    let mut out = format!(
        "\nclutter: {} visible under cache and doc paths, {} outside the base (not waste: a \
            squash keeps it, --exclude removes it)\n",
        human(report.clutter_bytes),
        human(report.clutter_bytes_non_base)
    );
    let mut rows =
        vec![["BYTES", "FILES", "IN SQUASHED LAYERS", "ADDED BY LAYERS", "WHAT", "REMOVE WITH"]
            .map(String::from)
            .to_vec()];
    for c in &report.clutter {
        let layers = c
            .layers
            .iter()
            .map(|l| format!("{} ({})", l.layer, human(l.bytes)))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            human(c.bytes),
            c.files.to_string(),
            human(c.reclaimable_bytes),
            layers,
            c.rule.clone(),
            format!("--exclude '{}'", c.pattern),
        ]);
    }
    out.push_str(&table(&rows));
    if !report.clutter_paths.is_empty() {
        out.push_str("\ntop cluttered paths:\n");
        let mut rows = vec![["BYTES", "FILES", "LAYERS", "PATH"].map(String::from).to_vec()];
        for p in &report.clutter_paths {
            let layers: Vec<usize> = p.layers.iter().map(|l| l.layer).collect();
            rows.push(vec![human(p.bytes), p.files.to_string(), list(&layers), p.path.clone()]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// The summary of several images.
pub fn audit(summary: &squash::AuditSummary) -> String {
    format!(
        "== all {} images\n{} distinct layer blobs, {} stored (each shared blob once); after \
            squashing each: {}{}, saving {} ({:.1}%)\n",
        summary.images,
        summary.blobs,
        human(summary.stored_bytes),
        if summary.exact { "" } else { "~" },
        human(summary.stored_bytes_after),
        human(summary.saved_bytes),
        summary.saved_percent
    )
}

/// What a person sees while squash works: a progress bar on stderr when it is a terminal
/// (indexing: layers and bytes read; writing: the share of the work done, its rate and the time
/// left), unless `--quiet`; notices such as a lock wait unless `--quiet`; each step as a line of
/// its own with `--verbose`; and the cancellation that a signal asks for.
pub struct ProgressLine {
    /// Whether bars are drawn at all.
    bars: bool,
    /// The bar of the current phase (indexing, writing), if one is shown.
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    notices: bool,
    log_steps: bool,
    started: std::time::Instant,
    /// The process's CPU seconds when the line was made.
    cpu_started: f64,
}

impl ProgressLine {
    /// Progress on stderr: bars when it is a terminal and the output is not JSON.
    pub fn on_stderr(json: bool, verbosity: crate::args::Verbosity) -> ProgressLine {
        use std::io::IsTerminal;
        ProgressLine {
            bars: !json && std::io::stderr().is_terminal() && !verbosity.quiet,
            bar: std::sync::Mutex::new(None),
            notices: !verbosity.quiet,
            log_steps: verbosity.verbose > 0,
            started: std::time::Instant::now(),
            cpu_started: cpu_seconds(),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&indicatif::ProgressBar)) {
        if crate::exit::cancelled() {
            // Interrupted: the bar stops drawing at once.
            self.clear();
            return;
        }
        if let Ok(bar) = self.bar.lock() {
            if let Some(bar) = bar.as_ref() {
                f(bar);
            }
        }
    }

    /// Prints `text` on stderr, above the bar if one is shown.
    pub fn note(&self, text: &str) {
        let mut printed = false;
        self.with_bar(|bar| {
            bar.suspend(|| crate::exit::note(text));
            printed = true;
        });
        if !printed {
            crate::exit::note(text);
        }
    }

    /// With `--verbose`, `text` after the seconds since the start and the CPU seconds the run
    /// has used (every thread's, user and system), so that a phase's cores can be read off.
    fn log(&self, text: &str) {
        if self.log_steps {
            let (wall, cpu) =
                (self.started.elapsed().as_secs_f64(), cpu_seconds() - self.cpu_started);
            self.note(&format!("squash: [{wall:6.2} s, {cpu:6.2} s CPU] {text}"));
        }
    }

    /// With `--verbose`, the first step: opening the input (reading the manifests; a pipe is
    /// first read whole into a spool, its members hashed as they arrive).
    pub fn opening(&self, stream: bool) {
        self.log(if stream {
            "reading the input into a spool (each member hashed as it arrives)"
        } else {
            "opening the input"
        });
    }

    /// A new bar of `total` bytes, in place of the last one.
    fn restart(&self, total: u64, template: &str, message: String) {
        if !self.bars {
            return;
        }
        let window = std::sync::Arc::new(std::sync::Mutex::new(RateWindow::default()));
        let (for_rate, for_eta) = (std::sync::Arc::clone(&window), window);
        let style = indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .with_key(
                "rate",
                move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let rate = for_rate.lock().map(|mut r| r.rate(state.pos())).unwrap_or(0.0);
                    let _ = write!(w, "{}/s", human(rate as u64));
                },
            )
            .with_key(
                "left",
                move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let rate = for_eta.lock().map(|mut r| r.rate(state.pos())).unwrap_or(0.0);
                    let left = state.len().unwrap_or(0).saturating_sub(state.pos());
                    let _ = match rate {
                        r if r > 0.0 => write!(w, "{:.0} s left", left as f64 / r),
                        _ => write!(w, "…"),
                    };
                },
            )
            .progress_chars("=> ");
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr_with_hz(5),
        )
        .with_style(style)
        .with_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        if let Ok(mut current) = self.bar.lock() {
            if let Some(old) = current.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    /// Clears the bar of the phase that ended (planning, before the plan is printed).
    pub fn clear(&self) {
        if let Ok(mut current) = self.bar.lock() {
            if let Some(old) = current.take() {
                old.finish_and_clear();
            }
        }
    }

    /// Clears the bar; with `--verbose`, says the run is done.
    pub fn finish(&self) {
        self.clear();
        self.log("done");
    }
}

/// The CPU seconds this process has used so far, every thread's.
fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

const INDEXING: &str = "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {rate}";
const WRITING: &str = "{msg:24!} [{bar:30}] {percent:>3}% {decimal_bytes}/{decimal_total_bytes} \
    {rate}, {left}";

/// The rate of the last few seconds (not since the start, which lags behind a rate that
/// changes): positions sampled as the bar draws.
#[derive(Default)]
struct RateWindow {
    samples: std::collections::VecDeque<(std::time::Instant, u64)>,
}

impl RateWindow {
    /// Seconds the rate is taken over.
    const SPAN: f64 = 5.0;

    /// Records `position` now; bytes a second over the window.
    fn rate(&mut self, position: u64) -> f64 {
        self.rate_at(std::time::Instant::now(), position)
    }

    /// Records `position` at `now`; bytes a second over the window.
    fn rate_at(&mut self, now: std::time::Instant, position: u64) -> f64 {
        self.samples.push_back((now, position));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t).as_secs_f64() > Self::SPAN)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
        let Some(&(t0, p0)) = self.samples.front() else { return 0.0 };
        let seconds = now.duration_since(t0).as_secs_f64();
        if seconds < 0.2 {
            return 0.0;
        }
        position.saturating_sub(p0) as f64 / seconds
    }
}

impl squash::Progress for ProgressLine {
    fn event(&self, event: &squash::Event) {
        use squash::Event;
        match event {
            Event::Indexing { layers, bytes } => {
                let what = format!("indexing {}", count(*layers, "layer", "layers"));
                self.log(&format!("{what} ({})", human(*bytes)));
                self.restart(*bytes, INDEXING, what);
            }
            Event::Indexed { bytes, .. } | Event::Advanced { bytes } => {
                self.with_bar(|bar| bar.inc(*bytes))
            }
            Event::Writing { total } => {
                self.log(&format!("writing: {} of work", human(*total)));
                self.restart(*total, WRITING, "writing".into());
            }
            Event::Measuring { total } => {
                self.log(&format!("measuring: {} of new layers", human(*total)));
                self.restart(*total, WRITING, "measuring".into());
            }
            Event::Step { description } => {
                self.log(description);
                self.with_bar(|bar| bar.set_message(description.clone()));
            }
            Event::Notice { message } if self.notices => self.note(&format!("squash: {message}")),
            _ => {}
        }
    }

    fn cancelled(&self) -> bool {
        crate::exit::cancelled()
    }
}

/// `squash diff`'s config and manifest lines: `~ labels.version: "1" -> "2"`, `+ env.DEBUG:
/// "1"`, `- cmd: ["sh"]`.
pub fn config_changes(changes: &[squash::ConfigChange]) -> String {
    let mut out = String::new();
    for c in changes {
        let name = match &c.key {
            Some(key) => format!("{}.{key}", c.field),
            None => c.field.clone(),
        };
        // JSON values (a command's list) as they are; text quoted.
        let show = |v: &Option<String>| match v.as_deref().unwrap_or("") {
            json if json.starts_with('[') || json.starts_with('{') => json.to_string(),
            text => format!("{text:?}"),
        };
        match (&c.a, &c.b) {
            (None, Some(_)) => out.push_str(&format!("+ config {name}: {}\n", show(&c.b))),
            (Some(_), None) => out.push_str(&format!("- config {name}: {}\n", show(&c.a))),
            _ => out.push_str(&format!("~ config {name}: {} -> {}\n", show(&c.a), show(&c.b))),
        }
    }
    if !changes.is_empty() {
        out.push_str(&format!(
            "{} in the config and manifest\n",
            count(changes.len(), "difference", "differences")
        ));
    }
    out
}

/// `squash diff`: one line per path (`+` added, `-` removed, `~` changed, with what differs),
/// then the totals.
pub fn diff(diff: &TreeDiff, ignored: &[Attribute]) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    lines.extend(diff.added.iter().map(|p| (p.clone(), format!("+ {p}"))));
    lines.extend(diff.removed.iter().map(|p| (p.clone(), format!("- {p}"))));
    lines.extend(diff.changed.iter().map(|c| {
        let what: Vec<String> =
            c.differences.iter().map(|d| format!("{} {} -> {}", d.attribute, d.a, d.b)).collect();
        (c.path.clone(), format!("~ {}: {}", c.path, what.join("; ")))
    }));
    lines.sort();
    let mut text: String = lines.into_iter().map(|(_, line)| line + "\n").collect();
    let ignored = if ignored.is_empty() {
        String::new()
    } else {
        format!(
            " ({} not compared)",
            ignored.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
        )
    };
    if diff.is_empty() {
        text.push_str(&format!("the filesystems are equal{ignored}\n"));
    } else {
        text.push_str(&format!(
            "{} added, {} removed, {} changed{ignored}\n",
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::RateWindow;
    use std::time::{Duration, Instant};

    /// 10 s at 100 MB/s, then 5 s at 10 MB/s: the bar shows 10 MB/s, not the 70 MB/s average
    /// since the start.
    #[test]
    fn the_rate_is_the_last_seconds() {
        let (start, mut window, mut position) = (Instant::now(), RateWindow::default(), 0u64);
        let mut rate = 0.0;
        for tenth in 1..=150u64 {
            position += if tenth <= 100 { 10_000_000 } else { 1_000_000 };
            rate = window.rate_at(start + Duration::from_millis(tenth * 100), position);
        }
        assert!((9e6..11e6).contains(&rate), "{rate}");
    }
}
