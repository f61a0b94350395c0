//! How a process of this project is started and found ready, in one place: the line a
//! server logs once it listens ([`ready_line`], parsed back by [`parse_ready`]), a launcher
//! that waits for those lines ([`Launch`]), and a guard that stops and reaps its child when
//! dropped ([`Running`]), also when a test panics, so no child outlives whoever started it.
//! The names of the system's servers in those lines are in [`servers`]. [`NatsServer`] runs
//! a `nats-server -js` the same way.
//!
//! std only: the system, the harness, xtask and the tests all depend on it.

#![warn(missing_docs, unreachable_pub)]

mod nats;
mod process;
mod ready;
pub mod servers;

pub use nats::{NatsCluster, NatsClusterOptions, NatsServer, ensure_nats_server};
pub use process::{
    DEFAULT_GRACE, DEFAULT_KEEP_LINES, DEFAULT_TIMEOUT, Launch, LaunchError, Running,
};
pub use ready::{READY_MARKER, parse_ready, ready_line};

/// A loopback port nobody listens on right now (the OS does not hand it out again at once).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
