//! Reads `.hgrm` files: the percentile distribution HdrHistogram prints (columns `Value`,
//! `Percentile`, `TotalCount`, `1/(1-Percentile)`, values in milliseconds, `#[...]` footer
//! lines). The report draws a latency spectrum from the points; nothing here depends on
//! the histogram library, so the report can read what any run wrote.

use std::{fmt, fs, io, path::Path};

/// One line of a distribution: `percentile` of the requests took at most `value_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The share of the requests, from 0 to 1.
    pub percentile: f64,
    /// Latency at that share, in milliseconds.
    pub value_ms: f64,
}

/// A line of a distribution that is not one.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// Line number, from 1 (0: the text as a whole).
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// The points of a distribution, in the order written (percentiles never decrease).
/// Blank lines, the column header and `#` lines are skipped; any other line must start with
/// a value and a percentile.
pub fn parse(text: &str) -> Result<Vec<Point>, Error> {
    let mut points: Vec<Point> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let error = |message: String| Error {
            line: line_no,
            message,
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("Value") {
            continue;
        }
        let mut columns = trimmed.split_whitespace();
        let mut number = |name: &str| -> Result<f64, Error> {
            let text = columns
                .next()
                .ok_or_else(|| error(format!("no {name} column")))?;
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| error(format!("{name} `{text}` is not a number")))
        };
        let value_ms = number("value")?;
        let percentile = number("percentile")?;
        if value_ms < 0.0 {
            return Err(error(format!("value {value_ms} is negative")));
        }
        if !(0.0..=1.0).contains(&percentile) {
            return Err(error(format!("percentile {percentile} is not within 0..1")));
        }
        if let Some(last) = points.last()
            && (percentile < last.percentile || value_ms < last.value_ms)
        {
            return Err(error(format!(
                "percentile {percentile} at {value_ms} ms comes after {} at {} ms",
                last.percentile, last.value_ms
            )));
        }
        points.push(Point {
            percentile,
            value_ms,
        });
    }
    if points.is_empty() {
        return Err(Error {
            line: 0,
            message: "no percentile lines".to_owned(),
        });
    }
    Ok(points)
}

/// Reads and parses the `.hgrm` file at `path`; a malformed file is `InvalidData`, naming it.
pub fn read(path: &Path) -> io::Result<Vec<Point>> {
    let text = fs::read_to_string(path)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", path.display())))?;
    parse(&text).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {err}", path.display()),
        )
    })
}

/// The latency at `percentile`: the value of the first point at or above it (the largest
/// value when the distribution stops short of it).
pub fn value_at(points: &[Point], percentile: f64) -> Option<f64> {
    points
        .iter()
        .find(|p| p.percentile >= percentile)
        .or(points.last())
        .map(|p| p.value_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape HdrHistogram prints: a header, points, the last at percentile 1 without
    /// its `1/(1-Percentile)` column, and the footer.
    const SAMPLE: &str = "       Value     Percentile TotalCount 1/(1-Percentile)

       0.041 0.000000000000          1           1.00
       0.052 0.500000000000        512           2.00
       0.087 0.900000000000        921          10.00
       0.420 0.990000000000        991         100.00
       1.250 0.999000000000        999        1000.00
       3.100 1.000000000000       1000
#[Mean    =        0.063, StdDeviation   =        0.034]
#[Max     =        3.100, Total count    =         1000]
#[Buckets =           27, SubBuckets     =         2048]
";

    #[test]
    fn reads_every_point_and_skips_header_and_footer() {
        let points = parse(SAMPLE).unwrap();
        assert_eq!(points.len(), 6);
        assert_eq!(
            points[0],
            Point {
                percentile: 0.0,
                value_ms: 0.041
            }
        );
        assert_eq!(
            points[5],
            Point {
                percentile: 1.0,
                value_ms: 3.1
            }
        );
        assert_eq!(value_at(&points, 0.99), Some(0.42));
        assert_eq!(value_at(&points, 0.5), Some(0.052));
        assert_eq!(value_at(&points, 0.95), Some(0.42));
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_it() {
        let err = parse("0.1 0.5 10 2.0\n0.2 half 20 3.0\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("half"), "{err}");
        let err = parse("0.1 1.5 10\n").unwrap_err();
        assert!(err.message.contains("within 0..1"), "{err}");
        let err = parse("0.3 0.5 10\n0.2 0.9 20\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = parse("0.3\n").unwrap_err();
        assert!(err.message.contains("no percentile column"), "{err}");
    }

    #[test]
    fn a_text_without_points_is_an_error() {
        let err = parse("       Value     Percentile TotalCount 1/(1-Percentile)\n\n#[Mean = 1]\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "no percentile lines");
    }
}
