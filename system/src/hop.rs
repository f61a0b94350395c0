//! The hop: how a front door hands messages to the processor. The front doors see the hop
//! and nothing of the processor behind it; today the network client is its one
//! implementation.

pub mod client;
pub(crate) mod metrics;
pub(crate) mod ready;
