//! Exact allocation counts: a global allocator that counts, per thread, how many
//! allocations (reallocations included) and how many bytes were requested. A binary opts in
//! with `#[global_allocator] static A: harness::alloc::Counting = harness::alloc::Counting;`.
//! Counting per thread keeps single-threaded measurements exact while other threads run.
//! [`sites`] adds where the allocations come from.

pub mod sites;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

/// The counting allocator (forwards to the system allocator).
#[derive(Debug, Clone, Copy)]
pub struct Counting;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn record(bytes: usize) {
    let _ = COUNT.try_with(|n| n.set(n.get() + 1));
    let _ = BYTES.try_with(|n| n.set(n.get() + bytes as u64));
    sites::hook(bytes);
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialized thread-locals, which never allocate; recording sites (only inside
// `sites::record`) allocates nothing while it records and guards against re-entry.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations and bytes requested by this thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allocations, reallocations included.
    pub allocations: u64,
    /// Bytes requested by them.
    pub bytes: u64,
}

/// This thread's counts so far (zero unless [`Counting`] is the global allocator).
pub fn current() -> Counts {
    Counts {
        allocations: COUNT.with(Cell::get),
        bytes: BYTES.with(Cell::get),
    }
}

/// What this thread allocated while `f` ran.
pub fn during<R>(f: impl FnOnce() -> R) -> (Counts, R) {
    let before = current();
    let result = f();
    let after = current();
    (
        Counts {
            allocations: after.allocations - before.allocations,
            bytes: after.bytes - before.bytes,
        },
        result,
    )
}
