//! The report as an SVG bar chart: one bar per layer, kept and wasted bytes.

use crate::report::model::Report;
use crate::units::human;

/// A bar chart, one bar per layer, of kept and wasted bytes, as SVG.
pub fn report_svg(report: &Report) -> String {
    let width = 900.0;
    let bar_height = 22.0;
    let label_width = 280.0;
    let value_width = 150.0;
    let top = 64.0;
    let height = top + report.layers.len() as f64 * (bar_height + 8.0) + 24.0;
    let max = report.layers.iter().map(|l| l.kept_bytes + l.wasted_bytes).max().unwrap_or(1).max(1)
        as f64;
    let scale = (width - label_width - value_width) / max;
    let escape = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
            viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\">Bytes per layer: {} wasted in all, {} \
            outside the base ({:.1}%)</text>\n\
         <rect x=\"10\" y=\"34\" width=\"12\" height=\"12\" fill=\"#4a7fd4\"/>\
         <text x=\"28\" y=\"45\">kept (visible in the container)</text>\n\
         <rect x=\"230\" y=\"34\" width=\"12\" height=\"12\" fill=\"#d9534f\"/>\
         <text x=\"248\" y=\"45\">wasted (shadowed or deleted later)</text>\n",
        human(report.wasted_bytes),
        human(report.wasted_bytes_non_base),
        report.wasted_percent
    );
    for (i, layer) in report.layers.iter().enumerate() {
        let y = top + i as f64 * (bar_height + 8.0);
        let label: String = layer.created_by.clone().unwrap_or_default().chars().take(36).collect();
        let kept_w = layer.kept_bytes as f64 * scale;
        let wasted_w = layer.wasted_bytes as f64 * scale;
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\">{}{} {}</text>\n\
             <rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{kept_w:.1}\" \
                height=\"{bar_height}\" fill=\"#4a7fd4\"/>\n\
             <rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{wasted_w:.1}\" \
                height=\"{bar_height}\" fill=\"#d9534f\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{} / {}</text>\n",
            y + 15.0,
            layer.index,
            if layer.base { " (base)" } else { "" },
            escape(&label),
            label_width + kept_w,
            label_width + kept_w + wasted_w + 6.0,
            y + 15.0,
            human(layer.kept_bytes),
            human(layer.wasted_bytes),
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
