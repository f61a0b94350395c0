//! The soak: the `system` binary under a steady open loop for minutes, through both front
//! doors at once, with a mix of valid, retried, invalid and oversized requests, to show
//! that what it holds stays bounded and what it accepts is processed, exactly once.
//!
//! Two phases, each in processes of its own:
//! - `memory`: one `system` process with every role and its in-memory queue. Stopped with
//!   SIGTERM at the end, it processes everything it accepted and logs its final counts,
//!   which are compared with what the answers said was accepted.
//! - `nats` (given a `nats-server`): the front doors and a processor in one process, a
//!   second processor process beside it, both on one JetStream stream. The second is killed
//!   (SIGKILL) halfway and started again; what it held is delivered again to the others.
//!   Every processor logs the id of each message it finishes, and the ids accepted are
//!   matched one by one with the ids processed.
//!
//! The rate of each door is a quarter of its capacity in `reports/results/load.json` (the
//! server as a whole at half its capacity), or what the caller asks. Each second the
//! resident memory and open descriptors of every system process are read from `/proc`.
//! The verdict ([`verdict`]) judges three criteria per phase: flat memory, accepted =
//! processed, and only documented errors; the parts of the contract the soak relies on
//! (the client's own id, `duplicate` answers, `Retry-After`, JSON errors) are reported
//! beside them, as behaving or not yet.

mod http;
mod ledger;
mod mix;
mod phases;
mod process;
mod tally;
mod traffic;
pub mod verdict;

use std::{path::PathBuf, time::Duration};

pub use self::{
    mix::Door,
    tally::Count,
    verdict::{ContractItem, Criterion, RSS_LIMIT},
};
use self::{
    phases::{memory, nats_phase},
    verdict::PhaseRun,
};
use crate::results::{ResultFile, default_dir};

/// A part of the soak, run in processes of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// One process with every role and the in-memory queue.
    Memory,
    /// The NATS queue, two processors, one killed and started again halfway.
    Nats,
}

impl Phase {
    /// Its name in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Memory => "memory",
            Phase::Nats => "nats",
        }
    }
}

/// How a soak is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `system` binary.
    pub system: PathBuf,
    /// How long each phase's load lasts.
    pub duration: Duration,
    /// `nats-server`; without it the NATS phase is skipped, saying so.
    pub nats_server: Option<PathBuf>,
    /// The phases to run (in this order).
    pub phases: Vec<Phase>,
    /// Core the system processes are pinned to (`taskset -c`), when pinning.
    pub server_core: Option<String>,
    /// Requests per second through each door, instead of a quarter of its capacity.
    pub rate: Option<f64>,
    /// The load suite's result file, where the capacities are read.
    pub capacity_file: PathBuf,
    /// Settings (environment variables) of the system processes beside the soak's own.
    pub settings: Vec<(String, String)>,
}

impl Options {
    /// Both phases for `duration`, the rates from `reports/results/load.json`.
    pub fn new(system: PathBuf, duration: Duration) -> Options {
        Options {
            system,
            duration,
            nats_server: None,
            phases: vec![Phase::Memory, Phase::Nats],
            server_core: None,
            rate: None,
            capacity_file: default_dir().join("load.json"),
            settings: Vec::new(),
        }
    }
}

/// What a soak found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `soak.json`.
    pub file: ResultFile,
    /// Every criterion of every phase run.
    pub criteria: Vec<Criterion>,
    /// The parts of the contract each door showed.
    pub contract: Vec<ContractItem>,
}

impl Outcome {
    /// Whether every criterion held.
    pub fn held(&self) -> bool {
        !self.criteria.is_empty() && self.criteria.iter().all(|c| c.held)
    }
}

/// Requests per second per door when no capacity was measured.
const FALLBACK_RATE: [f64; 2] = [1000.0, 250.0];

/// Runs every phase of `options`; `log` hears about each step.
pub fn run(options: &Options, command: &str, log: &mut dyn FnMut(&str)) -> anyhow::Result<Outcome> {
    let mut file = ResultFile::new("soak", command);
    let (mut criteria, mut contract) = (Vec::new(), Vec::new());
    for &phase in &options.phases {
        let rates = rates(options, phase, log);
        let run = match (phase, &options.nats_server) {
            (Phase::Memory, _) => memory(options, rates, log)?,
            (Phase::Nats, Some(nats)) => nats_phase(options, nats, rates, log)?,
            (Phase::Nats, None) => {
                let why = "skipped: no nats-server available";
                log(&format!("nats: {why}"));
                file.notes.insert("nats".to_owned(), why.to_owned());
                continue;
            }
        };
        tell(&run, &mut file, log);
        criteria.extend(run.criteria());
        contract.extend(run.contract());
        file.cases.extend(run.cases());
    }
    let outcome = Outcome {
        file,
        criteria,
        contract,
    };
    Ok(with_notes(outcome, options))
}

