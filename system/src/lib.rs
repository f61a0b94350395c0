//! The ingest system as a library: the wire types, the queues, the worker pool and the
//! services. The `system` binary parses [`config::Cli`] and calls [`run`].
//!
//! # Layout
//!
//! The folders are layers; a module imports its own layer and those below it, never one
//! above (`ARCHITECTURE.md` states the rules, a workspace test checks them):
//!
//! - `config`, `run`: the settings, loaded once ([`config::Loaded`]), each role's
//!   configuration built from them in one place, and the start and drain of the roles.
//! - `roles/`: the gateway, the gRPC role and the processor. The front doors share
//!   [`FrontDoorConfig`] and reach the processor only through the hop.
//! - `hop/`: the seam between the front doors and the processor: the `Hop` a front door
//!   holds, whose one implementation is the network client ([`client::Forwarder`]), with
//!   the front doors' readiness probe and the hop's metric families.
//! - `serve/`: server plumbing: listeners and connections, TLS, tokens, per-client shares
//!   and refusals, bodies as they arrive, metrics exposition, readiness, debug endpoints,
//!   shutdown.
//! - `domain/`: messages and their wire forms, validation, codecs, queues, the worker pool,
//!   the memory budget, histograms, secrets.
//!
//! The layer modules are private; the modules re-exported below are the public face, the
//! ones the harness and the tests use.
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
