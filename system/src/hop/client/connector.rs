//! The connector under every processor client: TCP (hyper-util's `HttpConnector`), then
//! TLS for an `https` processor (rustls, ALPN for the hop's protocol), with each connection
//! counted and, for the traced client, the DNS lookup, TCP connect and TLS handshake of
//! each new connection timed.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::{
    client::legacy::connect::{
        Connected, Connection, HttpConnector,
        dns::{GaiResolver, Name},
    },
    rt::TokioIo,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tower_service::Service;

use crate::serve::tls::{ALPN_H2, HopTls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Phases of the most recent new connection, filled in by the connector.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnectTiming {
    /// Name resolution; `None` when the host was an IP address (nothing was looked up).
    pub dns: Option<Duration>,
    /// From the start of connecting to an established TCP connection, DNS excluded.
    pub connect: Duration,
    /// The TLS handshake; `None` for a plain connection.
    pub tls: Option<TlsTiming>,
    /// When the connection was ready to carry the request.
    pub ready_at: Option<Instant>,
}

/// What the TLS handshake of a new connection took and agreed on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsTiming {
    /// From an established TCP connection to the end of the handshake.
    pub handshake: Duration,
    /// The TLS version, such as `TLSv1.3`.
    pub version: &'static str,
    /// The protocol ALPN chose (`h2`, `http/1.1`), if any.
    pub alpn: Option<&'static str>,
}

/// Shared slot where a traced connector reports the phases of its latest connection.
pub(crate) type TimingSlot = Arc<Mutex<Option<ConnectTiming>>>;

/// A TCP (and, for `https`, TLS) connector that counts the connections it opens.
#[derive(Clone, Debug)]
pub(crate) struct CountingConnector {
    inner: HttpConnector<TimedResolver>,
    tls: Option<HopConnector>,
    opened: Arc<AtomicU64>,
    timing: Option<TimingSlot>,
    dns: Arc<Mutex<Option<Duration>>>,
}

/// The TLS side of the connector.
#[derive(Clone)]
struct HopConnector {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for HopConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl CountingConnector {
    /// A connector counting into `opened`; with `timing`, it also reports each connection's
    /// phases there. With `tls`, `https` URLs are reached over TLS asking ALPN for `alpn`.
    pub(crate) fn new(
        opened: Arc<AtomicU64>,
        connect_timeout: Duration,
        timing: Option<TimingSlot>,
        tls: Option<(&HopTls, &[u8])>,
    ) -> CountingConnector {
        let dns = Arc::new(Mutex::new(None));
        let mut inner = HttpConnector::new_with_resolver(TimedResolver {
            inner: GaiResolver::new(),
            took: Arc::clone(&dns),
        });
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(connect_timeout));
        inner.enforce_http(false);
        CountingConnector {
            inner,
            tls: tls.map(|(tls, alpn)| HopConnector {
                connector: TlsConnector::from(tls.with_alpn(alpn)),
                server_name: tls.server_name.clone(),
            }),
            opened,
            timing,
            dns,
        }
    }
}

impl Service<Uri> for CountingConnector {
    type Response = HopStream;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let started = Instant::now();
        let tls = match uri.scheme_str() {
            Some("https") => match (&self.tls, uri.host()) {
                (Some(tls), Some(host)) => {
                    let name = match &tls.server_name {
                        Some(name) => name.clone(),
                        None => match ServerName::try_from(host.trim_matches(['[', ']'])) {
                            Ok(name) => name.to_owned(),
                            Err(err) => return Box::pin(async move { Err(err.into()) }),
                        },
                    };
                    Some((tls.connector.clone(), name))
                }
                _ => {
                    return Box::pin(async move {
                        Err("an https processor needs the hop's TLS settings".into())
                    });
                }
            },
            _ => None,
        };
        let connecting = self.inner.call(uri);
        let opened = Arc::clone(&self.opened);
        let timing = self.timing.clone();
        let dns = Arc::clone(&self.dns);
        Box::pin(async move {
            *lock(&dns) = None;
            let stream = connecting.await?;
            let connected_at = Instant::now();
            let (stream, tls_timing) = match tls {
                None => (HopStream::Plain(stream), None),
                Some((connector, name)) => {
                    let stream = connector.connect(name, stream.into_inner()).await?;
                    let handshake = connected_at.elapsed();
                    let (_, session) = stream.get_ref();
                    let timing = TlsTiming {
                        handshake,
                        version: match session.protocol_version() {
                            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                            _ => "TLS",
                        },
                        alpn: session.alpn_protocol().map(alpn_name),
                    };
                    (HopStream::Tls(TokioIo::new(Box::new(stream))), Some(timing))
                }
            };
            opened.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = timing {
                let ready_at = Instant::now();
                let dns = lock(&dns).take();
                let tcp = connected_at.duration_since(started);
                *lock(&slot) = Some(ConnectTiming {
                    dns,
                    connect: tcp.saturating_sub(dns.unwrap_or_default()),
                    tls: tls_timing,
                    ready_at: Some(ready_at),
                });
            }
            Ok(stream)
        })
    }
}

fn alpn_name(alpn: &[u8]) -> &'static str {
    match alpn {
        ALPN_H2 => "h2",
        _ => "http/1.1",
    }
}

/// A connection to the processor: plain TCP or TLS over it.
#[derive(Debug)]
pub(crate) enum HopStream {
    /// Plain TCP.
    Plain(TokioIo<TcpStream>),
    /// TLS.
    Tls(TokioIo<Box<TlsStream<TcpStream>>>),
}

impl Connection for HopStream {
    fn connected(&self) -> Connected {
        match self {
            HopStream::Plain(stream) => stream.connected(),
            HopStream::Tls(stream) => {
                let (tcp, session) = stream.inner().get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(ALPN_H2) {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Read for HopStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HopStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            HopStream::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl Write for HopStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            HopStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            HopStream::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            HopStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            HopStream::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            HopStream::Plain(stream) => stream.is_write_vectored(),
            HopStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HopStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            HopStream::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            HopStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            HopStream::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// The system resolver, timed. hyper-util calls it only for host names, not IP addresses.
#[derive(Clone, Debug)]
pub(crate) struct TimedResolver {
    inner: GaiResolver,
    took: Arc<Mutex<Option<Duration>>>,
}

impl Service<Name> for TimedResolver {
    type Response = <GaiResolver as Service<Name>>::Response;
    type Error = io::Error;
    type Future = BoxFuture<Result<Self::Response, io::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let started = Instant::now();
        let resolving = self.inner.call(name);
        let took = Arc::clone(&self.took);
        Box::pin(async move {
            let addrs = resolving.await?;
            *lock(&took) = Some(started.elapsed());
            Ok(addrs)
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
