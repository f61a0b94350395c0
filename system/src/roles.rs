//! The roles: the gateway and the gRPC role (the front doors) and the processor. Each owns
//! its configuration, routes and metrics; the front doors reach the processor only through
//! the hop.

pub mod gateway;
pub mod grpc;
pub mod processor;
