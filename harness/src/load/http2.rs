//! The HTTP/2 runner for h2c, gRPC unary and gRPC client-streaming: a minimal client that
//! owns its socket in one task, writes pre-encoded HEADERS and DATA frames (only the stream
//! ids change, see [`frames::RequestFrames`]) and reads just enough of the answers to judge
//! them: `:status`, and `grpc-status` from the trailers or a trailers-only head. Response
//! headers go through a full HPACK decoder, because the server's dynamic table must be
//! followed even for headers the client ignores.
//!
//! It honours what a client must: the server's SETTINGS (acknowledged), its flow-control
//! windows and concurrent-stream limit, PING, RST_STREAM and GOAWAY, and it returns the
//! window the server's DATA used. A request without an answer within the timeout fails the
//! connection's requests in flight and the connection is reopened, as in the HTTP/1.1
//! runner; nothing waits longer than the request timeout.

pub mod frames;
pub mod hpack;
mod receive;

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    time::Instant,
};

use bytes::{Buf, BufMut, BytesMut};
use tokio::{net::TcpStream, time::sleep_until};

use self::frames::{Encoding, RequestFrames, flag, kind};
use super::{
    Context,
    http1::{Read, connect, write_out},
    pace::{Due, Pacer, read_some, wait_until},
    record::{ErrorKind, Outcome, Recorder, grpc_outcome, http_outcome},
};

/// Most extra non-blocking reads after a read that brought answers.
const DRAIN_READS: usize = 4;

/// The largest header block (HEADERS plus CONTINUATION frames) the client accepts.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Drives one connection slot until its pacer is done.
pub(super) async fn run_connection(ctx: &Context, recorder: &RefCell<Recorder>, mut pacer: Pacer) {
    loop {
        if pacer.done(Instant::now()) {
            return;
        }
        let Some(stream) = connect(ctx.addr, ctx, recorder, &pacer).await else {
            continue;
        };
        let mut connection = Connection::new(ctx);
        match connection.drive(stream, recorder, &mut pacer).await {
            Ok(()) => return,
            // A server that drops connections without answering is not hammered with
            // reconnects: wait a little before the next one.
            Err(Broken) if connection.answered == 0 => {
                let retry = Instant::now() + ctx.reconnect_delay;
                sleep_until(retry.min(pacer.stop()).into()).await;
            }
            Err(Broken) => {}
        }
    }
}

/// The connection failed (its requests in flight are recorded) or must be replaced.
#[derive(Debug)]
struct Broken;

/// A request in flight.
#[derive(Debug)]
struct Stream {
    due: Instant,
    sent: Instant,
    status: Option<u16>,
    grpc_status: Option<i32>,
    /// What the server's flow control still lets this stream send.
    send_window: i64,
    /// Body bytes already sent (when the body did not travel inline).
    body_sent: usize,
    /// Response bytes received since the last stream WINDOW_UPDATE.
    received: u32,
}

struct Connection<'a> {
    ctx: &'a Context,
    frames: &'a RequestFrames,
    streams: HashMap<u32, Stream>,
    /// Stream ids in the order sent; the front is the oldest still in flight (ids of
    /// finished streams are dropped lazily).
    order: VecDeque<u32>,
    /// Streams whose body waits for flow-control window, oldest first.
    blocked: VecDeque<u32>,
    next_id: u32,
    send_window: i64,
    peer_initial_window: i64,
    peer_max_frame: usize,
    peer_max_streams: usize,
    /// Response bytes received since the last connection WINDOW_UPDATE.
    received: u32,
    /// No new streams: GOAWAY received or stream ids used up.
    draining: bool,
    /// Whether the server's first SETTINGS arrived. Streams are opened only after it: a
    /// stream over the server's concurrency limit would be refused, and a body sent on the
    /// default windows might overrun smaller ones. On loopback the wait is one round trip
    /// per connection.
    settings_received: bool,
    /// The server's HPACK table size, and how this connection encodes request headers.
    peer_table_size: usize,
    encoding: Encoding,
    decoder: hpack::Decoder,
    /// A header block continued in CONTINUATION frames: stream, END_STREAM, bytes so far.
    continued: Option<(u32, bool, Vec<u8>)>,
    out: BytesMut,
    answered: u64,
}

