//! Sizes as people read and write them: `1.5 MB` (powers of 1000, as registries show them), and
//! `50MB`, `1.5GiB` or `1000` parsed back; and times since the epoch as dates in UTC.

use crate::error::ParseError;

/// Seconds since the epoch as a UTC date and time, `YYYY-MM-DD`, `between`, `HH:MM:SS`, then
/// `zone`: `date_time(0, 'T', "Z")` is RFC 3339's `1970-01-01T00:00:00Z`.
pub(crate) fn date_time(seconds: i64, between: char, zone: &str) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}{between}{:02}:{:02}:{:02}{zone}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `1.5 MB`-style sizes (powers of 1000, as registries show them).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    // A value that rounds to 1000.0 at one decimal is shown in the next unit (999,950 B is
    // 1.0 MB, not 1000.0 kB).
    while (value >= 1000.0 || unit > 0 && value >= 999.95) && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The sum of `sizes`, held at `u64::MAX`: sizes declared by a manifest are summed for
/// progress and space checks before any blob is read, and a hostile manifest must not overflow.
pub fn total(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes.into_iter().fold(0, u64::saturating_add)
}

/// Parses `50MB`, `1.5GiB`, `1000` (bytes) and the like.
pub fn parse_size(s: &str) -> std::result::Result<u64, ParseError> {
    parse_size_text(s).map_err(|message| ParseError::new("size", s, message))
}

fn parse_size_text(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("`{s}`: unknown unit `{other}`")),
    };
    Ok((number * factor).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MB"), Ok(50_000_000));
        assert_eq!(parse_size("1.5 GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("ten").is_err());
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_500_000), "1.5 MB");
        assert_eq!(human(999_949), "999.9 kB");
        assert_eq!(human(999_950), "1.0 MB");
        assert_eq!(human(1_000), "1.0 kB");
        assert_eq!(parse_size("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_size("1 TiB"), Ok(1 << 40));
    }
}
