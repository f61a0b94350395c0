//! The tests' `nats-server -js` is [`launch::NatsServer`]: `NatsServer::for_test` starts one
//! on a free loopback port with a store of its own, or says why the test is skipped when
//! `nats-server` cannot be had.

pub(crate) use launch::NatsServer;

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    launch::free_port().expect("a free port")
}
