//! The roles: the gateway and the gRPC role (the front doors) and the processor. Each owns
//! its configuration, routes and metrics; the front doors reach the processor only through
//! the hop.

pub mod gateway;
pub mod grpc;
pub mod processor;

use std::sync::Arc;

use crate::{
    domain::budget::Budget,
    hop::client::ForwarderConfig,
    serve::{
        auth::{ClientToken, Secret},
        clients::Clients,
        debug,
        prometheus::Registry,
        server::{self, HttpLimits},
    },
};

/// What both front doors (the gateway and the gRPC role) take.
#[derive(Debug, Clone)]
pub struct FrontDoorConfig {
    /// The hop to the processor.
    pub forwarder: ForwarderConfig,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Protocol limits and the shutdown drain.
    pub limits: HttpLimits,
    /// Serve `GET /debug/pprof/profile` (see [`crate::serve::debug`]); on the gRPC port
    /// over h2c, so that a process running only that role can be profiled too.
    pub profile_endpoint: bool,
    /// The clients of the process's front doors, each held to its share of connections
    /// and of the process's budget of bytes in flight (which an ingest holds its body and
    /// messages against, from their first byte until they are answered).
    pub clients: Arc<Clients>,
    /// Where the door's metric families go: a registry shared with the other roles of the
    /// process (whose `/metrics` then shows them too), or `None` for one of its own. Share
    /// one with at most one role of each kind: two gateways in one registry would write
    /// their families twice.
    pub metrics: Option<Registry>,
    /// TLS on the door's port; plain when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The bearer tokens wanted on ingest (`INGEST_TOKEN`, `INGEST_TOKEN_FILE`), any one of
    /// them; open when there are none.
    pub ingest_tokens: Vec<ClientToken>,
    /// The bearer token wanted on `/debug/*` (`DEBUG_TOKEN`); open when `None`.
    pub debug_token: Option<Secret>,
}

impl FrontDoorConfig {
    /// The defaults, forwarding to the processor at `forwarder`.
    pub fn new(forwarder: ForwarderConfig) -> FrontDoorConfig {
        FrontDoorConfig {
            forwarder,
            max_connections: server::DEFAULT_MAX_CONNECTIONS,
            limits: HttpLimits::default(),
            profile_endpoint: debug::DEFAULT_PROFILE_ENDPOINT,
            clients: Clients::within(&Budget::process_default()),
            metrics: None,
            tls: None,
            ingest_tokens: Vec::new(),
            debug_token: None,
        }
    }
}
