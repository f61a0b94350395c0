//! The two phases of a soak, step by step: start the system processes, run the load
//! through both doors while sampling every process each second (and, with NATS, killing
//! the second processor halfway and starting it again), then stop them and learn what was
//! processed, to set beside what was accepted.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use launch::servers;
use system::{config::names, queue::QueueType};

use super::{
    Options, Phase,
    ledger::{self, Ids, Processed},
    mix::Door,
    process::{self, NatsServer, Watched},
    tally::Tally,
    traffic::{self, Plan},
    verdict::{Delivery, PhaseRun, Series},
};
use crate::process::pinned;

/// A processor killed in the NATS phase is started again after this long.
const RESTART_AFTER: Duration = Duration::from_secs(3);
/// The NATS ack wait of the soak: how soon what a killed processor held is delivered again.
const ACK_WAIT_MS: &str = "3000";
/// How long, after the load, the processors get to process what is left.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The `system` command of a role (every role when `None`), pinned when asked.
fn system(options: &Options, role: Option<&str>, nats_url: Option<&str>) -> Command {
    let mut command = pinned(
        options.server_core.as_deref(),
        &options.system.to_string_lossy(),
    );
    command.args(role).envs([
        (names::API_PORT, "0"),
        (names::GRPC_PORT, "0"),
        (names::PROCESSOR_PORT, "0"),
        (names::QUEUE_SIZE, "10000"),
        (names::RUST_LOG, "warn,system=info"),
    ]);
    if let Some(url) = nats_url {
        command.envs([
            (names::QUEUE_TYPE, QueueType::Nats.as_str()),
            (names::NATS_URL, url),
            (names::NATS_STREAM, "SOAK"),
            (names::NATS_MAX_PENDING, "4096"),
            (names::NATS_ACK_WAIT_MS, ACK_WAIT_MS),
            // Every processed id is logged at trace level, before its ack goes out.
            (
                names::RUST_LOG,
                "warn,system=info,system::queue::nats=trace",
            ),
        ]);
    }
    command.envs(options.settings.iter().map(|(k, v)| (k, v)));
    command
}

const ALL_ROLES: [&str; 3] = [servers::PROCESSOR, servers::GATEWAY, servers::GRPC];

