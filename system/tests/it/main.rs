//! Integration tests of the `system` crate, in one binary to keep link time down.

mod alloc_count;
mod auth;
mod binary;
mod budget;
mod gateway;
mod grpc;
mod hop;
mod hop_faults;
mod hostile;
mod idempotency;
mod metrics_exposition;
mod nats;
mod nats_crash;
mod nats_server;
mod processor;
mod profile_memory;
mod properties;
mod queue;
mod raw;
mod ready;
mod stack;
mod support;
mod tls;
mod worker;
