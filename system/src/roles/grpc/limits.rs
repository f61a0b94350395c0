//! The limits of every call on the gRPC port, applied to the HTTP/2 request before tonic
//! reads a byte of it ([`CallLimits`], a layer over the port's router), so that they hold
//! for the ingest service, health and reflection alike:
//!
//! - a message longer than its method allows (10 MiB for ingest, 64 KiB for health and
//!   reflection) is refused by its length prefix, before its bytes come, and counted;
//! - a message's bytes are charged to the client's share of the budget as they arrive, and
//!   given back once the message is whole and tonic has handed it on (its handler then
//!   holds it, and charges what it keeps). Whatever length a message's prefix declares,
//!   only what came is charged, and a message whose bytes do not fit ends the call with
//!   `RESOURCE_EXHAUSTED`;
//! - a unary request (every method but the two streaming ones) must arrive whole within
//!   the body deadline, as an HTTP body must; a message of a stream must arrive whole within
//!   it once it has begun; else `DEADLINE_EXCEEDED`;
//! - a health watch or reflection stream that carries nothing, in either direction, for the
//!   idle time is ended with `DEADLINE_EXCEEDED` (the ingest stream keeps its own rule,
//!   which also says where the stream stands).
//!
//! On the way of a warm call this costs a walk over the 5-byte prefixes of its messages
//! and two atomic additions per chunk; the clock is read only when a body waits.

use std::{
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use hyper::body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tonic::Status;

use crate::{
    domain::budget::{Budget, Charge},
    serve::clients::Peer,
    serve::refusals::Refusal,
};

/// Methods whose requests are streams: each message has a deadline, not the whole body.
const STREAMING_REQUESTS: [&str; 3] = [
    super::STREAM_PATH,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Methods that keep their own rules for an idle stream and a slow answer.
const OWN_IDLE_RULE: [&str; 2] = [super::STREAM_PATH, super::UNARY_PATH];

/// Bytes of a gRPC message's prefix: a compression flag and a 32-bit length.
const PREFIX: usize = 5;

/// The layer: what a call is held to.
#[derive(Debug, Clone)]
pub(super) struct CallLimits {
    /// Charged when a request carries no [`Peer`] (its server does not tell clients apart).
    pub(super) budget: Arc<Budget>,
    /// Time a unary request, or a begun message of a stream, has to arrive whole.
    pub(super) body_timeout: Duration,
    /// Time a stream may carry nothing.
    pub(super) idle_timeout: Duration,
    /// Largest message of the ingest methods.
    pub(super) max_message_bytes: usize,
    /// Largest message of every other method (health, reflection).
    pub(super) max_control_bytes: usize,
}

impl<S> tower::Layer<S> for CallLimits {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limits: self.clone(),
        }
    }
}

/// A service under [`CallLimits`].
#[derive(Debug, Clone)]
pub(super) struct Limited<S> {
    inner: S,
    limits: CallLimits,
}

