//! Shutdown: one signal (SIGINT or SIGTERM) passed to every server as a future, and the
//! bounded drain of an HTTP server once it fires.

use std::{future::Future, io, time::Duration};

use axum::{Router, serve::Listener};
use tokio::sync::oneshot;

/// Completes when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// Serves `router` (HTTP/1.1 and HTTP/2 prior knowledge) on `listener` until `shutdown`
/// completes; then stops accepting, lets open requests finish, and gives up on connections
/// still open after `drain`.
pub(crate) async fn serve_http<L>(
    listener: L,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> io::Result<()>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let (fired_tx, fired_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = fired_tx.send(());
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    let deadline = async {
        if fired_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(?drain, "connections still open after the drain timeout; closing them");
            Ok(())
        }
    }
}
