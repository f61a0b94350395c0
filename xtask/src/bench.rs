//! `cargo xtask bench [--quick] [--out DIR] [--only SUITE]... [--json | --no-run]`: runs
//! every suite (or the ones named; `--no-run`: only builds them) and writes its result file
//! to `reports/results/`: allocation counts, instruction counts (callgrind), wall-clock
//! times (criterion), the system under load, by stage, against peers and under attack; the
//! pairs' wall-clock times in alternating rounds because this machine's speed drifts:
//! each round runs both sides of every pair, so ratios are taken round by round and a
//! drift between rounds cancels out. Prints a short table at the end (JSON with `--json`).

use std::{collections::BTreeMap, path::Path};

use indicatif::{ProgressBar, ProgressStyle};
use study::{
    criterion_results::read_medians,
    pairs::side,
    results::{Case, Metric, ResultFile, Side, default_dir},
};

use crate::{
    cmd::{cargo_logged, print_out, workspace_root},
    tools,
};

/// Criterion suites, and the benchmarks `--quick` keeps of each (a criterion filter).
const CRITERION: [(&str, &str); 4] = [
    (
        "queue",
        "queue.(publish_consume|threads_p1_c1|threads_p4_c2)",
    ),
    ("worker_pool", "worker_pool"),
    ("codec", "codec"),
    ("client", "client"),
];
/// Rounds of the criterion suites and of the system under load: each side of a pair is
/// measured this many times (once with `--quick`).
const ROUNDS: usize = 3;

/// A suite `--only` can name; they run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Suite {
    /// Allocations per operation, counted exactly.
    Allocations,
    /// Instructions per operation (callgrind).
    Callgrind,
    /// Wall-clock time per operation (criterion), in alternating rounds.
    Criterion,
    /// The system binary under load: capacity and latency of every A/B pair.
    Load,
    /// Where the time goes: both processes profiled at capacity.
    Stages,
    /// Our generator against wrk and h2load, the gateway against bare servers.
    Peers,
    /// Attacks from one address while a client from another is measured.
    Abuse,
}

/// `cargo xtask bench`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// One short round of each suite instead of the full study.
    #[arg(long)]
    quick: bool,
    /// Directory of the result files (default: reports/results), relative to the workspace.
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Only this suite; may be repeated.
    #[arg(long, value_enum, value_name = "SUITE")]
    only: Vec<Suite>,
    /// Print the summary of the pairs as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Only build what the suites run (a build started early, beside other work, leaves
    /// the run only the running).
    #[arg(long, conflicts_with = "json")]
    no_run: bool,
}

/// What one run of the suites shares.
struct Run {
    quick: bool,
    out: std::path::PathBuf,
    log: std::path::PathBuf,
    bar: ProgressBar,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let quick = args.quick;
    let out = match &args.out {
        Some(dir) => workspace_root().join(dir),
        None => default_dir(),
    };
    let wants = |suite: Suite| args.only.is_empty() || args.only.contains(&suite);
    std::fs::create_dir_all(&out)?;
    let log = workspace_root().join("target/xtask-bench.log");
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&log, "")?;
    let rounds = if quick { 1 } else { ROUNDS };
    let steps = 1
        + <Suite as clap::ValueEnum>::value_variants()
            .iter()
            .filter(|s| wants(**s))
            .count()
        + if wants(Suite::Criterion) {
            rounds * CRITERION.len() - 1
        } else {
            0
        };
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.println(format!("logs: {}", log.display()));
    let run = Run {
        quick,
        out,
        log,
        bar,
    };
    if args.no_run {
        run.bar.set_message("building the suites");
        build(&run, wants)?;
        run.bar.finish_with_message("built");
        return Ok(());
    }

    run.bar.set_message("building the suites");
    // The benchmark builds are for the criterion and callgrind suites alone.
    if wants(Suite::Criterion) || wants(Suite::Callgrind) {
        cargo_logged(&["bench", "-p", "harness", "--no-run"], &run.log)?;
    }
    // The system's defaults, which the report names beside the pairs they decide.
    harness_program(&run, "defaults")?;
    run.bar.inc(1);
    if wants(Suite::Allocations) {
        allocations(&run)?;
    }
    if wants(Suite::Callgrind) {
        run.bar.set_message("instruction counts (callgrind)");
        crate::callgrind::measure(
            "cargo bench -p harness --bench callgrind -- --save-summary=json",
            Some(&run.log),
        )?
        .write(&run.out)?;
        run.bar.inc(1);
    }
    if wants(Suite::Criterion) {
        criterion(&run, rounds)?;
    }
    if wants(Suite::Load) {
        run.bar
            .set_message("the system under load (A/B pairs in alternating rounds)");
        system_load(quick, &run.out, &run.log)?;
        run.bar.inc(1);
    }
    if wants(Suite::Stages) {
        run.bar
            .set_message("where the time goes (both processes profiled at capacity)");
        stages(quick, &run.out, &run.log)?;
        run.bar.inc(1);
    }
    if wants(Suite::Peers) {
        peers(&run)?;
    }
    if wants(Suite::Abuse) {
        run.bar
            .set_message("abuse: attacks from one address, a client from another measured");
        abuse(quick, &run.out, &run.log)?;
        run.bar.inc(1);
    }
    run.bar.finish_with_message("done");
    print_summary(&run.out, args.json)?;
    Ok(())
}

