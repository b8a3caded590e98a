//! docs/json.md: every example parses into the library type that writes it, and writes back the
//! same JSON, so the documentation cannot drift from the documents.

use serde::de::DeserializeOwned;
use serde::Serialize;
use squash::document::{
    DiffDocument, ErrorDocument, IndexInspectDocument, IndexOutcomeDocument, IndexPlanDocument,
    IndexReportDocument, InspectDocument, MultiReportDocument, OutcomeDocument, PlanDocument,
    ReportDocument, SCHEMA_VERSION,
};

/// The blocks of docs/json.md fenced as "```json KIND".
fn examples() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/json.md");
    let text = std::fs::read_to_string(path).expect("docs/json.md");
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```json ")) {
            (None, Some(kind)) => current = Some((kind.trim().to_string(), String::new())),
            (Some(_), _) if line == "```" => out.extend(current.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn round_trip<T: DeserializeOwned + Serialize>(kind: &str, body: &str) {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{kind}: not JSON: {e}"));
    assert_eq!(value["schema_version"], SCHEMA_VERSION, "{kind}");
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{kind}: does not parse into its type: {e}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(
        back, value,
        "{kind}: the example has fields its type does not write, or lacks some"
    );
}

#[test]
fn json_examples_parse_into_the_library_types() {
    let examples = examples();
    let kinds: Vec<&str> = examples.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "inspect",
            "plan",
            "outcome",
            "outcome",
            "index-plan",
            "index-outcome",
            "report",
            "index-inspect",
            "index-report",
            "multi-report",
            "diff",
            "error"
        ],
        "one example per document (two of a squash's outcome: to a file, and a push)"
    );
    for (kind, body) in &examples {
        match kind.as_str() {
            "inspect" => round_trip::<InspectDocument>(kind, body),
            "plan" => round_trip::<PlanDocument>(kind, body),
            "outcome" => round_trip::<OutcomeDocument>(kind, body),
            "index-plan" => round_trip::<IndexPlanDocument>(kind, body),
            "index-outcome" => round_trip::<IndexOutcomeDocument>(kind, body),
            "report" => round_trip::<ReportDocument>(kind, body),
            "index-inspect" => round_trip::<IndexInspectDocument>(kind, body),
            "index-report" => round_trip::<IndexReportDocument>(kind, body),
            "multi-report" => round_trip::<MultiReportDocument>(kind, body),
            "diff" => round_trip::<DiffDocument>(kind, body),
            "error" => round_trip::<ErrorDocument>(kind, body),
            other => panic!("unknown example kind `{other}`"),
        }
    }
}
