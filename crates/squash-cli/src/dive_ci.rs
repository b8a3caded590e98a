//! `--ci-config`: the CI rules of a dive `.dive-ci` file, as squash's report gates.
//!
//! dive's three rules map onto the gates of the same meaning:
//! - `lowestEfficiency` (a ratio, 0–1) is `--min-efficiency`;
//! - `highestWastedBytes` (a size: `20MB`, `1.5GiB`, or bytes) is `--fail-if-wasted-over`;
//! - `highestUserWastedPercent` (a ratio, 0–1, of the bytes outside the base) is
//!   `--fail-if-wasted-percent-over` at a hundred times the value.
//!
//! `disabled` (dive's spelling) turns a rule off. Keys are matched without regard to case, as
//! dive's configuration reader does. The figures compared are squash's, which count as wasted
//! only what a squash removes, not dive's (whose wasted bytes include the surviving copy of each
//! duplicated path), so the same thresholds can give other verdicts.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use squash::present::parse_size;
use squash::Gates;
use yaml_rust2::{Yaml, YamlLoader};

/// The gates a `.dive-ci` file sets, and the rules of it that were read, for messages.
#[derive(Debug, Default)]
pub struct DiveRules {
    pub gates: Gates,
    /// `(dive's rule, squash's flag)` for each rule the file sets.
    pub mapped: Vec<(&'static str, &'static str)>,
    /// Keys under `rules:` that dive does not know (dive ignores them; squash says so).
    pub unknown: Vec<String>,
}

/// Reads the rules of the `.dive-ci` file at `path`.
pub fn read(path: &Path) -> Result<DiveRules> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?;
    parse(&text).with_context(|| format!("`{}`", path.display()))
}

fn parse(text: &str) -> Result<DiveRules> {
    let documents = YamlLoader::load_from_str(text).map_err(|e| anyhow!("not YAML: {e}"))?;
    let mut result = DiveRules::default();
    let Some(document) = documents.first() else { return Ok(result) };
    let Yaml::Hash(top) = document else { bail!("expected a mapping with `rules:` at the top") };
    let Some(rules) = top
        .iter()
        .find(|(k, _)| key(k).is_some_and(|k| k.eq_ignore_ascii_case("rules")))
        .map(|(_, v)| v)
    else {
        return Ok(result);
    };
    let rules = match rules {
        Yaml::Hash(rules) => rules,
        Yaml::Null => return Ok(result),
        _ => bail!("`rules:` must be a mapping of rule names to values"),
    };
    for (name, value) in rules {
        let name = key(name).ok_or_else(|| anyhow!("a rule name under `rules:` is not text"))?;
        let text = scalar(value)
            .ok_or_else(|| anyhow!("rules.{name}: expected a number, a size or `disabled`"))?;
        let known = match name.to_ascii_lowercase().as_str() {
            "lowestefficiency" => Some(("lowestEfficiency", "--min-efficiency")),
            "highestwastedbytes" => Some(("highestWastedBytes", "--fail-if-wasted-over")),
            "highestuserwastedpercent" => {
                Some(("highestUserWastedPercent", "--fail-if-wasted-percent-over"))
            }
            _ => None,
        };
        let Some((rule, flag)) = known else {
            result.unknown.push(name.to_string());
            continue;
        };
        if text.eq_ignore_ascii_case("disabled") {
            continue;
        }
        match rule {
            "lowestEfficiency" => result.gates.min_efficiency = Some(ratio(rule, &text)?),
            "highestWastedBytes" => {
                result.gates.max_wasted_bytes =
                    Some(parse_size(&text).map_err(|e| anyhow!("rules.{rule}: {e}"))?);
            }
            _ => result.gates.max_wasted_percent = Some(100.0 * ratio(rule, &text)?),
        }
        result.mapped.push((rule, flag));
    }
    Ok(result)
}

fn key(yaml: &Yaml) -> Option<&str> {
    match yaml {
        Yaml::String(s) => Some(s),
        _ => None,
    }
}

/// A scalar as text: `0.95`, `20MB`, `disabled`.
fn scalar(yaml: &Yaml) -> Option<String> {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn ratio(rule: &str, text: &str) -> Result<f64> {
    let value: f64 =
        text.trim().parse().map_err(|_| anyhow!("rules.{rule}: `{text}` is not a number"))?;
    if !(0.0..=1.0).contains(&value) {
        bail!("rules.{rule}: {value} is not a ratio from 0 to 1 (dive's unit: 0.2 means 20%)");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dives_example_config() {
        // The example in dive's README.
        let rules = parse(
            "rules:\n  # If the efficiency is measured below X%, mark as failed.\n  \
                lowestEfficiency: 0.95\n\
             \n  highestWastedBytes: 20MB\n\n  highestUserWastedPercent: 0.20\n",
        )
        .expect("parse");
        assert_eq!(rules.gates.min_efficiency, Some(0.95));
        assert_eq!(rules.gates.max_wasted_bytes, Some(20_000_000));
        assert_eq!(rules.gates.max_wasted_percent, Some(20.0));
        assert_eq!(rules.mapped.len(), 3);
    }

    #[test]
    fn disabled_unknown_and_case() {
        let rules = parse(
            "rules:\n  lowestefficiency: disabled\n  HighestWastedBytes: 1.5MiB\n  \
            somethingElse: 3\n",
        )
        .expect("parse");
        assert_eq!(rules.gates.min_efficiency, None);
        assert_eq!(rules.gates.max_wasted_bytes, Some(1_572_864));
        assert_eq!(rules.unknown, vec!["somethingElse".to_string()]);
        assert_eq!(parse("").expect("empty").mapped.len(), 0);
        assert_eq!(parse("rules:\n").expect("no rules").mapped.len(), 0);
    }

    #[test]
    fn bad_values_are_errors_naming_the_rule() {
        for (text, expected) in [
            (
                "rules:\n  highestUserWastedPercent: 20\n",
                "rules.highestUserWastedPercent: 20 is not a ratio",
            ),
            (
                "rules:\n  lowestEfficiency: high\n",
                "rules.lowestEfficiency: `high` is not a number",
            ),
            ("rules:\n  highestWastedBytes: 20 parsecs\n", "rules.highestWastedBytes"),
            ("rules: [1, 2]\n", "must be a mapping"),
            ("rules:\n  lowestEfficiency: [1]\n", "rules.lowestEfficiency: expected"),
            ("- a\n", "expected a mapping"),
            ("rules: {\n", "not YAML"),
        ] {
            let error = format!("{:#}", parse(text).expect_err(text));
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