impl<S> tower::Service<http::Request<Body>> for Limited<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = LimitedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if !is_grpc(request.headers()) {
            return LimitedFuture {
                inner: self.inner.call(request),
                idle: None,
            };
        }
        let path = request.uri().path();
        let streaming = STREAMING_REQUESTS.contains(&path);
        let own_idle_rule = OWN_IDLE_RULE.contains(&path);
        // The ingest methods are the ones with their own idle rule.
        let max_message = if own_idle_rule {
            self.limits.max_message_bytes
        } else {
            self.limits.max_control_bytes
        };
        let peer = Peer::of(request.extensions());
        let budget = peer
            .as_ref()
            .map_or(&self.limits.budget, |peer| peer.budget(&self.limits.budget));
        let shared = (!own_idle_rule).then(Arc::<Shared>::default);
        let rule = if streaming {
            Rule::Stream {
                message: self.limits.body_timeout,
                idle: shared.as_ref().map(|_| self.limits.idle_timeout),
            }
        } else {
            Rule::Unary {
                within: self.limits.body_timeout,
            }
        };
        let request = request.map(|body| {
            Body::new(Charged {
                inner: body,
                charge: budget.empty_charge(),
                framing: Framing {
                    max_message,
                    ..Framing::default()
                },
                rule,
                armed: rule.armed_at_start(),
                waiting: false,
                timer: tokio::time::sleep_until(rule.start()),
                peer: peer.clone(),
                shared: shared.clone(),
                too_large: None,
                done: false,
            })
        });
        LimitedFuture {
            inner: self.inner.call(request),
            idle: shared.map(|shared| IdleParts {
                shared,
                idle: self.limits.idle_timeout,
                peer,
            }),
        }
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// What a request tells its response.
#[derive(Debug, Default)]
struct Shared {
    /// The request's data frames so far, so that traffic in either direction counts.
    moved: AtomicU64,
    /// Why the request was cut short, when it was: the status the call ends with, whatever
    /// the service makes of the broken request.
    failed: OnceLock<Status>,
}

/// What a response needs to end an idle stream.
#[derive(Debug)]
struct IdleParts {
    shared: Arc<Shared>,
    idle: Duration,
    peer: Option<Peer>,
}

pin_project! {
    /// The answer of a call under the limits.
    pub(super) struct LimitedFuture<F> {
        #[pin]
        inner: F,
        idle: Option<IdleParts>,
    }
}

impl<F, E> Future for LimitedFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx));
        Poll::Ready(response.map(|response| match this.idle.take() {
            None => response,
            Some(parts) => response.map(|body| {
                Body::new(IdleEnd {
                    inner: body,
                    timer: tokio::time::sleep(parts.idle),
                    seen: parts.shared.moved.load(Ordering::Relaxed),
                    parts,
                    ended: false,
                })
            }),
        }))
    }
}

/// When a request body must have arrived.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Whole within `within` of the call's start.
    Unary { within: Duration },
    /// Each message whole within `message` of its first byte (found, cheaply, as the first
    /// time the body waited in the middle of it); with `idle`, no wait between messages
    /// longer than that.
    Stream {
        message: Duration,
        idle: Option<Duration>,
    },
}

impl Rule {
    /// The deadline the timer starts with: the unary one; a stream's is set when its body
    /// first waits.
    fn start(self) -> Instant {
        match self {
            Rule::Unary { within } => Instant::now() + within,
            Rule::Stream { .. } => Instant::now() + Duration::from_secs(86_400 * 365),
        }
    }

    fn armed_at_start(self) -> Option<Refusal> {
        match self {
            Rule::Unary { .. } => Some(Refusal::BodyTimeout),
            Rule::Stream { .. } => None,
        }
    }

    /// The deadline of a wait that begins now, and what missing it is; `None` when the
    /// wait is not bounded (between messages of a stream without an idle rule).
    fn wait(self, framing: &Framing) -> Option<(Instant, Refusal)> {
        match self {
            Rule::Unary { .. } => None,
            Rule::Stream { message, .. } if framing.mid_message() => {
                Some((Instant::now() + message, Refusal::BodyTimeout))
            }
            Rule::Stream {
                idle: Some(idle), ..
            } => Some((Instant::now() + idle, Refusal::StreamIdle)),
            Rule::Stream { idle: None, .. } => None,
        }
    }

    /// What the client is told when `refusal`'s deadline passes.
    fn status(self, refusal: Refusal) -> Status {
        match (refusal, self) {
            (
                Refusal::StreamIdle,
                Rule::Stream {
                    idle: Some(idle), ..
                },
            ) => Status::deadline_exceeded(format!("no message for {} s", idle.as_secs_f64())),
            (
                _,
                Rule::Unary { within }
                | Rule::Stream {
                    message: within, ..
                },
            ) => Status::deadline_exceeded(format!(
                "the request did not arrive within {} s",
                within.as_secs_f64()
            )),
        }
    }
}

