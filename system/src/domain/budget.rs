//! The process-wide budget of bytes in flight (`MEMORY_BUDGET`): request bodies being read,
//! messages held by a front door until the processor answers (in batchers and hop
//! requests), and messages waiting in an in-memory queue. Each of them takes a [`Charge`]
//! before it is held and gives it back when it is let go; when a charge does not fit, the
//! new work is refused at once (503 + `Retry-After`, gRPC `RESOURCE_EXHAUSTED`) and nothing
//! already accepted is touched.
//!
//! A budget may have a parent: a charge counts against both (the queue's own byte bound,
//! `QUEUE_BYTES`, inside the process's budget). All roles of one process share one budget.

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

/// The setting that bounds one client's bytes in flight; its name is the `setting` of the
/// client's budget, so a refusal names it.
pub const MEMORY_PER_CLIENT: &str = "MEMORY_PER_CLIENT";

/// The default process budget (`MEMORY_BUDGET`), in bytes.
pub(crate) const DEFAULT_MEMORY_BUDGET: usize = 128 * 1024 * 1024;
/// The default byte bound of an in-memory queue (`QUEUE_BYTES`).
pub(crate) const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// A bound on bytes in flight.
#[derive(Debug)]
pub struct Budget {
    name: &'static str,
    limit: usize,
    used: AtomicUsize,
    refused: AtomicU64,
    parent: Option<Arc<Budget>>,
}

/// Bytes taken from a [`Budget`]; given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

/// A charge that did not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} reached: {used} of {limit} bytes in flight ({setting}); retry later",
    if *setting == MEMORY_PER_CLIENT { "this client's share of the memory budget" } else { "memory budget" }
)]
pub struct Exhausted {
    /// The setting of the budget that was full.
    pub setting: &'static str,
    /// Bytes in flight when the charge was refused.
    pub used: usize,
    /// The budget's limit.
    pub limit: usize,
}

/// Counters of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStats {
    /// Bytes in flight now.
    pub used: u64,
    /// The limit.
    pub limit: u64,
    /// Charges refused since start.
    pub refused: u64,
}

impl Budget {
    /// A budget of `limit` bytes, named after its setting (for the error text).
    pub fn new(setting: &'static str, limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            name: setting,
            limit,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            parent: None,
        })
    }

    /// The default process budget, `MEMORY_BUDGET`.
    pub fn process_default() -> Arc<Budget> {
        Budget::new("MEMORY_BUDGET", DEFAULT_MEMORY_BUDGET)
    }

    /// A budget of `limit` bytes whose charges also count against `parent`.
    pub fn child(parent: &Arc<Budget>, setting: &'static str, limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            name: setting,
            limit,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            parent: Some(Arc::clone(parent)),
        })
    }

    /// Takes `bytes`, or refuses when they do not fit (here or in a parent).
    pub fn try_charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, Exhausted> {
        self.take(bytes)?;
        Ok(Charge {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// A charge of nothing, to grow later.
    pub(crate) fn empty_charge(self: &Arc<Self>) -> Charge {
        Charge {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }

    fn take(&self, bytes: usize) -> Result<(), Exhausted> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            });
        if let Err(used) = taken {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Exhausted {
                setting: self.name,
                used,
                limit: self.limit,
            });
        }
        if let Some(parent) = &self.parent
            && let Err(err) = parent.take(bytes)
        {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(err);
        }
        Ok(())
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        if let Some(parent) = &self.parent {
            parent.give_back(bytes);
        }
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes in flight now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Counters.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            used: self.used() as u64,
            limit: self.limit as u64,
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

impl Charge {
    /// Takes `bytes` more into this charge, or refuses (keeping what it holds).
    pub fn grow(&mut self, bytes: usize) -> Result<(), Exhausted> {
        self.budget.take(bytes)?;
        self.bytes += bytes;
        Ok(())
    }

    /// Gives back `bytes` of what this charge holds (at most all of it).
    pub(crate) fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.budget.give_back(bytes);
    }

    /// Gives back everything but keeps the charge for reuse.
    pub fn release(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.bytes));
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_refused_beyond_the_limit_and_given_back_on_drop() {
        let budget = Budget::new("TEST", 100);
        let a = budget.try_charge(60).unwrap();
        let err = budget.try_charge(41).unwrap_err();
        assert_eq!((err.used, err.limit, err.setting), (60, 100, "TEST"));
        let mut b = budget.try_charge(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert!(b.grow(1).is_err());
        drop(a);
        b.grow(50).unwrap();
        assert_eq!(budget.used(), 90);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.stats().refused, 2);
    }

    #[test]
    fn a_child_charges_its_parent_too() {
        let process = Budget::new("PROCESS", 100);
        let queue = Budget::child(&process, "QUEUE", 50);
        let held = process.try_charge(70).unwrap();
        // Fits the queue's bound but not the process's.
        assert!(queue.try_charge(40).is_err());
        assert_eq!((queue.used(), process.used()), (0, 70));
        let queued = queue.try_charge(30).unwrap();
        assert_eq!(process.used(), 100);
        drop(held);
        assert!(queue.try_charge(21).is_err(), "the queue's own bound");
        drop(queued);
        assert_eq!((queue.used(), process.used()), (0, 0));
    }
}
