//! Integration tests of the harness, in one binary: the gate's rules, profiles, and the
//! load generator, the bare servers and the peers run over real sockets on 127.0.0.1. Runs
//! are short and nothing asserts a speed: the tests check behaviour (what is counted, where,
//! and how the two loops differ).

/// Counts allocations, so that allocation sites can be recorded (the profile test).
#[global_allocator]
static ALLOCATOR: harness::alloc::Counting = harness::alloc::Counting;

mod cli;
mod coordinated_omission;
mod docs;
mod errors;
mod gate;
mod http2_client;
mod lean_path;
mod load_cli;
mod new_connection;
mod parsing;
mod peers_run;
mod profile;
mod report_schema;
mod servers;
mod soak;
mod stages;
mod variant_names;
