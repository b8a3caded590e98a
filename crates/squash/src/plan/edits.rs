//! Edits of the image config and manifest that a rewrite applies as it writes (`--label`,
//! `--env`, `--entrypoint`, `--cmd`, `--workdir`, `--user`, `--annotation`), the way `crane
//! mutate` and `docker commit --change` users know them. Plain data, applied to the documents as
//! JSON values: every field not named stays as it was.

use serde_json::{json, Map, Value};

/// A change to a map-like setting: set `KEY` to a value, or remove it (`KEY-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEdit {
    /// `KEY=VALUE`.
    Set(String, String),
    /// `KEY-`.
    Remove(String),
}

impl std::str::FromStr for KeyEdit {
    type Err = crate::error::ParseError;
    /// Parses `KEY=VALUE` or `KEY-`.
    fn from_str(s: &str) -> std::result::Result<KeyEdit, crate::error::ParseError> {
        let bad = |message: &str| {
            crate::error::ParseError::new("KEY=VALUE or KEY-", s, message.to_string())
        };
        match s.split_once('=') {
            Some(("", _)) => Err(bad("the key is empty")),
            Some((key, value)) => Ok(KeyEdit::Set(key.to_string(), value.to_string())),
            None => match s.strip_suffix('-') {
                Some("") | None => Err(bad("give KEY=VALUE to set it or KEY- to remove it")),
                Some(key) => Ok(KeyEdit::Remove(key.to_string())),
            },
        }
    }
}

impl KeyEdit {
    fn key(&self) -> &str {
        match self {
            KeyEdit::Set(key, _) | KeyEdit::Remove(key) => key,
        }
    }
}

/// What to change in the config (its runtime `config` object) and the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEdits {
    /// `config.Labels`, in order.
    pub labels: Vec<KeyEdit>,
    /// `config.Env` (`KEY=VALUE` strings): a set replaces the variable where it is, or appends it.
    pub env: Vec<KeyEdit>,
    /// `config.Entrypoint`; `Some(None)` removes it.
    pub entrypoint: Option<Option<Vec<String>>>,
    /// `config.Cmd`; `Some(None)` removes it.
    pub cmd: Option<Option<Vec<String>>>,
    /// `config.WorkingDir`.
    pub workdir: Option<String>,
    /// `config.User`.
    pub user: Option<String>,
    /// The manifest's `annotations`.
    pub annotations: Vec<KeyEdit>,
}

impl ConfigEdits {
    /// Whether nothing is to change.
    pub fn is_empty(&self) -> bool {
        *self == ConfigEdits::default()
    }

    /// Whether the config changes (the manifest may change for annotations alone).
    pub fn changes_config(&self) -> bool {
        !self.labels.is_empty()
            || !self.env.is_empty()
            || self.entrypoint.is_some()
            || self.cmd.is_some()
            || self.workdir.is_some()
            || self.user.is_some()
    }

    /// Applies the config edits to a config document (an object).
    pub(crate) fn apply_to_config(&self, config: &mut Map<String, Value>) {
        if !self.changes_config() {
            return;
        }
        let runtime = config.entry("config").or_insert_with(|| json!({}));
        if !runtime.is_object() {
            *runtime = json!({});
        }
        let Some(runtime) = runtime.as_object_mut() else { return };
        if !self.labels.is_empty() {
            edit_map(runtime, "Labels", &self.labels);
        }
        if !self.env.is_empty() {
            let mut env: Vec<Value> =
                runtime.get("Env").and_then(Value::as_array).cloned().unwrap_or_default();
            for edit in &self.env {
                let named = |v: &Value| {
                    v.as_str()
                        .is_some_and(|s| s.split_once('=').map_or(s, |(k, _)| k) == edit.key())
                };
                match edit {
                    KeyEdit::Set(key, value) => {
                        let entry = json!(format!("{key}={value}"));
                        match env.iter().position(named) {
                            Some(i) => {
                                env[i] = entry;
                                let mut seen = false;
                                env.retain(|v| !named(v) || !std::mem::replace(&mut seen, true));
                            }
                            None => env.push(entry),
                        }
                    }
                    KeyEdit::Remove(_) => env.retain(|v| !named(v)),
                }
            }
            runtime.insert("Env".into(), Value::Array(env));
        }
        for (field, value) in [("Entrypoint", &self.entrypoint), ("Cmd", &self.cmd)] {
            match value {
                None => {}
                Some(None) => {
                    runtime.remove(field);
                }
                Some(Some(args)) => {
                    runtime.insert(field.into(), json!(args));
                }
            }
        }
        if let Some(workdir) = &self.workdir {
            runtime.insert("WorkingDir".into(), json!(workdir));
        }
        if let Some(user) = &self.user {
            runtime.insert("User".into(), json!(user));
        }
    }

