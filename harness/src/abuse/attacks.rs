//! The attacks, as data: each has its name (its variant in `abuse.json`, one of
//! `study::cases::ATTACKS`, in the same order), what it does in words, how many of its
//! connections or calls run at once, and what each of them sends. [`super::attacker`] runs
//! them; how many run at once may depend on the limits the server reports, so that an attack
//! reaches (or passes) the cap it is aimed at whatever the server's settings.

use std::time::Duration;

/// One attack.
#[derive(Debug, Clone, Copy)]
pub struct Attack {
    /// Its name in result files.
    pub name: &'static str,
    /// What it does, in words, for the report.
    pub what: &'static str,
    /// How many of its connections or calls run at once.
    pub slots: Slots,
    /// What each of them sends.
    pub how: How,
}

/// How many of an attack's connections or calls run at once. Each is opened again when the
/// server ends it, until the attack is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slots {
    /// This many.
    Fixed(usize),
    /// As many connections as one address may keep open, and this many more.
    Connections {
        /// Past the cap.
        beyond: usize,
    },
    /// As many as fit the address's share of the budget when each holds `each` bytes, and
    /// this many more.
    Share {
        /// Bytes each one holds.
        each: usize,
        /// Past the share.
        beyond: usize,
    },
}

/// What the server lets one address hold, as its status page reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// `MAX_CONNECTIONS_PER_CLIENT`.
    pub connections: usize,
    /// `MEMORY_PER_CLIENT`, in bytes.
    pub memory: usize,
}

impl Slots {
    /// How many run at once against a server with these limits.
    pub fn count(self, limits: ClientLimits) -> usize {
        match self {
            Slots::Fixed(n) => n,
            Slots::Connections { beyond } => limits.connections + beyond,
            Slots::Share { each, beyond } => limits.memory.div_ceil(each.max(1)) + beyond,
        }
    }
}

/// What one of an attack's connections or calls sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// An HTTP/1.1 ingest whose head declares a body of `declared` bytes, then one byte of
    /// it every `every`.
    Trickle {
        /// The declared `content-length`.
        declared: usize,
        /// How often a byte follows.
        every: Duration,
    },
    /// An HTTP/1.1 ingest whose body of `declared` bytes is sent but for the rest after
    /// `sent`, then nothing.
    Stall {
        /// The declared `content-length`.
        declared: usize,
        /// Bytes of the body sent.
        sent: usize,
    },
    /// A gRPC call to `path` whose message declares `declared` bytes in its length prefix,
    /// of which `sent` are sent, then nothing.
    Grpc {
        /// The method.
        path: &'static str,
        /// The length in the message's prefix.
        declared: usize,
        /// Bytes of the message sent.
        sent: usize,
    },
    /// The HTTP/2 preface and SETTINGS, nothing more; on the gateway's and the gRPC port in
    /// turn.
    Greeting,
    /// A request begun and never finished, on the gateway's and the gRPC port in turn: an
    /// HTTP/1.1 head declaring a small body, or an HTTP/2 HEADERS frame of an `Ingest` call.
    Begun,
    /// An HTTP/1.1 ingest declaring `declared` bytes, over the body limit, and sending all
    /// of them while waiting for the answer.
    Oversized {
        /// The declared `content-length`, and the bytes sent.
        declared: usize,
    },
}

const MIB: usize = 1 << 20;
const KIB: usize = 1 << 10;

/// The unary ingest method.
pub const INGEST: &str = "/diplom.v1.IngestService/Ingest";
/// The health service's `Check`.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// Every attack, in the order the suite runs them.
pub const ATTACKS: [Attack; 7] = [
    Attack {
        name: "declared-bodies",
        what: "HTTP/1.1 ingests declaring 1 MiB bodies on as many connections as the address \
               may open, then a byte of the body every half second",
        slots: Slots::Connections { beyond: 0 },
        how: How::Trickle {
            declared: MIB,
            every: Duration::from_millis(500),
        },
    },
    Attack {
        name: "slow-bodies",
        what: "HTTP/1.1 ingests of 1 MiB sent but for their last KiB, then stalled: as many \
               as the address's share holds, and 8 more",
        slots: Slots::Share {
            each: MIB - KIB,
            beyond: 8,
        },
        how: How::Stall {
            declared: MIB,
            sent: MIB - KIB,
        },
    },
    Attack {
        name: "grpc-partial",
        what: "gRPC Ingest calls declaring a 10 MiB message and sending 9 MiB of it, then \
               stalled: as many as the address's share holds, and 2 more",
        slots: Slots::Share {
            each: 9 * MIB,
            beyond: 2,
        },
        how: How::Grpc {
            path: INGEST,
            declared: 10 * MIB,
            sent: 9 * MIB,
        },
    },
    Attack {
        name: "grpc-health",
        what: "gRPC health checks declaring a 4 MiB message, 8 at a time, again as each is \
               refused",
        slots: Slots::Fixed(8),
        how: How::Grpc {
            path: HEALTH_CHECK,
            declared: 4 * MIB,
            sent: 16,
        },
    },
    Attack {
        name: "greeting-only",
        what: "connections sending only the HTTP/2 preface and settings, as many as the \
               address may open, on both ports, reopened as they are closed",
        slots: Slots::Connections { beyond: 0 },
        how: How::Greeting,
    },
    Attack {
        name: "connection-flood",
        what: "connections each with a request begun and never finished, on both ports, 64 \
               more than the address may open, reopened as they are closed",
        slots: Slots::Connections { beyond: 64 },
        how: How::Begun,
    },
    Attack {
        name: "early-refusals",
        what: "HTTP/1.1 ingests declaring 20 MB bodies (over the 1 MiB limit) and sending \
               them, 8 at a time, again as each is answered",
        slots: Slots::Fixed(8),
        how: How::Oversized {
            declared: 20_000_000,
        },
    },
];

/// The attack named `name`.
pub fn named(name: &str) -> Option<&'static Attack> {
    ATTACKS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::{ATTACKS, ClientLimits, Slots};

    /// The attacks are the catalogue's, in its order: the report finds each by that name.
    #[test]
    fn the_attacks_are_the_catalogues() {
        let names = ATTACKS.map(|a| a.name);
        assert_eq!(names, study::cases::ATTACKS);
    }

    /// The share and the cap an attack is aimed at are the system's defaults: the suite
    /// runs the system with them, and the RSS bound counts the connections of one address.
    #[test]
    fn the_limits_aimed_at_are_the_systems_defaults() {
        let defaults = system::clients::ClientLimits::default();
        assert_eq!(
            defaults.connections as u64,
            study::targets::CLIENT_CONNECTIONS
        );
        let limits = ClientLimits {
            connections: defaults.connections,
            memory: defaults.memory,
        };
        assert_eq!(
            Slots::Connections { beyond: 64 }.count(limits),
            defaults.connections + 64
        );
        // Each holds a little less than 1 MiB: one more than the share's MiB fills it.
        let share = Slots::Share {
            each: (1 << 20) - 1024,
            beyond: 0,
        };
        assert_eq!(share.count(limits), (defaults.memory >> 20) + 1);
    }
}
