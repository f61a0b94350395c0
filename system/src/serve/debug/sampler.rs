//! The CPU sampler behind the profile endpoint. While a [`Sampler`] runs, the kernel sends
//! the process SIGPROF for every interval of CPU time it uses (`setitimer(ITIMER_PROF)`),
//! and the handler records the stack of the thread it interrupted into a buffer made for
//! this profile alone. [`Sampler::finish`] counts the stacks and resolves them to names.
//!
//! Invariant: a profile leaves the process the size it was. The buffer, the names and the
//! debug information read to find them are all freed when the profile is answered, and the
//! allocator is asked to return the pages ([`give_back_memory`]). pprof-rs's own sampler
//! cannot do this: it keeps a table of stacks of tens of MiB in a static for the life of
//! the process, and the `backtrace` crate keeps every binary's debug information it has
//! read; together they held hundreds of MiB for good after a profile or two.
//!
//! The handler runs in signal context: it allocates nothing, takes no lock, and only
//! writes atomics of a buffer sized before the timer starts. A full buffer drops samples.
//! As in pprof-rs, a sample taken inside a blocklisted library (libc, the unwinder) is
//! left out, because unwinding from there in a signal handler is not safe.

use std::{
    collections::HashMap,
    ffi::{c_int, c_void},
    io,
    path::Path,
    ptr,
    sync::{
        Arc,
        atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::debug::sampler";

/// Frames kept of one stack, as many as pprof-rs keeps.
const DEPTH: usize = 128;
/// Most samples one profile holds (35 MiB): five minutes of one busy core at 99 Hz.
const MAX_SAMPLES: usize = 1 << 15;

/// Why sampling could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// Another sampler of this process is running.
    #[error("a profile is already being taken")]
    Busy,
    /// The signal handler or the timer could not be set up.
    #[error("{0}")]
    Os(#[from] io::Error),
}

/// The buffer of the running sampler, or null. Set only by [`Sampler::start`], which
/// makes one sampler at a time; read by the signal handler.
static ACTIVE: AtomicPtr<Buffer> = AtomicPtr::new(ptr::null_mut());
/// Signal handlers between their look at [`ACTIVE`] and their last write to the buffer;
/// a stopping sampler waits for zero before it lets its buffer go.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// A running profile. Dropping it stops the sampling.
pub(crate) struct Sampler {
    buffer: Arc<Buffer>,
    frequency: i32,
    started: SystemTime,
    started_at: Instant,
    stopped: bool,
}

impl Sampler {
    /// Starts sampling at `frequency` Hz of CPU time, with room for `seconds` of every
    /// core busy. Samples whose interrupted code lies in a library whose path contains
    /// one of `blocklist` are left out.
    pub(crate) fn start(
        frequency: i32,
        seconds: u64,
        blocklist: &[&str],
    ) -> Result<Sampler, StartError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let per_second = usize::try_from(frequency.max(1)).unwrap_or(1);
        let capacity = usize::try_from(seconds)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .saturating_mul(per_second)
            .saturating_mul(cores)
            .min(MAX_SAMPLES);
        let buffer = Arc::new(Buffer::new(capacity, blocked_ranges(blocklist)?));
        ACTIVE
            .compare_exchange(
                ptr::null_mut(),
                Arc::as_ptr(&buffer).cast_mut(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .map_err(|_| StartError::Busy)?;
        // From here on, dropping the sampler undoes whatever was set up.
        let sampler = Sampler {
            buffer,
            frequency,
            started: SystemTime::now(),
            started_at: Instant::now(),
            stopped: false,
        };
        set_handler(on_sigprof as *const () as libc::sighandler_t)?;
        set_timer(Duration::from_secs(1) / frequency.unsigned_abs().max(1))?;
        Ok(sampler)
    }

    /// Stops sampling and returns what was recorded, resolved to names. The debug
    /// information read for the names is dropped again before this returns.
    pub(crate) fn finish(mut self) -> pprof::Report {
        self.stop();
        let duration = self.started_at.elapsed();
        let stacks = self.buffer.stacks();
        let dropped = self.buffer.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(target: LOG_TARGET, "the profile was full: {dropped} samples were left out");
        }
        let data = resolve(stacks, self.started);
        backtrace::clear_symbol_cache();
        let mut report = pprof::Report {
            data,
            timing: Default::default(),
        };
        report.timing.frequency = self.frequency;
        report.timing.start_time = self.started;
        report.timing.duration = duration;
        report
    }

    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // The timer first, then the handler: a signal already on its way is ignored rather
        // than left to its default action, which ends the process.
        if let Err(err) = set_timer(Duration::ZERO) {
            tracing::error!(target: LOG_TARGET, "cannot stop the profiling timer: {err}");
        }
        if let Err(err) = set_handler(libc::SIG_IGN) {
            tracing::error!(target: LOG_TARGET, "cannot remove the profiling signal handler: {err}");
        }
        ACTIVE.store(ptr::null_mut(), Ordering::SeqCst);
        while IN_HANDLER.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks the allocator to return the free pages at the ends and in the middle of its heaps
/// to the system. glibc keeps them otherwise, and a profile frees hundreds of MiB at once.
pub(crate) fn give_back_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only inspects and releases the allocator's free memory.
    unsafe {
        libc::malloc_trim(0)
    };
}

/// Where the samples of one profile go: `DEPTH` return addresses per sample, then what
/// the sample says about its thread.
struct Buffer {
    addresses: Box<[AtomicUsize]>,
    samples: Box<[Sample]>,
    /// Samples claimed so far; those past the end were dropped.
    claimed: AtomicUsize,
    dropped: AtomicUsize,
    /// Address ranges of the blocklisted libraries.
    blocked: Vec<(usize, usize)>,
}

#[derive(Default)]
struct Sample {
    /// Frames recorded; written last, so a reader that sees it sees the frames.
    depth: AtomicUsize,
    thread_id: AtomicU64,
    /// The thread's name, up to 16 bytes with its terminating zero, in two words.
    thread_name: [AtomicU64; 2],
}

impl Buffer {
    fn new(capacity: usize, blocked: Vec<(usize, usize)>) -> Buffer {
        Buffer {
            addresses: (0..capacity * DEPTH).map(|_| AtomicUsize::new(0)).collect(),
            samples: (0..capacity).map(|_| Sample::default()).collect(),
            claimed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            blocked,
        }
    }

    /// Records the stack of the interrupted thread. Runs in the signal handler: no
    /// allocation, no lock, no panic.
    fn record(&self, interrupted: Option<usize>) {
        if interrupted.is_some_and(|pc| self.blocked.iter().any(|&(s, e)| (s..e).contains(&pc))) {
            return;
        }
        let index = self.claimed.fetch_add(1, Ordering::Relaxed);
        let (Some(sample), Some(addresses)) = (
            self.samples.get(index),
            self.addresses.get(index * DEPTH..(index + 1) * DEPTH),
        ) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // The walk begins in this handler; the interrupted frame is where the stack of
        // interest starts. Without its address every frame is kept.
        let mut reached = interrupted.is_none();
        let mut depth = 0;
        // SAFETY: the unsynchronized walk takes no lock, which a signal handler must not;
        // the walk is the one pprof-rs makes from its handler, kept out of the libraries
        // where it is unsafe by the blocklist above.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                let ip = frame.ip() as usize;
                reached = reached || Some(ip) == interrupted;
                if reached && let Some(slot) = addresses.get(depth) {
                    slot.store(ip, Ordering::Relaxed);
                    depth += 1;
                }
                depth < DEPTH
            });
        }
        let (id, name) = this_thread();
        sample.thread_id.store(id, Ordering::Relaxed);
        sample.thread_name[0].store(name[0], Ordering::Relaxed);
        sample.thread_name[1].store(name[1], Ordering::Relaxed);
        sample.depth.store(depth, Ordering::Release);
    }

    /// Each distinct stack recorded, with its thread and the number of samples.
    fn stacks(&self) -> HashMap<Stack, isize> {
        let recorded = self.claimed.load(Ordering::Acquire).min(self.samples.len());
        let mut stacks = HashMap::new();
        for (index, sample) in self.samples[..recorded].iter().enumerate() {
            let depth = sample.depth.load(Ordering::Acquire);
            if depth == 0 {
                continue;
            }
            let addresses = self.addresses[index * DEPTH..index * DEPTH + depth]
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .collect();
            let name = [
                sample.thread_name[0].load(Ordering::Relaxed),
                sample.thread_name[1].load(Ordering::Relaxed),
            ];
            let stack = Stack {
                thread_id: sample.thread_id.load(Ordering::Relaxed),
                thread_name: name,
                addresses,
            };
            *stacks.entry(stack).or_insert(0) += 1;
        }
        stacks
    }
}

