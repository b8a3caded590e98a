//! CI gates: thresholds on a report's figures ([`Gates`]), each rule named as the flag that sets
//! it, and each verdict with the figures it read.

use serde::{Deserialize, Serialize};

use super::model::Report;
use crate::units::human;

/// CI gates, with absolute and relative thresholds.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Gates {
    /// Fail if more than this many bytes are wasted outside the base.
    pub max_wasted_bytes: Option<u64>,
    /// Fail if more than this percentage of the non-base file bytes is wasted.
    pub max_wasted_percent: Option<f64>,
    /// Fail if the efficiency is below this.
    pub min_efficiency: Option<f64>,
    /// Fail if more than this many bytes of clutter lie outside the base.
    pub max_clutter_bytes: Option<u64>,
}

impl Gates {
    /// No gate: every report passes.
    pub fn new() -> Gates {
        Gates::default()
    }

    /// Fail if more than `bytes` file bytes are wasted outside the base.
    pub fn with_max_wasted_bytes(mut self, bytes: u64) -> Gates {
        self.max_wasted_bytes = Some(bytes);
        self
    }

    /// Fail if more than `percent` (0–100) of the non-base file bytes is wasted.
    pub fn with_max_wasted_percent(mut self, percent: f64) -> Gates {
        self.max_wasted_percent = Some(percent);
        self
    }

    /// Fail if more than `bytes` bytes of clutter ([`Report::clutter_bytes_non_base`]) lie
    /// outside the base.
    pub fn with_max_clutter_bytes(mut self, bytes: u64) -> Gates {
        self.max_clutter_bytes = Some(bytes);
        self
    }

    /// Fail if the efficiency (0–1) is below `ratio`.
    pub fn with_min_efficiency(mut self, ratio: f64) -> Gates {
        self.min_efficiency = Some(ratio);
        self
    }
}

/// A CI gate's rule, named as the CLI flag that sets it (which is also its JSON spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GateRule {
    /// [`Gates::max_wasted_bytes`]: bytes wasted outside the base.
    #[serde(rename = "--fail-if-wasted-over")]
    MaxWastedBytes,
    /// [`Gates::max_wasted_percent`]: wasted share (0–100) of the non-base file bytes.
    #[serde(rename = "--fail-if-wasted-percent-over")]
    MaxWastedPercent,
    /// [`Gates::min_efficiency`]: share (0–1) of stored file bytes that stay visible.
    #[serde(rename = "--min-efficiency")]
    MinEfficiency,
    /// [`Gates::max_clutter_bytes`]: clutter bytes outside the base.
    #[serde(rename = "--fail-if-clutter-over")]
    MaxClutterBytes,
}

impl GateRule {
    /// The CLI flag that sets this rule.
    pub fn flag(self) -> &'static str {
        match self {
            GateRule::MaxWastedBytes => "--fail-if-wasted-over",
            GateRule::MaxWastedPercent => "--fail-if-wasted-percent-over",
            GateRule::MinEfficiency => "--min-efficiency",
            GateRule::MaxClutterBytes => "--fail-if-clutter-over",
        }
    }
}

impl std::fmt::Display for GateRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.flag())
    }
}

/// The verdict of one gate: the rule, its limit, the report's value, and whether the value is
/// within the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GateResult {
    /// The rule.
    pub rule: GateRule,
    /// The limit given.
    pub limit: f64,
    /// The report's figure the rule reads.
    pub value: f64,
    /// Whether the figure is within the limit.
    pub passed: bool,
}

impl std::fmt::Display for GateResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let relation = match (self.rule, self.passed) {
            (GateRule::MinEfficiency, true) => ">=",
            (GateRule::MinEfficiency, false) => "<",
            (_, true) => "<=",
            (_, false) => ">",
        };
        match self.rule {
            GateRule::MaxWastedBytes => write!(
                f,
                "{}: {} wasted {relation} {}",
                self.rule,
                human(self.value as u64),
                human(self.limit as u64)
            ),
            GateRule::MaxWastedPercent => {
                write!(f, "{}: {:.2}% wasted {relation} {}%", self.rule, self.value, self.limit)
            }
            GateRule::MinEfficiency => {
                write!(f, "{}: efficiency {:.4} {relation} {}", self.rule, self.value, self.limit)
            }
            GateRule::MaxClutterBytes => write!(
                f,
                "{}: {} of clutter {relation} {}",
                self.rule,
                human(self.value as u64),
                human(self.limit as u64)
            ),
        }
    }
}

impl Report {
    /// Every gate that is set, with its verdict.
    pub fn gate_results(&self, gates: &Gates) -> Vec<GateResult> {
        let mut results = Vec::new();
        if let Some(max) = gates.max_wasted_bytes {
            let value = self.wasted_bytes_non_base;
            results.push(GateResult {
                rule: GateRule::MaxWastedBytes,
                limit: max as f64,
                value: value as f64,
                passed: value <= max,
            });
        }
        if let Some(max) = gates.max_wasted_percent {
            results.push(GateResult {
                rule: GateRule::MaxWastedPercent,
                limit: max,
                value: self.wasted_percent,
                passed: self.wasted_percent <= max,
            });
        }
        if let Some(min) = gates.min_efficiency {
            results.push(GateResult {
                rule: GateRule::MinEfficiency,
                limit: min,
                value: self.efficiency,
                passed: self.efficiency >= min,
            });
        }
        if let Some(max) = gates.max_clutter_bytes {
            let value = self.clutter_bytes_non_base;
            results.push(GateResult {
                rule: GateRule::MaxClutterBytes,
                limit: max as f64,
                value: value as f64,
                passed: value <= max,
            });
        }
        results
    }

    /// The gates that fail; each displays as its rule with the figures.
    pub fn failed_gates(&self, gates: &Gates) -> Vec<GateResult> {
        self.gate_results(gates).into_iter().filter(|g| !g.passed).collect()
    }
}
