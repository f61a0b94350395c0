//! `GET /metrics`: the Prometheus text exposition (version 0.0.4), written by
//! prometheus-client's encoder from a [`Registry`].
//!
//! Each role instance has a registry of its own unless it is handed one to share (the
//! front doors of one process share one, so the gateway's `/metrics` shows the gRPC role's
//! families too); tests that start several systems in one process keep their numbers apart.
//! Every registry shows the process's families (CPU, memory, descriptors, start time) and
//! `diplom_build_info`.
//!
//! Nothing on the hot path takes a lock: counters are the services' own atomics, read by
//! collectors when `/metrics` is scraped, and a [`Histogram`] is an array of atomic
//! buckets (one bucket search and two atomic adds per observation). The registry's lock is
//! taken when a role adds its families at start-up and while `/metrics` is written.

mod process;

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, NoLabelSet,
        prometheus_text,
    },
    metrics::{MetricType, info::Info},
};
use tokio::net::TcpListener;

pub use crate::domain::histogram::{Bounds, Histogram};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::prometheus";
use crate::{
    serve::net::BoundedListener,
    serve::server::{self, HttpLimits, Protocols},
};

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The labels of one series, as `(name, value)` pairs.
pub(crate) type Labels = Vec<(&'static str, &'static str)>;

/// A histogram family: its name, what it measures and its buckets. Roles add series to it
/// (see `Registry::add_histogram`); its HELP and TYPE are written once.
#[derive(Debug)]
pub struct Family {
    /// The family's name.
    pub name: &'static str,
    /// What it measures (the HELP line).
    pub help: &'static str,
    /// Its buckets.
    pub bounds: Bounds,
}

impl Family {
    /// A new, empty histogram with this family's buckets.
    pub fn histogram(&self) -> Arc<Histogram> {
        Arc::new(Histogram::new(self.bounds))
    }
}

/// Time to answer an ingest, by front door and protocol.
pub(crate) static INGEST_DURATION: Family = Family {
    name: "ingest_duration_seconds",
    help: "Time to answer an ingest, by front door and protocol: an HTTP request (http1, h2c) \
           or a unary gRPC call from its arrival to its answer, whatever the outcome; a gRPC \
           stream (stream) once per hop batch, from reading the batch's first message to the \
           processor's answer for the batch.",
    bounds: Bounds::Seconds,
};

/// Time of one hop request, by front door.
pub(crate) static HOP_DURATION: Family = Family {
    name: "hop_request_duration_seconds",
    help: "Time of one request to the processor carrying messages (a lone message or a batch), \
           from sending it to reading its whole answer, failures and timeouts included.",
    bounds: Bounds::Seconds,
};

/// Messages per hop request, by front door.
pub static HOP_BATCH: Family = Family {
    name: "hop_batch_messages",
    help: "Messages carried by one request to the processor.",
    bounds: Bounds::Messages,
};

/// The time messages waited in the processor's queue.
pub(crate) static QUEUE_WAIT: Family = Family {
    name: "processor_queue_wait_seconds",
    help: "Time a message waited in the in-memory queue, from the publish of the request that \
           carried it to a worker taking it (messages of one request share its publish time; \
           not measured for the NATS queue).",
    bounds: Bounds::Seconds,
};

/// The metric families one `/metrics` shows. Cheap to clone: clones are the same registry.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    registry: prometheus_client::registry::Registry,
    /// The histogram families added so far, each registered once as a collector.
    families: Vec<Arc<Series>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry holding the process's families and the build information.
    pub fn new() -> Registry {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register(
            "diplom_build",
            "The build of this process: its version, and its source revision when it was known \
             at build time",
            Info::new(build_labels()),
        );
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        Registry {
            inner: Arc::new(Mutex::new(Inner {
                registry,
                families: Vec::new(),
            })),
        }
    }

    /// Adds `histogram` as the series of `family` with `labels`.
    pub(crate) fn add_histogram(
        &self,
        family: &'static Family,
        labels: Labels,
        histogram: Arc<Histogram>,
    ) {
        let mut inner = self.lock();
        let series = match inner
            .families
            .iter()
            .find(|series| std::ptr::eq(series.family, family))
        {
            Some(series) => Arc::clone(series),
            None => {
                let series = Arc::new(Series {
                    family,
                    series: Mutex::default(),
                });
                inner
                    .registry
                    .register_collector(Box::new(Arc::clone(&series)));
                inner.families.push(Arc::clone(&series));
                series
            }
        };
        series
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((labels, histogram));
    }

    /// Adds `collector`, asked for its families whenever `/metrics` is written.
    pub(crate) fn add_collector(&self, collector: impl Collector) {
        self.lock().registry.register_collector(Box::new(collector));
    }

    /// The exposition of every family.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a `String` fails only when a collector does, and ours do not.
        if let Err(err) = prometheus_text::encode(&mut text, &self.lock().registry) {
            tracing::error!(target: LOG_TARGET, %err, "writing the metrics failed");
        }
        text
    }

    /// `GET /metrics`, answering with [`Registry::encode`].
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let registry = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let text = registry.encode();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response() }
            }),
        )
    }

    /// A poisoned lock only means a scrape panicked; the registry is still whole.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves `GET /metrics` of `registry` on `listener` (HTTP/1.1 and h2c) until `shutdown`
