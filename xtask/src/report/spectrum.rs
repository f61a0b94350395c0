//! The latency spectrum of each front door: the whole percentile distribution of the system
//! and of the bare server at 50% load, read from the `.hgrm` files the load suite names in
//! the `hgrm` param of its `load/vs_bare` latency cases (paths relative to the results
//! directory, one file per round). Each side's round with the median p99 is drawn solid and
//! its other rounds faint, so one lucky or unlucky round can neither hide nor stand in for
//! the rest. Nothing is drawn when no case names a histogram.

use std::{
    fmt::Write as _,
    path::{Component, Path},
};

use anyhow::{Context, bail};
use study::{
    hgrm::{self, Point},
    results::{Case, Side},
};

use super::{
    evidence::Evidence,
    svg::{BOTTOM, COLOURS, HEIGHT, TOP, WIDTH, escape, open},
};

/// The load whose distribution is drawn.
const LOAD: &str = "50%";
/// The percentile that picks the round drawn solid.
const PICKED_BY: f64 = 0.99;
/// The plot's left margin: the latency labels are short.
const LEFT: f64 = 60.0;
/// The right margin leaves room for the last percentile's label, centred on the edge.
const RIGHT: f64 = 40.0;

/// One drawn spectrum.
pub(crate) struct Spectrum {
    /// The chart's file name, without `.svg`.
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) svg: String,
}

/// One side of a front door: its variant and one distribution per round.
struct SideRounds {
    variant: String,
    side: Side,
    rounds: Vec<Vec<Point>>,
}

/// A spectrum for every protocol whose 50% latency cases name histograms, in the order the
/// protocols first appear in the load results.
pub(crate) fn all(evidence: &Evidence, results: &Path) -> anyhow::Result<Vec<Spectrum>> {
    let Some(file) = evidence.files.get("load") else {
        return Ok(Vec::new());
    };
    let cases: Vec<&Case> = file
        .cases
        .iter()
        .filter(|c| {
            c.group == "load/vs_bare"
                && param(c, "measure") == "latency"
                && param(c, "load") == LOAD
                && !param(c, "hgrm").is_empty()
        })
        .collect();
    let mut protocols: Vec<&str> = Vec::new();
    for case in &cases {
        let protocol = param(case, "protocol");
        if !protocols.contains(&protocol) {
            protocols.push(protocol);
        }
    }
    let mut spectra = Vec::new();
    for protocol in protocols {
        let mut sides = Vec::new();
        for side in [Side::Baseline, Side::Optimized] {
            let of_side: Vec<&Case> = cases
                .iter()
                .copied()
                .filter(|c| param(c, "protocol") == protocol && c.side == Some(side))
                .collect();
            let Some(first) = of_side.first() else {
                continue;
            };
            let mut rounds = Vec::new();
            for case in &of_side {
                for path in param(case, "hgrm").split(',').map(str::trim) {
                    if !path.is_empty() {
                        rounds.push(read(results, path)?);
                    }
                }
            }
            sides.push(SideRounds {
                variant: first.variant.clone(),
                side,
                rounds,
            });
        }
        let title = format!("Latency by percentile at {LOAD} load: {protocol}");
        spectra.push(Spectrum {
            name: format!("spectrum_{protocol}"),
            svg: draw(&title, &sides),
            title,
        });
    }
    Ok(spectra)
}

fn param<'a>(case: &'a Case, key: &str) -> &'a str {
    case.params.get(key).map_or("", String::as_str)
}

/// Reads the histogram at `path`, which must lie inside the results directory.
fn read(results: &Path, path: &str) -> anyhow::Result<Vec<Point>> {
    let relative = Path::new(path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        bail!("load results: histogram path `{path}` is not relative to the results directory");
    }
    hgrm::read(&results.join(relative)).with_context(|| format!("reading the histogram {path}"))
}

/// The position of `percentile` on the x axis: log10 of 1/(1-p), so 90% is 1, 99% is 2.
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile).log10()
}

/// The label of the axis position `nines`: 90%, 99%, 99.9%, ...
fn label(nines: u32) -> String {
    match nines {
        1 => "90%".to_owned(),
        2 => "99%".to_owned(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)),
    }
}

