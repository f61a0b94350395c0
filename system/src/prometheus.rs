//! A minimal writer of the Prometheus text exposition format (version 0.0.4): enough for
//! counters and gauges with constant labels, without a metrics registry on the hot path.
//! Values are read from the services' own counters when `/metrics` is scraped.

use std::fmt::Write as _;

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Collects metric families into one text body.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Exposition {
    /// Writes one family with a single unlabelled sample.
    pub fn metric(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help, &[(&[], value)])
    }

    /// Writes one family with labelled samples.
    pub fn family(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: &[(&[(&str, &str)], f64)],
    ) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (key, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{key}=\"{}\"", escape(val));
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {value}");
        }
        self
    }

    /// The finished body.
    pub fn finish(self) -> String {
        self.text
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
