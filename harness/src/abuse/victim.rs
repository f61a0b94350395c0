//! The victim: a well-behaved client from an address of its own sending small valid JSON
//! ingests over HTTP/1.1 keep-alive connections, in an open loop at a fixed rate. Request
//! `k` is due at `k / rate` seconds whatever became of the others, and its latency counts
//! from then, so a server that stalls shows in the tail instead of slowing the victim down.
//! A few connections take the requests in turn; one that failed, closed or sat idle is
//! opened again for the next request. Every answer is tallied by kind (`accepted` for a 202,
//! `http_<status>`, `timeout`, `io`); a request the victim could not send before the run's
//! end (and a grace) is `unsent`. Runs on a thread and a single-threaded runtime of its own.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use futures_util::future::join_all;
use hdrhistogram::Histogram;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::{sleep_until, timeout},
};

use super::wire;

/// Connections taking the victim's requests in turn.
const CONNECTIONS: usize = 8;
/// How long a request may go without an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after the run's end what was due before it is still sent.
const LATE_GRACE: Duration = Duration::from_secs(1);
/// A connection idle this long is replaced: the gateway closes one idle for 2 s, and a
/// request sent as it closes would fail for no fault of the server's.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// The largest answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// How the victim runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// The victim's address.
    pub(crate) from: IpAddr,
    /// The gateway.
    pub(crate) to: SocketAddr,
    /// Requests per second.
    pub(crate) rate: f64,
    /// How long requests fall due.
    pub(crate) duration: Duration,
}

/// What the victim saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Requests that fell due.
    pub(crate) due: u64,
    /// Answers by kind, `unsent` among them.
    pub(crate) answers: BTreeMap<String, u64>,
    /// Latency of every request sent, answered or not, from its due time (µs).
    pub(crate) latency_us: Histogram<u64>,
    /// How late each request went out (µs): the victim's own delay, part of its latency.
    pub(crate) late_us: Histogram<u64>,
}

impl Seen {
    /// Requests answered 202.
    pub(crate) fn accepted(&self) -> u64 {
        self.answers.get("accepted").copied().unwrap_or(0)
    }
}

/// Runs `plan` to its end on this thread.
pub(crate) fn run(plan: Plan) -> std::io::Result<Seen> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(drive(plan)))
}

struct Victim {
    plan: Plan,
    start: Instant,
    next: Cell<u64>,
    seen: RefCell<Seen>,
}

async fn drive(plan: Plan) -> Seen {
    let victim = Victim {
        plan,
        start: Instant::now(),
        next: Cell::new(0),
        seen: RefCell::new(Seen {
            due: (plan.duration.as_secs_f64() * plan.rate).ceil() as u64,
            answers: BTreeMap::new(),
            latency_us: histogram(),
            late_us: histogram(),
        }),
    };
    join_all((0..CONNECTIONS).map(|_| victim.connection())).await;
    let mut seen = victim.seen.into_inner();
    let claimed = victim.next.get().min(seen.due);
    let unsent = seen.due - claimed + seen.answers.get("unsent").copied().unwrap_or(0);
    if unsent > 0 {
        seen.answers.insert("unsent".to_owned(), unsent);
    }
    seen
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

impl Victim {
    /// One connection taking requests in turn until none is due.
    async fn connection(&self) {
        let mut conn = Conn {
            stream: None,
            last_used: Instant::now(),
            buf: BytesMut::with_capacity(1024),
        };
        let stop = self.start + self.plan.duration;
        loop {
            let k = self.next.get();
            self.next.set(k + 1);
            let due = self.start + Duration::from_secs_f64(k as f64 / self.plan.rate);
            if due >= stop {
                return;
            }
            sleep_until(due.into()).await;
            let sent = Instant::now();
            if sent >= stop + LATE_GRACE {
                *self
                    .seen
                    .borrow_mut()
                    .answers
                    .entry("unsent".into())
                    .or_default() += 1;
                continue;
            }
            let body = format!(r#"{{"source": "victim", "data": "{k}"}}"#);
            let answer = conn.send(self.plan, body.as_bytes()).await;
            let mut seen = self.seen.borrow_mut();
            let micros = |d: Duration| (d.as_micros() as u64).max(1);
            seen.latency_us.saturating_record(micros(due.elapsed()));
            seen.late_us.saturating_record(micros(sent - due));
            *seen.answers.entry(answer).or_default() += 1;
        }
    }
}

/// One keep-alive connection of the victim.
struct Conn {
    stream: Option<TcpStream>,
    last_used: Instant,
    buf: BytesMut,
}

impl Conn {
    /// Sends one ingest of `body`; the kind of its answer.
    async fn send(&mut self, plan: Plan, body: &[u8]) -> String {
        match timeout(REQUEST_TIMEOUT, self.exchange(plan, body)).await {
            Ok(Some(202)) => "accepted".to_owned(),
            Ok(Some(status)) => format!("http_{status}"),
            Ok(None) => {
                self.stream = None;
                "io".to_owned()
            }
            Err(_) => {
                self.stream = None;
                "timeout".to_owned()
            }
        }
    }

    async fn exchange(&mut self, plan: Plan, body: &[u8]) -> Option<u16> {
        if self.last_used.elapsed() > MAX_IDLE {
            self.stream = None;
        }
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => wire::connect(plan.from, plan.to).await.ok()?,
        };
        let mut request = wire::ingest_head(plan.to, body.len());
        request.extend_from_slice(body);
        stream.write_all(&request).await.ok()?;
        self.buf.clear();
        let (status, close) = read_answer(&mut stream, &mut self.buf).await?;
        self.last_used = Instant::now();
        if !close {
            self.stream = Some(stream);
        }
        Some(status)
    }
}

/// Reads one answer (its head, and a body of the declared length): its status, and whether
/// the server will close the connection.
async fn read_answer(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<(u16, bool)> {
    loop {
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(buf).ok()? else {
            if buf.len() > MAX_ANSWER {
                return None;
            }
            continue;
        };
        let header = |name: &str| {
            (response.headers.iter())
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let length: usize = header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .unwrap_or(0);
        let status = response.code?;
        if length > MAX_ANSWER {
            return None;
        }
        while buf.len() < head + length {
            if stream.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        }
        return Some((status, close));
    }
}