/// A recorded stack, innermost frame first, and the thread it was recorded on.
#[derive(PartialEq, Eq, Hash)]
struct Stack {
    thread_id: u64,
    thread_name: [u64; 2],
    addresses: Vec<usize>,
}

/// Resolves every address once and turns the stacks into pprof-rs's report entries.
fn resolve(stacks: HashMap<Stack, isize>, started: SystemTime) -> HashMap<pprof::Frames, isize> {
    let mut names: HashMap<usize, Vec<pprof::Symbol>> = HashMap::new();
    let mut data = HashMap::new();
    for (stack, count) in stacks {
        let frames = stack
            .addresses
            .iter()
            .map(|&address| {
                names
                    .entry(address)
                    .or_insert_with(|| symbols(address))
                    .clone()
            })
            .filter(|symbols| !symbols.is_empty())
            .collect();
        let name_bytes: Vec<u8> = stack
            .thread_name
            .iter()
            .flat_map(|word| word.to_ne_bytes())
            .take_while(|&b| b != 0)
            .collect();
        let frames = pprof::Frames {
            frames,
            thread_name: String::from_utf8_lossy(&name_bytes).into_owned(),
            thread_id: stack.thread_id,
            // pprof-rs tells samples apart by their time too; one time for all lets the
            // same stack be counted as one.
            sample_timestamp: started,
        };
        *data.entry(frames).or_insert(0) += count;
    }
    data
}