/// Latency in ms with three significant figures or so.
fn ms(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// The decades (powers of ten, in ms) the axis runs between: from the one at or below the
/// smallest latency above zero to the one at or above the largest, at least one apart.
fn decades(values: impl Iterator<Item = f64>) -> (i32, i32) {
    let (min, max) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if max <= 0.0 {
        return (-3, 0);
    }
    let low = min.log10().floor() as i32;
    let high = (max.log10().ceil() as i32).max(low + 1);
    (low, high)
}

/// The index of the round with the median p99 (the lower median of an even count).
fn median_round(rounds: &[Vec<Point>]) -> Option<usize> {
    let mut by_p99: Vec<(usize, f64)> = rounds
        .iter()
        .enumerate()
        .map(|(i, points)| (i, hgrm::value_at(points, PICKED_BY).unwrap_or(0.0)))
        .collect();
    by_p99.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    by_p99
        .get(by_p99.len().checked_sub(1)? / 2)
        .map(|(i, _)| *i)
}

/// The points below 100%, which the log scale can place.
fn placed(points: &[Point]) -> impl Iterator<Item = &Point> {
    points.iter().filter(|p| p.percentile < 1.0)
}

fn draw(title: &str, sides: &[SideRounds]) -> String {
    let plot = Plot::of(sides);
    let mut svg = open(title);
    let several = sides.iter().any(|s| s.rounds.len() > 1);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="40" text-anchor="middle" font-size="11">{}</text>"#,
        WIDTH / 2.0,
        if several {
            "each side at the same rate, latency on a log scale; solid: the round with the median p99, faint: the other rounds"
        } else {
            "each side at the same rate, latency on a log scale"
        }
    );
    plot.write_axes(&mut svg);
    for (i, side) in sides.iter().enumerate() {
        plot.write_side(&mut svg, i, side);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The plot area and its two log scales: percentiles in nines across, latency in decades
/// up.
struct Plot {
    /// Nines at the right edge.
    x_max: f64,
    /// Decades (powers of ten of ms) at the bottom and top edges.
    low: i32,
    high: i32,
    plot_w: f64,
    plot_h: f64,
}

impl Plot {
    /// Axes that hold every point of every round of `sides`.
    fn of(sides: &[SideRounds]) -> Plot {
        let all = || {
            sides
                .iter()
                .flat_map(|s| s.rounds.iter())
                .flat_map(|r| placed(r))
        };
        // A little under a whole number of nines counts as that number: 1 - 0.9999 is not
        // exactly 1e-4 in binary.
        let x_max = all()
            .map(|p| (nines(p.percentile) - 1e-9).ceil())
            .fold(4.0_f64, f64::max);
        // Latency on a log scale too: the bare server's and the system's lines can lie a
        // decade or two apart, and a linear axis would flatten the lower one onto zero.
        let (low, high) = decades(all().map(|p| p.value_ms));
        Plot {
            x_max,
            low,
            high,
            plot_w: WIDTH - LEFT - RIGHT,
            plot_h: HEIGHT - TOP - BOTTOM,
        }
    }

    fn x(&self, p: f64) -> f64 {
        LEFT + self.plot_w * nines(p) / self.x_max
    }

    fn y(&self, v: f64) -> f64 {
        let low = f64::from(self.low);
        let decade = if v > 0.0 { v.log10().max(low) } else { low };
        TOP + self.plot_h - self.plot_h * (decade - low) / f64::from(self.high - self.low)
    }

    /// A polyline's points for the placed points of a round.
    fn line(&self, points: &[Point]) -> String {
        placed(points)
            .map(|p| format!("{:.1},{:.1}", self.x(p.percentile), self.y(p.value_ms)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Grid lines and labels of both axes, and the axis titles.
    fn write_axes(&self, svg: &mut String) {
        let (plot_w, plot_h) = (self.plot_w, self.plot_h);
        for exponent in self.low..=self.high {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#dddddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{4:.5$}</text>"##,
                self.y(10f64.powi(exponent)),
                WIDTH - RIGHT,
                LEFT - 6.0,
                self.y(10f64.powi(exponent)) + 4.0,
                10f64.powi(exponent),
                (-exponent).max(0) as usize
            );
        }
        let ticks = std::iter::once((0.5, "50%".to_owned()))
            .chain((1..=self.x_max as u32).map(|n| (1.0 - 10f64.powi(-(n as i32)), label(n))));
        for (p, text) in ticks {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#dddddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{text}</text>"##,
                self.x(p),
                TOP + plot_h,
                TOP + plot_h + 16.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile (log scale of 1/(1 − p))</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h + 34.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="16" y="{0:.1}" transform="rotate(-90 16 {0:.1})" text-anchor="middle">ms</text>"#,
            TOP + plot_h / 2.0
        );
    }

    /// The `i`th side: its other rounds faint, its median-p99 round solid, and its key.
    fn write_side(&self, svg: &mut String, i: usize, side: &SideRounds) {
        let colour = colour(side.side);
        let Some(picked) = median_round(&side.rounds) else {
            return;
        };
        for (r, round) in side.rounds.iter().enumerate().filter(|(r, _)| *r != picked) {
            let _ = writeln!(
                svg,
                r#"<polyline class="other-round" points="{}" fill="none" stroke="{colour}" stroke-width="1" stroke-opacity="0.45"><title>{}, round {}</title></polyline>"#,
                self.line(round),
                escape(&side.variant),
                r + 1
            );
        }
        let p99 = ms(hgrm::value_at(&side.rounds[picked], PICKED_BY).unwrap_or(0.0));
        let key = format!("{}: p99 {p99} ms", side.variant);
        let _ = writeln!(
            svg,
            r#"<polyline class="round" points="{}" fill="none" stroke="{colour}" stroke-width="2"><title>{}, round {} of {}</title></polyline>"#,
            self.line(&side.rounds[picked]),
            escape(&key),
            picked + 1,
            side.rounds.len()
        );
        let (kx, ky) = (LEFT + 200.0 * i as f64, HEIGHT - 14.0);
        let _ = writeln!(
            svg,
            r#"<rect x="{kx:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{ky:.1}">{}</text>"#,
            ky - 10.0,
            kx + 16.0,
            escape(&key)
        );
    }
}

/// The bar charts' colours: grey for the baseline (the bare server), blue for the system.
fn colour(side: Side) -> &'static str {
    match side {
        Side::Baseline => COLOURS[0],
        Side::Optimized => COLOURS[1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axes_run_over_whole_decades_and_nines() {
        assert_eq!(decades([0.02, 0.5, 25.0].into_iter()), (-2, 2));
        assert_eq!(decades([0.0, 1.0].into_iter()), (0, 1));
        assert_eq!(decades(std::iter::empty()), (-3, 0));
        assert_eq!(
            [1, 2, 3, 5].map(label),
            ["90%", "99%", "99.9%", "99.999%"].map(str::to_owned)
        );
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
    }
}
