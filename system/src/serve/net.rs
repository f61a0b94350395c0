//! Accepting connections with a limit and a count.
//!
//! [`BoundedListener`] stops accepting while `limit` connections are open (the kernel's
//! backlog then pushes back on clients) and counts every connection it accepts, so
//! connection reuse can be measured from the server's side. With [`Clients`] it also
//! closes at once a connection whose client address holds its share of connections
//! (before any byte is read, so before TLS), counting the refusal, and gives every
//! connection its [`Peer`]. A [`BoundedStream`] can close
//! itself after a period without traffic; a [`Greeting`] around any stream (plain, or TLS
//! after the handshake) raises a flag once the peer has sent enough.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};

use crate::{
    serve::clients::{Clients, Peer},
    serve::refusals::{Refusal, Refusals},
};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::net";

/// A TCP listener that holds at most `limit` connections open and counts them.
#[derive(Debug)]
pub struct BoundedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    accepted: Arc<AtomicU64>,
    clients: Option<Arc<Clients>>,
    refusals: Arc<Refusals>,
}

/// An accepted connection; its slot under the limit (and its client's) is freed when it is
/// dropped.
#[derive(Debug)]
pub struct BoundedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Option<Idle>,
    peer: Peer,
}

/// A stream that raises a flag once the peer has sent a number of bytes through it.
#[derive(Debug)]
pub(crate) struct Greeting<S> {
    inner: S,
    flag: Arc<AtomicBool>,
    remaining: usize,
}

#[derive(Debug)]
struct Idle {
    after: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl BoundedListener {
    /// Wraps `listener`, allowing `limit` (at least one) open connections.
    pub fn new(listener: TcpListener, limit: usize) -> BoundedListener {
        BoundedListener {
            listener,
            permits: Arc::new(Semaphore::new(limit.max(1))),
            accepted: Arc::new(AtomicU64::new(0)),
            clients: None,
            refusals: Arc::default(),
        }
    }

    /// Holds each client address to its share of connections (and gives its connections
    /// their client, whose share of the budget their requests charge).
    pub(crate) fn with_clients(mut self, clients: &Arc<Clients>) -> BoundedListener {
        self.clients = Some(Arc::clone(clients));
        self
    }

    /// Counts refusals in `refusals` (shared with the other servers of a role).
    pub fn counting(mut self, refusals: &Arc<Refusals>) -> BoundedListener {
        self.refusals = Arc::clone(refusals);
        self
    }

    /// Where this listener's server counts refusals.
    pub fn refusals(&self) -> &Arc<Refusals> {
        &self.refusals
    }

    /// The counter of accepted connections, readable while the listener runs.
    pub(crate) fn accepted_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.accepted)
    }
}

impl BoundedListener {
    /// The next connection; waits while the limit is reached. Errors that concern one
    /// connection are skipped, others are logged and retried after a pause.
    pub async fn accept(&mut self) -> (BoundedStream, SocketAddr) {
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // The semaphore is never closed; if it were, accepting could not go on.
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let client = match self.clients.as_ref().map(|clients| clients.admit(addr)) {
                        None => None,
                        Some(Ok(client)) => Some(client),
                        Some(Err(_)) => {
                            // Dropped unread: the client learns it at its first read or write.
                            self.refusals.count(Refusal::ClientConnections);
                            continue;
                        }
                    };
                    // Small request/response exchanges: do not let Nagle hold them back.
                    let _ = stream.set_nodelay(true);
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    return (
                        BoundedStream {
                            stream,
                            _permit: permit,
                            idle: None,
                            peer: Peer::new(client, Arc::clone(&self.refusals)),
                        },
                        addr,
                    );
                }
                Err(err) if is_per_connection(&err) => continue,
                Err(err) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::error!(target: LOG_TARGET, %err, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl BoundedStream {
    /// Who is on the other end, for the requests of this connection.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Makes reads fail with `TimedOut` once neither side has sent anything for `after`.
    pub(crate) fn with_idle_timeout(mut self, after: Duration) -> BoundedStream {
        self.idle = Some(Idle {
            after,
            deadline: Box::pin(tokio::time::sleep(after)),
        });
        self
    }

    fn touch(&mut self) {
        if let Some(idle) = &mut self.idle {
            let next = Instant::now() + idle.after;
            idle.deadline.as_mut().reset(next);
        }
    }

    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.idle {
            Some(idle) => idle.deadline.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            other => other,
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl<S> Greeting<S> {
    /// Sets `flag` once the peer has sent `bytes` bytes through `inner` (a server uses it
    /// to see that a client is past protocol detection).
    pub(crate) fn new(inner: S, flag: Arc<AtomicBool>, bytes: usize) -> Greeting<S> {
        Greeting {
            inner,
            flag,
            remaining: bytes,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Greeting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.remaining > 0 && matches!(read, Poll::Ready(Ok(()))) {
            let got = buf.filled().len() - before;
            self.remaining = self.remaining.saturating_sub(got);
            if self.remaining == 0 {
                self.flag.store(true, Ordering::Relaxed);
            }
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Greeting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