/// The functions at `address`, innermost first (more than one where code was inlined).
fn symbols(address: usize) -> Vec<pprof::Symbol> {
    let mut found = Vec::new();
    backtrace::resolve(address as *mut c_void, |symbol| {
        found.push(pprof::Symbol {
            name: symbol.name().map(|name| name.as_bytes().to_vec()),
            addr: symbol.addr(),
            lineno: symbol.lineno(),
            filename: symbol.filename().map(Path::to_path_buf),
        });
    });
    found
}

/// Address ranges of the mapped files whose path contains one of `blocklist`.
fn blocked_ranges(blocklist: &[&str]) -> io::Result<Vec<(usize, usize)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    Ok(maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            // After the range: permissions, offset, device, inode, path.
            let path = fields.nth(4)?;
            if !blocklist.iter().any(|blocked| path.contains(blocked)) {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect())
}

extern "C" fn on_sigprof(_signal: c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: errno is this thread's; the handler puts back what the interrupted code saw.
    let errno = unsafe { *libc::__errno_location() };
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let buffer = ACTIVE.load(Ordering::SeqCst);
    if !buffer.is_null() {
        // SAFETY: the sampler that published the buffer keeps it alive until it has taken
        // it back from ACTIVE and seen IN_HANDLER at zero, which this handler holds above.
        let buffer = unsafe { &*buffer };
        buffer.record(interrupted_pc(context));
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The address the signal interrupted, from the context the kernel passes the handler.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn interrupted_pc(context: *mut c_void) -> Option<usize> {
    let context = context.cast::<libc::ucontext_t>();
    if context.is_null() {
        return None;
    }
    // SAFETY: an SA_SIGINFO handler's third argument is the interrupted ucontext_t.
    let mcontext = unsafe { &(*context).uc_mcontext };
    #[cfg(target_arch = "x86_64")]
    let pc = mcontext.gregs[libc::REG_RIP as usize] as usize;
    #[cfg(target_arch = "aarch64")]
    let pc = mcontext.pc as usize;
    Some(pc)
}

/// Other processors: the address is not read, the blocklist not applied, and the stack
/// is kept from the handler on.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn interrupted_pc(_context: *mut c_void) -> Option<usize> {
    None
}

/// The calling thread's id and name, by system calls alone (safe in a signal handler).
fn this_thread() -> (u64, [u64; 2]) {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, the name and its terminating zero.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    // SAFETY: gettid has no arguments and cannot fail.
    let id = unsafe { libc::syscall(libc::SYS_gettid) };
    let (low, high) = name.split_at(8);
    let word = |bytes: &[u8]| u64::from_ne_bytes(bytes.try_into().unwrap_or_default());
    (u64::try_from(id).unwrap_or(0), [word(low), word(high)])
}

/// Installs `handler` for SIGPROF.
fn set_handler(handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value, filled in below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    // Restarting interrupted system calls keeps the profiled code unaware of the signals.
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: the pointers are to live values of the types the calls expect.
    let result = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGPROF, &action, ptr::null_mut())
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends SIGPROF every `interval` of the process's CPU time; zero stops it.
fn set_timer(interval: Duration) -> io::Result<()> {
    let interval = libc::timeval {
        tv_sec: interval.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_usec: interval.subsec_micros().into(),
    };
    let timer = libc::itimerval {
        it_interval: interval,
        it_value: interval,
    };
    // SAFETY: the pointer is to a live itimerval; the old value is not asked for.
    let result = unsafe { libc::setitimer(libc::ITIMER_PROF, &timer, ptr::null_mut()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::Ordering,
        time::{Duration, Instant},
    };

    use super::Sampler;

    #[inline(never)]
    fn spin_for_the_sampler(rounds: u64) -> u64 {
        (0..rounds).fold(0u64, |acc, n| {
            std::hint::black_box(acc.wrapping_mul(31) ^ n)
        })
    }

    /// A thread that spins is found by name in the samples, which begin at the code the
    /// signal interrupted: none holds the handler's own frames.
    #[test]
    fn samples_name_the_busy_code_and_not_the_handler() {
        let sampler = Sampler::start(99, 1, &super::super::BLOCKLIST).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while sampler.buffer.claimed.load(Ordering::Relaxed) < 20 && Instant::now() < deadline {
            spin_for_the_sampler(1_000_000);
        }
        let report = sampler.finish();
        let names: Vec<Vec<String>> = report
            .data
            .keys()
            .map(|frames| frames.frames.iter().flatten().map(|s| s.name()).collect())
            .collect();
        assert!(
            names
                .iter()
                .any(|stack| stack.iter().any(|n| n.contains("spin_for_the_sampler"))),
            "{names:#?}"
        );
        for stack in &names {
            assert!(
                !stack
                    .iter()
                    .any(|n| n.contains("on_sigprof") || n.contains("trace_unsynchronized")),
                "{stack:#?}"
            );
        }
    }
}
