//! The HTTP server loop shared by the gateway, the processor and the gRPC port: HTTP/1.1 and
//! HTTP/2 with prior knowledge (h2c) on one port through hyper-util's auto builder (HTTP/2
//! only for gRPC), with the limits of [`HttpLimits`], every connection watched by a task
//! of its own (`server/conn.rs`).
//!
//! No connection is held for nothing: one that has not begun a request within
//! `first_request_timeout` is dropped (told to go away first when it sent the HTTP/2
//! preface and nothing more); one without an open request or stream for `idle_timeout` is
//! closed (GOAWAY for HTTP/2); HTTP/2 peers are pinged, and one that does not answer is
//! dropped; a stalled request body is answered 408 after `body_timeout`.
//!
//! With TLS, the handshake runs in the connection's own task and must end within
//! `first_request_timeout`; the protocol is then the one ALPN chose (hyper-util still tells
//! HTTP/1.1 from HTTP/2 by the first bytes, which agree with it).
//!
//! Every request carries the [`Peer`] of its connection in its extensions (its client, and
//! where the server counts refusals).
//!
//! Shutdown: once the signal fires the listener is dropped (no new connections), open
//! connections are asked to finish (HTTP/1.1 closes after the current response, HTTP/2 sends
//! GOAWAY), and connections still open after the drain timeout are abandoned.

mod conn;

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::Duration,
};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, watch},
};
use tokio_rustls::TlsAcceptor;

use self::conn::{Activity, Tracked};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::server";
use crate::{
    serve::clients::Peer,
    serve::net::{BoundedListener, Greeting},
    serve::refusals::Refusal,
};

/// The address the servers listen on unless told otherwise (`BIND_ADDR`).
pub(crate) const DEFAULT_BIND_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Most connections each server holds open at once (`MAX_CONNECTIONS`).
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long open connections may take to finish after a shutdown signal
/// (`SHUTDOWN_TIMEOUT`).
pub(crate) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Protocol limits and deadlines of one HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Largest HTTP/2 frame the server accepts.
    pub max_frame_size: u32,
    /// Time a new connection gets to finish its TLS handshake, and then to begin its first
    /// request (HTTP/2: to open its first stream).
    pub first_request_timeout: Duration,
    /// Time a client gets to send a request head. For HTTP/1.1, hyper also runs this timer
    /// while a keep-alive connection waits for its next request, so it is the keep-alive
    /// idle limit of HTTP/1.1 connections as well.
    pub header_read_timeout: Duration,
    /// A connection with no open request or stream for this long is closed, and so is one
    /// with no traffic at all for this long.
    pub idle_timeout: Duration,
    /// Time a client gets to send a whole request body; then 408.
    pub body_timeout: Duration,
    /// How often an HTTP/2 peer is pinged.
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
    /// HTTP/2 streams the server may reset because of a peer's protocol error before it
    /// closes the connection (the "MadeYouReset" flood).
    pub max_local_error_reset_streams: usize,
    /// HTTP/2 streams the peer may reset before the server accepted them before the server
    /// closes the connection (the "rapid reset" flood).
    pub max_pending_accept_reset_streams: usize,
    /// How long open connections may take to finish after shutdown is requested.
    pub drain_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_concurrent_streams: 250,
            max_frame_size: 1 << 20,
            first_request_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(20),
            keep_alive_timeout: Duration::from_secs(20),
            // hyper's defaults, written out: tonic, for one, passes "no limit" instead.
            max_local_error_reset_streams: 1024,
            max_pending_accept_reset_streams: 20,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Which protocols a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.1 and HTTP/2 with prior knowledge, told apart by the first bytes.
    Auto,
    /// HTTP/2 only (gRPC).
    Http2,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see module docs);
/// over TLS with `tls`, in plain text without.
pub async fn serve(
    mut listener: BoundedListener,
    router: Router,
    limits: HttpLimits,
    protocols: Protocols,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = builder(&limits, protocols);
    let tls = tls.map(TlsAcceptor::from);
    let (stop, stopping) = watch::channel(false);
    // Every connection task holds a sender; the drain is over when the last one is gone.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            (stream, _) = listener.accept() => stream,
        };
        let stream = stream.with_idle_timeout(limits.idle_timeout);
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            limits,
            stopping: stopping.clone(),
            open: open.clone(),
            peer: stream.peer().clone(),
        };
        match &tls {
            None => connection.serve(stream),
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                tokio::spawn(async move {
                    match tokio::time::timeout(limits.first_request_timeout, handshake).await {
                        Ok(Ok(stream)) => connection.serve(stream),
                        Ok(Err(err)) => {
                            tracing::debug!(target: LOG_TARGET, %err, "TLS handshake failed")
                        }
                        Err(_) => {
                            connection.peer.refuse(Refusal::FirstRequest);
                            tracing::debug!(target: LOG_TARGET, "TLS handshake not done in time");
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    tokio::select! {
        _ = all_closed.recv() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!(target: LOG_TARGET, drain = ?limits.drain_timeout, "connections still open after the drain timeout; abandoning them");
        }
    }
}

/// What serving one accepted connection needs.
struct Connection {
    builder: Builder<TokioExecutor>,
    router: Router,
    limits: HttpLimits,
    stopping: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
    peer: Peer,
}

impl Connection {
    /// Serves `stream` (plain, or TLS after its handshake) in a task of its own, watched.
    fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = Greeting::new(stream, Arc::clone(&activity.greeted), conn::PREFACE_LEN);
        let service = Tracked::new(
            TowerToHyperService::new(self.router),
            &activity,
            self.peer.clone(),
        );
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        tokio::spawn(conn::watch(
            connection,
            activity,
            self.limits,
            self.stopping,
            self.open,
            self.peer,
        ));
    }
}

fn builder(limits: &HttpLimits, protocols: Protocols) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    if protocols == Protocols::Http2 {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // A client may shut its sending side once its request is out and still wait for
        // the answer; without this, such a connection would be closed unanswered (most
        // often after an early answer waited for the rest of the body).
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_frame_size(limits.max_frame_size)
        .keep_alive_interval(limits.keep_alive_interval)
        .keep_alive_timeout(limits.keep_alive_timeout)
        .max_local_error_reset_streams(limits.max_local_error_reset_streams)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams);
    builder
}
