//! The hop: how a front door hands messages to the processor. A front door holds a [`Hop`]
//! and sees nothing of the processor behind it; today the network client
//! ([`client::Forwarder`]) is its one implementation.

pub mod client;
pub(crate) mod metrics;
pub(crate) mod ready;

use std::sync::Arc;

use self::client::{
    Added, ForwardError, Forwarded, Forwarder, ForwarderConfig, ForwarderStats, HopBatch,
};
use crate::domain::{histogram::Histogram, message::MessageRef, proto::DataMessage};

/// What a front door holds to reach the processor. Cheap to clone; clones share
/// connections and counters.
#[derive(Debug, Clone)]
pub(crate) enum Hop {
    /// The processor over the network: HTTP/1.1 or HTTP/2, TLS for an `https` URL.
    Network(Forwarder),
}

impl Hop {
    /// The network hop of `config`.
    pub(crate) fn network(config: ForwarderConfig) -> Hop {
        Hop::Network(Forwarder::new(config))
    }

    /// How the hop is set up: its batch size and linger, its limits.
    #[inline]
    pub(crate) fn config(&self) -> &ForwarderConfig {
        match self {
            Hop::Network(forwarder) => forwarder.config(),
        }
    }

    /// Hands one message to the processor and waits for its outcome.
    #[inline]
    pub(crate) async fn forward(&self, msg: DataMessage) -> Forwarded {
        match self {
            Hop::Network(forwarder) => forwarder.forward(msg).await,
        }
    }

    /// Adds a message to `batch`, or says the batch is full and must be sent first.
    #[inline]
    pub(crate) fn add(
        &self,
        batch: &mut HopBatch,
        msg: MessageRef<'_>,
    ) -> Result<Added, ForwardError> {
        match self {
            Hop::Network(forwarder) => forwarder.add(batch, msg),
        }
    }

    /// Sends `batch` and writes each message's outcome to `outcomes`, in order.
    #[inline]
    pub(crate) async fn send(&self, batch: &mut HopBatch, outcomes: &mut Vec<Forwarded>) {
        match self {
            Hop::Network(forwarder) => forwarder.send(batch, outcomes).await,
        }
    }

    /// The processor's own statistics.
    pub(crate) async fn processor_stats(&self) -> Result<serde_json::Value, ForwardError> {
        match self {
            Hop::Network(forwarder) => forwarder.processor_stats().await,
        }
    }

    /// The hop's counters.
    pub(crate) fn stats(&self) -> ForwarderStats {
        match self {
            Hop::Network(forwarder) => forwarder.stats(),
        }
    }

    /// The time of each hop request.
    pub(crate) fn hop_latency(&self) -> &Arc<Histogram> {
        match self {
            Hop::Network(forwarder) => forwarder.hop_latency(),
        }
    }

    /// The messages carried by each hop request.
    pub(crate) fn hop_batch(&self) -> &Arc<Histogram> {
        match self {
            Hop::Network(forwarder) => forwarder.hop_batch(),
        }
    }
}
