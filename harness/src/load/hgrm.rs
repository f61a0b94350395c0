//! A run's whole latency distribution, kept as a `.hgrm` file: the text HdrHistogram's
//! `outputPercentileDistribution` prints (a `Value Percentile TotalCount 1/(1-Percentile)`
//! header, one line per percentile tick with 5 ticks per half of the distance left to 100%,
//! and the `#[Mean ...]`, `#[Max ...]`, `#[Buckets ...]` footer), with values in
//! milliseconds. HdrHistogram's plotters read it, and so does the report, through the
//! reader re-exported here from `study::hgrm` (which depends on nothing but std, so the
//! report reads these files without building the harness). A suite keeps its runs' files
//! beside its result file through [`SuiteHistograms`].

mod suite;

use std::{fmt::Write as _, fs, io, path::Path};

use hdrhistogram::{Counter, Histogram};

pub use self::suite::{SuiteHistograms, file_part};
pub use study::hgrm::{Error, Point, parse, read, value_at};

/// Percentile ticks per half of the distance to 100%, as HdrHistogram's tools print them.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Our latency histograms count nanoseconds; the files speak milliseconds.
const NS_PER_MS: f64 = 1e6;

/// The distribution of a histogram of nanoseconds, in the `.hgrm` format, in milliseconds.
pub fn format_ns<T: Counter>(latency_ns: &Histogram<T>) -> String {
    format(latency_ns, NS_PER_MS)
}

/// Writes the distribution of a histogram of nanoseconds to `path` (creating its directory),
/// in the `.hgrm` format, in milliseconds.
pub fn write<T: Counter>(path: &Path, latency_ns: &Histogram<T>) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, format_ns(latency_ns))
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", path.display())))
}

/// The distribution of `hist` in the `.hgrm` format, each value divided by `scale` (the
/// histogram's units per unit of the text) and printed with as many decimals as the
/// histogram keeps significant digits. An empty histogram prints the header and footer
/// only, as HdrHistogram does.
pub fn format<T: Counter>(hist: &Histogram<T>, scale: f64) -> String {
    let decimals = usize::from(hist.sigfig());
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total: u64 = 0;
    for step in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += step.count_since_last_iteration();
        let value = step.value_iterated_to() as f64 / scale;
        let percentile = step.quantile_iterated_to();
        let _ = write!(out, "{value:12.decimals$} {percentile:2.12} {total:10}");
        // The last line, at 100%, has no `1/(1-Percentile)`: it would be infinite.
        if percentile < 1.0 {
            let _ = write!(out, " {:14.2}", 1.0 / (1.0 - percentile));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.decimals$}, StdDeviation   = {:12.decimals$}]",
        hist.mean() / scale,
        hist.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.decimals$}, Total count    = {:12}]",
        hist.max() as f64 / scale,
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        hist.buckets(),
        sub_buckets(hist.sigfig())
    );
    out
}

/// The sub-buckets per bucket of a histogram keeping `sigfig` significant digits: the
/// smallest power of two that resolves `2 * 10^sigfig` values one unit apart (this is how
/// HdrHistogram sizes them; the crate keeps the count private).
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10_u64.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1..=10000 microseconds, once each, in a histogram of nanoseconds.
    fn uniform() -> Histogram<u64> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for us in 1..=10_000_u64 {
            hist.record(us * 1_000).unwrap();
        }
        hist
    }

    #[test]
    fn prints_hdrhistograms_layout_in_milliseconds() {
        let hist = uniform();
        let text = format_ns(&hist);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        assert_eq!(
            lines.next(),
            Some("       0.001 0.000000000000          1           1.00")
        );
        let footer: Vec<&str> = text.lines().rev().take(3).collect();
        assert_eq!(
            footer[0],
            format!(
                "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
                hist.buckets(),
                2048
            )
        );
        assert_eq!(
            footer[1],
            "#[Max     =       10.002, Total count    =        10000]"
        );
        assert!(footer[2].starts_with("#[Mean    =        5.00"), "{text}");
        let last = text.lines().rev().nth(3).unwrap();
        assert_eq!(last, "      10.002 1.000000000000      10000");
    }

    #[test]
    fn ticks_halve_with_each_half_distance_to_100_percent() {
        let points = parse(&format_ns(&uniform())).unwrap();
        let percentiles: Vec<f64> = points.iter().take(12).map(|p| p.percentile).collect();
        let expected = [
            0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.775,
        ];
        for (got, want) in percentiles.iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{percentiles:?}");
        }
        assert_eq!(points.last().unwrap().percentile, 1.0);
    }

    #[test]
    fn what_is_written_reads_back_as_the_histograms_percentiles() {
        let hist = uniform();
        let dir = std::env::temp_dir().join(format!("hgrm-test-{}", std::process::id()));
        let path = dir.join("a").join("run.hgrm");
        write(&path, &hist).unwrap();
        let points = read(&path).unwrap();
        // Percentiles on the ticks' grid: a point stands for its tick only.
        for quantile in [0.5, 0.75, 0.875, 0.984375, 0.99951171875] {
            let expected = hist.value_at_quantile(quantile) as f64 / NS_PER_MS;
            let got = value_at(&points, quantile).unwrap();
            assert!(
                (got - expected).abs() <= 0.0005,
                "p{quantile}: {got} vs {expected}"
            );
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_histogram_has_a_header_and_a_footer_only() {
        let hist = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        let text = format_ns(&hist);
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains("Total count    =            0]"), "{text}");
    }
}
