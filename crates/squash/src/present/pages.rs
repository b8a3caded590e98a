//! Reports people read: Markdown to paste into a pull request comment, and one self-contained
//! HTML page (no script, no network) with the per-layer chart, the tables and the clutter list.
//! Both are views of [`ReportDocument`]s and, for several images, an [`AuditSummary`].

use super::document::ReportDocument;
use super::story::{cause_kind, cause_step, event_words, row_note, step_text};
use crate::report::audit::AuditSummary;
use crate::report::clutter::LayerBytes;
use crate::report::model::{CauseLayer, RangeReport, Report};
use crate::units::human;

/// A Markdown cell: pipes escaped, line breaks and backticks out, cut to `width` characters.
fn cell(text: &str, width: usize) -> String {
    let flat: String = text.replace(['\n', '\r', '\t'], " ").replace('`', "'");
    let cut: String = if flat.chars().count() > width {
        flat.chars().take(width.saturating_sub(1)).chain(std::iter::once('…')).collect()
    } else {
        flat
    };
    cut.replace('|', "\\|")
}

/// Prose for a Markdown cell whose backticks enclose code in pairs (a cause's fix): pipes
/// escaped, line breaks out, nothing cut.
fn prose_cell(text: &str) -> String {
    text.replace(['\n', '\r', '\t'], " ").replace('|', "\\|")
}

/// The image's name in headings.
fn title(document: &ReportDocument) -> String {
    match &document.input.platform {
        Some(p) => format!("{} ({p})", document.input.reference),
        None => document.input.reference.clone(),
    }
}