/// Every build the wanted suites make, in the order they make them.
fn build(run: &Run, wants: impl Fn(Suite) -> bool) -> anyhow::Result<()> {
    let log = &run.log;
    if wants(Suite::Criterion) || wants(Suite::Callgrind) {
        cargo_logged(&["bench", "-p", "harness", "--no-run"], log)?;
    }
    let mut bins = vec!["defaults"];
    if wants(Suite::Allocations) {
        bins.push("allocs");
    }
    if [Suite::Load, Suite::Stages, Suite::Peers, Suite::Abuse]
        .into_iter()
        .any(&wants)
    {
        bins.push("harness");
    }
    for bin in bins {
        cargo_logged(&["build", "--release", "-p", "harness", "--bin", bin], log)?;
    }
    if wants(Suite::Load) || wants(Suite::Peers) || wants(Suite::Abuse) {
        release_system("--no-default-features", "system-glibc", log)?;
    }
    if wants(Suite::Load) {
        release_system("--features=mimalloc", "system-mimalloc", log)?;
    }
    if wants(Suite::Stages) {
        stages_system(run.quick, log)?;
    }
    Ok(())
}

fn allocations(run: &Run) -> anyhow::Result<()> {
    run.bar.set_message("allocations");
    harness_program(run, "allocs")?;
    run.bar.inc(1);
    Ok(())
}

/// Runs the harness's release program `bin` with `--out` the run's results directory.
fn harness_program(run: &Run, bin: &str) -> anyhow::Result<()> {
    let out = run.out.to_string_lossy();
    let args = [
        "run",
        "-p",
        "harness",
        "--release",
        "--bin",
        bin,
        "--",
        "--out",
        &out,
    ];
    cargo_logged(&args, &run.log)
}

/// Every criterion suite, `rounds` times alternating, into `criterion.json`.
fn criterion(run: &Run, rounds_wanted: usize) -> anyhow::Result<()> {
    let quick = run.quick;
    let (warm_up, measure) = if quick { ("0.1", "0.3") } else { ("1", "3") };
    let criterion_dir = workspace_root().join("target/criterion");
    let mut rounds: Vec<BTreeMap<(String, String), f64>> = Vec::new();
    for round in 1..=rounds_wanted {
        // Criterion's history (its baselines and change reports) is kept; a round reads
        // the estimates written since it began.
        let began = std::time::SystemTime::now();
        for (bench, quick_filter) in CRITERION {
            run.bar
                .set_message(format!("criterion round {round}/{rounds_wanted}: {bench}"));
            let mut args = vec!["bench", "-p", "harness", "--bench", bench, "--", "--noplot"];
            args.extend(["--warm-up-time", warm_up, "--measurement-time", measure]);
            if quick {
                args.push(quick_filter);
            }
            cargo_logged(&args, &run.log)?;
            run.bar.inc(1);
        }
        rounds.push(read_medians(&criterion_dir, began)?);
    }
    let command = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let mut file = ResultFile::new("criterion", command);
    file.notes.insert(
        "method".into(),
        format!(
            "{rounds_wanted} round(s), each running both sides of every pair; samples are per-round medians"
        ),
    );
    file.notes.insert(
        "criterion".into(),
        format!("warm-up {warm_up} s, measurement {measure} s"),
    );
    file.cases = criterion_cases(&rounds);
    file.write(&run.out)?;
    Ok(())
}

fn peers(run: &Run) -> anyhow::Result<()> {
    run.bar
        .set_message("peers: our generator against wrk and h2load, gateway against bare servers");
    // The system binary built here: the harness would build it again itself.
    let system = release_system("--no-default-features", "system-glibc", &run.log)?;
    let system = system.to_string_lossy();
    let out = run.out.to_string_lossy();
    let mut peers = vec![
        "run",
        "-p",
        "harness",
        "--release",
        "--",
        "peers",
        "--system-bin",
        &system,
        "--out",
        &out,
    ];
    if run.quick {
        peers.push("--quick");
    }
    cargo_logged(&peers, &run.log)?;
    run.bar.inc(1);
    Ok(())
}

