//! The peer load generators, `wrk` (HTTP/1.1) and `h2load` (h2c and gRPC frames), run as
//! processes, and parsers for their text output. The parsers are lenient about spacing and
//! units and return `None` for a figure a tool did not print, so a format change shows as a
//! missing figure rather than a wrong one.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

/// What a peer tool reported for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolRun {
    /// Requests per second as the tool computed it.
    pub requests_per_sec: Option<f64>,
    /// Requests completed (any status).
    pub requests: Option<u64>,
    /// Requests that did not succeed (non-2xx answers, socket errors, failures).
    pub errors: Option<u64>,
    /// Mean latency in microseconds.
    pub latency_mean_us: Option<f64>,
    /// Median latency in microseconds (`wrk --latency` only).
    pub latency_p50_us: Option<f64>,
    /// 99th percentile in microseconds (`wrk --latency` only).
    pub latency_p99_us: Option<f64>,
}

/// The first line of a tool's version output, or `None` when it is not installed.
pub fn version(tool: &str) -> Option<String> {
    let arg = if tool == "wrk" { "-v" } else { "--version" };
    let output = Command::new(tool)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    // wrk prints its version and usage and exits 1; any output with a first line will do.
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    text.lines()
        .next()
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
}

/// The `wrk` command line for `connections` connections for `duration` POSTing `body`
/// (a Lua script in `dir` sets the method, body and content type).
pub fn wrk_command(
    url: &str,
    connections: u32,
    duration: Duration,
    body: &str,
    dir: &Path,
) -> std::io::Result<Vec<String>> {
    let script = dir.join("post.lua");
    let escaped = body.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"{escaped}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    Ok(vec![
        "wrk".to_owned(),
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs().max(1)),
        "--latency".to_owned(),
        "-s".to_owned(),
        script.display().to_string(),
        url.to_owned(),
    ])
}

/// The `h2load` command line: `connections` × `streams` for `duration` after `warmup`,
/// POSTing the file `body` with `headers`.
pub fn h2load_command(
    url: &str,
    connections: u32,
    streams: u32,
    duration: Duration,
    warmup: Duration,
    body: &Path,
    headers: &[&str],
) -> Vec<String> {
    let mut command = vec![
        "h2load".to_owned(),
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-m{streams}"),
        format!("-D{}", fmt_secs(duration)),
        format!("--warm-up-time={}", fmt_secs(warmup)),
        "-d".to_owned(),
        body.display().to_string(),
    ];
    for header in headers {
        command.push("-H".to_owned());
        command.push((*header).to_owned());
    }
    command.push(url.to_owned());
    command
}

fn fmt_secs(duration: Duration) -> String {
    // h2load takes whole or fractional seconds with a unit; milliseconds keep it exact.
    format!("{}ms", duration.as_millis().max(1))
}

/// Parses `wrk --latency` output.
pub fn parse_wrk(text: &str) -> ToolRun {
    let mut run = ToolRun::default();
    let mut errors = 0u64;
    let mut saw_errors = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate, ..] => run.requests_per_sec = rate.parse().ok(),
            ["Latency", avg, ..] if parse_time_us(avg).is_some() => {
                run.latency_mean_us = parse_time_us(avg);
            }
            ["50%", value] => run.latency_p50_us = parse_time_us(value),
            ["99%", value] => run.latency_p99_us = parse_time_us(value),
            [count, "requests", "in", ..] => run.requests = count.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                errors += count.parse::<u64>().unwrap_or(0);
                saw_errors = true;
            }
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                for pair in rest.chunks(2) {
                    if let [_, count] = pair {
                        errors += count.trim_end_matches(',').parse::<u64>().unwrap_or(0);
                    }
                }
                saw_errors = true;
            }
            _ => {}
        }
    }
    // wrk prints the error lines only when there were errors.
    run.errors = Some(if saw_errors { errors } else { 0 });
    run
}

/// Parses `h2load` output.
pub fn parse_h2load(text: &str) -> ToolRun {
    let mut run = ToolRun::default();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // "finished in 3.00s, 65000.00 req/s, 5.00MB/s"
            run.requests_per_sec = rest
                .split(',')
                .map(str::trim)
                .find_map(|part| part.strip_suffix(" req/s"))
                .and_then(|rate| rate.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix("requests:") {
            // "N total, N started, N done, N succeeded, N failed, N errored, N timeout"
            let count = |name: &str| {
                rest.split(',').map(str::trim).find_map(|part| {
                    let (value, label) = part.split_once(' ')?;
                    (label.trim() == name).then(|| value.parse::<u64>().ok())?
                })
            };
            run.requests = count("done");
            run.errors = match (count("done"), count("succeeded")) {
                (Some(done), Some(ok)) => {
                    Some(done.saturating_sub(ok) + count("timeout").unwrap_or(0))
                }
                _ => None,
            };
        } else if let Some(rest) = line.strip_prefix("time for request:") {
            // "min max mean sd +/- sd"
            run.latency_mean_us = rest.split_whitespace().nth(2).and_then(parse_time_us);
        }
    }
    run
}

/// `780.12us`, `1.50ms`, `2.00s`, `1.00m` in microseconds.
pub fn parse_time_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "ns" => 0.001,
        "us" | "µs" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "m" => 60_000_000.0,
        "h" => 3_600_000_000.0,
        _ => return None,
    };
    Some(value * scale)
}
