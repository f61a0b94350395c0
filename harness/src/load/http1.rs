//! The HTTP/1.1 runner: one task per connection, a hand-written keep-alive loop that writes
//! pre-built request bytes and parses answers with `httparse`, with up to `in_flight`
//! requests pipelined. A connection that fails, times out or is closed by the server fails
//! its requests in flight and is reopened; nothing waits longer than the request timeout.

use std::{
    cell::RefCell,
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::{Buf, BytesMut};
use tokio::{
    io::AsyncWriteExt,
    net::TcpStream,
    time::{sleep_until, timeout},
};

use super::{
    Context,
    pace::{Due, Pacer, read_some, wait_until},
    record::{ErrorKind, Outcome, Recorder, http_outcome},
};

/// The most bytes of one answer the runner buffers; a larger answer is a protocol error.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A connection idle for this long is reopened before its next request: servers close
/// idle keep-alive connections (the system's HTTP/1.1 server after 2 s), and a request
/// written into a connection the server is closing would count as a spurious error.
const IDLE_REOPEN: Duration = Duration::from_secs(1);

/// Drives one connection slot until its pacer is done.
pub(super) async fn run_connection(ctx: &Context, recorder: &RefCell<Recorder>, mut pacer: Pacer) {
    loop {
        let now = Instant::now();
        if pacer.done(now) {
            return;
        }
        let Some(stream) = connect(ctx.addr, ctx, recorder, &pacer).await else {
            continue;
        };
        match drive(stream, ctx, recorder, &mut pacer).await {
            Ok(()) => return,
            // A server that closes connections without answering is not hammered with
            // reconnects: wait a little before the next one.
            Err(Broken { answered: 0 }) => {
                let retry = Instant::now() + ctx.reconnect_delay;
                sleep_until(retry.min(pacer.stop()).into()).await;
            }
            Err(Broken { .. }) => {}
        }
    }
}

/// Opens a connection; on failure records it and waits a little (never past the stop).
pub(super) async fn connect(
    addr: SocketAddr,
    ctx: &Context,
    recorder: &RefCell<Recorder>,
    pacer: &Pacer,
) -> Option<TcpStream> {
    let started = Instant::now();
    match timeout(ctx.timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Requests are small and written whole; Nagle would only add latency.
            let _ = stream.set_nodelay(true);
            recorder.borrow_mut().connections_opened += 1;
            Some(stream)
        }
        Ok(Err(_)) | Err(_) => {
            recorder.borrow_mut().connect_failed(started);
            let retry = Instant::now() + ctx.reconnect_delay;
            sleep_until(retry.min(pacer.stop()).into()).await;
            None
        }
    }
}

/// A connection that failed, and how many answers it gave before.
struct Broken {
    answered: u64,
}

/// One connection's life. `Ok` when the pacer is done and nothing is in flight; `Err` when
/// the connection broke (its requests in flight are recorded as failed).
async fn drive(
    mut stream: TcpStream,
    ctx: &Context,
    recorder: &RefCell<Recorder>,
    pacer: &mut Pacer,
) -> Result<(), Broken> {
    let mut pipeline = Pipeline::new(ctx);
    let mut last_answer = Instant::now();
    loop {
        let now = Instant::now();
        if pipeline.in_flight.is_empty() && now.duration_since(last_answer) > IDLE_REOPEN {
            return Err(Broken { answered: 1 });
        }
        let wake = pipeline.queue_due(ctx, recorder, pacer, now);
        if let Err(kind) = pipeline.write(&mut stream, ctx).await {
            return Err(pipeline.fail(recorder, kind));
        }
        let Some(&(_, oldest_sent)) = pipeline.in_flight.front() else {
            match wake {
                Some(at) => {
                    wait_until(at, ctx.precise_timing).await;
                    continue;
                }
                None => return Ok(()),
            }
        };
        match pipeline
            .read(&mut stream, ctx, oldest_sent + ctx.timeout, wake)
            .await
        {
            Ok(Read::Answers) => {}
            Ok(Read::Wake) => continue,
            Err(kind) => return Err(pipeline.fail(recorder, kind)),
        }
        let now = Instant::now();
        last_answer = now;
        pipeline
            .record_answers(ctx, recorder, now)
            .map_err(|kind| pipeline.fail(recorder, kind))?;
    }
}