/// Builds both allocator builds of `system`, then runs `harness system-load` with the server
/// pinned to core 0 and the generator to core 1 (when `taskset` exists).
fn system_load(quick: bool, out: &Path, log: &Path) -> anyhow::Result<()> {
    let glibc = release_system("--no-default-features", "system-glibc", log)?;
    let mimalloc = release_system("--features=mimalloc", "system-mimalloc", log)?;
    let nats = tools::ensure(&["nats-server"])
        .ok()
        .and_then(|()| tools::which("nats-server"));
    let (mut command, pin) = pinned_harness(log)?;
    command.args(["system-load", "--system"]).arg(glibc);
    command.arg("--mimalloc").arg(mimalloc);
    // `--quick` shows that every pair runs: each run a fraction of a second.
    let (rounds, duration) = if quick {
        ("1".to_owned(), "300ms")
    } else {
        (ROUNDS.to_string(), "3s")
    };
    command.args(["--rounds", &rounds, "--duration", duration]);
    command.arg("--out").arg(out);
    if let Some(nats) = nats {
        command.arg("--nats-server").arg(nats);
    }
    if pin {
        command.args(["--server-core", "0"]);
    }
    crate::cmd::run_logged(command, log)
}

/// Runs `harness abuse` on the release system binary (the system allocator, as it ships),
/// every attack for a few seconds (`--quick`: fewer), the system pinned to core 0 and the
/// attacker and victim to core 1, as in the load suite.
fn abuse(quick: bool, out: &Path, log: &Path) -> anyhow::Result<()> {
    let system = release_system("--no-default-features", "system-glibc", log)?;
    let (mut command, pin) = pinned_harness(log)?;
    command.args(["abuse", "--system"]).arg(system);
    command.args(["--duration", if quick { "1s" } else { "5s" }]);
    command.arg("--out").arg(out);
    if pin {
        command.args(["--server-core", "0"]);
    }
    crate::cmd::run_logged(command, log)
}

/// Builds the release system binary with `features` and keeps a copy as
/// `target/ab/NAME` (the next build with other features replaces `target/release/system`).
fn release_system(features: &str, name: &str, log: &Path) -> anyhow::Result<std::path::PathBuf> {
    let root = workspace_root();
    let ab = root.join("target/ab");
    std::fs::create_dir_all(&ab)?;
    cargo_logged(&["build", "--release", "-p", "system", features], log)?;
    std::fs::copy(root.join("target/release/system"), ab.join(name))?;
    Ok(ab.join(name))
}

/// The release harness binary, built, as a command pinned to core 1 when `taskset`
/// exists (the servers it starts go to core 0); and whether it is pinned.
fn pinned_harness(log: &Path) -> anyhow::Result<(std::process::Command, bool)> {
    cargo_logged(
        &["build", "--release", "-p", "harness", "--bin", "harness"],
        log,
    )?;
    let harness = workspace_root().join("target/release/harness");
    let pin = tools::which("taskset").is_some();
    let command = if pin {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", "1"]).arg(&harness);
        c
    } else {
        std::process::Command::new(&harness)
    };
    Ok((command, pin))
}

/// Profiles the front door and the processor at capacity, per protocol (`harness stages`),
/// on the release system binary, pinned as the load suite is.
fn stages(quick: bool, out: &Path, log: &Path) -> anyhow::Result<()> {
    let system = stages_system(quick, log)?;
    let (mut command, pin) = pinned_harness(log)?;
    command.args(["stages", "--system"]).arg(system);
    if quick {
        command.args(["--seconds", "1", "--warmup", "500ms"]);
    } else {
        command.args(["--seconds", "10"]);
    }
    command.arg("--out").arg(out);
    if pin {
        command.args(["--server-core", "0"]);
    }
    crate::cmd::run_logged(command, log)
}

