//! Platforms (`os/arch[/variant]`): parsing, the host's, the one a descriptor states, and the
//! choice of one image among several by platform.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Location, ParseError, Result};

/// A platform as `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Variant (`v7`), if any.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine this runs on, in OCI spelling.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// Whether `other` is this platform (a variant left out here matches any).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = ParseError;
    fn from_str(s: &str) -> std::result::Result<Platform, ParseError> {
        parse_platform(s).map_err(|message| ParseError::new("platform", s, message))
    }
}

fn parse_platform(s: &str) -> std::result::Result<Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => {
            Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
        }
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
            Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            })
        }
        _ => Err(format!("`{s}` is not a platform (expected os/arch[/variant], e.g. linux/amd64)")),
    }
}

/// The platform a descriptor of an index states.
pub(crate) fn platform_of(entry: &Value) -> Option<Platform> {
    let p = entry.get("platform")?;
    Some(Platform {
        os: p.get("os")?.as_str()?.to_string(),
        architecture: p.get("architecture")?.as_str()?.to_string(),
        variant: p.get("variant").and_then(Value::as_str).map(str::to_string),
    })
}

/// Chooses among the images of an index the one of platform `wanted` (the first that
/// matches), else the only one, else this host's; `none` says what is wrong when there is
/// none. The errors list the platforms there are.
pub(crate) fn choose<'a, T: ?Sized>(
    items: &[&'a T],
    platform: impl Fn(&T) -> Option<Platform>,
    wanted: Option<&Platform>,
    location: &Location,
    none: &str,
) -> Result<&'a T> {
    let listed = || {
        items
            .iter()
            .map(|i| platform(i).map(|p| p.to_string()).unwrap_or_else(|| "(no platform)".into()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let matching = |target: &Platform| {
        items.iter().copied().find(|i| platform(i).is_some_and(|p| target.matches(&p)))
    };
    match (wanted, items) {
        (_, []) => Err(Error::Selection { location: location.clone(), reason: none.to_string() }),
        (Some(wanted), _) => matching(wanted).ok_or_else(|| Error::Selection {
            location: location.clone(),
            reason: format!("no manifest for platform {wanted}; platforms: {}", listed()),
        }),
        (None, [one]) => Ok(one),
        (None, many) => {
            let host = Platform::host();
            matching(&host).ok_or_else(|| Error::Selection {
                location: location.clone(),
                reason: format!(
                    "index has {} platforms and none is this host's ({host}); choose one with \
                        --platform: {}",
                    many.len(),
                    listed()
                ),
            })
        }
    }
}
