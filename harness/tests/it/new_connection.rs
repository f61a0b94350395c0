//! The new-connection fixture of the handshake pair (`hop/new_connection`): every operation
//! is a hop request on a connection of its own, and over TLS the handshakes are what the
//! variant's name says, full or resumed, counted on both ends.

use harness::callgrind::{NewConnection, Transport};

/// Operations per check; the fixture has warmed up before.
const N: u64 = 8;

#[test]
fn every_operation_opens_a_connection_of_its_own() {
    for transport in Transport::ALL {
        let mut fixture = NewConnection::start(transport);
        let before = fixture.counts();
        fixture.run(N as usize);
        let after = fixture.counts();
        let name = transport.variant();
        assert_eq!(
            after.requests - before.requests,
            N + 1,
            "{name}: one hop request per operation, and the one asking for the counts"
        );
        assert_eq!(
            after.opened - before.opened,
            N + 1,
            "{name}: the client opened a connection for each request"
        );
        assert_eq!(
            after.accepted - before.accepted,
            N + 1,
            "{name}: the processor accepted a connection for each request"
        );
    }
}

#[test]
fn the_tls_handshakes_are_full_or_resumed_as_the_variant_says() {
    for (transport, resumed_per_connection) in [
        (Transport::Plain, 0),
        (Transport::TlsFull, 0),
        (Transport::TlsResumed, 1),
    ] {
        let mut fixture = NewConnection::start(transport);
        let before = fixture.counts();
        fixture.run(N as usize);
        let after = fixture.counts();
        // The request asking for the counts is one more connection (and handshake).
        assert_eq!(
            after.resumed - before.resumed,
            (N + 1) * resumed_per_connection,
            "{}: {before:?} → {after:?}",
            transport.variant()
        );
    }
}
