//! What a server refused to hold, by reason: the counters behind each role's
//! `<role>_refusals_total{reason}` family on `/metrics`, so that an operator sees which
//! limit a client ran into (and how often) without reading logs.
//!
//! Counting is one relaxed atomic addition where the refusal happens; nothing is counted
//! on the paths that accept.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::budget::Exhausted;

/// Why a connection or a request was refused or cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A new connection was closed at once: its client address already held
    /// `MAX_CONNECTIONS_PER_CLIENT` open.
    ClientConnections,
    /// A connection was closed without a request: it sent nothing in time, only the
    /// HTTP/2 preface, or did not finish its TLS handshake.
    FirstRequest,
    /// Bytes did not fit the process's `MEMORY_BUDGET`.
    MemoryBudget,
    /// Bytes did not fit the client address's share of it (`MEMORY_PER_CLIENT`).
    ClientMemory,
    /// A request body or a gRPC message did not arrive within its deadline.
    BodyTimeout,
    /// A stream carried nothing for the idle time and was closed.
    StreamIdle,
    /// A body or message over its size limit.
    TooLarge,
    /// A token is wanted and the request did not carry it.
    Unauthenticated,
}

impl Refusal {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [Refusal; 8] = [
        Refusal::ClientConnections,
        Refusal::FirstRequest,
        Refusal::MemoryBudget,
        Refusal::ClientMemory,
        Refusal::BodyTimeout,
        Refusal::StreamIdle,
        Refusal::TooLarge,
        Refusal::Unauthenticated,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::ClientConnections => "client_connections",
            Refusal::FirstRequest => "first_request",
            Refusal::MemoryBudget => "memory_budget",
            Refusal::ClientMemory => "client_memory",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::StreamIdle => "stream_idle",
            Refusal::TooLarge => "too_large",
            Refusal::Unauthenticated => "unauthenticated",
        }
    }

    /// The refusal of a charge that did not fit: the client's share or the process budget.
    pub fn of(exhausted: &Exhausted) -> Refusal {
        if exhausted.setting == crate::domain::budget::MEMORY_PER_CLIENT {
            Refusal::ClientMemory
        } else {
            Refusal::MemoryBudget
        }
    }
}

/// Refusals of one server (or of the servers of one role), by reason.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; Refusal::ALL.len()],
}

impl Refusals {
    /// Counts one refusal.
    pub fn count(&self, refusal: Refusal) {
        self.counts[refusal as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals for `refusal` since start.
    pub fn get(&self, refusal: Refusal) -> u64 {
        self.counts[refusal as usize].load(Ordering::Relaxed)
    }

    /// Every reason with its count, for `/metrics` and status pages.
    pub(crate) fn snapshot(&self) -> [(Refusal, u64); Refusal::ALL.len()] {
        Refusal::ALL.map(|refusal| (refusal, self.get(refusal)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_label() {
        let refusals = Refusals::default();
        for (i, refusal) in Refusal::ALL.into_iter().enumerate() {
            assert_eq!(refusal as usize, i, "ALL is in declaration order");
            for _ in 0..=i {
                refusals.count(refusal);
            }
        }
        let labels: std::collections::HashSet<_> = Refusal::ALL.map(Refusal::label).into();
        assert_eq!(labels.len(), Refusal::ALL.len());
        for (i, (refusal, count)) in refusals.snapshot().into_iter().enumerate() {
            assert_eq!((refusal, count), (Refusal::ALL[i], i as u64 + 1));
        }
    }
}
