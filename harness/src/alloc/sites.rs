//! Allocation sites: while [`record`] runs a closure, every allocation of this thread keeps
//! the return addresses of its stack (a fixed depth, captured without allocating into room
//! reserved up front), and afterwards the addresses are resolved and grouped by the first
//! frame outside the allocator and the standard library: where the program asked for
//! memory. This is the per-site view of a heap profiler, exact for one thread.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
};

/// Return addresses kept per allocation.
const DEPTH: usize = 64;
/// Allocations recorded at most by one [`record`] call; later ones are counted as dropped.
const CAPACITY: usize = 100_000;

struct Sample {
    ips: [usize; DEPTH],
    depth: usize,
    bytes: usize,
}

thread_local! {
    /// Set while [`record`] runs on this thread.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    static SAMPLES: RefCell<Option<Vec<Sample>>> = const { RefCell::new(None) };
    static DROPPED: Cell<u64> = const { Cell::new(0) };
    /// Set while this thread is inside the hook, so that anything the hook itself
    /// allocates is neither recorded nor recursed into.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Called by the counting allocator for every allocation of `bytes`.
pub(super) fn hook(bytes: usize) {
    if !RECORDING.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    let Ok(false) = IN_HOOK.try_with(Cell::get) else {
        return;
    };
    IN_HOOK.with(|h| h.set(true));
    let _ = SAMPLES.try_with(|samples| {
        let Ok(mut samples) = samples.try_borrow_mut() else {
            return;
        };
        let Some(samples) = samples.as_mut() else {
            return;
        };
        if samples.len() == samples.capacity() {
            DROPPED.with(|d| d.set(d.get() + 1));
            return;
        }
        let mut sample = Sample {
            ips: [0; DEPTH],
            depth: 0,
            bytes,
        };
        // SAFETY: only this thread's stack is walked, and nothing else on this thread
        // walks a stack meanwhile (callers keep CPU profilers off while recording).
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                sample.ips[sample.depth] = frame.ip() as usize;
                sample.depth += 1;
                sample.depth < DEPTH
            });
        }
        samples.push(sample);
    });
    IN_HOOK.with(|h| h.set(false));
}

/// One allocation site and what was allocated there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Site {
    /// The first function outside the allocator and the standard library.
    pub function: String,
    /// Its callers, nearest first (up to three), for context.
    pub callers: Vec<String>,
    /// Allocations (reallocations included) made there.
    pub allocations: u64,
    /// Bytes requested by them.
    pub bytes: u64,
}

/// Runs `f`, recording where this thread allocates; sites sorted by allocations, most first.
/// Needs [`super::Counting`] as the global allocator (otherwise nothing is recorded).
pub fn record<R>(f: impl FnOnce() -> R) -> (Vec<Site>, R) {
    SAMPLES.with(|s| *s.borrow_mut() = Some(Vec::with_capacity(CAPACITY)));
    DROPPED.with(|d| d.set(0));
    RECORDING.with(|r| r.set(true));
    let result = f();
    RECORDING.with(|r| r.set(false));
    let samples = SAMPLES.with(|s| s.borrow_mut().take()).unwrap_or_default();
    (group(&samples), result)
}

/// Allocations [`record`] could not keep because its room was full.
pub fn dropped() -> u64 {
    DROPPED.with(Cell::get)
}

fn group(samples: &[Sample]) -> Vec<Site> {
    let root = crate::results::workspace_root();
    let root = root.to_string_lossy();
    let mut frames_at: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut sites: BTreeMap<(String, Vec<String>), (u64, u64)> = BTreeMap::new();
    for sample in samples {
        let mut ours = Vec::new();
        for &ip in &sample.ips[..sample.depth] {
            let frames = frames_at.entry(ip).or_insert_with(|| our_frames(ip, &root));
            ours.extend(frames.iter().cloned());
        }
        let mut ours = ours.into_iter();
        // Every allocation is counted somewhere, also one whose kept frames are all
        // library frames (a stack deeper than the frames kept).
        let function = ours
            .next()
            .unwrap_or_else(|| "(library frames only)".to_owned());
        let callers: Vec<String> = ours.take(3).collect();
        let entry = sites.entry((function, callers)).or_default();
        entry.0 += 1;
        entry.1 += sample.bytes as u64;
    }
    let mut out: Vec<Site> = sites
        .into_iter()
        .map(|((function, callers), (allocations, bytes))| Site {
            function,
            callers,
            allocations,
            bytes,
        })
        .collect();
    out.sort_by(|a, b| {
        b.allocations
            .cmp(&a.allocations)
            .then(b.bytes.cmp(&a.bytes))
            .then(a.function.cmp(&b.function))
    });
    out
}

/// The frames at `ip` (innermost, inlined, first) whose source is in this workspace, but
/// not in this allocator or its shims: `name (path:line)` with the path relative to the workspace. The
/// standard library, the crate registry and code without line tables count as the
/// machinery between a request for memory and the allocator.
fn our_frames(ip: usize, root: &str) -> Vec<String> {
    let mut frames = Vec::new();
    backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
        let Some(file) = symbol.filename().map(|f| f.to_string_lossy().into_owned()) else {
            return;
        };
        let Some(relative) = file.strip_prefix(root).map(|r| r.trim_start_matches('/')) else {
            return;
        };
        if relative.starts_with("harness/src/alloc") {
            return;
        }
        let name = symbol
            .name()
            .map(|n| format!("{n:#}"))
            .unwrap_or_else(|| "?".to_owned());
        // The allocator shims are generated where `#[global_allocator]` is declared.
        if name.starts_with("__rustc::") || name.starts_with("__rust_") {
            return;
        }
        let line = symbol.lineno().unwrap_or(0);
        frames.push(format!("{name} ({relative}:{line})"));
    });
    frames
}