/// The in-memory phase: one process, stopped at the end, its final counts compared.
pub(super) fn memory(
    options: &Options,
    rates: [f64; 2],
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<PhaseRun> {
    let phase = Phase::Memory;
    log(&format!(
        "memory: {:.0} s at {:.0} + {:.0} requests/s",
        options.duration.as_secs_f64(),
        rates[0],
        rates[1]
    ));
    let mut system = Watched::start(system(options, None, None), &ALL_ROLES, None)?;
    let processor = system.addr(servers::PROCESSOR).to_owned();
    let load = Load::start(options, rates, &system, Ids::new(id_prefix(phase)), false)?;
    let mut run = PhaseRun::new(phase, rates);
    load.each_second(|second| {
        run.sample(&[("system", Some(&system))]);
        let processed = process::processed(&processor).unwrap_or(0);
        run.progress.push((load.accepted(), processed));
        progress(log, phase, second, load.accepted(), processed);
        Ok(())
    })?;
    run.tallies = load.join()?;
    let status = system.stop();
    let stopped = system.stopped();
    run.delivery = Delivery {
        processed: stopped.map_or(0, |s| s.processed),
        how: match stopped {
            Some(s) => format!(
                "the processor's final counts, logged as it stopped: {} accepted by its queue",
                s.accepted
            ),
            None => format!(
                "nothing: the process logged no final counts ({}); its log:\n{}",
                exit(status),
                system.tail()
            ),
        },
        ..Delivery::answered(&run.tallies)
    };
    run.events.push(format!(
        "stopped with SIGTERM after the load ({})",
        exit(status)
    ));
    Ok(run)
}

/// The NATS phase: front doors and a processor in one process, a second processor killed
/// halfway and started again, every processed id matched with the accepted ones.
pub(super) fn nats_phase(
    options: &Options,
    program: &Path,
    rates: [f64; 2],
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<PhaseRun> {
    let phase = Phase::Nats;
    log(&format!(
        "nats: {:.0} s at {:.0} + {:.0} requests/s, a processor killed halfway",
        options.duration.as_secs_f64(),
        rates[0],
        rates[1]
    ));
    let nats = NatsServer::start(program)?;
    let ids = Ids::new(id_prefix(phase));
    let acks = Arc::new(Mutex::new(Processed::new(ids.clone())));
    let start = |role: Option<&str>, roles: &[&str]| {
        let command = system(options, role, Some(&nats.url()));
        Watched::start(command, roles, Some(Arc::clone(&acks)))
    };
    let mut front = start(None, &ALL_ROLES)?;
    let mut victim = Victim {
        running: Some(start(Some("processor"), &[servers::PROCESSOR])?),
        kill_at: options.duration / 2,
        killed_at: None,
    };
    let load = Load::start(options, rates, &front, ids, true)?;
    let mut run = PhaseRun::new(phase, rates);
    let so_far = || acks.lock().map_or(0, |a| a.so_far());
    load.each_second(|second| {
        if let Some(event) = victim.step(load.elapsed(), || {
            start(Some("processor"), &[servers::PROCESSOR])
        })? {
            log(&format!("nats: {event}"));
            run.events.push(event);
        }
        run.sample(&[
            ("system", Some(&front)),
            ("processor-2", victim.running.as_ref()),
        ]);
        run.progress.push((load.accepted(), so_far()));
        progress(log, phase, second, load.accepted(), so_far());
        Ok(())
    })?;
    run.tallies = load.join()?;
    let answered = Delivery::answered(&run.tallies);
    // What is still in the stream is processed after the load; wait for it, bounded.
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while Instant::now() < deadline && so_far() < answered.accepted {
        thread::sleep(Duration::from_millis(200));
    }
    let statuses = [
        front.stop(),
        victim.running.as_mut().and_then(Watched::stop),
    ];
    run.events.push(format!(
        "stopped with SIGTERM after the load ({}; {})",
        exit(statuses[0]),
        exit(statuses[1])
    ));
    let accepted: Vec<&ledger::Accepted> = run.tallies.iter().map(|t| &t.accepted).collect();
    let matched = acks
        .lock()
        .map_err(|_| anyhow::anyhow!("the log reader panicked"))?
        .compare(&accepted);
    run.delivery = Delivery {
        processed: matched.processed,
        lost: Some(matched.lost),
        reprocessed: matched.reprocessed,
        how: "the id of every message each processor acknowledged, from its log".to_owned(),
        ..answered
    };
    Ok(run)
}

/// The NATS phase's second processor: killed (SIGKILL) once its time comes, started again
/// [`RESTART_AFTER`] later.
struct Victim {
    running: Option<Watched>,
    kill_at: Duration,
    killed_at: Option<Duration>,
}

impl Victim {
    /// Kills or restarts it when it is time, `elapsed` into the load; what it did.
    fn step(
        &mut self,
        elapsed: Duration,
        start: impl FnOnce() -> anyhow::Result<Watched>,
    ) -> anyhow::Result<Option<String>> {
        let at = elapsed.as_secs();
        match self.killed_at {
            None if elapsed >= self.kill_at => {
                if let Some(mut running) = self.running.take() {
                    running.kill();
                }
                self.killed_at = Some(elapsed);
                Ok(Some(format!("processor-2 killed (SIGKILL) at {at} s")))
            }
            Some(killed) if self.running.is_none() && elapsed >= killed + RESTART_AFTER => {
                self.running = Some(start()?);
                Ok(Some(format!("processor-2 started again at {at} s")))
            }
            _ => Ok(None),
        }
    }
}

fn exit(status: Option<std::process::ExitStatus>) -> String {
    status.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}

fn progress(log: &mut dyn FnMut(&str), phase: Phase, second: u64, accepted: u64, processed: u64) {
    if second.is_multiple_of(60) {
        log(&format!(
            "{}: {} min, {accepted} accepted, {processed} processed",
            phase.as_str(),
            second / 60,
        ));
    }
}

/// A prefix for the soak's ids that no other run shares.
fn id_prefix(phase: Phase) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("soak-{:x}-{}-", nanos ^ std::process::id(), phase.as_str())
}

/// The two doors' open loops, each on a thread of its own.
struct Load {
    threads: Vec<JoinHandle<std::io::Result<Tally>>>,
    live: [Arc<AtomicU64>; 2],
    started: Instant,
}

impl Load {
    fn start(
        options: &Options,
        rates: [f64; 2],
        front: &Watched,
        ids: Ids,
        keep_ids: bool,
    ) -> anyhow::Result<Load> {
        let live = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let mut threads = Vec::new();
        for (door, role, every) in [
            (Door::Http, servers::GATEWAY, 5),
            (Door::Grpc, servers::GRPC, 10),
        ] {
            let target: SocketAddr = front
                .addr(role)
                .parse()
                .with_context(|| format!("the {role} address {:?}", front.addr(role)))?;
            let plan = Plan {
                door,
                target,
                rate: rates[door.index()],
                duration: options.duration,
                oversized_every: Duration::from_secs(every),
                ids: ids.clone(),
                keep_ids,
                live: Arc::clone(&live[door.index()]),
            };
            threads.push(
                thread::Builder::new()
                    .name(format!("soak-{}", door.as_str()))
                    .spawn(move || traffic::run(plan))?,
            );
        }
        Ok(Load {
            threads,
            live,
            started: Instant::now(),
        })
    }

    /// Calls `each` once a second (with the number of the second) until the load is over.
    fn each_second(&self, mut each: impl FnMut(u64) -> anyhow::Result<()>) -> anyhow::Result<()> {
        for second in 1.. {
            let at = self.started + Duration::from_secs(second);
            thread::sleep(at.saturating_duration_since(Instant::now()));
            each(second)?;
            if self.finished() {
                break;
            }
        }
        Ok(())
    }

    /// Time since the load began.
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Messages accepted so far, by the answers.
    fn accepted(&self) -> u64 {
        self.live.iter().map(|l| l.load(Ordering::Relaxed)).sum()
    }

    fn join(self) -> anyhow::Result<Vec<Tally>> {
        let mut tallies = Vec::new();
        for thread in self.threads {
            match thread.join() {
                Ok(tally) => tallies.push(tally?),
                Err(_) => bail!("a load thread panicked"),
            }
        }
        Ok(tallies)
    }
}

impl PhaseRun {
    fn new(phase: Phase, rates: [f64; 2]) -> PhaseRun {
        PhaseRun {
            phase,
            rates,
            tallies: Vec::new(),
            processes: BTreeMap::new(),
            progress: Vec::new(),
            delivery: Delivery::default(),
            events: Vec::new(),
        }
    }

    /// One sample of each process's memory and descriptors (0 while it is not running).
    fn sample(&mut self, processes: &[(&str, Option<&Watched>)]) {
        for (name, watched) in processes {
            let pid = watched.map(Watched::pid);
            let series: &mut Series = self.processes.entry((*name).to_owned()).or_default();
            series
                .rss
                .push(pid.and_then(process::rss_bytes).unwrap_or(0) as f64);
            series
                .fds
                .push(pid.and_then(process::open_fds).unwrap_or(0) as f64);
        }
    }
}
