//! The broker's own publish-to-ack latency, unloaded: a [`NatsQueue`] of the harness
//! publishes small messages one at a time to a stream of its own on the broker a NATS side
//! uses, each timed from the call until JetStream confirmed it stored the message (what a
//! processor waits for before it answers 202). Nothing else loads the broker meanwhile, so
//! the figure is the floor under every NATS side's latency, and on a replicated stream it
//! includes the copy to a majority of the cluster.
//!
//! Nobody consumes the probe's stream; each probe uses a stream of its own, sized for what
//! it publishes, and the messages stay there until the broker stops.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use study::results::{Case, Metric};
use system::{
    message::{IdOrigin, MessageRef, Metadata},
    queue::{NatsConfig, NatsQueue},
};

/// Messages timed by a probe, at most.
pub const MESSAGES: usize = 2000;
/// How long a probe times messages, at most: a replicated stream confirms more slowly, and
/// then fewer messages are timed instead of a longer round.
pub const TIME_LIMIT: Duration = Duration::from_secs(2);
/// Messages published first and not timed: the connection's and the stream's first
/// writes.
const WARM_UP: usize = 20;
/// The largest latency recorded (a publish may wait this long for its confirmation).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// What each message carries: small, so that the figure is the broker's round trip rather
/// than the copying of bytes.
const PAYLOAD: &[u8] = b"publish-to-ack probe";

/// One probe: where it publishes and how much.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The broker's client URL (a comma-separated list for a cluster).
    pub url: String,
    /// The probe's stream, which no other publisher uses.
    pub stream: String,
    /// The stream's replicas (1, or 3 on a cluster of three).
    pub replicas: usize,
    /// Messages timed, at most.
    pub messages: usize,
    /// How long messages are timed, at most.
    pub time_limit: Duration,
}

impl Probe {
    /// A probe of [`MESSAGES`] messages within [`TIME_LIMIT`].
    pub fn new(url: impl Into<String>, stream: impl Into<String>, replicas: usize) -> Probe {
        Probe {
            url: url.into(),
            stream: stream.into(),
            replicas,
            messages: MESSAGES,
            time_limit: TIME_LIMIT,
        }
    }
}

/// What a probe measured.
#[derive(Clone)]
pub struct PublishAck {
    /// The latency of each confirmed publish, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Publishes the broker refused or did not confirm in time.
    pub errors: u64,
}

impl PublishAck {
    /// Publishes timed.
    pub fn count(&self) -> u64 {
        self.latency_ns.len()
    }

    /// The latency at `quantile`, in milliseconds; `None` when nothing was timed.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        (self.count() > 0).then(|| self.latency_ns.value_at_quantile(quantile) as f64 / 1e6)
    }
}

impl std::fmt::Debug for PublishAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishAck")
            .field("count", &self.count())
            .field("p50_ms", &self.quantile_ms(0.5))
            .field("p99_ms", &self.quantile_ms(0.99))
            .field("errors", &self.errors)
            .finish()
    }
}

/// `case` with the probes' figures, one sample per round: the publish-to-ack latency's
/// p50 and p99 (ms), the publishes timed and those that failed (none without probes).
pub(super) fn with_metrics(case: Case, probes: &[PublishAck]) -> Case {
    let series = |f: &dyn Fn(&PublishAck) -> Option<f64>| -> Vec<f64> {
        probes.iter().filter_map(f).collect()
    };
    let mut case = case;
    for (name, quantile) in [("publish_ack_p50", 0.5), ("publish_ack_p99", 0.99)] {
        let samples = series(&|p| p.quantile_ms(quantile));
        if !samples.is_empty() {
            case = case.metric(name, Metric::from_samples("ms", samples));
        }
    }
    if probes.is_empty() {
        return case;
    }
    case.metric(
        "publish_ack_messages",
        Metric::from_samples("messages", series(&|p| Some(p.count() as f64))),
    )
    .metric(
        "publish_ack_errors",
        Metric::from_samples("publishes", series(&|p| Some(p.errors as f64))),
    )
}

/// Connects to `probe.url`, creates the probe's stream (with its replicas) and publishes
/// one message at a time, the next once the previous one is confirmed.
pub fn publish_ack(probe: &Probe) -> anyhow::Result<PublishAck> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the probe's runtime")?;
    runtime.block_on(measure(probe))
}

async fn measure(probe: &Probe) -> anyhow::Result<PublishAck> {
    let config = NatsConfig {
        url: probe.url.clone(),
        stream: probe.stream.clone(),
        consumer: "probe".to_owned(),
        capacity: WARM_UP + probe.messages,
        replicas: probe.replicas,
        // Nobody reads the stream: the fetcher takes one message and waits.
        fetch_batch: 1,
        ..NatsConfig::default()
    };
    let queue = NatsQueue::connect(config)
        .await
        .with_context(|| format!("the publish probe on stream {}", probe.stream))?;
    let mut latency_ns =
        Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).context("the probe's histogram bounds")?;
    let mut errors = 0;
    // Ids are JetStream's de-duplication keys: a probe's own, so that none could be taken
    // for a message published earlier on the broker.
    let nonce = system::message::unix_time().as_nanos();
    let timestamp = system::message::unix_now();
    let began = Instant::now();
    for index in 0..WARM_UP + probe.messages {
        if index >= WARM_UP && began.elapsed() >= probe.time_limit {
            break;
        }
        let id = format!("probe-{nonce}-{index}");
        let message = MessageRef {
            id: &id,
            timestamp,
            source: "publish-ack-probe",
            payload: PAYLOAD,
            metadata: Metadata::Pairs(&[]),
            // A client's id, as JetStream de-duplicates it: every probe message has its own.
            origin: IdOrigin::client(""),
        };
        let sent = Instant::now();
        let published = queue.publish(message).await;
        let took = sent.elapsed();
        if index < WARM_UP {
            continue;
        }
        match published {
            Ok(()) => {
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                latency_ns.saturating_record(ns.max(1));
            }
            Err(_) => errors += 1,
        }
    }
    queue.close();
    Ok(PublishAck { latency_ns, errors })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use launch::{NatsCluster, NatsServer};

    use super::{Probe, publish_ack};

    fn short(url: String, stream: &str, replicas: usize) -> Probe {
        Probe {
            messages: 200,
            time_limit: Duration::from_secs(5),
            ..Probe::new(url, stream, replicas)
        }
    }

    /// The probe times publishes that JetStream confirmed on one server.
    #[test]
    fn the_probe_times_confirmed_publishes_on_one_server() {
        let Some(server) = NatsServer::for_test("the publish-to-ack probe on one server") else {
            return;
        };
        let measured = publish_ack(&short(server.url(), "PROBE", 1)).expect("a probe");
        assert!(measured.count() > 0, "{measured:?}");
        assert_eq!(measured.errors, 0, "{measured:?}");
        assert!(measured.quantile_ms(0.99).is_some_and(|ms| ms > 0.0));
    }

    /// On a cluster of three the probe's stream has three replicas, and its publishes are
    /// confirmed and timed too.
    #[test]
    fn the_probe_times_confirmed_publishes_on_a_replicated_stream() {
        let Some(cluster) = NatsCluster::for_test("the publish-to-ack probe on a cluster") else {
            return;
        };
        let measured = publish_ack(&short(cluster.urls(), "PROBE_R3", 3)).expect("a probe");
        assert!(measured.count() > 0, "{measured:?}");
        assert_eq!(measured.errors, 0, "{measured:?}");
    }
}
