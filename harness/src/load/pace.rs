//! When each request is due. Closed loop: as soon as a slot is free. Open loop: on a fixed
//! schedule (`first + k * interval`), whatever the server did with the previous requests;
//! a request sent late keeps its scheduled time as the start of its latency, which is what
//! corrects coordinated omission. Nothing is due at or after `stop`. Also how the runners
//! wait: on the timer or in the kernel, or by spinning on the runtime for a while.

use std::time::{Duration, Instant};

/// The next request of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send now; the request's latency counts from this instant.
    Now(Instant),
    /// Nothing is due before this instant.
    At(Instant),
    /// The run is over: send nothing more.
    Done,
}

/// The schedule of one connection.
#[derive(Debug, Clone)]
pub struct Pacer {
    open: Option<Schedule>,
    stop: Instant,
}

#[derive(Debug, Clone)]
struct Schedule {
    first: Instant,
    interval_ns: f64,
    sent: u64,
}

impl Pacer {
    /// Closed loop until `stop`.
    pub fn closed(stop: Instant) -> Pacer {
        Pacer { open: None, stop }
    }

    /// Open loop: the first request due at `first`, then one every `interval`, until `stop`.
    pub fn open(first: Instant, interval: Duration, stop: Instant) -> Pacer {
        Pacer {
            open: Some(Schedule {
                first,
                interval_ns: interval.as_nanos() as f64,
                sent: 0,
            }),
            stop,
        }
    }

    /// The next request at `now`; a `Now` answer counts that request as sent.
    pub fn poll(&mut self, now: Instant) -> Due {
        match &mut self.open {
            None if now >= self.stop => Due::Done,
            None => Due::Now(now),
            Some(schedule) => {
                let offset =
                    Duration::from_nanos((schedule.sent as f64 * schedule.interval_ns) as u64);
                let due = schedule.first + offset;
                if due >= self.stop {
                    Due::Done
                } else if due <= now {
                    schedule.sent += 1;
                    Due::Now(due)
                } else {
                    Due::At(due)
                }
            }
        }
    }

    /// Whether nothing more will be due.
    pub fn done(&mut self, now: Instant) -> bool {
        match &self.open {
            None => now >= self.stop,
            Some(schedule) => {
                let offset =
                    Duration::from_nanos((schedule.sent as f64 * schedule.interval_ns) as u64);
                schedule.first + offset >= self.stop
            }
        }
    }

    /// When the run stops sending.
    pub fn stop(&self) -> Instant {
        self.stop
    }
}

/// How long before a due time a precise wait stops sleeping and starts polling the clock.
/// tokio's timer works in whole milliseconds and fires on the first tick after a deadline,
/// which sends an open-loop request up to 1-2 ms late (reported as the send lag).
pub const SPIN_BEFORE: Duration = Duration::from_micros(2_000);

/// Waits until `at` on the timer; with `precise`, sleeps only until [`SPIN_BEFORE`] ahead
/// and then yields to the runtime (other connections keep running) until the clock reaches
/// `at`. Precise waiting burns the generator's CPU, so it only pays when the generator has
/// a core of its own; on a shared core it starves the server it measures.
pub async fn wait_until(at: Instant, precise: bool) {
    if !precise {
        tokio::time::sleep_until(at.into()).await;
        return;
    }
    if let Some(early) = at.checked_sub(SPIN_BEFORE)
        && early > Instant::now()
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Reads what has arrived on `socket` into `buf`, first polling for up to `spin` (yielding
/// to the runtime, which checks for I/O without blocking) and only then sleeping in the
/// kernel. A generator asleep when an answer arrives must be woken, and the server's thread
/// pays for that wake-up with every answer it writes; answers to a batch of requests on
/// loopback mostly arrive within a short spin, so the server rarely has to. A long spin
/// (busy polling) spares the server every wake-up but costs a generator core.
pub async fn read_some(
    socket: &mut tokio::net::TcpStream,
    buf: &mut bytes::BytesMut,
    spin: Duration,
) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    if !spin.is_zero() {
        let started = Instant::now();
        loop {
            match socket.try_read_buf(buf) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if started.elapsed() >= spin {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }
    socket.read_buf(buf).await
}
