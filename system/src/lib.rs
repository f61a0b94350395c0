//! The ingest system as a library: the wire types, the queues, the worker pool and the
//! services. The `system` binary parses [`config::Cli`] and calls [`run`].
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod config;
mod domain;
mod hop;
mod roles;
mod run;
mod serve;

pub use domain::{budget, codec, message, proto, queue, validate, wire, worker};
pub use hop::client;
pub use roles::FrontDoorConfig;
pub use roles::{gateway, grpc, processor};
pub use run::{RunError, run};
pub use serve::{auth, clients, debug, prometheus, server, shutdown, tls};
