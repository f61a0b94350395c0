//! Helpers shared by the tests.

use std::collections::HashMap;

use system::proto::DataMessage;

/// A message whose fields all derive from `n`, so a test can tell messages apart.
pub fn message(n: u64, payload_len: usize, pairs: usize) -> DataMessage {
    let byte = (n % 251) as u8;
    DataMessage {
        id: format!("msg-{n}"),
        timestamp: n as i64,
        source: format!("source-{n}"),
        payload: vec![byte; payload_len],
        metadata: (0..pairs)
            .map(|i| (format!("key-{n}-{i}"), format!("value-{n}-{i}")))
            .collect::<HashMap<_, _>>(),
    }
}

/// Parses Prometheus text exposition strictly enough to catch a malformed line: every
/// family has HELP and TYPE before its samples, and every sample is `name{labels} value`.
pub fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        assert!(typed.contains(name), "{name} has no TYPE line");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}
