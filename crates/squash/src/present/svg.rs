//! The report as an SVG bar chart: one bar per layer, its kept bytes, then its wasted bytes split
//! by the later layer that made them waste, each such layer a colour of the legend.

use std::collections::BTreeMap;

use super::story::layer_step;
use crate::report::model::Report;
use crate::units::human;

/// Colours of the layers that make bytes waste, in the order they first appear.
const PALETTE: [&str; 8] =
    ["#d9534f", "#f0ad4e", "#8e44ad", "#e67e22", "#c2185b", "#795548", "#b8860b", "#6d4c41"];
/// Kept bytes.
const KEPT: &str = "#4a7fd4";

/// A bar chart, one bar per layer, of kept bytes and of wasted bytes by the layer that wasted
/// them, with a legend naming each such layer's step, as SVG.
pub fn report_svg(report: &Report) -> String {
    let width = 900.0;
    let bar_height = 22.0;
    let label_width = 280.0;
    let value_width = 150.0;
    // (stored layer) → (wasting layer → bytes).
    let mut split: BTreeMap<usize, BTreeMap<usize, u64>> = BTreeMap::new();
    for cause in &report.causes {
        *split
            .entry(cause.stored_by.layer)
            .or_default()
            .entry(cause.wasted_by.layer)
            .or_default() += cause.bytes;
    }
    let wasting: Vec<usize> = {
        let mut w: Vec<usize> = report.causes.iter().map(|c| c.wasted_by.layer).collect();
        w.sort_unstable();
        w.dedup();
        w
    };
    let colour = |layer: usize| {
        let i = wasting.iter().position(|&w| w == layer).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let escape = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    };
    let step = |layer: usize| {
        report
            .layers
            .get(layer)
            .map(|l| layer_step(l.created_by.as_deref()))
            .unwrap_or_default()
            .chars()
            .take(70)
            .collect::<String>()
    };
    let legend_rows = 1 + wasting.len();
    let top = 40.0 + legend_rows as f64 * 18.0 + 12.0;
    let height = top + report.layers.len() as f64 * (bar_height + 8.0) + 24.0;
    let max = report.layers.iter().map(|l| l.kept_bytes + l.wasted_bytes).max().unwrap_or(1).max(1)
        as f64;
    let scale = (width - label_width - value_width) / max;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
            viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\">Bytes per layer: {} wasted in all, {} \
            outside the base ({:.1}%)</text>\n\
         <rect x=\"10\" y=\"34\" width=\"12\" height=\"12\" fill=\"{KEPT}\"/>\
         <text x=\"28\" y=\"45\">kept (visible in the container)</text>\n",
        human(report.wasted_bytes),
        human(report.wasted_bytes_non_base),
        report.wasted_percent
    );
    for (row, &layer) in wasting.iter().enumerate() {
        let y = 34.0 + (row + 1) as f64 * 18.0;
        svg.push_str(&format!(
            "<rect x=\"10\" y=\"{y:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"28\" y=\"{:.1}\">wasted by layer {layer}: {}</text>\n",
            colour(layer),
            y + 11.0,
            escape(&step(layer))
        ));
    }
    for (i, layer) in report.layers.iter().enumerate() {
        let y = top + i as f64 * (bar_height + 8.0);
        let label: String = layer_step(layer.created_by.as_deref()).chars().take(36).collect();
        let kept_w = layer.kept_bytes as f64 * scale;
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\">{}{} {}</text>\n\
             <rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{kept_w:.1}\" \
                height=\"{bar_height}\" fill=\"{KEPT}\"><title>layer {}: {} kept</title></rect>\n",
            y + 15.0,
            layer.index,
            if layer.base { " (base)" } else { "" },
            escape(&label),
            layer.index,
            human(layer.kept_bytes),
        ));
        let mut x = label_width + kept_w;
        let segments = split.get(&layer.index).cloned().unwrap_or_default();
        let told: u64 = segments.values().sum();
        for (by, bytes) in segments {
            let w = bytes as f64 * scale;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_height}\" \
                    fill=\"{}\"><title>layer {}: {} wasted by layer {by}</title></rect>\n",
                colour(by),
                layer.index,
                human(bytes)
            ));
            x += w;
        }
        // Waste that no cause accounts for still shows, in the first colour.
        let rest = layer.wasted_bytes.saturating_sub(told) as f64 * scale;
        if rest > 0.0 {
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{rest:.1}\" height=\"{bar_height}\" \
                    fill=\"{}\"/>\n",
                PALETTE[0]
            ));
            x += rest;
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\">{} / {}</text>\n",
            x + 6.0,
            y + 15.0,
            human(layer.kept_bytes),
            human(layer.wasted_bytes),
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
