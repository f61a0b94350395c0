//! The abuse suite: one address attacks the `system` binary while a client from another
//! address is measured, to show that no single address can take what the others need.
//!
//! The system runs as it ships: every role in one process, its defaults, ports the OS
//! chose. The attacks ([`attacks::ATTACKS`], as data) run one after the other, each for the
//! same few seconds, from 127.0.0.2; meanwhile the victim ([`victim`]) sends small valid
//! JSON ingests from 127.0.0.3 over HTTP/1.1 keep-alive in an open loop at a modest fixed
//! rate, each timed from when it was due, and the process's resident memory is sampled
//! every 50 ms. After each attack its connections are closed and the system is given a
//! moment to let go of them (it is judged on what it holds, not on how fast it forgets).
//!
//! Each attack is one case of `abuse.json`: what the victim sent and how it was answered,
//! its latency, the process's resident memory before and at its peak against its
//! `MEMORY_BUDGET`, and the refusals the server counted by reason. The targets
//! (`study::targets::ATTACK_TARGETS`) are judged by the report, and said in the log; a
//! missed target is a finding and not a failure of the run.

mod attacker;
pub mod attacks;
mod server;
mod victim;
mod wire;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    time::Duration,
};

use study::{
    cases::{Suite, group},
    results::{Case, Metric, ResultFile},
    targets::ATTACK_TARGETS,
};

use self::{
    attacks::Attack,
    server::{Peaks, Sampler, System},
};

/// The attacker's address.
pub const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The victim's address.
pub const VICTIM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// How long the system gets to let go of an attack's connections.
const SETTLE: Duration = Duration::from_secs(10);

/// How a run of the suite is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `system` binary.
    pub system: PathBuf,
    /// How long each attack lasts (and the victim is measured).
    pub duration: Duration,
    /// The victim's requests per second.
    pub rate: f64,
    /// The attacks to run, in this order.
    pub attacks: Vec<&'static Attack>,
    /// Core the system is pinned to (`taskset -c`), when pinning.
    pub server_core: Option<String>,
}

impl Options {
    /// Every attack for `duration`, the victim at [`DEFAULT_RATE`].
    pub fn new(system: PathBuf, duration: Duration) -> Options {
        Options {
            system,
            duration,
            rate: DEFAULT_RATE,
            attacks: attacks::ATTACKS.iter().collect(),
            server_core: None,
        }
    }
}

/// The victim's requests per second unless told otherwise: a modest rate, a small share
/// of what the system sustains, so that what the victim sees is the attack's doing.
pub const DEFAULT_RATE: f64 = 200.0;

/// What one attack measured.
struct AttackRun {
    attack: &'static Attack,
    slots: usize,
    victim: victim::Seen,
    attacker: attacker::Seen,
    rss_before: u64,
    peaks: Peaks,
    refusals: Vec<(String, u64)>,
    settled: bool,
}

