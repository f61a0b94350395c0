//! Grouped bar charts as plain SVG, written by hand so that the same numbers always give
//! the same bytes (the report's `--check` compares them) and no font files are needed. A bar
//! is the median of its rounds; a whisker on it spans the smallest to the largest round.

use std::fmt::Write as _;

use study::results::Metric;

/// A grouped bar chart: one group of bars per category, one bar per series.
pub(crate) struct BarChart<'a> {
    pub(crate) title: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) categories: Vec<String>,
    /// (series name, one bar per category; `None` where not measured).
    pub(crate) series: Vec<(String, Vec<Option<Bar>>)>,
}

/// One bar: the median, and the range of the rounds behind it when they differ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bar {
    pub(crate) value: f64,
    /// (smallest, largest) round; `None` for one round or an exact count.
    pub(crate) range: Option<(f64, f64)>,
}

impl Bar {
    /// The median of `metric`, with its range when it has several rounds that differ.
    pub(crate) fn of(metric: &Metric) -> Bar {
        Bar {
            value: metric.median,
            range: (metric.samples.len() > 1 && metric.min < metric.max)
                .then_some((metric.min, metric.max)),
        }
    }

    /// The same bar in another unit (`factor` times each figure).
    pub(crate) fn scaled(self, factor: f64) -> Bar {
        Bar {
            value: self.value * factor,
            range: self.range.map(|(lo, hi)| (lo * factor, hi * factor)),
        }
    }

    fn top(&self) -> f64 {
        self.range.map_or(self.value, |(_, hi)| hi.max(self.value))
    }
}

/// The size of every chart, and its margins around the plot.
pub(crate) const WIDTH: f64 = 760.0;
pub(crate) const HEIGHT: f64 = 360.0;
const LEFT: f64 = 80.0;
pub(crate) const RIGHT: f64 = 20.0;
pub(crate) const TOP: f64 = 50.0;
pub(crate) const BOTTOM: f64 = 70.0;
/// Series colours, in the order series get them.
pub(crate) const COLOURS: [&str; 6] = [
    "#8c8c8c", "#2b7bba", "#e07b39", "#4daf4a", "#984ea3", "#e41a1c",
];

