//! What one door's traffic recorded: answers by kind (and whether the contract documents
//! each for its request), latency by minute, how late requests went out, the parts of the
//! contract seen to behave or not, and the ledger of accepted messages.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

use super::{
    ledger::Accepted,
    mix::{Answer, Door, Kind},
};

/// How often a part of the contract was seen to behave, out of the chances it had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Times it behaved.
    pub yes: u64,
    /// Times it could have.
    pub of: u64,
}

impl Count {
    pub(crate) fn add(&mut self, yes: bool) {
        self.yes += u64::from(yes);
        self.of += 1;
    }
}

/// The parts of the contract the soak watches beside its criteria.
#[derive(Debug, Clone, Default)]
pub(crate) struct Contract {
    /// 202s to a message under our id that named that id.
    pub(crate) id_kept: Count,
    /// Retries (the second send of a retried message) answered `duplicate`.
    pub(crate) retry_duplicate: Count,
    /// Invalid messages refused with 400 / `INVALID_ARGUMENT`.
    pub(crate) invalid_refused: Count,
    /// Oversized requests refused with 413 / `RESOURCE_EXHAUSTED`.
    pub(crate) oversized_refused: Count,
    /// 503s with `Retry-After`.
    pub(crate) retry_after: Count,
    /// HTTP errors whose body is the JSON `{"error": ...}`.
    pub(crate) json_error: Count,
}

/// The tally of one kind of answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tallied {
    pub(crate) count: u64,
    pub(crate) documented: bool,
}

/// What one door recorded.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) door: Door,
    /// Requests sent, retries and settling sends included.
    pub(crate) requests: u64,
    /// Answers by key (see [`Answer::key`]); an answer the contract does not document for
    /// its request's kind is keyed `<answer> to <kind>`.
    pub(crate) answers: BTreeMap<String, Tallied>,
    /// Latency of the 202 / OK answers, in µs, by minute of the run (of the due time).
    pub(crate) minutes: Vec<Histogram<u64>>,
    /// How late requests were sent after they were due, in µs.
    pub(crate) late: Histogram<u64>,
    pub(crate) contract: Contract,
    pub(crate) accepted: Accepted,
    /// Messages whose answers never settled whether they were stored.
    pub(crate) unsettled: u64,
    /// Requests due that were not sent by the end of the run: the generator fell behind.
    pub(crate) unsent: u64,
    /// The seconds the open loop ran (its last answer included).
    pub(crate) seconds: f64,
}

impl Tally {
    pub(crate) fn new(door: Door, keep_ids: bool) -> Tally {
        Tally {
            door,
            requests: 0,
            answers: BTreeMap::new(),
            minutes: Vec::new(),
            late: histogram(),
            contract: Contract::default(),
            accepted: if keep_ids {
                Accepted::keeping_ids()
            } else {
                Accepted::default()
            },
            unsettled: 0,
            unsent: 0,
            seconds: 0.0,
        }
    }

    /// Tallies one answer to a request of `kind`, which took `latency` from when it was due
    /// (or sent, for a retry) in `minute` of the run; `retry` marks the second send of a
    /// retried message.
    pub(crate) fn record(
        &mut self,
        kind: Kind,
        answer: &Answer,
        minute: usize,
        latency: Duration,
        retry: bool,
    ) {
        self.requests += 1;
        let documented = answer.documented(kind);
        let key = if documented {
            answer.key()
        } else {
            format!("{} to {}", answer.key(), kind.as_str())
        };
        let entry = self.answers.entry(key).or_default();
        entry.count += 1;
        entry.documented = documented;
        if let Answer::Stored { .. } = answer {
            while self.minutes.len() <= minute {
                self.minutes.push(histogram());
            }
            let micros = latency.as_micros() as u64;
            self.minutes[minute].saturating_record(micros.max(1));
        }
        let contract = &mut self.contract;
        if retry {
            contract.retry_duplicate.add(matches!(
                answer,
                Answer::Stored {
                    duplicate: true,
                    ..
                }
            ));
        }
        // Whether an invalid or oversized request was refused as the contract says; an
        // answer of load (503, 502, ...) is no verdict on that.
        let load = matches!(
            answer,
            Answer::Http {
                status: 408 | 502 | 503,
                ..
            } | Answer::Grpc(tonic::Code::Unavailable)
                | Answer::Timeout
                | Answer::Io
        );
        match kind {
            Kind::Invalid if !load => contract.invalid_refused.add(matches!(
                answer,
                Answer::Http { status: 400, .. } | Answer::Grpc(tonic::Code::InvalidArgument)
            )),
            Kind::Oversized if !load => contract.oversized_refused.add(matches!(
                answer,
                Answer::Http { status: 413, .. } | Answer::Grpc(tonic::Code::ResourceExhausted)
            )),
            _ => {}
        }
        if let Answer::Http {
            status,
            retry_after,
            json_error,
        } = answer
        {
            contract.json_error.add(*json_error);
            if *status == 503 {
                contract.retry_after.add(*retry_after);
            }
        }
    }

    /// Answers outside the documented kinds.
    pub(crate) fn undocumented(&self) -> u64 {
        self.answers
            .values()
            .filter(|t| !t.documented)
            .map(|t| t.count)
            .sum()
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // One µs to one hour at two significant digits: small, and enough for a p99.
    Histogram::new_with_bounds(1, 3_600_000_000, 2).unwrap_or_else(|_| unreachable!())
}
