//! Whether the nodes of a cluster serve JetStream, asked the way an operator would: `GET
//! /healthz` on a node's monitoring port answers 200 `{"status":"ok"}` only once the node
//! knows JetStream's meta leader and is current with it (and with its streams); before
//! that, 503 with the reason, such as "JetStream has not established contact with a meta
//! leader". One raw HTTP/1.0 exchange per question keeps the crate free of dependencies.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::ExitStatus,
    thread,
    time::{Duration, Instant},
};

use super::NatsServer;
use crate::LaunchError;

/// How often `/healthz` is asked while waiting.
const POLL: Duration = Duration::from_millis(100);
/// The bound on one `/healthz` exchange.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// More than any `/healthz` answer; a longer one is cut there.
const MAX_ANSWER: u64 = 64 * 1024;
/// What nats-server logs for each `/healthz` that does not answer `ok`: our own polling
/// causes these, so they are not kept (they would push the useful lines out).
const PROBE_WARNING: &str = "Healthcheck failed";
/// Lines of each node's output an error shows.
const SHOWN_LINES: usize = 60;

/// Waits until every one of `nodes` answers `ok` on `/healthz`; the error names each node
/// that did not, with its last answer and output, and stops the wait early when a node
/// exits.
pub(super) fn wait_healthy(
    nodes: &mut [&mut NatsServer],
    timeout: Duration,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + timeout;
    // `None` once the node answered `ok`; until then, what it answered last.
    let mut answers: Vec<Option<String>> = vec![Some("not asked yet".to_owned()); nodes.len()];
    loop {
        for i in 0..nodes.len() {
            if answers[i].is_none() {
                continue;
            }
            if let Some(status) = nodes[i].exited() {
                answers[i] = Some("it exited".to_owned());
                return Err(not_healthy(nodes, &answers, timeout, Some(status)));
            }
            answers[i] = healthz(nodes[i].monitor_port().unwrap_or_default()).err();
        }
        if answers.iter().all(Option::is_none) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(not_healthy(nodes, &answers, timeout, None));
        }
        thread::sleep(POLL);
    }
}

fn not_healthy(
    nodes: &[&mut NatsServer],
    answers: &[Option<String>],
    timeout: Duration,
    exited: Option<ExitStatus>,
) -> LaunchError {
    let mut missing = Vec::new();
    let mut output = Vec::new();
    for (node, answer) in nodes.iter().zip(answers) {
        let Some(answer) = answer else { continue };
        let name = node.name().unwrap_or("nats-server");
        missing.push(format!("{name}'s JetStream (its /healthz: {answer})"));
        let tail = node
            .process()
            .map(|p| p.tail(SHOWN_LINES))
            .unwrap_or_default();
        output.push(format!("--- {name} ---\n{tail}"));
    }
    let cluster = nodes
        .iter()
        .find_map(|node| node.node.as_ref())
        .map(|node| node.cluster_name())
        .unwrap_or_default();
    let program = nodes
        .first()
        .map(|node| node.program.display().to_string())
        .unwrap_or_default();
    LaunchError::NotReady {
        program: format!("{program} (cluster {cluster})"),
        missing,
        timeout,
        exited,
        output: output.join("\n"),
    }
}

/// Asks `GET /healthz` on the monitoring port: `Ok` for a 200 with `"status":"ok"`,
/// otherwise what it answered (its `error`, or why it did not answer).
pub(super) fn healthz(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|err| format!("no answer on port {port}: {err}"))?;
    let mut answer = Vec::new();
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .and_then(|()| stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
        .and_then(|()| stream.take(MAX_ANSWER).read_to_end(&mut answer))
        .map_err(|err| format!("no answer on port {port}: {err}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let compact: String = body.split_whitespace().collect();
    if status_line.split(' ').nth(1) == Some("200") && compact.contains(r#""status":"ok""#) {
        return Ok(());
    }
    let error = body
        .split_once(r#""error":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(error, _)| error.to_owned());
    Err(error.unwrap_or_else(|| format!("{status_line} {body}")))
}

/// Whether a line of a node's output is kept (see [`PROBE_WARNING`]).
pub(super) fn worth_keeping(line: &str) -> bool {
    !line.contains(PROBE_WARNING)
}
