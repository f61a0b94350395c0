//! The names of the `system` binary's servers, as their readiness lines say them
//! ([`crate::ready_line`]): the system logs each line under one of these names, and
//! whoever started it waits for the same name.

/// The processor's port (`PROCESSOR_PORT`).
pub const PROCESSOR: &str = "processor";
/// The HTTP gateway's port (`API_PORT`).
pub const GATEWAY: &str = "gateway";
/// The gateway's plain port while TLS is on (`API_PLAIN_PORT`).
pub const GATEWAY_PLAIN: &str = "gateway (plain)";
/// The gRPC server's port (`GRPC_PORT`).
pub const GRPC: &str = "grpc";
/// The gRPC role's plain `/metrics` port (`GRPC_METRICS_PORT`).
pub const GRPC_METRICS: &str = "grpc metrics";
