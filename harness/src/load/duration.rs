//! Durations as people type them on a command line, the way `wrk` and `h2load` take them:
//! `30s`, `2m`, `500ms`, `1m30s`, or a bare number of seconds (`3`, `0.5`). Units run from
//! the largest down, each at most once, so every text has one meaning; anything else is
//! refused with a message that says what to write instead.

use std::time::Duration;

/// The units a duration may use, largest first, with their length in seconds.
const UNITS: [(&str, f64); 5] = [
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 1e-3),
    ("us", 1e-6),
];

/// A text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; write e.g. 30s, 2m, 500ms, 1m30s, or a number of seconds")]
pub struct DurationError {
    reason: String,
}

fn error(reason: impl Into<String>) -> DurationError {
    DurationError {
        reason: reason.into(),
    }
}

/// Parses `text`: one or more `<number><unit>` parts with units `h`, `m`, `s`, `ms`, `us`
/// from the largest down, or a bare number meaning seconds. Numbers are decimal, without a
/// sign; no spaces.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(error("the duration is empty"));
    }
    if is_number(text) {
        return seconds(text, 1.0);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    // Index into UNITS of the last unit used: the next one must be smaller.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if number.is_empty() {
            return Err(error(format!("`{rest}` does not start with a number")));
        }
        if !is_number(number) {
            return Err(error(format!("`{number}` is not a number")));
        }
        if unit.is_empty() {
            return Err(error(format!("`{number}` has no unit")));
        }
        let index = UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| error(format!("`{unit}` is not a unit (h, m, s, ms, us)")))?;
        if let Some(last) = last.filter(|&last| index <= last) {
            return Err(error(format!(
                "`{unit}` follows `{}`: units go from the largest down, each once",
                UNITS[last].0
            )));
        }
        last = Some(index);
        total = total
            .checked_add(seconds(number, UNITS[index].1)?)
            .ok_or_else(|| error("the duration is too long"))?;
        rest = after;
    }
    Ok(total)
}

/// Whether `text` is a decimal number without a sign: digits with at most one `.`.
fn is_number(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1
}

fn seconds(number: &str, unit: f64) -> Result<Duration, DurationError> {
    let value: f64 = number
        .parse()
        .map_err(|_| error(format!("`{number}` is not a number")))?;
    Duration::try_from_secs_f64(value * unit).map_err(|_| error("the duration is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    #[test]
    fn units_and_bare_numbers_are_read() {
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1h2m3s4ms"), Duration::from_millis(3_723_004));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("3"), Duration::from_secs(3));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0"), Duration::ZERO);
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("1x", "`x` is not a unit"),
            ("s", "does not start with a number"),
            ("1m1m", "`m` follows `m`"),
            ("30s2m", "`m` follows `s`"),
            ("-1", "does not start with a number"),
            ("3 s", "`3` has no unit"),
            ("1.2.3", "`1.2.3` is not a number"),
            ("1e3", "`e` is not a unit"),
            ("1m30", "`30` has no unit"),
            ("99999999999999999999h", "too long"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.contains("e.g. 30s"), "{text}: {err}");
        }
    }
}