    /// Applies the annotation edits to a manifest document (an object); an empty map is removed.
    pub(crate) fn apply_to_manifest(&self, manifest: &mut Map<String, Value>) {
        if !self.annotations.is_empty() {
            edit_map(manifest, "annotations", &self.annotations);
        }
    }
}

/// Applies `edits` to the string map at `object[field]`, creating it; an empty map is removed.
fn edit_map(object: &mut Map<String, Value>, field: &str, edits: &[KeyEdit]) {
    let mut map = object.get(field).and_then(Value::as_object).cloned().unwrap_or_default();
    for edit in edits {
        match edit {
            KeyEdit::Set(key, value) => {
                map.insert(key.clone(), json!(value));
            }
            KeyEdit::Remove(key) => {
                map.remove(key);
            }
        }
    }
    if map.is_empty() {
        object.remove(field);
    } else {
        object.insert(field.into(), Value::Object(map));
    }
}

/// Parses `--entrypoint`/`--cmd`: a JSON array of strings, or `null` to remove the setting.
pub fn parse_command(
    s: &str,
) -> std::result::Result<Option<Vec<String>>, crate::error::ParseError> {
    serde_json::from_str::<Option<Vec<String>>>(s).map_err(|e| {
        crate::error::ParseError::new(
            "command",
            s,
            format!(
                "expected a JSON array of strings such as [\"/bin/app\", \"--flag\"], or null: {e}"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_change_only_what_they_name() {
        let mut config = json!({
            "architecture": "amd64",
            "config": {
                "Env": ["PATH=/bin", "A=1", "B=2", "A=3"],
                "Labels": {"keep": "1", "drop": "2"},
                "Cmd": ["sh"],
                "Vendor": true
            },
            "unknown": {"kept": 1}
        });
        let edits = ConfigEdits {
            labels: vec!["new=3".parse().unwrap(), "drop-".parse().unwrap()],
            env: vec!["A=9".parse().unwrap(), "B-".parse().unwrap(), "C=x=y".parse().unwrap()],
            entrypoint: Some(Some(vec!["/app".into()])),
            cmd: Some(None),
            workdir: Some("/srv".into()),
            user: Some("1000:1000".into()),
            annotations: Vec::new(),
        };
        edits.apply_to_config(config.as_object_mut().unwrap());
        assert_eq!(
            config,
            json!({
                "architecture": "amd64",
                "config": {
                    "Env": ["PATH=/bin", "A=9", "C=x=y"],
                    "Labels": {"keep": "1", "new": "3"},
                    "Entrypoint": ["/app"],
                    "WorkingDir": "/srv",
                    "User": "1000:1000",
                    "Vendor": true
                },
                "unknown": {"kept": 1}
            })
        );
        let mut manifest = json!({"schemaVersion": 2, "annotations": {"a": "1"}});
        let edits = ConfigEdits {
            annotations: vec!["a-".parse().unwrap(), "b=2".parse().unwrap()],
            ..Default::default()
        };
        assert!(!edits.changes_config());
        edits.apply_to_manifest(manifest.as_object_mut().unwrap());
        assert_eq!(manifest, json!({"schemaVersion": 2, "annotations": {"b": "2"}}));
    }

    #[test]
    fn bad_edits_are_explained() {
        assert!("=v".parse::<KeyEdit>().is_err());
        assert!("novalue".parse::<KeyEdit>().is_err());
        assert!("-".parse::<KeyEdit>().is_err());
        assert_eq!(parse_command("null").unwrap(), None);
        assert_eq!(
            parse_command(r#"["a","b"]"#).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert!(parse_command("/bin/sh -c x").unwrap_err().to_string().contains("JSON array"));
    }
}
