//! Shared server plumbing: accepting connections (server, net, TLS), who may send what
//! (auth, per-client shares, refusals), what a server shows of itself (metrics, readiness,
//! debug endpoints) and how it stops. It knows the domain; it knows no role and not the hop.

pub mod auth;
pub(crate) mod body;
pub mod clients;
pub mod debug;
pub(crate) mod net;
pub mod prometheus;
pub(crate) mod ready;
pub(crate) mod refusals;
pub mod server;
pub mod shutdown;
pub mod tls;