/// Runs every attack of `options` against one system process; `log` hears about each.
pub fn run(
    options: &Options,
    command: &str,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<ResultFile> {
    let mut system = System::start(options)?;
    log(&format!(
        "system: MEMORY_BUDGET {} MiB; per client {} connections, {} MiB",
        system.budget >> 20,
        system.limits.connections,
        system.limits.memory >> 20
    ));
    let mut file = ResultFile::new(Suite::Abuse.as_str(), command);
    let mut before = system.refusals().unwrap_or_default();
    for &attack in &options.attacks {
        let mut run = measure(&system, attack, options)?;
        run.settled = system.settle(SETTLE);
        let after = system.refusals().unwrap_or_default();
        run.refusals = after
            .iter()
            .map(|(reason, n)| (reason.clone(), n - before.get(reason).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        before = after;
        tell(&run, system.budget, log);
        file.cases.push(run.case(options, system.budget));
    }
    system.stop();
    file.notes.insert("method".to_owned(), method(options));
    file.notes.insert(
        "pinning".to_owned(),
        match &options.server_core {
            Some(core) => format!("system: taskset -c {core}; attacker and victim: as started"),
            None => "none".to_owned(),
        },
    );
    Ok(file)
}

/// One attack with the victim beside it.
fn measure(
    system: &System,
    attack: &'static Attack,
    options: &Options,
) -> anyhow::Result<AttackRun> {
    let rss_before = system.rss().unwrap_or(0);
    let sampler = Sampler::start(system);
    let slots = attack.slots.count(system.limits);
    let aim = attacker::Aim {
        from: ATTACKER,
        gateway: system.gateway,
        grpc: system.grpc,
    };
    let running = attacker::start(attack, slots, aim)?;
    let victim = victim::run(victim::Plan {
        from: VICTIM,
        to: system.gateway,
        rate: options.rate,
        duration: options.duration,
    });
    let attacker = running.stop()?;
    let peaks = sampler.stop();
    Ok(AttackRun {
        attack,
        slots,
        victim: victim?,
        attacker,
        rss_before,
        peaks,
        refusals: Vec::new(),
        settled: false,
    })
}

/// Says what an attack did to the victim and the process, and which targets it missed.
fn tell(run: &AttackRun, budget: u64, log: &mut dyn FnMut(&str)) {
    let victim = &run.victim;
    let ms = |q: f64| victim.latency_us.value_at_quantile(q) as f64 / 1000.0;
    log(&format!(
        "{}: victim {} of {} accepted, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; RSS {} → {} \
         MiB (MEMORY_BUDGET {} MiB); refusals: {}",
        run.attack.name,
        victim.accepted(),
        victim.due,
        ms(0.5),
        ms(0.99),
        victim.latency_us.max() as f64 / 1000.0,
        run.rss_before >> 20,
        run.peaks.rss >> 20,
        budget >> 20,
        if run.refusals.is_empty() {
            "none".to_owned()
        } else {
            (run.refusals.iter())
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let case = run.case_metrics(Case::new(group::ABUSE, run.attack.name, None), budget);
    for target in ATTACK_TARGETS {
        if target.met(&case) == Some(false) {
            log(&format!(
                "{}: target missed: {} ({})",
                run.attack.name, target.what, target.goal
            ));
        }
    }
    if !run.settled {
        log(&format!(
            "{}: the system still held bytes or the attacker's connections after {} s",
            run.attack.name,
            SETTLE.as_secs()
        ));
    }
}

impl AttackRun {
    /// The attack's case of `abuse.json`.
    fn case(&self, options: &Options, budget: u64) -> Case {
        let case = Case::new(group::ABUSE, self.attack.name, None)
            .param("what", self.attack.what)
            .param("seconds", format!("{}", options.duration.as_secs_f64()))
            .param("victim_rate", format!("{}", options.rate))
            .param("slots", self.slots)
            .param("settled", if self.settled { "yes" } else { "no" });
        self.case_metrics(case, budget)
    }

    fn case_metrics(&self, mut case: Case, budget: u64) -> Case {
        let victim = &self.victim;
        let ms = |us: u64| Metric::exact("ms", us as f64 / 1000.0);
        let count = |unit: &str, n: u64| Metric::exact(unit, n as f64);
        case = case
            .metric("victim_sent", count("requests", victim.due))
            .metric("victim_accepted", count("requests", victim.accepted()))
            .metric("victim_p50", ms(victim.latency_us.value_at_quantile(0.5)))
            .metric("victim_p99", ms(victim.latency_us.value_at_quantile(0.99)))
            .metric("victim_max", ms(victim.latency_us.max()))
            .metric(
                "victim_late_p99",
                ms(victim.late_us.value_at_quantile(0.99)),
            )
            .metric("rss_before", count("bytes", self.rss_before))
            .metric("rss_peak", count("bytes", self.peaks.rss))
            .metric("memory_budget", count("bytes", budget))
            .metric("budget_used_peak", count("bytes", self.peaks.used))
            .metric("attack_begun", count("attempts", self.attacker.begun));
        for (answer, n) in victim.answers.iter().filter(|(a, _)| *a != "accepted") {
            case = case.metric(&format!("victim_{answer}"), count("requests", *n));
        }
        for (reason, n) in &self.refusals {
            case = case.metric(&format!("refusals_{reason}"), count("refusals", *n));
        }
        for (end, n) in &self.attacker.ends {
            case = case.metric(&format!("attack_{end}"), count("attempts", *n));
        }
        case
    }
}

fn method(options: &Options) -> String {
    format!(
        "the system binary with its defaults, every role in one process; each attack from \
         {ATTACKER} for {} s, one after the other, while a victim from {VICTIM} sends small \
         valid JSON ingests over HTTP/1.1 keep-alive in an open loop at {} requests/s, each \
         timed from its due time; the system's resident memory (VmRSS) every 50 ms and its \
         bytes in flight every 250 ms; refusals by reason from the gateway's /metrics (the \
         gateway's and the gRPC server's), counted from the attack's start until the system \
         let go of its connections",
        options.duration.as_secs_f64(),
        options.rate
    )
}
