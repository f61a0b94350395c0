//! Integration tests of the `system` crate, in one binary to keep link time down.

mod alloc_count;
mod binary;
mod budget;
mod gateway;
mod grpc;
mod hop;
mod hop_faults;
mod idempotency;
mod hostile;
mod nats;
mod nats_crash;
mod nats_server;
mod processor;
mod properties;
mod queue;
mod raw;
mod stack;
mod support;
mod worker;
