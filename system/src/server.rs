//! The HTTP server loop shared by the gateway and the processor: HTTP/1.1 and HTTP/2 with
//! prior knowledge (h2c) on one port through hyper-util's auto builder, with the limits of
//! [`HttpLimits`], every connection tracked so that shutdown can wait for it.
//!
//! Shutdown: once the signal fires the listener is dropped (no new connections), open
//! connections are asked to finish (HTTP/1.1 closes after the current response, HTTP/2 sends
//! GOAWAY), and connections still open after the drain timeout are abandoned.

use std::{future::Future, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};

use crate::net::BoundedListener;

/// Protocol limits of one HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Largest HTTP/2 frame the server accepts.
    pub max_frame_size: u32,
    /// Time a client gets to send a request head. For HTTP/1.1, hyper also runs this timer
    /// while a keep-alive connection waits for its next request, so it is the keep-alive
    /// idle limit of HTTP/1.1 connections as well.
    pub header_read_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// How long open connections may take to finish after shutdown is requested.
    pub drain_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_concurrent_streams: 250,
            max_frame_size: 1 << 20,
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see module docs).
pub async fn serve(
    mut listener: BoundedListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // Reset-stream limits stay at hyper's defaults, which guard against rapid-reset floods.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_frame_size(limits.max_frame_size);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            (stream, _) = listener.accept() => stream,
        };
        let stream = stream.with_idle_timeout(limits.idle_timeout);
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!(drain = ?limits.drain_timeout, "connections still open after the drain timeout; abandoning them");
        }
    }
}
