//! One connection's watch: what it has done ([`Activity`], filled in by the connection's
//! stream and the service wrapper [`Tracked`]) and the task that closes it when it does
//! nothing ([`watch`]).
//!
//! The rules, checked at deadlines rather than per request so that the hot path pays two
//! atomic additions and nothing else:
//! - `first_request_timeout` after accept (after the TLS handshake), a connection that has
//!   not begun a request is dropped when it has not even sent as many bytes as the HTTP/2
//!   preface (silent, or stuck in protocol detection), and closed gracefully (GOAWAY)
//!   otherwise: an HTTP/2 preface and settings alone do not keep a connection;
//! - every `idle_timeout` after that, a connection that had no open request or stream and
//!   began none since the last check is closed gracefully;
//! - a connection closed gracefully that has not gone `first_request_timeout` later is
//!   dropped;
//! - on shutdown, every connection is closed gracefully; the server bounds the drain.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use tokio::{
    sync::{mpsc, watch as signal},
    time::Instant,
};

use super::HttpLimits;

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::server::conn";
use crate::{serve::clients::Peer, serve::refusals::Refusal};

/// Bytes of the HTTP/2 client preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`): a client that
/// sent this many bytes is past protocol detection.
pub(super) const PREFACE_LEN: usize = 24;

/// What a connection has done so far.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Requests (HTTP/2: streams) begun.
    begun: AtomicU64,
    /// Requests whose answer has not ended yet.
    open: AtomicUsize,
    /// Whether the client sent at least [`PREFACE_LEN`] bytes (the stream raises it).
    pub(super) greeted: Arc<AtomicBool>,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity::default())
    }
}

/// Counts one open request from its start until its answer's body is dropped.
struct Open(Arc<Activity>);

impl Open {
    fn begin(activity: &Arc<Activity>) -> Open {
        activity.begun.fetch_add(1, Ordering::Relaxed);
        activity.open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(activity))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's service, counting requests and keeping each open until its answer
/// (including a streamed body) is done.
#[derive(Debug, Clone)]
pub(super) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    /// Put in every request's extensions.
    peer: Peer,
}

impl<S> Tracked<S> {
    pub(super) fn new(inner: S, activity: &Arc<Activity>, peer: Peer) -> Tracked<S> {
        Tracked {
            inner,
            activity: Arc::clone(activity),
            peer,
        }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer.clone());
        TrackedFuture {
            open: Some(Open::begin(&self.activity)),
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// A request being handled.
    pub(super) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        open: Option<Open>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx));
        let open = this.open.take();
        Poll::Ready(
            response.map(|response| response.map(|inner| TrackedBody { inner, _open: open })),
        )
    }
}

pin_project! {
    /// An answer's body; the request counts as open until it is dropped.
    pub(super) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _open: Option<Open>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection's watch stands.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Waiting for the first request.
    Opening,
    /// Serving; `begun` requests had begun at the last check.
    Serving { begun: u64 },
    /// Asked to close because it was idle; dropped at the next deadline.
    Closing,
    /// Asked to close because the server is shutting down; the server bounds the wait.
    Draining,
}

/// Runs `connection` under the rules of the module docs. `_open` tells the server, by
/// being dropped, that this connection is gone; `peer` counts the connections closed
/// without a request.
pub(super) async fn watch<C>(
    connection: C,
    activity: Arc<Activity>,
    limits: HttpLimits,
    mut stopping: signal::Receiver<bool>,
    _open: mpsc::Sender<()>,
    peer: Peer,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(connection);
    let mut stage = Stage::Opening;
    let deadline = tokio::time::sleep(limits.first_request_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(err) = result {
                    tracing::debug!(target: LOG_TARGET, %err, "connection ended with an error");
                }
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !matches!(stage, Stage::Draining) => {
                connection.as_mut().graceful_shutdown();
                stage = Stage::Draining;
            }
            () = &mut deadline, if !matches!(stage, Stage::Draining) => {
                let begun = activity.begun.load(Ordering::Relaxed);
                let idle = activity.open.load(Ordering::Relaxed) == 0;
                let next = match stage {
                    Stage::Opening if begun == 0 => {
                        peer.refuse(Refusal::FirstRequest);
                        if !activity.greeted.load(Ordering::Relaxed) {
                            tracing::debug!(target: LOG_TARGET, "dropping a connection that sent no request in time");
                            return;
                        }
                        tracing::debug!(target: LOG_TARGET, "closing a connection that began no request in time");
                        connection.as_mut().graceful_shutdown();
                        Stage::Closing
                    }
                    Stage::Serving { begun: before } if idle && begun == before => {
                        connection.as_mut().graceful_shutdown();
                        Stage::Closing
                    }
                    Stage::Closing => return,
                    _ => Stage::Serving { begun },
                };
                let wait = match next {
                    Stage::Closing => limits.first_request_timeout,
                    _ => limits.idle_timeout,
                };
                deadline.as_mut().reset(Instant::now() + wait);
                stage = next;
            }
        }
    }
}
