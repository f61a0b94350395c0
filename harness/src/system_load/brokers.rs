//! The NATS brokers of a load run and how a side uses them: one `nats-server` for the
//! `nats` side, a cluster of three for `nats_r3`, each started once per run and only when a
//! side of the run needs it, and stopped when the run ends.
//!
//! Every stream the suite creates is named for its purpose, its broker and its round, so
//! that no round finds another's messages: a processor that stops leaves what it did not
//! fetch in its work-queue stream, and the next processor on that stream would work through
//! it during its own measurement.

use launch::{NatsCluster, NatsServer};
use system::config::names;

use super::{
    Options,
    variants::{Broker, Pair},
};

/// Publishes a NATS side's processor may have waiting for JetStream's confirmation: more
/// than the default, so that the closed loop's highest concurrency is not refused for it.
const MAX_PENDING: &str = "4096";

/// The NATS brokers of a run.
#[derive(Debug, Default)]
pub(super) struct Brokers {
    single: Option<NatsServer>,
    cluster: Option<NatsCluster>,
}

impl Brokers {
    /// Starts the brokers the sides of `pairs` need (none without a nats-server: no such
    /// side is left in `pairs` then).
    pub(super) fn start(options: &Options, pairs: &[Pair]) -> anyhow::Result<Brokers> {
        let Some(program) = options.nats_server.as_deref() else {
            return Ok(Brokers::default());
        };
        let needs = |broker| {
            (pairs.iter().flat_map(|p| &p.sides)).any(|side| side.broker() == Some(broker))
        };
        Ok(Brokers {
            single: (needs(Broker::Single))
                .then(|| NatsServer::start(program))
                .transpose()?,
            cluster: (needs(Broker::Replicated))
                .then(|| NatsCluster::start(program))
                .transpose()?,
        })
    }

    /// The client URL of `broker` (`NATS_URL`; a comma-separated list for the cluster).
    pub(super) fn url(&self, broker: Broker) -> anyhow::Result<String> {
        let url = match broker {
            Broker::Single => self.single.as_ref().map(NatsServer::url),
            Broker::Replicated => self.cluster.as_ref().map(NatsCluster::urls),
        };
        url.ok_or_else(|| anyhow::anyhow!("no {broker:?} NATS broker was started"))
    }
}

/// The name of a stream the suite creates on `broker` in `round`, for `purpose` (`LOAD`
/// for a side's queue, `PROBE` for the publish probe).
pub(super) fn stream_name(purpose: &str, broker: Broker, round: usize) -> String {
    format!("{purpose}{}-r{round}", broker.stream_tag())
}

/// The settings of a side whose queue is on `broker` (at `url`) in `round`.
pub(super) fn nats_settings(
    broker: Broker,
    url: &str,
    round: usize,
) -> Vec<(&'static str, String)> {
    vec![
        (names::NATS_URL, url.to_owned()),
        (names::NATS_STREAM, stream_name("LOAD", broker, round)),
        (names::NATS_REPLICAS, broker.replicas().to_string()),
        (names::NATS_MAX_PENDING, MAX_PENDING.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use system::config::names;

    use super::{Broker, nats_settings, stream_name};

    /// A side on the cluster gets the cluster's URLs and three replicas; every side, every
    /// round and the probe have a stream of their own, so that what a round leaves in its
    /// stream is not consumed in another's measurement.
    #[test]
    fn each_nats_side_and_round_has_its_own_stream_on_its_own_broker() {
        let get = |settings: &[(&'static str, String)], key: &str| {
            let found = settings.iter().find(|(k, _)| *k == key);
            found.map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let urls = "nats://127.0.0.1:1,nats://127.0.0.1:2,nats://127.0.0.1:3";
        let single_url = "nats://127.0.0.1:4";
        let r3 = nats_settings(Broker::Replicated, urls, 1);
        assert_eq!(get(&r3, names::NATS_URL), urls);
        assert_eq!(get(&r3, names::NATS_REPLICAS), "3");
        let single = nats_settings(Broker::Single, single_url, 1);
        assert_eq!(get(&single, names::NATS_URL), single_url);
        assert_eq!(get(&single, names::NATS_REPLICAS), "1");
        let mut streams = Vec::new();
        for round in [1, 2] {
            for (broker, url) in [(Broker::Single, single_url), (Broker::Replicated, urls)] {
                streams.push(get(&nats_settings(broker, url, round), names::NATS_STREAM));
                streams.push(stream_name("PROBE", broker, round));
            }
        }
        for (i, stream) in streams.iter().enumerate() {
            assert!(!stream.is_empty());
            assert!(!streams[..i].contains(stream), "{streams:?}");
        }
    }
}
