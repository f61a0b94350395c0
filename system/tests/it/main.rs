//! Integration tests of the `system` crate, in one binary to keep link time down.

mod alloc_count;
mod binary;
mod processor;
mod queue;
mod support;
mod worker;
