//! Durations as runbooks write them: `"30m"`, `"1h30m"`, `"45s"`, `"2h"`, `"1d"`.
//!
//! The grammar is deliberately small: one or more `<digits><unit>` parts, units `d`, `h`, `m`,
//! `s`, each at most once and from the largest to the smallest, so that a value reads one way
//! only (`"90m"` is fine, `"30m1h"` is a typo worth reporting). A zero duration is refused: an
//! objective of zero can never be met.

use std::time::Duration;

/// Why a duration did not parse; the text says what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (expected a duration such as \"30m\", \"1h30m\", \"45s\" or \"2h\")")]
pub struct DurationError {
    reason: String,
}

impl DurationError {
    fn new(reason: impl Into<String>) -> Self {
        DurationError {
            reason: reason.into(),
        }
    }
}

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses a runbook duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::new("the duration is empty"));
    }
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed: units must come largest first.
    let mut next_unit = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let Some(position) = UNITS.iter().position(|(unit, _)| *unit == c) else {
            return Err(DurationError::new(format!(
                "`{c}` is not a unit (use d, h, m or s)"
            )));
        };
        if digits.is_empty() {
            return Err(DurationError::new(format!(
                "the unit `{c}` has no number before it"
            )));
        }
        if position < next_unit {
            return Err(DurationError::new(format!(
                "the unit `{c}` is repeated or out of order (write the largest unit first)"
            )));
        }
        let amount: u64 = digits
            .parse()
            .map_err(|_| DurationError::new(format!("the number {digits} is too large")))?;
        total = amount
            .checked_mul(UNITS[position].1)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(|| DurationError::new("the duration is too large"))?;
        digits.clear();
        next_unit = position + 1;
    }
    if !digits.is_empty() {
        return Err(DurationError::new(format!(
            "the number {digits} has no unit (add s, m, h or d)"
        )));
    }
    if total == 0 {
        return Err(DurationError::new("the duration is zero"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way runbooks write it (`5400s` -> `"1h30m"`), for messages and plans.
pub fn format_duration(duration: Duration) -> String {
    let mut rest = duration.as_secs();
    if rest == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (unit, seconds) in UNITS {
        if rest >= seconds {
            text.push_str(&format!("{}{unit}", rest / seconds));
            rest %= seconds;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("1d2h3m4s"), Ok(Duration::from_secs(93_784)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn refuses_what_reads_two_ways_or_not_at_all() {
        for bad in [
            "", "30", "m", "30x", "30m1h", "1h1h", "0m", "0h0m", "1.5h", " 30m", "30 m", "-5m",
            "h30",
        ] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(
                error.to_string().contains("expected a duration such as"),
                "{bad}: {error}"
            );
        }
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("999999999999999999d").is_err());
    }

    #[test]
    fn formats_back_to_the_runbook_form() {
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_secs(93_784)), "1d2h3m4s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for text in ["30m", "1h30m", "2h", "1d1s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
