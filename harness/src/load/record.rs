//! What one generator thread records: outcomes by kind, an HDR histogram of the latency of
//! successful requests, and a per-second series. Only requests due (or, closed loop, sent)
//! inside the measured window are recorded; the warm-up leaves no trace. Recording never
//! allocates once a run is under way except to add a new error kind or a new second.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// Highest latency the histograms hold; longer ones are recorded as this.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer, or gRPC status OK.
    Ok,
    /// The server refused for load: HTTP 503 or gRPC `UNAVAILABLE`. Counted apart from
    /// errors, because shedding load is the server doing its job.
    Rejected,
    /// Anything else.
    Error(ErrorKind),
}

/// The kinds of failure told apart in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The connection could not be opened.
    Connect,
    /// Reading or writing the socket failed, or the server closed it mid-request.
    Io,
    /// No answer within the scenario's timeout.
    Timeout,
    /// The answer did not parse (HTTP/1.1 framing, HTTP/2 protocol error, gRPC framing).
    Protocol,
    /// The server reset the HTTP/2 stream or sent GOAWAY.
    Reset,
    /// An HTTP status other than 2xx and 503.
    Status(u16),
    /// A gRPC status other than OK and `UNAVAILABLE`.
    Grpc(i32),
}

impl ErrorKind {
    /// The key used in reports: `connect`, `io`, `timeout`, `protocol`, `reset`,
    /// `http_<code>`, `grpc_<NAME>`.
    pub fn key(self) -> String {
        match self {
            ErrorKind::Connect => "connect".to_owned(),
            ErrorKind::Io => "io".to_owned(),
            ErrorKind::Timeout => "timeout".to_owned(),
            ErrorKind::Protocol => "protocol".to_owned(),
            ErrorKind::Reset => "reset".to_owned(),
            ErrorKind::Status(code) => format!("http_{code}"),
            ErrorKind::Grpc(code) => format!("grpc_{}", grpc_code_name(code)),
        }
    }
}

/// The canonical name of a gRPC status code.
pub fn grpc_code_name(code: i32) -> String {
    let name = match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        other => return other.to_string(),
    };
    name.to_owned()
}

/// Classifies an HTTP status.
pub fn http_outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Ok,
        503 => Outcome::Rejected,
        other => Outcome::Error(ErrorKind::Status(other)),
    }
}

/// Classifies a gRPC status code.
pub fn grpc_outcome(code: i32) -> Outcome {
    match code {
        0 => Outcome::Ok,
        14 => Outcome::Rejected,
        other => Outcome::Error(ErrorKind::Grpc(other)),
    }
}

/// One second of the measured window.
#[derive(Debug, Clone)]
pub struct Second {
    /// Successful requests due in this second.
    pub ok: u64,
    /// Rejected requests due in this second.
    pub rejected: u64,
    /// Failed requests due in this second.
    pub errors: u64,
    /// Latency of the successful ones, in microseconds (two significant digits suffice for
    /// a time series and keep each second small).
    pub latency_us: Histogram<u32>,
}

/// The record of one thread (or, merged, of a run).
#[derive(Debug, Clone)]
pub struct Recorder {
    measure_from: Instant,
    measure_until: Instant,
    /// Latency of successful requests, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// How late each request was sent after it was due, in nanoseconds (open loop): the
    /// timer's granularity, plus any wait for a free slot while the server was slow.
    pub send_lag_ns: Histogram<u64>,
    /// Successful requests (calls).
    pub ok: u64,
    /// Messages carried by successful requests.
    pub messages: u64,
    /// Rejected requests.
    pub rejected: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// The per-second series, indexed by seconds since the window opened.
    pub seconds: Vec<Second>,
    /// Connections opened, warm-up included.
    pub connections_opened: u64,
}

impl Recorder {
    /// A recorder for the window `[measure_from, measure_until)`.
    pub fn new(measure_from: Instant, measure_until: Instant) -> Recorder {
        Recorder {
            measure_from,
            measure_until,
            latency_ns: latency_histogram(),
            send_lag_ns: latency_histogram(),
            ok: 0,
            messages: 0,
            rejected: 0,
            errors: BTreeMap::new(),
            seconds: Vec::new(),
            connections_opened: 0,
        }
    }

    /// When measuring starts (the warm-up ends).
    pub fn measure_from(&self) -> Instant {
        self.measure_from
    }

    /// When measuring ends: nothing due after it is sent.
    pub fn measure_until(&self) -> Instant {
        self.measure_until
    }

    /// Records a request that was due at `due` and finished at `done`; ignored when `due`
    /// lies outside the window.
    pub fn record(&mut self, due: Instant, done: Instant, outcome: Outcome, messages: u64) {
        if due < self.measure_from || due >= self.measure_until {
            return;
        }
        let index = due.duration_since(self.measure_from).as_secs() as usize;
        let second = self.second(index);
        match outcome {
            Outcome::Ok => {
                let latency = done.saturating_duration_since(due);
                let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                second.ok += 1;
                second.latency_us.saturating_record((ns / 1_000).max(1));
                self.latency_ns.saturating_record(ns.max(1));
                self.ok += 1;
                self.messages += messages;
            }
            Outcome::Rejected => {
                second.rejected += 1;
                self.rejected += 1;
            }
            Outcome::Error(kind) => {
                second.errors += 1;
                *self.errors.entry(kind).or_insert(0) += 1;
            }
        }
    }

    /// Notes that a request due at `due` was sent at `sent`.
    pub fn sent(&mut self, due: Instant, sent: Instant) {
        if due < self.measure_from || due >= self.measure_until {
            return;
        }
        let lag = sent.saturating_duration_since(due);
        let ns = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        self.send_lag_ns.saturating_record(ns);
    }

    /// Records a failure to connect at `at` (inside the window it counts as an error).
    pub fn connect_failed(&mut self, at: Instant) {
        self.record(at, at, Outcome::Error(ErrorKind::Connect), 0);
    }

    /// Adds another thread's record to this one.
    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so adding cannot fail; a failure would only
        // drop the other thread's latencies, never corrupt these.
        let _ = self.latency_ns.add(&other.latency_ns);
        let _ = self.send_lag_ns.add(&other.send_lag_ns);
        self.ok += other.ok;
        self.messages += other.messages;
        self.rejected += other.rejected;
        for (kind, count) in &other.errors {
            *self.errors.entry(*kind).or_insert(0) += count;
        }
        for (index, theirs) in other.seconds.iter().enumerate() {
            let ours = self.second(index);
            ours.ok += theirs.ok;
            ours.rejected += theirs.rejected;
            ours.errors += theirs.errors;
            let _ = ours.latency_us.add(&theirs.latency_us);
        }
        self.connections_opened += other.connections_opened;
    }

    /// The measured window's length.
    pub fn window(&self) -> Duration {
        self.measure_until.duration_since(self.measure_from)
    }

    fn second(&mut self, index: usize) -> &mut Second {
        while self.seconds.len() <= index {
            self.seconds.push(Second {
                ok: 0,
                rejected: 0,
                errors: 0,
                latency_us: second_histogram(),
            });
        }
        &mut self.seconds[index]
    }
}

fn latency_histogram() -> Histogram<u64> {
    // Bounds and precision are constants that `new_with_bounds` accepts.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).unwrap_or_else(|_| unreachable!())
}

fn second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS / 1_000, 2).unwrap_or_else(|_| unreachable!())
}