/// What a connection has in flight and its buffers, allocated once per connection.
struct Pipeline {
    /// Due time and send time of each request in flight, oldest first.
    in_flight: VecDeque<(Instant, Instant)>,
    /// Requests queued and not yet written.
    out: BytesMut,
    /// Bytes read and not yet parsed as answers.
    buf: BytesMut,
    /// Answers received on this connection.
    answered: u64,
}

/// Why a wait on a connection ended without an error (shared with the HTTP/2 runner).
pub(super) enum Read {
    /// Bytes arrived.
    Answers,
    /// The next request is due.
    Wake,
}

impl Pipeline {
    fn new(ctx: &Context) -> Self {
        let depth = ctx.in_flight as usize;
        Pipeline {
            in_flight: VecDeque::with_capacity(depth),
            out: BytesMut::with_capacity(ctx.prepared.http1.len() * depth),
            buf: BytesMut::with_capacity(16 * 1024),
            answered: 0,
        }
    }

    /// Queues the requests due by `now` while there is room in flight. Returns when the
    /// next request is due, if the pacer has one that is not due yet.
    fn queue_due(
        &mut self,
        ctx: &Context,
        recorder: &RefCell<Recorder>,
        pacer: &mut Pacer,
        now: Instant,
    ) -> Option<Instant> {
        let depth = ctx.in_flight as usize;
        while self.in_flight.len() < depth {
            match pacer.poll(now) {
                Due::Now(due) => {
                    self.out.extend_from_slice(&ctx.prepared.http1);
                    self.in_flight.push_back((due, now));
                    if ctx.open_loop {
                        recorder.borrow_mut().sent(due, now);
                    }
                }
                Due::At(at) => return Some(at),
                Due::Done => return None,
            }
        }
        None
    }

    /// Writes the queued requests, if any, within the request timeout.
    async fn write(&mut self, stream: &mut TcpStream, ctx: &Context) -> Result<(), ErrorKind> {
        write_out(stream, &mut self.out, ctx.timeout).await
    }

    /// Waits for bytes until `deadline` (the oldest request's timeout), or until `wake`
    /// when a request falls due before anything arrives.
    async fn read(
        &mut self,
        stream: &mut TcpStream,
        ctx: &Context,
        deadline: Instant,
        wake: Option<Instant>,
    ) -> Result<Read, ErrorKind> {
        // Room for a whole answer; on an empty buffer this takes back the space of the
        // answers already consumed instead of allocating.
        self.buf.reserve(4096);
        tokio::select! {
            read = read_some(stream, &mut self.buf, ctx.spin) => match read {
                Ok(0) | Err(_) => Err(ErrorKind::Io),
                Ok(_) => Ok(Read::Answers),
            },
            () = sleep_until(deadline.into()) => Err(ErrorKind::Timeout),
            () = wait_until(wake.unwrap_or(deadline), ctx.precise_timing), if wake.is_some() => {
                Ok(Read::Wake)
            }
        }
    }

    /// Records every complete answer in the buffer against the oldest request in flight.
    /// `Err` when the server closes the connection or an answer cannot be framed.
    fn record_answers(
        &mut self,
        ctx: &Context,
        recorder: &RefCell<Recorder>,
        now: Instant,
    ) -> Result<(), ErrorKind> {
        loop {
            match parse_response(&self.buf) {
                Ok(Some(response)) => {
                    self.buf.advance(response.len);
                    self.answered += 1;
                    if let Some((due, _)) = self.in_flight.pop_front() {
                        recorder.borrow_mut().record(
                            due,
                            now,
                            http_outcome(response.status),
                            ctx.prepared.messages,
                        );
                    }
                    if response.close {
                        return Err(ErrorKind::Io);
                    }
                }
                Ok(None) if self.buf.len() > MAX_RESPONSE_BYTES => {
                    return Err(ErrorKind::Protocol);
                }
                Ok(None) => return Ok(()),
                Err(Malformed) => return Err(ErrorKind::Protocol),
            }
        }
    }