/// Where the request's bytes stand in its gRPC framing.
#[derive(Debug, Default)]
struct Framing {
    /// Bytes of the current message's prefix seen so far, and the prefix itself.
    prefix: [u8; PREFIX],
    prefix_seen: usize,
    /// Bytes of the current message's body still to come (after a whole prefix).
    body_left: usize,
    /// Bytes of messages that became whole since the body was last polled: still in
    /// tonic's buffer until then, given back at the next poll.
    whole: usize,
    /// Bytes of the message under way so far (prefix included).
    partial: usize,
    /// Largest message body a prefix may declare.
    max_message: usize,
    /// The length a prefix declared over `max_message`, once one did.
    too_large: Option<usize>,
}

impl Framing {
    /// Follows `chunk` through the framing.
    fn advance(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.prefix_seen < PREFIX {
                let take = (PREFIX - self.prefix_seen).min(chunk.len());
                self.prefix[self.prefix_seen..self.prefix_seen + take]
                    .copy_from_slice(&chunk[..take]);
                self.prefix_seen += take;
                self.partial += take;
                chunk = &chunk[take..];
                if self.prefix_seen == PREFIX {
                    let len = u32::from_be_bytes([
                        self.prefix[1],
                        self.prefix[2],
                        self.prefix[3],
                        self.prefix[4],
                    ]);
                    self.body_left = len as usize;
                    if self.body_left > self.max_message {
                        self.too_large = Some(self.body_left);
                        return;
                    }
                    if self.body_left == 0 {
                        self.finish();
                    }
                }
                continue;
            }
            let take = self.body_left.min(chunk.len());
            self.body_left -= take;
            self.partial += take;
            chunk = &chunk[take..];
            if self.body_left == 0 {
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        self.whole += std::mem::take(&mut self.partial);
        self.prefix_seen = 0;
    }

    fn mid_message(&self) -> bool {
        self.partial > 0
    }
}

pin_project! {
    /// A request body whose bytes are charged as they arrive, under its [`Rule`].
    struct Charged {
        #[pin]
        inner: Body,
        charge: Charge,
        framing: Framing,
        rule: Rule,
        // What the timer's deadline stands for, when it is set.
        armed: Option<Refusal>,
        // Whether the body is waiting (it returned `Pending` last); a stream's deadline is
        // set when a wait begins, so the clock is read then only.
        waiting: bool,
        #[pin]
        timer: Sleep,
        peer: Option<Peer>,
        shared: Option<Arc<Shared>>,
        // A message over the limit was announced: the next read ends the call.
        too_large: Option<Status>,
        done: bool,
    }
}

impl Charged {
    /// Counts `refusal` and ends the call with `status`.
    fn fail(
        mut self: Pin<&mut Self>,
        refusal: Refusal,
        status: Status,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Some(peer) = &self.peer {
            peer.refuse(refusal);
        }
        self.as_mut().end(status)
    }