/// completes: the metrics port of a role whose own port is not plain HTTP (`grpc`).
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    max_connections: usize,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let router = registry
        .routes()
        .fallback(crate::serve::body::not_found)
        .method_not_allowed_fallback(crate::serve::body::method_not_allowed);
    let listener = BoundedListener::new(listener, max_connections);
    server::serve(listener, router, limits, Protocols::Auto, None, shutdown).await;
}

/// The series of one histogram family, added by the roles sharing a registry.
#[derive(Debug)]
struct Series {
    family: &'static Family,
    series: Mutex<Vec<(Labels, Arc<Histogram>)>>,
}

impl Collector for Series {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let family = self.family;
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut metric =
            encoder.encode_descriptor(family.name, family.help, None, MetricType::Histogram)?;
        for (labels, histogram) in series.iter() {
            histogram.encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// Writes the counters and gauges a collector reads when `/metrics` is scraped.
#[derive(Debug)]
pub(crate) struct Families<'a>(DescriptorEncoder<'a>);

impl<'a> Families<'a> {
    /// Writes into `encoder`.
    pub(crate) fn new(encoder: DescriptorEncoder<'a>) -> Families<'a> {
        Families(encoder)
    }

    /// One unlabelled counter. `name` is given without `_total`, which the encoder adds.
    pub(crate) fn counter(
        &mut self,
        name: &str,
        help: &str,
        value: impl EncodeCounterValue,
    ) -> Result<&mut Self, fmt::Error> {
        self.counters(name, help, &[(&[], value)])
    }

    /// One counter family with a sample per label set (see [`Families::counter`]).
    pub(crate) fn counters<V: EncodeCounterValue>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(&[(&str, &str)], V)],
    ) -> Result<&mut Self, fmt::Error> {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in samples {
            metric
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, f64>(value, None)?;
        }
        Ok(self)
    }

    /// One unlabelled gauge.
    pub(crate) fn gauge(
        &mut self,
        name: &str,
        help: &str,
        value: impl EncodeGaugeValue,
    ) -> Result<&mut Self, fmt::Error> {
        self.gauges(name, help, &[(&[], value)])
    }

    /// One gauge family with a sample per label set.
    pub(crate) fn gauges<V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(&[(&str, &str)], V)],
    ) -> Result<&mut Self, fmt::Error> {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in samples {
            metric.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(self)
    }
}

/// Writes a role's refusals by reason, as `<prefix>_refusals_total{reason}`.
pub(crate) fn refusal_counters(
    out: &mut Families<'_>,
    prefix: &str,
    refusals: &crate::serve::refusals::Refusals,
) -> std::fmt::Result {
    let snapshot = refusals.snapshot();
    let labels: Vec<[(&str, &str); 1]> = snapshot
        .iter()
        .map(|(refusal, _)| [("reason", refusal.label())])
        .collect();
    let samples: Vec<(&[(&str, &str)], u64)> = labels
        .iter()
        .zip(snapshot)
        .map(|(labels, (_, count))| (&labels[..], count))
        .collect();
    out.counters(
        &format!("{prefix}_refusals"),
        "Connections and requests refused or cut short, by the limit they ran into.",
        &samples,
    )?;
    Ok(())
}

/// `version` from the crate, `revision` when `DIPLOM_GIT_REVISION` was set at build time
/// (e.g. to `git rev-parse --short HEAD`); a build without it simply has no `revision`.
fn build_labels() -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
    let mut labels = vec![("version".into(), env!("CARGO_PKG_VERSION").into())];
    if let Some(revision) = option_env!("DIPLOM_GIT_REVISION").filter(|r| !r.is_empty()) {
        labels.push(("revision".into(), revision.into()));
    }
    labels
}
