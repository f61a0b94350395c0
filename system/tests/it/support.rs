//! Helpers shared by the tests.

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Stdio},
    sync::Mutex,
};

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
        ..DataMessage::default()
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
        // A histogram's samples are its name with `_bucket`, `_sum` or `_count`.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| typed.contains(*base))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE line");
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

/// Asserts an error answer of the contract: `status`, a JSON body, an `error` that
/// mentions `mentions`.
pub async fn assert_error(
    response: reqwest::Response,
    status: reqwest::StatusCode,
    mentions: &str,
) {
    assert_eq!(response.status(), status);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"));
    assert!(
        error.contains(mentions),
        "{error:?} should mention {mentions:?}"
    );
}

/// Whether one answer of a burst was accepted (202); a refusal must be a 503 with
/// `Retry-After` and a JSON error saying the queue is full.
pub async fn accepted_or_refused(response: reqwest::Response) -> bool {
    match response.status() {
        reqwest::StatusCode::ACCEPTED => true,
        reqwest::StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(response.headers()[reqwest::header::RETRY_AFTER], "1");
            assert_error(response, reqwest::StatusCode::SERVICE_UNAVAILABLE, "full").await;
            false
        }
        other => panic!("unexpected {other}"),
    }
}

/// Whether `command` runs (`command --version` succeeds), after `scripts/ensure-tools
/// SPEC` tried to install it when it did not. Asked once per command and test run, one
/// command at a time, so parallel tests never install concurrently.
pub fn tool_available(command: &str, spec: &str) -> bool {
    static KNOWN: Mutex<Option<HashMap<String, bool>>> = Mutex::new(None);
    let mut known = KNOWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let known = known.get_or_insert_with(HashMap::new);
    if let Some(&available) = known.get(command) {
        return available;
    }
    let runs = || {
        Command::new(command)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let available = runs() || {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ensure-tools");
        let _ = Command::new(script).arg(spec).status();
        runs()
    };
    known.insert(command.to_owned(), available);
    available
}
