//! The gRPC stream path allocates nothing per message once warm: what a stream costs beyond
//! its setup and its batches does not grow with the number of messages.

use harness::callgrind::{Protocol, RoundTrip, grpc_message};

/// Allocations per message of a stream of `n` messages, on the warm round-trip fixture.
fn allocations(fixture: &mut RoundTrip, n: usize) -> u64 {
    let (counts, ()) = harness::alloc::during(|| fixture.run(n));
    counts.allocations
}

#[test]
fn a_warm_grpc_stream_allocates_nothing_per_message() {
    let mut fixture = RoundTrip::start(Protocol::GrpcStream);
    // Warm every pool for the larger stream first.
    allocations(&mut fixture, 2048);
    let short = allocations(&mut fixture, 1024);
    let long = allocations(&mut fixture, 2048);
    // The client builds each message it sends (its strings and map): not the server's.
    let (client, _message) = harness::alloc::during(grpc_message);
    let per_extra_message = long.saturating_sub(short) as f64 / 1024.0 - client.allocations as f64;
    if std::env::var_os("LEAN_PATH_SITES").is_some() {
        let (sites, ()) = harness::alloc::sites::record(|| fixture.run(1024));
        for site in sites.iter().take(40) {
            eprintln!(
                "{:>6} {} <- {:?}",
                site.allocations, site.function, site.callers
            );
        }
    }
    // The batches' own allocations (one request per up to 64 messages) are what may remain.
    assert!(
        per_extra_message < 1.0,
        "{per_extra_message:.2} allocations per message beyond the client's {} ({short} for \
         1024, {long} for 2048)",
        client.allocations
    );
}