    /// Ends the call with `status`: the body fails, and the response (whatever the service
    /// makes of the failure) says `status`.
    fn end(
        self: Pin<&mut Self>,
        status: Status,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        *this.done = true;
        this.charge.release();
        if let Some(shared) = this.shared {
            let _ = shared.failed.set(status.clone());
        }
        Poll::Ready(Some(Err(axum::Error::new(status))))
    }
}

impl hyper::body::Body for Charged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(status) = self.as_mut().project().too_large.take() {
            return self.end(status);
        }
        {
            // What became whole before has left tonic's buffer by now.
            let this = self.as_mut().project();
            let whole = std::mem::take(&mut this.framing.whole);
            this.charge.shrink(whole);
        }
        match self.as_mut().project().inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let this = self.as_mut().project();
                *this.waiting = false;
                if let Some(data) = frame.data_ref() {
                    if let Some(shared) = this.shared {
                        shared.moved.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(exhausted) = this.charge.grow(data.len()) {
                        let status = Status::resource_exhausted(exhausted.to_string());
                        return self.fail(Refusal::of(&exhausted), status);
                    }
                    this.framing.advance(data);
                    if let Some(declared) = this.framing.too_large.take() {
                        // The messages before it in this chunk still go on; the call ends
                        // at the next read (unless tonic, seeing the prefix, ends it first).
                        if let Some(peer) = this.peer {
                            peer.refuse(Refusal::TooLarge);
                        }
                        *this.too_large = Some(Status::resource_exhausted(format!(
                            "message too large: {declared} bytes, the limit is {} bytes",
                            this.framing.max_message
                        )));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                *self.as_mut().project().done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
            Poll::Pending => {
                let mut this = self.as_mut().project();
                if !*this.waiting {
                    *this.waiting = true;
                    if let Some((deadline, refusal)) = this.rule.wait(this.framing) {
                        this.timer.as_mut().reset(deadline);
                        *this.armed = Some(refusal);
                    } else if matches!(this.rule, Rule::Stream { .. }) {
                        *this.armed = None;
                    }
                }
                let Some(refusal) = *this.armed else {
                    return Poll::Pending;
                };
                if this.timer.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let status = self.rule.status(refusal);
                self.fail(refusal, status)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response body that ends the call with `DEADLINE_EXCEEDED` once neither it nor
    /// its request carried data for the idle time.
    struct IdleEnd {
        #[pin]
        inner: Body,
        #[pin]
        timer: Sleep,
        // The request's data frames counted when the timer was last set.
        seen: u64,
        parts: IdleParts,
        ended: bool,
    }
}

impl hyper::body::Body for IdleEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_data() {
                    this.timer.as_mut().reset(Instant::now() + this.parts.idle);
                } else if let Some(status) = this.parts.shared.failed.get() {
                    // The service ended the call its own way; the client is told why.
                    return Poll::Ready(Some(Ok(Frame::trailers(status_trailers(status)))));
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other),
            Poll::Pending => {}
        }
        loop {
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let moved = this.parts.shared.moved.load(Ordering::Relaxed);
            if moved == *this.seen {
                break;
            }
            // The request carried data meanwhile: the stream is not idle.
            *this.seen = moved;
            this.timer.as_mut().reset(Instant::now() + this.parts.idle);
        }
        *this.ended = true;
        if let Some(peer) = &this.parts.peer {
            peer.refuse(Refusal::StreamIdle);
        }
        let status = Status::deadline_exceeded(format!(
            "stream idle for {} s",
            this.parts.idle.as_secs_f64()
        ));
        Poll::Ready(Some(Ok(Frame::trailers(status_trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The trailers that end a call with `status`.
fn status_trailers(status: &Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    if let Ok(message) = HeaderValue::try_from(status.message().replace(' ', "%20")) {
        trailers.insert("grpc-message", message);
    }
    trailers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(7, len));
        out
    }

    #[test]
    fn the_framing_counts_whole_messages_however_the_chunks_fall() {
        let stream: Vec<u8> = [message(0), message(3), message(300), message(1)].concat();
        for chunk in [1, 2, 5, 7, 64, stream.len()] {
            let mut framing = Framing {
                max_message: 300,
                ..Framing::default()
            };
            let mut whole = 0;
            for piece in stream.chunks(chunk) {
                framing.advance(piece);
                whole += std::mem::take(&mut framing.whole);
            }
            assert_eq!(whole, stream.len(), "chunks of {chunk}");
            assert!(!framing.mid_message());
        }
        let mut framing = Framing {
            max_message: 300,
            ..Framing::default()
        };
        framing.advance(&message(10)[..12]);
        assert_eq!((framing.whole, framing.partial), (0, 12));
        assert!(framing.mid_message());
        framing.advance(&[7; 3]);
        framing.advance(&message(301)[..5]);
        assert_eq!(framing.too_large, Some(301));
    }
}
