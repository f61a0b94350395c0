//! The connector under every processor client: plain TCP (hyper-util's `HttpConnector`),
//! with each connection counted and, for the traced client, the DNS lookup and TCP connect
//! of each new connection timed.

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
use hyper_util::{
    client::legacy::connect::{
        HttpConnector,
        dns::{GaiResolver, Name},
    },
    rt::TokioIo,
};
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Phases of the most recent new connection, filled in by the connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectTiming {
    /// Name resolution; `None` when the host was an IP address (nothing was looked up).
    pub dns: Option<Duration>,
    /// From the start of connecting to an established TCP connection, DNS excluded.
    pub connect: Duration,
    /// When the connection was ready to carry the request.
    pub ready_at: Option<Instant>,
}

/// Shared slot where a traced connector reports the phases of its latest connection.
pub type TimingSlot = Arc<Mutex<Option<ConnectTiming>>>;

/// A TCP connector that counts the connections it opens.
#[derive(Clone, Debug)]
pub struct CountingConnector {
    inner: HttpConnector<TimedResolver>,
    opened: Arc<AtomicU64>,
    timing: Option<TimingSlot>,
    dns: Arc<Mutex<Option<Duration>>>,
}

impl CountingConnector {
    /// A connector counting into `opened`; with `timing`, it also reports each connection's
    /// phases there.
    pub fn new(
        opened: Arc<AtomicU64>,
        connect_timeout: Duration,
        timing: Option<TimingSlot>,
    ) -> CountingConnector {
        let dns = Arc::new(Mutex::new(None));
        let mut inner = HttpConnector::new_with_resolver(TimedResolver {
            inner: GaiResolver::new(),
            took: Arc::clone(&dns),
        });
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(connect_timeout));
        CountingConnector {
            inner,
            opened,
            timing,
            dns,
        }
    }
}

impl Service<Uri> for CountingConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let started = Instant::now();
        let connecting = self.inner.call(uri);
        let opened = Arc::clone(&self.opened);
        let timing = self.timing.clone();
        let dns = Arc::clone(&self.dns);
        Box::pin(async move {
            *lock(&dns) = None;
            let stream = connecting.await?;
            opened.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = timing {
                let ready_at = Instant::now();
                let dns = lock(&dns).take();
                let total = ready_at.duration_since(started);
                *lock(&slot) = Some(ConnectTiming {
                    dns,
                    connect: total.saturating_sub(dns.unwrap_or_default()),
                    ready_at: Some(ready_at),
                });
            }
            Ok(stream)
        })
    }
}

/// The system resolver, timed. hyper-util calls it only for host names, not IP addresses.
#[derive(Clone, Debug)]
pub struct TimedResolver {
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