impl<'a> Connection<'a> {
    fn new(ctx: &'a Context) -> Self {
        let mut out = BytesMut::with_capacity(16 * 1024);
        frames::put_preface(&mut out);
        Connection {
            ctx,
            frames: &ctx.prepared.http2,
            streams: HashMap::with_capacity(ctx.in_flight as usize),
            order: VecDeque::with_capacity(ctx.in_flight as usize),
            blocked: VecDeque::new(),
            next_id: 1,
            send_window: frames::DEFAULT_WINDOW,
            peer_initial_window: frames::DEFAULT_WINDOW,
            peer_max_frame: frames::MAX_FRAME,
            peer_max_streams: usize::MAX,
            received: 0,
            draining: false,
            settings_received: false,
            peer_table_size: hpack::TABLE_LIMIT,
            encoding: if ctx.prepared.http2.table_size <= hpack::TABLE_LIMIT {
                Encoding::First
            } else {
                Encoding::Plain
            },
            decoder: hpack::Decoder::default(),
            continued: None,
            out,
            answered: 0,
        }
    }

    /// `Ok` when the pacer is done and nothing is in flight; `Err` when the connection
    /// broke or must be replaced.
    async fn drive(
        &mut self,
        mut socket: TcpStream,
        recorder: &RefCell<Recorder>,
        pacer: &mut Pacer,
    ) -> Result<(), Broken> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let connected = Instant::now();
        loop {
            let wake = self.open_due_streams(recorder, pacer, Instant::now());
            if let Err(kind) = self.write(&mut socket).await {
                return Err(self.fail_all(recorder, kind));
            }
            let oldest_sent = match self.oldest_sent() {
                Some(sent) => sent,
                // Waiting for the server's SETTINGS.
                None if !self.settings_received => connected,
                // Draining, or a server that allows no streams: replace the connection.
                None if self.draining || self.peer_max_streams == 0 => return Err(Broken),
                None => match wake {
                    Some(at) => {
                        wait_until(at, self.ctx.precise_timing).await;
                        continue;
                    }
                    None => return Ok(()),
                },
            };
            let deadline = oldest_sent + self.ctx.timeout;
            match self.read(&mut socket, &mut buf, deadline, wake).await {
                Ok(Read::Answers) => {}
                Ok(Read::Wake) => continue,
                Err(kind) => return Err(self.fail_all(recorder, kind)),
            }
            self.take_in(&mut socket, &mut buf, recorder)
                .await
                .map_err(|kind| self.fail_all(recorder, kind))?;
        }
    }

    /// Opens a stream for each request due by `now`, once the server's SETTINGS arrived and
    /// while its limits leave room. Returns when the next request is due, if the pacer has
    /// one that is not due yet.
    fn open_due_streams(
        &mut self,
        recorder: &RefCell<Recorder>,
        pacer: &mut Pacer,
        now: Instant,
    ) -> Option<Instant> {
        let depth = self.ctx.in_flight as usize;
        while self.settings_received
            && !self.draining
            && self.streams.len() < depth.min(self.peer_max_streams)
        {
            match pacer.poll(now) {
                Due::Now(due) => {
                    if self.ctx.open_loop {
                        recorder.borrow_mut().sent(due, now);
                    }
                    self.open_stream(due, now);
                }
                Due::At(at) => return Some(at),
                Due::Done => return None,
            }
        }
        None
    }

    /// Writes the queued frames, if any, within the request timeout.
    async fn write(&mut self, socket: &mut TcpStream) -> Result<(), ErrorKind> {
        write_out(socket, &mut self.out, self.ctx.timeout).await
    }

    /// Waits for bytes until `deadline`, or until `wake` when a request falls due before
    /// anything arrives.
    async fn read(
        &self,
        socket: &mut TcpStream,
        buf: &mut BytesMut,
        deadline: Instant,
        wake: Option<Instant>,
    ) -> Result<Read, ErrorKind> {
        buf.reserve(16 * 1024);
        tokio::select! {
            read = read_some(socket, buf, self.ctx.spin) => match read {
                Ok(0) | Err(_) => Err(ErrorKind::Io),
                Ok(_) => Ok(Read::Answers),
            },
            () = sleep_until(deadline.into()) => Err(ErrorKind::Timeout),
            () = wait_until(wake.unwrap_or(deadline), self.ctx.precise_timing), if wake.is_some() => {
                Ok(Read::Wake)
            }
        }
    }

    /// Handles the frames read, and those that arrive within a few more non-blocking reads.
    async fn take_in(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut BytesMut,
        recorder: &RefCell<Recorder>,
    ) -> Result<(), ErrorKind> {
        // Take in what else has arrived before writing new requests, so that answers
        // arriving in several pieces are answered with one batch of requests rather than
        // several small writes.
        for _ in 0..DRAIN_READS {
            self.parse(buf, recorder)?;
            buf.reserve(16 * 1024);
            // Let the other connections and the I/O driver run, so that the readiness
            // the next read relies on is fresh.
            tokio::task::yield_now().await;
            match socket.try_read_buf(buf) {
                Ok(0) => return Err(ErrorKind::Io),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return Err(ErrorKind::Io),
            }
        }
        self.parse(buf, recorder)
    }

    /// Handles every complete frame at the front of `buf`.
    fn parse(&mut self, buf: &mut BytesMut, recorder: &RefCell<Recorder>) -> Result<(), ErrorKind> {
        let now = Instant::now();
        while let Some(head) = frames::parse_header(buf) {
            if head.len > frames::MAX_FRAME {
                return Err(ErrorKind::Protocol);
            }
            let end = frames::HEADER_LEN + head.len;
            if buf.len() < end {
                break;
            }
            let handled = self.on_frame(head, &buf[frames::HEADER_LEN..end], now, recorder);
            buf.advance(end);
            handled?;
        }
        Ok(())
    }

    fn oldest_sent(&mut self) -> Option<Instant> {
        while let Some(id) = self.order.front() {
            match self.streams.get(id) {
                Some(stream) => return Some(stream.sent),
                None => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    fn open_stream(&mut self, due: Instant, now: Instant) {
        let id = self.next_id;
        self.next_id += 2;
        if self.next_id > frames::MAX_STREAM_ID {
            self.draining = true;
        }
        let body_len = self.frames.body.len() as i64;
        let inline = self.frames.inline_body()
            && body_len <= self.send_window
            && body_len <= self.peer_initial_window;
        self.frames.put(&mut self.out, id, self.encoding, inline);
        if self.encoding == Encoding::First {
            self.encoding = Encoding::Indexed;
        }
        let mut stream = Stream {
            due,
            sent: now,
            status: None,
            grpc_status: None,
            send_window: self.peer_initial_window,
            body_sent: 0,
            received: 0,
        };
        if inline {
            stream.send_window -= body_len;
            stream.body_sent = self.frames.body.len();
            self.send_window -= body_len;
        } else {
            self.blocked.push_back(id);
        }
        self.streams.insert(id, stream);
        self.order.push_back(id);
        self.send_blocked();
    }

    /// Sends as much of the waiting bodies as the windows allow, oldest stream first.
    fn send_blocked(&mut self) {
        let frames = self.frames;
        let body = &frames.body;
        while let Some(&id) = self.blocked.front() {
            let Some(stream) = self.streams.get_mut(&id) else {
                self.blocked.pop_front();
                continue;
            };
            let remaining = body.len() - stream.body_sent;
            let window = self.send_window.min(stream.send_window).max(0) as usize;
            let chunk = remaining.min(self.peer_max_frame).min(window);
            if chunk == 0 && remaining > 0 {
                break;
            }
            let end = stream.body_sent + chunk == body.len();
            let flags = if end { flag::END_STREAM } else { 0 };
            frames::put_header(&mut self.out, chunk, kind::DATA, flags, id);
            self.out
                .put_slice(&body[stream.body_sent..stream.body_sent + chunk]);
            stream.body_sent += chunk;
            stream.send_window -= chunk as i64;
            self.send_window -= chunk as i64;
            if end {
                self.blocked.pop_front();
            }
        }
    }

    fn complete(&mut self, id: u32, now: Instant, recorder: &RefCell<Recorder>) {
        let Some(stream) = self.streams.remove(&id) else {
            return;
        };
        self.answered += 1;
        let outcome = match (stream.status, self.ctx.grpc) {
            (None, _) => Outcome::Error(ErrorKind::Protocol),
            (Some(200), true) => stream
                .grpc_status
                .map_or(Outcome::Error(ErrorKind::Protocol), grpc_outcome),
            (Some(code), _) => http_outcome(code),
        };
        let messages = self.ctx.prepared.messages;
        recorder
            .borrow_mut()
            .record(stream.due, now, outcome, messages);
    }

    /// Records every request in flight as failed with `kind`; a connection that failed
    /// before the server's SETTINGS arrived counts as a failed connect.
    fn fail_all(&mut self, recorder: &RefCell<Recorder>, kind: ErrorKind) -> Broken {
        let now = Instant::now();
        let mut recorder = recorder.borrow_mut();
        if !self.settings_received {
            recorder.connect_failed(now);
        }
        for (_, stream) in self.streams.drain() {
            recorder.record(stream.due, now, Outcome::Error(kind), 0);
        }
        Broken
    }
}
