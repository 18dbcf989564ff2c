//! Parses the short duration strings used in the config (`30s`, `500ms`, `2m`).

use std::num::ParseIntError;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Only digits: the unit is missing.
    #[error("`{0}` has no unit (use ms, s, m or h)")]
    NoUnit(String),
    /// The text before the unit is not a whole number (empty, or too large for 64 bits).
    #[error("`{text}` does not start with a whole number")]
    NotANumber {
        /// The duration as written.
        text: String,
        /// Why the number did not parse.
        source: ParseIntError,
    },
    /// A unit other than the four known ones.
    #[error("`{0}` is not a unit (use ms, s, m or h)")]
    UnknownUnit(String),
    /// More milliseconds than 64 bits hold.
    #[error("`{0}` is too large")]
    TooLarge(String),
    /// Zero, which would make every deadline expire at once.
    #[error("a duration must be greater than zero")]
    Zero,
}

/// Parses `<number><unit>` where unit is `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::NoUnit(text.into()))?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|source| DurationError::NotANumber {
        text: text.into(),
        source,
    })?;
    let millis = match unit {
        "ms" => Some(value),
        "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        other => return Err(DurationError::UnknownUnit(other.into())),
    }
    .ok_or_else(|| DurationError::TooLarge(text.into()))?;
    if millis == 0 {
        return Err(DurationError::Zero);
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_bad_text() {
        assert!(parse_duration("30").unwrap_err().to_string().contains("no unit"));
        assert!(matches!(parse_duration("s"), Err(DurationError::NotANumber { .. })));
        assert!(parse_duration("5d").unwrap_err().to_string().contains("`d`"));
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::NotANumber { .. })
        ));
        assert_eq!(
            parse_duration("9999999999999999h"),
            Err(DurationError::TooLarge("9999999999999999h".into()))
        );
    }
}
