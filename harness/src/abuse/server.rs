//! The `system` process the attacks are aimed at: every role in one process with its
//! defaults, on ports the OS chose (pinned to a core when asked), and what it tells about
//! itself: its limits and the bytes it holds (`/api/v1/status`), its refusals by reason
//! (the gateway's and the gRPC server's `<role>_refusals_total` on the gateway's
//! `/metrics`, which shows both roles of the process; the status page has the gateway's
//! alone), and its resident memory, sampled on a thread of its own while an attack runs.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use launch::servers;
use system::config::names;

use super::{Options, attacks::ClientLimits};
use crate::{
    load::usage::rss_bytes,
    process::{Server, pinned},
    system_load::{get_json, get_text},
};

/// How long a reading of the status page or the metrics may take.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How often resident memory is sampled during an attack.
const RSS_EVERY: Duration = Duration::from_millis(50);
/// How often the bytes in flight are read from the status page during an attack.
const BUDGET_EVERY: Duration = Duration::from_millis(250);

/// The running system.
pub(crate) struct System {
    server: Server,
    pub(crate) gateway: SocketAddr,
    pub(crate) grpc: SocketAddr,
    /// `MEMORY_BUDGET`, in bytes.
    pub(crate) budget: u64,
    /// What one client address may hold.
    pub(crate) limits: ClientLimits,
}

impl System {
    /// Starts the system with its defaults and reads its limits.
    pub(crate) fn start(options: &Options) -> anyhow::Result<System> {
        let mut command = pinned(
            options.server_core.as_deref(),
            &options.system.to_string_lossy(),
        );
        command.envs([
            (names::API_PORT, "0"),
            (names::GRPC_PORT, "0"),
            (names::PROCESSOR_PORT, "0"),
            (names::RUST_LOG, "warn,system=info"),
        ]);
        let server = Server::start(
            command,
            &[servers::PROCESSOR, servers::GATEWAY, servers::GRPC],
        )?;
        let addr = |role: &str| -> anyhow::Result<SocketAddr> {
            let addr = server.addr(role);
            addr.parse()
                .with_context(|| format!("the {role} address {addr:?}"))
        };
        let (gateway, grpc) = (addr(servers::GATEWAY)?, addr(servers::GRPC)?);
        let status = get_json(&gateway.to_string(), "/api/v1/status", READ_TIMEOUT)
            .context("the gateway's /api/v1/status")?;
        let number = |value: &serde_json::Value, what: &str| {
            value
                .as_u64()
                .with_context(|| format!("{what} in the gateway's /api/v1/status"))
        };
        let gateway_status = &status["gateway"];
        Ok(System {
            budget: number(
                &gateway_status["memoryBudget"]["limit"],
                "memoryBudget.limit",
            )?,
            limits: ClientLimits {
                connections: number(
                    &gateway_status["clients"]["maxConnectionsEach"],
                    "clients.maxConnectionsEach",
                )? as usize,
                memory: number(
                    &gateway_status["clients"]["memoryEach"],
                    "clients.memoryEach",
                )? as usize,
            },
            server,
            gateway,
            grpc,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Resident memory now, in bytes.
    pub(crate) fn rss(&self) -> Option<u64> {
        rss_bytes(self.pid()).ok()
    }

    /// The status page's `gateway` object.
    fn status(&self) -> Option<serde_json::Value> {
        let status = get_json(&self.gateway.to_string(), "/api/v1/status", READ_TIMEOUT)?;
        Some(status["gateway"].clone())
    }

    /// Refusals since start by reason, the gateway's and the gRPC server's together.
    pub(crate) fn refusals(&self) -> Option<BTreeMap<String, u64>> {
        let text = get_text(&self.gateway.to_string(), "/metrics", READ_TIMEOUT)?;
        Some(refusal_counts(&text))
    }

    /// Waits (at most `within`) until nothing is held in flight and no client address but
    /// the asking one has a connection open: the last attack's connections are gone.
    /// Whether it came to that.
    pub(crate) fn settle(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let quiet = self.status().is_some_and(|s| {
                s["memoryBudget"]["used"].as_u64() == Some(0)
                    && s["clients"]["open"].as_u64() <= Some(1)
            });
            if quiet || Instant::now() >= deadline {
                return quiet;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after a bound).
    pub(crate) fn stop(&mut self) {
        self.server.stop();
    }
}

/// The sum over roles of `<role>_refusals_total{reason="..."}` in a `/metrics` text, by
/// reason.
fn refusal_counts(metrics: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once("_refusals_total{reason=\"") else {
            continue;
        };
        let Some((reason, value)) = rest.split_once("\"}") else {
            continue;
        };
        if matches!(name, "gateway" | "grpc")
            && let Ok(value) = value.trim().parse::<f64>()
        {
            *counts.entry(reason.to_owned()).or_default() += value as u64;
        }
    }
    counts
}

/// The peaks of what the process held while an attack ran: resident memory (every
/// [`RSS_EVERY`]) and bytes in flight (every [`BUDGET_EVERY`]), each on a thread of its own.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    rss: Arc<AtomicU64>,
    used: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// What a [`Sampler`] found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peaks {
    /// Largest resident memory, in bytes.
    pub(crate) rss: u64,
    /// Largest `memoryBudget.used` the status page showed, in bytes.
    pub(crate) used: u64,
}

impl Sampler {
    pub(crate) fn start(system: &System) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (rss, used) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let pid = system.pid();
        let gateway = system.gateway.to_string();
        let every =
            |period: Duration, peak: &Arc<AtomicU64>, read: Box<dyn Fn() -> Option<u64> + Send>| {
                let (stop, peak) = (Arc::clone(&stop), Arc::clone(peak));
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let next = Instant::now() + period;
                        if let Some(value) = read() {
                            peak.fetch_max(value, Ordering::Relaxed);
                        }
                        thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                })
            };
        let threads = vec![
            every(RSS_EVERY, &rss, Box::new(move || rss_bytes(pid).ok())),
            every(
                BUDGET_EVERY,
                &used,
                Box::new(move || {
                    let status = get_json(&gateway, "/api/v1/status", READ_TIMEOUT)?;
                    status["gateway"]["memoryBudget"]["used"].as_u64()
                }),
            ),
        ];
        Sampler {
            stop,
            rss,
            used,
            threads,
        }
    }

    pub(crate) fn stop(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        Peaks {
            rss: self.rss.load(Ordering::Relaxed),
            used: self.used.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refusal_counts;

    #[test]
    fn refusals_of_the_front_doors_are_summed_by_reason() {
        let text = "# HELP gateway_refusals_total ...\n\
                    gateway_refusals_total{reason=\"client_memory\"} 3\n\
                    grpc_refusals_total{reason=\"client_memory\"} 2\n\
                    grpc_refusals_total{reason=\"too_large\"} 7\n\
                    processor_refusals_total{reason=\"too_large\"} 100\n\
                    gateway_requests_total 5\n";
        let counts = refusal_counts(text);
        assert_eq!(counts["client_memory"], 5);
        assert_eq!(counts["too_large"], 7);
        assert_eq!(counts.len(), 2);
    }
}
