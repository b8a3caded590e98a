//! `squash diff`'s second half: what two images' configs and manifests say, compared field by
//! field (labels, env, entrypoint, cmd, user, workdir, exposed ports, volumes, stop signal,
//! history, annotations), so that a rewrite's edits show beside the filesystem's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::read::image::Image;

/// One field that differs between two images' configs or manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigChange {
    /// `labels`, `env`, `entrypoint`, `cmd`, `user`, `workdir`, `exposed_ports`, `volumes`,
    /// `stop_signal`, `history` or `annotations`.
    pub field: String,
    /// For a map (labels, env, annotations, ports, volumes): the key; for `history`, the
    /// step's position among the steps compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value in the first image (`None`: absent).
    pub a: Option<String>,
    /// The value in the second image (`None`: absent).
    pub b: Option<String>,
}

/// The configs' and manifests' differences, field by field, in the order of
/// [`ConfigChange::field`]'s list. History is compared as the steps' `created_by`, leaving out
/// the steps a squash records for its merged layers and whether a step made a layer: what a
/// squash does to the layers is the filesystem comparison's business.
pub fn diff_configs(a: &Image, b: &Image) -> Vec<ConfigChange> {
    let (ca, cb) = (&a.config_json()["config"], &b.config_json()["config"]);
    let mut changes = Vec::new();
    maps(&mut changes, "labels", object(&ca["Labels"]), object(&cb["Labels"]));
    maps(&mut changes, "env", env(&ca["Env"]), env(&cb["Env"]));
    for (field, key) in [("entrypoint", "Entrypoint"), ("cmd", "Cmd")] {
        plain(&mut changes, field, text(&ca[key]), text(&cb[key]));
    }
    for (field, key) in [("user", "User"), ("workdir", "WorkingDir")] {
        plain(&mut changes, field, text(&ca[key]), text(&cb[key]));
    }
    maps(&mut changes, "exposed_ports", keys(&ca["ExposedPorts"]), keys(&cb["ExposedPorts"]));
    maps(&mut changes, "volumes", keys(&ca["Volumes"]), keys(&cb["Volumes"]));
    plain(&mut changes, "stop_signal", text(&ca["StopSignal"]), text(&cb["StopSignal"]));
    history(&mut changes, a, b);
    let annotations = |i: &Image| {
        i.manifest.as_ref().map(|m| object(&m.value["annotations"])).unwrap_or_default()
    };
    maps(&mut changes, "annotations", annotations(a), annotations(b));
    changes
}

/// A value as one line: a string as it is, anything else as JSON; `None` when absent or null.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn object(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v).unwrap_or_default())).collect())
        .unwrap_or_default()
}

/// An object's keys (ports, volumes), each with an empty value.
fn keys(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| m.keys().map(|k| (k.clone(), String::new())).collect())
        .unwrap_or_default()
}

/// `Env`'s `KEY=VALUE` strings by key.
fn env(value: &Value) -> BTreeMap<String, String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect()
}

fn plain(changes: &mut Vec<ConfigChange>, field: &str, a: Option<String>, b: Option<String>) {
    if a != b {
        changes.push(ConfigChange { field: field.into(), key: None, a, b });
    }
}

fn maps(
    changes: &mut Vec<ConfigChange>,
    field: &str,
    a: BTreeMap<String, String>,
    b: BTreeMap<String, String>,
) {
    let mut all: Vec<&String> = a.keys().chain(b.keys()).collect();
    all.sort();
    all.dedup();
    for key in all {
        let (x, y) = (a.get(key), b.get(key));
        if x != y {
            changes.push(ConfigChange {
                field: field.into(),
                key: Some(key.clone()),
                a: x.cloned(),
                b: y.cloned(),
            });
        }
    }
}

/// Whether a history step is the record a squash writes for its merged layers.
fn squash_record(created_by: &str) -> bool {
    created_by.starts_with("squash: merged layers")
}

fn history(changes: &mut Vec<ConfigChange>, a: &Image, b: &Image) {
    let steps = |i: &Image| -> Vec<String> {
        i.history()
            .iter()
            .map(|h| h.created_by.clone().unwrap_or_default())
            .filter(|c| !squash_record(c))
            .collect()
    };
    let (sa, sb) = (steps(a), steps(b));
    if sa.len() != sb.len() {
        changes.push(ConfigChange {
            field: "history".into(),
            key: Some("steps".into()),
            a: Some(sa.len().to_string()),
            b: Some(sb.len().to_string()),
        });
    }
    for (n, (x, y)) in sa.iter().zip(&sb).enumerate() {
        if x != y {
            changes.push(ConfigChange {
                field: "history".into(),
                key: Some(n.to_string()),
                a: Some(x.clone()),
                b: Some(y.clone()),
            });
        }
    }
}
