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
    let depth = ctx.in_flight as usize;
    let mut answered = 0u64;
    // Due time and send time of each request in flight, oldest first.
    let mut in_flight: VecDeque<(Instant, Instant)> = VecDeque::with_capacity(depth);
    let mut out = BytesMut::with_capacity(ctx.prepared.http1.len() * depth);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let fail = |in_flight: &mut VecDeque<(Instant, Instant)>, kind: ErrorKind| {
        let now = Instant::now();
        let mut recorder = recorder.borrow_mut();
        for (due, _) in in_flight.drain(..) {
            recorder.record(due, now, Outcome::Error(kind), 0);
        }
    };
    let mut last_answer = Instant::now();
    loop {
        let now = Instant::now();
        if in_flight.is_empty() && now.duration_since(last_answer) > IDLE_REOPEN {
            return Err(Broken { answered: 1 });
        }
        let mut wake = None;
        while in_flight.len() < depth {
            match pacer.poll(now) {
                Due::Now(due) => {
                    out.extend_from_slice(&ctx.prepared.http1);
                    in_flight.push_back((due, now));
                    if ctx.open_loop {
                        recorder.borrow_mut().sent(due, now);
                    }
                }
                Due::At(at) => {
                    wake = Some(at);
                    break;
                }
                Due::Done => break,
            }
        }
        if !out.is_empty() {
            match timeout(ctx.timeout, stream.write_all(&out)).await {
                Ok(Ok(())) => out.clear(),
                Ok(Err(_)) => {
                    fail(&mut in_flight, ErrorKind::Io);
                    return Err(Broken { answered });
                }
                Err(_) => {
                    fail(&mut in_flight, ErrorKind::Timeout);
                    return Err(Broken { answered });
                }
            }
        }
        let Some(&(_, oldest_sent)) = in_flight.front() else {
            match wake {
                Some(at) => {
                    wait_until(at, ctx.precise_timing).await;
                    continue;
                }
                None => return Ok(()),
            }
        };
        let deadline = oldest_sent + ctx.timeout;
        // Room for a whole answer; on an empty buffer this takes back the space of the
        // answers already consumed instead of allocating.
        buf.reserve(4096);
        tokio::select! {
            read = read_some(&mut stream, &mut buf, ctx.spin) => match read {
                Ok(0) | Err(_) => {
                    fail(&mut in_flight, ErrorKind::Io);
                    return Err(Broken { answered });
                }
                Ok(_) => {}
            },
            () = sleep_until(deadline.into()) => {
                fail(&mut in_flight, ErrorKind::Timeout);
                return Err(Broken { answered });
            }
            () = wait_until(wake.unwrap_or(deadline), ctx.precise_timing), if wake.is_some() => continue,
        }
        let now = Instant::now();
        last_answer = now;
        loop {
            match parse_response(&buf) {
                Ok(Some(response)) => {
                    buf.advance(response.len);
                    answered += 1;
                    if let Some((due, _)) = in_flight.pop_front() {
                        recorder.borrow_mut().record(
                            due,
                            now,
                            http_outcome(response.status),
                            ctx.prepared.messages,
                        );
                    }
                    if response.close {
                        fail(&mut in_flight, ErrorKind::Io);
                        return Err(Broken { answered });
                    }
                }
                Ok(None) if buf.len() > MAX_RESPONSE_BYTES => {
                    fail(&mut in_flight, ErrorKind::Protocol);
                    return Err(Broken { answered });
                }
                Ok(None) => break,
                Err(Malformed) => {
                    fail(&mut in_flight, ErrorKind::Protocol);
                    return Err(Broken { answered });
                }
            }
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