fn layers_list(layers: &[LayerBytes]) -> String {
    layers
        .iter()
        .map(|l| format!("{} ({})", l.layer, human(l.bytes)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The squash line's compressed figure: exact, or an estimate and how it was made.
fn after(range: &RangeReport) -> String {
    match range.compressed_size_after_exact {
        Some(exact) => format!("{} (exact)", human(exact)),
        None => format!("~{} (estimate)", human(range.compressed_size_after_estimate)),
    }
}

/// One image's report as Markdown: a summary, the layer table, the squash, the top wasted
/// and cluttered paths, and the gates.
fn markdown_one(document: &ReportDocument, top: usize, out: &mut String) {
    let report: &Report = &document.report;
    out.push_str(&format!("### squash report: `{}`\n\n", cell(&title(document), 200)));
    out.push_str(&format!(
        "**Wasted:** {} outside the base ({:.1}% of its file bytes), {} in all; \
         efficiency {:.4}.  \n",
        human(report.wasted_bytes_non_base),
        report.wasted_percent,
        human(report.wasted_bytes),
        report.efficiency
    ));
    for r in &report.squash {
        out.push_str(&format!(
            "**Squash layers {}..{}:** stored {} → {}, uncompressed {} → {} (exact).  \n",
            r.range.start,
            r.range.end,
            human(r.compressed_size_before),
            after(r),
            human(r.uncompressed_size_before),
            human(r.uncompressed_size_after),
        ));
    }
    out.push_str(&format!(
        "**Clutter:** {} visible under cache and doc paths, {} of it outside the base (a squash \
            keeps it; `--exclude` removes it).\n\n",
        human(report.clutter_bytes),
        human(report.clutter_bytes_non_base)
    ));
    markdown_causes(report, top, out);
    out.push_str(
        "| # | stored | uncompressed | wasted | a squash reclaims (stored) | created by \
        |\n|---:|---:|---:|---:|---:|---|\n",
    );
    for l in &report.layers {
        let reclaims = if l.base || (l.reclaimed_bytes == 0 && l.reclaimed_compressed_bytes == 0) {
            "–".to_string()
        } else {
            format!("{} ({})", human(l.reclaimed_bytes), human(l.reclaimed_compressed_bytes))
        };
        out.push_str(&format!(
            "| {}{} | {} | {} | {} | {} | {} |\n",
            l.index,
            if l.base { " (base)" } else { "" },
            human(l.compressed_size),
            human(l.uncompressed_size),
            human(l.wasted_bytes),
            reclaims,
            match l.created_by.as_deref().map(|c| cell(&step_text(c), 70)).filter(|c| !c.is_empty())
            {
                Some(created) => format!("`{created}`"),
                None => "–".to_string(),
            }
        ));
    }
    if !report.wasted_paths.is_empty() {
        out.push_str(
            "\n<details><summary>Top wasted paths</summary>\n\n| reclaimable | path | \
            copies or files | story |\n|---:|---|---|---|\n",
        );
        for p in report.wasted_paths.iter().take(top) {
            let story: Vec<String> = p.events.iter().map(|e| cell(&event_words(e), 120)).collect();
            out.push_str(&format!(
                "| {} | `{}` | {} | {} |\n",
                human(p.reclaimable_bytes),
                cell(&p.path, 100),
                cell(&row_note(p), 80),
                story.join("<br>")
            ));
        }
        out.push_str("\n</details>\n");
    }
    if !report.clutter.is_empty() {
        out.push_str(
            "\n<details><summary>Clutter</summary>\n\n| clutter | files | bytes | in \
            squashed layers | added by layers | remove with |\n|---|---:|---:|---:|---|---|\n",
        );
        for c in &report.clutter {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | `--exclude '{}'` |\n",
                cell(&c.rule, 40),
                c.files,
                human(c.bytes),
                human(c.reclaimable_bytes),
                layers_list(&c.layers),
                cell(&c.pattern, 60)
            ));
        }
        if !report.clutter_paths.is_empty() {
            out.push_str("\n| bytes | files | layers | path |\n|---:|---:|---|---|\n");
            for p in report.clutter_paths.iter().take(top) {
                out.push_str(&format!(
                    "| {} | {} | {} | `{}` |\n",
                    human(p.bytes),
                    p.files,
                    layers_list(&p.layers),
                    cell(&p.path, 100)
                ));
            }
        }
        out.push_str("\n</details>\n");
    }
    if !document.gates.is_empty() {
        out.push('\n');
        for g in &document.gates {
            out.push_str(&format!(
                "- {} {}\n",
                if g.passed { "✅" } else { "❌" },
                cell(&g.to_string(), 200)
            ));
        }
    }
    out.push('\n');
}

/// The causes table: wasted bytes, kind, the two steps, the fix and the squash.
fn markdown_causes(report: &Report, top: usize, out: &mut String) {
    if report.causes.is_empty() {
        return;
    }
    out.push_str(
        "**The biggest causes and how to fix them**\n\n| wasted | kind | stored by | made waste \
         by | fix | or squash |\n|---:|---|---|---|---|---|\n",
    );
    let step = |layer: &CauseLayer| format!("{}: `{}`", layer.layer, cell(&cause_step(layer), 60));
    for cause in report.causes.iter().take(top) {
        let kind = cause_kind(cause);
        out.push_str(&format!(
            "| {} in {} | {}{} | {} | {} | {} | `{}` (reclaims {}) |\n",
            human(cause.bytes),
            if cause.files == 1 { "1 file".into() } else { format!("{} files", cause.files) },
            kind,
            if cause.base { " (in the base: not reclaimed by this squash)" } else { "" },
            step(&cause.stored_by),
            step(&cause.wasted_by),
            prose_cell(&cause.fix),
            cell(&cause.squash.command, 200),
            human(cause.squash.reclaims)
        ));
    }
    out.push('\n');
}

#[cfg(feature = "svg")]
/// The causes first: what made the bytes waste, what to change, the squash that reclaims them.
fn html_causes(report: &Report, top: usize, out: &mut String) {
    if report.causes.is_empty() {
        return;
    }
    out.push_str("<h3>The biggest causes and how to fix them</h3>\n<div class=\"causes\">");
    let step = |layer: &CauseLayer| format!("layer {}: {}", layer.layer, cause_step(layer));
    let rows: Vec<Vec<Cell>> = report
        .causes
        .iter()
        .take(top)
        .map(|c| {
            vec![
                Cell::Text(human(c.bytes)),
                Cell::Text(format!(
                    "{}{}\n{}",
                    cause_kind(c),
                    if c.base { " (in the base: not reclaimed by this squash)" } else { "" },
                    if c.files == 1 { "1 file".into() } else { format!("{} files", c.files) }
                )),
                Cell::Text(step(&c.stored_by)),
                Cell::Text(step(&c.wasted_by)),
                Cell::Html(format!("{}\n{}", prose_html(&c.fix), escape(&c.paths.join("\n")))),
                Cell::Html(format!(
                    "<code>{}</code>\n(reclaims {})",
                    escape(&c.squash.command),
                    human(c.squash.reclaims)
                )),
            ]
        })
        .collect();
    out.push_str(&html_cells(
        &["wasted", "kind", "stored by", "made waste by", "fix (paths)", "or squash"],
        &rows,
    ));
    out.push_str("</div>\n");
}

/// The reports as Markdown, fit for a pull request comment: for each image its summary, layer
/// table, squash prediction, top wasted and cluttered paths (`top` of each) and gates; then,
/// for several images, the summary of what they store together.
pub fn report_markdown(
    documents: &[ReportDocument],
    summary: Option<&AuditSummary>,
    top: usize,
) -> String {
    let mut out = String::new();
    for document in documents {
        markdown_one(document, top, &mut out);
    }
    if let Some(s) = summary {
        out.push_str(&format!(
            "### All {} images\n\n| distinct layer blobs | stored | after squashing each | saved \
                |\n|---:|---:|---:|---:|\n| {} | {} | {}{} | {} ({:.1}%) |\n",
            s.images,
            s.blobs,
            human(s.stored_bytes),
            if s.exact { "" } else { "~" },
            human(s.stored_bytes_after),
            human(s.saved_bytes),
            s.saved_percent
        ));
    }
    out
}

/// Text for HTML: `&`, `<`, `>` and `"` escaped.
#[cfg(feature = "svg")]
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Prose whose backticks enclose code in pairs (a cause's fix), escaped for HTML with each
/// code span in `<code>`; a backtick left without its pair stays as it is.
#[cfg(feature = "svg")]
fn prose_html(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str(&escape(part));
        } else if i + 1 < parts.len() {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else {
            out.push('`');
            out.push_str(&escape(part));
        }
    }
    out
}

/// A table cell: text, escaped when the table is drawn, or markup already escaped.
#[cfg(feature = "svg")]
enum Cell {
    Text(String),
    Html(String),
}

/// A table of text with a header row.
#[cfg(feature = "svg")]
fn html_table(head: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cell>> =
        rows.iter().map(|row| row.iter().cloned().map(Cell::Text).collect()).collect();
    html_cells(head, &rows)
}

/// A table with a header row.
#[cfg(feature = "svg")]
fn html_cells(head: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut out = String::from("<div class=\"wide\"><table><thead><tr>");
    for h in head {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for c in row {
            match c {
                Cell::Text(text) => out.push_str(&format!("<td>{}</td>", escape(text))),
                Cell::Html(html) => out.push_str(&format!("<td>{html}</td>")),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// The reports as one self-contained HTML page: per image the causes of waste and their fixes,
/// the chart of kept and wasted bytes per layer ([`crate::present::report_svg`], inline), the
/// layer table, the top wasted paths with their stories, the squash and the clutter list;
/// then, for several images, their summary. No script, no
/// network: the page is the file.
#[cfg(feature = "svg")]
pub fn report_html(
    documents: &[ReportDocument],
    summary: Option<&AuditSummary>,
    top: usize,
) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
            content=\"width=device-width, initial-scale=1\"><title>squash \
            report</title>\n<style>\n\
         body{font-family:sans-serif;margin:24px;color:#222;background:#fff}\n\
         h1{font-size:22px}h2{font-size:18px;margin-top:32px}h3{font-size:15px}\n\
         table{border-collapse:collapse;margin:8px 0 16px}\n\
         th{background:#dfe7f5;text-align:left}\n\
         th,td{border:1px solid #8a9bb8;padding:4px 8px;font-size:13px}\n\
         td:nth-child(n+2){font-variant-numeric:tabular-nums}\n\
         .fail{color:#b00020}.pass{color:#1b7f3b}\n\
         td{white-space:pre-line;vertical-align:top}.chart svg{max-width:100%;height:auto}\n\
         .causes td:first-child{font-weight:bold}.wide{overflow-x:auto}\n\
         td{overflow-wrap:anywhere;min-width:4em}\n\
         code{font-family:monospace;background:#eef1f6;padding:0 2px}\n\
         @media (max-width:600px){body{margin:8px}th,td{font-size:11px;padding:2px 4px}}\n\
         </style></head><body>\n<h1>squash report</h1>\n",
    );
    for document in documents {
        let report = &document.report;
        out.push_str(&format!("<h2>{}</h2>\n", escape(&title(document))));
        out.push_str(&format!(
            "<p>Wasted: {} outside the base ({:.1}% of its file bytes), {} in all; efficiency \
                {:.4}. Clutter: {} visible under cache and doc paths, {} outside the base.</p>\n",
            human(report.wasted_bytes_non_base),
            report.wasted_percent,
            human(report.wasted_bytes),
            report.efficiency,
            human(report.clutter_bytes),
            human(report.clutter_bytes_non_base)
        ));
        html_causes(report, top, &mut out);
        out.push_str("<div class=\"chart\">");
        out.push_str(&super::svg::report_svg(report));
        out.push_str("</div>\n<h3>Layers</h3>\n");
        let rows: Vec<Vec<String>> = report
            .layers
            .iter()
            .map(|l| {
                vec![
                    format!("{}{}", l.index, if l.base { " (base)" } else { "" }),
                    human(l.compressed_size),
                    human(l.uncompressed_size),
                    human(l.wasted_bytes),
                    human(l.reclaimed_bytes),
                    human(l.reclaimed_compressed_bytes),
                    super::story::layer_step(l.created_by.as_deref()).into_owned(),
                ]
            })
            .collect();
        out.push_str(&html_table(
            &[
                "#",
                "stored",
                "uncompressed",
                "wasted",
                "a squash reclaims",
                "of it stored",
                "created by",
            ],
            &rows,
        ));
        if !report.wasted_paths.is_empty() {
            out.push_str("<h3>Top wasted paths</h3>\n");
            let rows: Vec<Vec<String>> = report
                .wasted_paths
                .iter()
                .take(top)
                .map(|p| {
                    let story: Vec<String> = p
                        .events
                        .iter()
                        .map(|e| {
                            let step = super::story::event_step(e).map(|s| format!(" ({s})"));
                            format!("{}{}", event_words(e), step.unwrap_or_default())
                        })
                        .collect();
                    vec![human(p.reclaimable_bytes), p.path.clone(), row_note(p), story.join("\n")]
                })
                .collect();
            out.push_str(&html_table(&["reclaimable", "path", "copies or files", "story"], &rows));
        }
        if !report.squash.is_empty() {
            out.push_str("<h3>Squash</h3>\n");
            let rows: Vec<Vec<String>> = report
                .squash
                .iter()
                .map(|r| {
                    vec![
                        format!("layers {}..{}", r.range.start, r.range.end),
                        human(r.compressed_size_before),
                        after(r),
                        human(r.uncompressed_size_before),
                        human(r.uncompressed_size_after),
                        format!("{:.1}%", r.reclaimed_percent),
                    ]
                })
                .collect();
            out.push_str(&html_table(
                &[
                    "layers",
                    "stored before",
                    "stored after",
                    "uncompressed before",
                    "after",
                    "reclaimed",
                ],
                &rows,
            ));
        }
        if !report.clutter.is_empty() {
            out.push_str(
                "<h3>Clutter</h3>\n<p>Visible files under cache and doc paths: not \
                wasted, and kept by a squash; <code>--exclude</code> removes them.</p>\n",
            );
            let rows: Vec<Vec<String>> = report
                .clutter
                .iter()
                .map(|c| {
                    vec![
                        c.rule.clone(),
                        c.files.to_string(),
                        human(c.bytes),
                        human(c.reclaimable_bytes),
                        layers_list(&c.layers),
                        format!("--exclude '{}'", c.pattern),
                    ]
                })
                .collect();
            out.push_str(&html_table(
                &[
                    "clutter",
                    "files",
                    "bytes",
                    "in squashed layers",
                    "added by layers",
                    "remove with",
                ],
                &rows,
            ));
            let rows: Vec<Vec<String>> = report
                .clutter_paths
                .iter()
                .take(top)
                .map(|p| {
                    vec![
                        human(p.bytes),
                        p.files.to_string(),
                        layers_list(&p.layers),
                        p.path.clone(),
                    ]
                })
                .collect();
            out.push_str(&html_table(&["bytes", "files", "layers", "path"], &rows));
        }
        for g in &document.gates {
            let class = if g.passed { "pass" } else { "fail" };
            out.push_str(&format!(
                "<p class=\"{class}\">{} {}</p>\n",
                if g.passed { "passed:" } else { "failed:" },
                escape(&g.to_string())
            ));
        }
    }
    if let Some(s) = summary {
        out.push_str(&format!("<h2>All {} images</h2>\n", s.images));
        let rows = vec![vec![
            s.blobs.to_string(),
            human(s.stored_bytes),
            format!("{}{}", if s.exact { "" } else { "~" }, human(s.stored_bytes_after)),
            format!("{} ({:.1}%)", human(s.saved_bytes), s.saved_percent),
        ]];
        out.push_str(&html_table(
            &["distinct layer blobs", "stored", "after squashing each", "saved"],
            &rows,
        ));
    }
    out.push_str("</body></html>\n");
    out
}