impl BarChart<'_> {
    pub(crate) fn render(&self) -> String {
        let bars = || {
            self.series
                .iter()
                .flat_map(|(_, bars)| bars.iter().flatten())
        };
        let max = bars().map(Bar::top).fold(0.0_f64, f64::max);
        let whiskers = bars().any(|bar| bar.range.is_some());
        let layout = Layout::new(nice_ceiling(max), self.categories.len(), self.series.len());
        let mut svg = open(self.title);
        self.write_scale(&mut svg, &layout);
        for (c, category) in self.categories.iter().enumerate() {
            self.write_group(&mut svg, &layout, c, category);
        }
        self.write_key(&mut svg, whiskers);
        svg.push_str("</svg>\n");
        svg
    }

    /// The value axis: five grid lines with their labels, and the unit.
    fn write_scale(&self, svg: &mut String, layout: &Layout) {
        let plot_h = layout.plot_h;
        for tick in 0..=4 {
            let value = layout.scale_max * f64::from(tick) / 4.0;
            let y = TOP + plot_h - plot_h * f64::from(tick) / 4.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dddddd"/>"##,
                WIDTH - RIGHT
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                short(value)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(self.unit)
        );
    }

    /// The `c`th category: a bar (and whisker) per series measured there, and its label.
    fn write_group(&self, svg: &mut String, layout: &Layout, c: usize, category: &str) {
        let (plot_h, group_w, bar_w) = (layout.plot_h, layout.group_w, layout.bar_w);
        let x0 = LEFT + group_w * c as f64 + group_w * 0.1;
        for (s, (_, bars)) in self.series.iter().enumerate() {
            let Some(bar) = bars.get(c).copied().flatten() else {
                continue;
            };
            let h = layout.height(bar.value);
            let x = x0 + bar_w * s as f64;
            let y = TOP + plot_h - h;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                bar_w * 0.95,
                COLOURS[s % COLOURS.len()],
                escape(category),
                short(bar.value)
            );
            if let Some((lo, hi)) = bar.range {
                let centre = x + bar_w * 0.95 / 2.0;
                let (y_lo, y_hi) = (
                    TOP + plot_h - layout.height(lo),
                    TOP + plot_h - layout.height(hi),
                );
                let _ = writeln!(
                    svg,
                    r#"<path class="whisker" {}><title>{}: range of the rounds: {}–{}</title></path>"#,
                    whisker(centre, y_lo, y_hi, (bar_w * 0.2).min(6.0)),
                    escape(category),
                    short(lo),
                    short(hi)
                );
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + group_w * 0.4,
            TOP + plot_h + 18.0,
            escape(category)
        );
    }

    /// The key under the plot: a swatch per series, and the whisker's meaning when drawn.
    fn write_key(&self, svg: &mut String, whiskers: bool) {
        for (s, (name, _)) in self.series.iter().enumerate() {
            let x = LEFT + 140.0 * s as f64;
            let y = HEIGHT - 18.0;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
                y - 10.0,
                COLOURS[s % COLOURS.len()],
                x + 16.0,
                escape(name)
            );
        }
        if whiskers {
            let x = LEFT + 140.0 * self.series.len() as f64;
            let y = HEIGHT - 18.0;
            let _ = writeln!(
                svg,
                r#"<path class="whisker-key" {}/><text x="{:.1}" y="{y:.1}">whiskers: min–max of the rounds</text>"#,
                whisker(x + 6.0, y + 1.0, y - 11.0, 4.0),
                x + 16.0
            );
        }
    }
}

/// Where a bar chart's bars go: the value at the top of the scale, the plot's height and
/// the widths of a category's group and of one bar in it.
struct Layout {
    scale_max: f64,
    plot_h: f64,
    group_w: f64,
    bar_w: f64,
}

impl Layout {
    fn new(scale_max: f64, categories: usize, series: usize) -> Layout {
        let plot_w = WIDTH - LEFT - RIGHT;
        let group_w = plot_w / categories.max(1) as f64;
        Layout {
            scale_max,
            plot_h: HEIGHT - TOP - BOTTOM,
            group_w,
            bar_w: group_w * 0.8 / series.max(1) as f64,
        }
    }

    /// The height of a bar of `value`.
    fn height(&self, value: f64) -> f64 {
        if self.scale_max > 0.0 {
            self.plot_h * value / self.scale_max
        } else {
            0.0
        }
    }
}

/// The attributes of a whisker at `x` from `y_lo` up to `y_hi`, its caps `cap` wide each side.
fn whisker(x: f64, y_lo: f64, y_hi: f64, cap: f64) -> String {
    format!(
        r##"d="M{x:.1} {y_lo:.1}V{y_hi:.1}M{:.1} {y_lo:.1}H{:.1}M{:.1} {y_hi:.1}H{:.1}" stroke="#333333" stroke-width="1.2" fill="none""##,
        x - cap,
        x + cap,
        x - cap,
        x + cap
    )
}

/// The smallest 1, 2 or 5 times a power of ten at or above `value`.
pub(crate) fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= value)
        .unwrap_or(10.0 * magnitude)
}

/// A compact label: 1.2k, 3.4M, or the number itself.
pub(crate) fn short(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{:.1}G", value / 1e9)
    } else if abs >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if abs >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if abs >= 100.0 {
        format!("{value:.0}")
    } else if abs >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The start of a chart: the `svg` element, a white background and `title` centred above
/// the plot.
pub(crate) fn open(title: &str) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    svg
}

/// `text` with the characters that SVG markup gives a meaning escaped.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