/// Builds the system binary the stages suite profiles; returns its path.
fn stages_system(quick: bool, log: &Path) -> anyhow::Result<std::path::PathBuf> {
    // The same optimized code with full debug information, so that the profiles name
    // inlined functions by their paths (`system::queue::…`), by which samples are charged
    // to stages; debug information does not change the generated code. A target directory
    // of its own keeps the other builds' artifacts. `--quick` only shows that the suite
    // runs: full debug information for the system crate alone, whose build shares the
    // dependencies of the other release builds, instead of a second build of them all.
    let root = workspace_root();
    if quick {
        cargo_logged(
            &[
                "build",
                "--release",
                "-p",
                "system",
                "--config",
                "profile.release.package.system.debug=\"full\"",
            ],
            log,
        )?;
        let ab = root.join("target/ab");
        std::fs::create_dir_all(&ab)?;
        std::fs::copy(root.join("target/release/system"), ab.join("system-stages"))?;
        Ok(ab.join("system-stages"))
    } else {
        let target = root.join("target/stages");
        let mut build = crate::cmd::cargo_command(&["build", "--release", "-p", "system"]);
        build
            .arg("--target-dir")
            .arg(&target)
            .env("CARGO_PROFILE_RELEASE_DEBUG", "full");
        crate::cmd::run_logged(build, log)?;
        Ok(target.join("release/system"))
    }
}

/// One case per benchmark, with the per-round medians as samples.
fn criterion_cases(rounds: &[BTreeMap<(String, String), f64>]) -> Vec<Case> {
    let mut samples: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for round in rounds {
        for (key, median) in round {
            samples.entry(key.clone()).or_default().push(*median);
        }
    }
    samples
        .into_iter()
        .map(|((group, variant), ns)| {
            let (group, params) = split_params(&group);
            let mut case = Case::new(&group, &variant, side(&group, &variant));
            for (k, v) in params {
                case = case.param(k, v);
            }
            case.metric("time_per_op", Metric::from_samples("ns", ns))
        })
        .collect()
}

/// `queue/threads_p4_c2` → (`queue/threads`, producers 4, consumers 2).
fn split_params(group: &str) -> (String, Vec<(&'static str, String)>) {
    if let Some(rest) = group.strip_prefix("queue/threads_p")
        && let Some((p, c)) = rest.split_once("_c")
    {
        return (
            "queue/threads".to_owned(),
            vec![("producers", p.to_owned()), ("consumers", c.to_owned())],
        );
    }
    (group.to_owned(), Vec::new())
}

/// One pair of the deterministic and criterion suites, as the summary shows it.
#[derive(Debug, serde::Serialize)]
struct SummaryRow {
    suite: String,
    group: String,
    variant: String,
    params: BTreeMap<String, String>,
    metric: String,
    unit: String,
    baseline: f64,
    optimized: f64,
    ratio: f64,
}

/// Every pair in the result files of `dir`: baseline, optimized, ratio.
fn summary(dir: &Path) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    for suite in ["allocations", "callgrind", "criterion"] {
        let path = dir.join(format!("{suite}.json"));
        let Ok(file) = ResultFile::read(&path) else {
            continue;
        };
        let mut by_group: BTreeMap<(String, String), Vec<&Case>> = BTreeMap::new();
        for case in &file.cases {
            let key = (case.group.clone(), format!("{:?}", case.params));
            by_group.entry(key).or_default().push(case);
        }
        for cases in by_group.values() {
            let Some(baseline) = cases.iter().find(|c| c.side == Some(Side::Baseline)) else {
                continue;
            };
            for optimized in cases.iter().filter(|c| c.side == Some(Side::Optimized)) {
                for (name, metric) in &optimized.metrics {
                    let Some(base) = baseline.metrics.get(name) else {
                        continue;
                    };
                    if name.ends_with("_total") {
                        continue;
                    }
                    rows.push(SummaryRow {
                        suite: suite.to_owned(),
                        group: optimized.group.clone(),
                        variant: optimized.variant.clone(),
                        params: optimized.params.clone(),
                        metric: name.clone(),
                        unit: metric.unit.clone(),
                        baseline: base.median,
                        optimized: metric.median,
                        ratio: if base.median == 0.0 {
                            f64::NAN
                        } else {
                            metric.median / base.median
                        },
                    });
                }
            }
        }
    }
    rows
}

/// The summary as a table on stdout, or as JSON with `json`.
fn print_summary(dir: &Path, json: bool) -> anyhow::Result<()> {
    let rows = summary(dir);
    if json {
        return print_out(&(serde_json::to_string_pretty(&rows)? + "\n"));
    }
    let mut text = format!(
        "\n{:<26} {:<18} {:>14} {:>14} {:>8}\n",
        "pair", "metric", "baseline", "optimized", "ratio"
    );
    for row in rows {
        let label = if row.params.is_empty() {
            format!("{} {}", row.group, row.variant)
        } else {
            let params: Vec<&str> = row.params.values().map(String::as_str).collect();
            format!("{} {} [{}]", row.group, row.variant, params.join(","))
        };
        text += &format!(
            "{label:<26} {:<18} {:>14.1} {:>14.1} {:>8.2}\n",
            row.metric, row.baseline, row.optimized, row.ratio
        );
    }
    print_out(&text)
}