    /// Records every request in flight as failed with `kind`: the connection is broken.
    fn fail(&mut self, recorder: &RefCell<Recorder>, kind: ErrorKind) -> Broken {
        let now = Instant::now();
        let mut recorder = recorder.borrow_mut();
        for (due, _) in self.in_flight.drain(..) {
            recorder.record(due, now, Outcome::Error(kind), 0);
        }
        Broken {
            answered: self.answered,
        }
    }
}

/// A complete answer at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Its status code.
    pub status: u16,
    /// Its length in bytes, head and body.
    pub len: usize,
    /// Whether the server closes the connection after it.
    pub close: bool,
}

/// An answer this runner cannot frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed or unsupported HTTP/1.1 response")]
pub struct Malformed;

/// Parses the answer at the front of `buf`: `Ok(None)` while it is incomplete, `Err` when
/// it is not HTTP/1.1 this runner understands (bodies framed by `content-length` or
/// `chunked`, or absent).
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Malformed),
    };
    let status = response.code.ok_or(Malformed)?;
    let mut content_length = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).map_err(|_| Malformed)?;
            content_length = Some(text.trim().parse::<usize>().map_err(|_| Malformed)?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    let body_len = if matches!(status, 100..=199 | 204 | 304) {
        0
    } else if chunked {
        match chunked_len(&buf[head_len..])? {
            Some(len) => len,
            None => return Ok(None),
        }
    } else if let Some(len) = content_length {
        len
    } else {
        // A body delimited by the end of the connection cannot be pipelined.
        return Err(Malformed);
    };
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    Ok(Some(Response {
        status,
        len: head_len + body_len,
        close,
    }))
}

/// The length of a complete chunked body at the front of `buf`, trailers included.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    let mut at = 0;
    loop {
        let Some(line_end) = find_crlf(&buf[at..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + line_end]).map_err(|_| Malformed)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Malformed)?;
        at += line_end + 2;
        if size == 0 {
            // Trailer lines until an empty one.
            loop {
                let Some(end) = find_crlf(&buf[at..]) else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if size > MAX_RESPONSE_BYTES {
            return Err(Malformed);
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err(Malformed);
        }
        at += size + 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Writes `out`, if it holds anything, within `limit`, and empties it (shared with the
/// HTTP/2 runner).
pub(super) async fn write_out(
    stream: &mut TcpStream,
    out: &mut BytesMut,
    limit: Duration,
) -> Result<(), ErrorKind> {
    if out.is_empty() {
        return Ok(());
    }
    match timeout(limit, stream.write_all(out)).await {
        Ok(Ok(())) => {
            out.clear();
            Ok(())
        }
        Ok(Err(_)) => Err(ErrorKind::Io),
        Err(_) => Err(ErrorKind::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        thread,
    };

    use super::*;
    use crate::load::{self, Protocol, Report, RunOptions, Scenario};

    /// Runs a short closed-loop HTTP/1.1 load against a server that reads once from each
    /// connection, writes `answer` and closes it.
    fn run_against(answer: &'static [u8]) -> Report {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let target = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let server = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let mut buf = [0u8; 4096];
                            let _ = stream.read(&mut buf);
                            let _ = stream.write_all(answer);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(1)),
                    }
                }
            }
        });
        let mut scenario = Scenario::closed("http1", Protocol::Http1, &target);
        scenario.duration_secs = 0.3;
        scenario.connections = 1;
        scenario.in_flight = 2;
        let report = load::run(&scenario, &RunOptions::default()).expect("run");
        stop.store(true, Ordering::Relaxed);
        server.join().expect("server");
        report
    }

    #[test]
    fn an_answer_that_is_not_http_is_a_protocol_error() {
        let report = run_against(b"not http at all\r\n\r\n");
        assert_eq!(report.requests.ok, 0, "{report:?}");
        assert!(
            report.errors.get("protocol").is_some_and(|n| *n > 0),
            "{:?}",
            report.errors
        );
    }

    #[test]
    fn an_answer_that_closes_the_connection_counts_and_the_connection_is_reopened() {
        let report =
            run_against(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        assert!(report.requests.ok > 0, "{report:?}");
        // The second request pipelined behind the closing answer fails as an I/O error.
        assert!(
            report.errors.get("io").is_some_and(|n| *n > 0),
            "{:?}",
            report.errors
        );
        assert!(report.connections_opened > 1, "{report:?}");
    }
}