/// Says what a phase found: each criterion, the parts of the contract not behaving yet,
/// and whether the generator kept its rate (also in the file's notes).
fn tell(run: &PhaseRun, file: &mut ResultFile, log: &mut dyn FnMut(&str)) {
    let phase = run.phase.as_str();
    for c in run.criteria() {
        let verdict = if c.held { "held" } else { "FAILED" };
        log(&format!(
            "{phase}: {} {verdict} ({} {}; {})",
            c.name, c.measured, c.unit, c.detail
        ));
    }
    for item in run.contract().iter().filter(|i| i.verdict() == "not yet") {
        log(&format!(
            "{phase}: contract, {} {}: not yet ({} of {})",
            item.door.as_str(),
            item.name,
            item.count.yes,
            item.count.of
        ));
    }
    let lagging = run.lagging();
    for line in &lagging {
        log(&format!("{phase}: the generator fell behind: {line}"));
    }
    if !lagging.is_empty() {
        file.notes.insert(
            format!("{phase} generator"),
            format!("fell behind: {}", lagging.join("; ")),
        );
    }
    file.notes.insert(
        format!("{phase} rates"),
        format!(
            "{:.0} requests/s through HTTP/1.1 and {:.0} through gRPC",
            run.rates[0], run.rates[1]
        ),
    );
}

/// The outcome with the notes that describe the whole run.
fn with_notes(mut outcome: Outcome, options: &Options) -> Outcome {
    let held = outcome.held();
    let notes = &mut outcome.file.notes;
    notes.insert(
        "held".to_owned(),
        if held { "yes" } else { "no" }.to_owned(),
    );
    notes.insert("method".to_owned(), method(options));
    notes.insert(
        "pinning".to_owned(),
        match &options.server_core {
            Some(core) => format!("system processes: taskset -c {core}; generator: as started"),
            None => "none".to_owned(),
        },
    );
    outcome
}

fn method(options: &Options) -> String {
    format!(
        "an open loop through the HTTP gateway (HTTP/1.1) and the gRPC server at once for \
         {:.0} s per phase: per hundred requests 60 (HTTP) / 50 (gRPC) valid under the \
         client's own id, 20 valid without one, 10 retried under the same id, 10 invalid, and \
         (gRPC) 10 streams of 8 messages; one body over the 1 MiB limit every 5 s (HTTP) and \
         one message over the 10 MiB limit every 10 s (gRPC); RSS and open descriptors of every \
         system process each second; memory flat when the last window's peak is at most {} \
         times the first's (windows of {} s, or a quarter of a shorter run)",
        options.duration.as_secs_f64(),
        RSS_LIMIT,
        verdict::RSS_WINDOW_SECS
    )
}

/// Requests per second through each door: what the caller asked, or a quarter of each
/// door's capacity in the load suite's results (so that the server as a whole runs at half
/// its capacity), or a modest fixed rate, said aloud, when none was measured.
fn rates(options: &Options, phase: Phase, log: &mut dyn FnMut(&str)) -> [f64; 2] {
    if let Some(rate) = options.rate {
        return [rate, rate];
    }
    let capacity = |group: &str, variant: &str| -> Option<f64> {
        let file = ResultFile::read(&options.capacity_file).ok()?;
        file.cases
            .iter()
            .find(|c| {
                c.group == group
                    && c.variant == variant
                    && c.params.get("measure").map(String::as_str) == Some("capacity")
            })
            .and_then(|c| c.metrics.get("capacity"))
            .map(|m| m.median)
    };
    let measured = match phase {
        Phase::Memory => {
            capacity("load/ingress", "http1").zip(capacity("load/ingress", "grpc_unary"))
        }
        Phase::Nats => capacity("load/queue", "nats").map(|c| (c, c)),
    };
    match measured {
        Some((http, grpc)) => [http / 4.0, grpc / 4.0],
        None => {
            let rate = FALLBACK_RATE[usize::from(phase == Phase::Nats)];
            log(&format!(
                "{}: no capacity measured in {} (run `cargo xtask bench --only load`); \
                 using {rate} requests/s per door",
                phase.as_str(),
                crate::results::shown_path(&options.capacity_file)
            ));
            [rate, rate]
        }
    }
}
