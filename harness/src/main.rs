//! The harness CLI: `load` runs a scenario against a server on this machine, `serve-bare`
//! runs the bare reference servers, `peers` compares our generator with wrk and h2load and
//! the gateway with the bare servers, `soak` runs the system for minutes under a steady mix,
//! `abuse` attacks it from one address while a client from another is measured. Measuring
//! commands can write a result file.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use harness::{
    load::{self, Mode, Protocol, Report, RunOptions, Scenario, duration, hgrm},
    peers::{self, PeersOptions, bare},
    results::{self, ResultFile},
};

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    about = "Load generator and peer comparisons of the ingest system"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs a load scenario and prints its report.
    Load(LoadArgs),
    /// Runs the bare reference servers (HTTP/1.1 + h2c, and gRPC) until SIGINT or SIGTERM.
    ServeBare {
        /// Address of the bare HTTP server.
        #[arg(long, default_value = "127.0.0.1:8090")]
        http: SocketAddr,
        /// Address of the bare gRPC server.
        #[arg(long, default_value = "127.0.0.1:50061")]
        grpc: SocketAddr,
    },
    /// Compares our generator with wrk/h2load on the bare servers, and the gateway with
    /// the bare servers; writes reports/results/<suite>.json.
    Peers(PeersArgs),
    /// Runs the system binary under load, one A/B pair at a time, in alternating rounds;
    /// writes reports/results/load.json.
    SystemLoad(SystemLoadArgs),
    /// Profiles the front door and the processor of the system binary at capacity, for
    /// each protocol, and splits the CPU per message by stage; writes
    /// reports/results/stages.json.
    Stages(StagesArgs),
    /// Runs the system for minutes under a steady mix of valid, retried, invalid and
    /// oversized requests through both front doors (and, with NATS, kills a processor
    /// halfway); judges memory, delivery and errors; writes reports/results/soak.json and
    /// fails when a criterion did not hold.
    Soak(SoakArgs),
    /// Attacks the system from one address, one attack after the other, while a client
    /// from another address sends ingests at a fixed rate; records what that client saw,
    /// the system's memory and its refusals; writes abuse.json in reports/results.
    Abuse(AbuseArgs),
}

#[derive(Debug, clap::Args)]
struct AbuseArgs {
    /// The `system` binary.
    #[arg(long)]
    system: PathBuf,
    /// How long each attack lasts (e.g. 5s, 1500ms; a bare number is seconds).
    #[arg(long, short, visible_alias = "seconds", value_parser = duration::parse, default_value = "5s")]
    duration: Duration,
    /// The victim's requests per second.
    #[arg(long, default_value_t = harness::abuse::DEFAULT_RATE)]
    rate: f64,
    /// Only this attack; may be repeated.
    #[arg(long, value_parser = parse_attack)]
    only: Vec<&'static harness::abuse::attacks::Attack>,
    /// Core to pin the system process to with taskset.
    #[arg(long)]
    server_core: Option<String>,
    /// Directory of the result file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SoakArgs {
    /// The `system` binary.
    #[arg(long)]
    system: PathBuf,
    /// Minutes of load per phase.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Load per phase as a duration (e.g. 10m, 90s), instead of --minutes.
    #[arg(long, short, value_parser = duration::parse, conflicts_with = "minutes")]
    duration: Option<Duration>,
    /// `nats-server`, for the NATS phase (skipped without it).
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Only this phase (memory, nats); may be repeated.
    #[arg(long, value_parser = parse_phase)]
    only: Vec<harness::soak::Phase>,
    /// Requests per second through each front door (default: a quarter of its capacity in
    /// the load suite's results, the server as a whole at half its capacity).
    #[arg(long)]
    rate: Option<f64>,
    /// Core to pin the system processes to with taskset.
    #[arg(long)]
    server_core: Option<String>,
    /// Directory of the result file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct StagesArgs {
    /// The `system` binary.
    #[arg(long)]
    system: PathBuf,
    /// How long each process is profiled (e.g. 5s, 1m; a bare number is seconds), rounded
    /// up to whole seconds.
    #[arg(long, short, visible_alias = "seconds", value_parser = duration::parse, default_value = "5s")]
    duration: Duration,
    /// Load before the profiles start (e.g. 2s, 500ms).
    #[arg(long, value_parser = duration::parse, default_value = "2s")]
    warmup: Duration,
    /// Core to pin both server processes to with taskset.
    #[arg(long)]
    server_core: Option<String>,
    /// Only this protocol; may be repeated.
    #[arg(long, value_parser = load::scenario::protocol_parser())]
    only: Vec<Protocol>,
    /// Directory of the result file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SystemLoadArgs {
    /// The `system` binary (system allocator).
    #[arg(long)]
    system: PathBuf,
    /// The `system` binary built with `--features mimalloc`.
    #[arg(long)]
    mimalloc: Option<PathBuf>,
    /// `nats-server`, to measure the nats queue too.
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Rounds; each runs every variant once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured time per run (e.g. 3s, 500ms; a bare number is seconds).
    #[arg(long, short, visible_alias = "seconds", value_parser = duration::parse, default_value = "3s")]
    duration: Duration,
    /// Core to pin the server to with taskset.
    #[arg(long)]
    server_core: Option<String>,
    /// Only the pairs of this group (e.g. `load/hop_batching`); may be repeated.
    #[arg(long)]
    only: Vec<String>,
    /// Directory of the result file; each latency run's `.hgrm` file goes under its
    /// `hgrm/load/`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the sides with TLS on the hop keep their self-signed CA and certificate
    /// (default: target/load-tls in the workspace).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// A scenario file, or the name of one in harness/scenarios (e.g. `smoke`).
    #[arg(long, short)]
    scenario: String,
    /// Server address (host:port on this machine).
    #[arg(long)]
    target: Option<String>,
    /// Protocol.
    #[arg(long, value_parser = load::scenario::protocol_parser())]
    protocol: Option<Protocol>,
    /// Request path.
    #[arg(long)]
    path: Option<String>,
    /// Open loop at this many requests per second (sets the mode to open).
    #[arg(long, short = 'R')]
    rate: Option<f64>,
    /// Closed loop (drops the scenario's rate).
    #[arg(long, conflicts_with = "rate")]
    closed: bool,
    /// Connections.
    #[arg(long, short)]
    connections: Option<u32>,
    /// Requests in flight per connection.
    #[arg(long)]
    in_flight: Option<u32>,
    /// Generator threads.
    #[arg(long, short)]
    threads: Option<u32>,
    /// Time measured (e.g. 30s, 2m, 500ms, 1m30s; a bare number is seconds).
    #[arg(long, short, value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Warm-up before measuring (e.g. 1s, 500ms; a bare number is seconds).
    #[arg(long, value_parser = duration::parse)]
    warmup: Option<Duration>,
    /// Open loop: poll the clock before each due time instead of trusting tokio's
    /// millisecond timer (costs generator CPU).
    #[arg(long)]
    precise_timing: bool,
    /// Microseconds to poll for an answer before sleeping (0: sleep at once).
    #[arg(long)]
    spin_us: Option<u64>,
    /// The server's pid, to report its CPU time and peak memory.
    #[arg(long)]
    target_pid: Option<u32>,
    /// Also write the JSON report to this file (`-` for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the whole latency distribution to this file, in HdrHistogram's percentile
    /// distribution text format (`.hgrm`, values in milliseconds).
    #[arg(long, value_name = "FILE")]
    hgrm: Option<PathBuf>,
    /// Write reports/results/<SUITE>.json with this run as one case.
    #[arg(long)]
    result: Option<String>,
    /// Do not print the table (implied by `--json -`).
    #[arg(long)]
    quiet: bool,
    /// Exit with an error when a request failed or none succeeded (rejections are not
    /// failures), for scripts and smoke checks.
    #[arg(long)]
    fail_on_error: bool,
}

#[derive(Debug, clap::Args)]
struct PeersArgs {
    /// A run of seconds instead of minutes (one round, short runs).
    #[arg(long)]
    quick: bool,
    /// Rounds of each pair.
    #[arg(long)]
    rounds: Option<u32>,
    /// Time measured per run (e.g. 2s; a bare number is seconds), rounded up to whole
    /// seconds.
    #[arg(long, short, visible_alias = "seconds", value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Name of the result file; `peers` (or `peers-quick`) by default.
    #[arg(long)]
    suite: Option<String>,
    /// The `system` binary; by default `cargo build --release -p system` is run and its
    /// binary used.
    #[arg(long)]
    system_bin: Option<PathBuf>,
    /// Skip the gateway comparison.
    #[arg(long)]
    no_system: bool,
    /// Do not use wrk and h2load.
    #[arg(long)]
    no_tools: bool,
    /// Do not try to install wrk and h2load.
    #[arg(long)]
    no_install: bool,
    /// Microseconds our generator polls for an answer before sleeping (its default when
    /// absent).
    #[arg(long)]
    spin_us: Option<u64>,
    /// Directory of result files.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Load(args) => load_command(args),
        Cmd::ServeBare { http, grpc } => serve_bare(http, grpc),
        Cmd::Peers(args) => peers_command(args),
        Cmd::SystemLoad(args) => system_load_command(args),
        Cmd::Stages(args) => stages_command(args),
        Cmd::Soak(args) => soak_command(args),
        Cmd::Abuse(args) => abuse_command(args),
    }
}

fn abuse_command(args: AbuseArgs) -> anyhow::Result<()> {
    use harness::abuse;
    if !(args.duration >= Duration::from_millis(500) && args.duration <= Duration::from_secs(600)) {
        bail!("each attack must last from 500ms to 10m (--duration)");
    }
    if !(args.rate > 0.0 && args.rate <= 100_000.0) {
        bail!("--rate must be in (0, 100000]");
    }
    let mut options = abuse::Options::new(args.system, args.duration);
    options.rate = args.rate;
    options.server_core = args.server_core;
    if !args.only.is_empty() {
        options.attacks = args.only;
    }
    let file = abuse::run(&options, &command_line(), &mut |line| {
        eprintln!("abuse: {line}")
    })?;
    write_result(&file, &results_dir(args.out))
}

fn parse_attack(text: &str) -> Result<&'static harness::abuse::attacks::Attack, String> {
    harness::abuse::attacks::named(text).ok_or_else(|| {
        format!(
            "unknown attack {text} ({})",
            study::cases::ATTACKS.join(", ")
        )
    })
}

fn soak_command(args: SoakArgs) -> anyhow::Result<()> {
    use harness::soak::{self, Phase};
    let minutes = args
        .duration
        .map_or(args.minutes, |d| d.as_secs_f64() / 60.0);
    if !(minutes > 0.0 && minutes <= 600.0) {
        bail!("each phase must last more than 0 and at most 600 minutes (--minutes, --duration)");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r <= 1e6)) {
        bail!("--rate must be in (0, 1000000]");
    }
    let mut options = soak::Options::new(args.system, Duration::from_secs_f64(minutes * 60.0));
    options.nats_server = args.nats_server;
    options.server_core = args.server_core;
    options.rate = args.rate;
    if !args.only.is_empty() {
        options.phases = [Phase::Memory, Phase::Nats]
            .into_iter()
            .filter(|p| args.only.contains(p))
            .collect();
    }
    let outcome = soak::run(&options, &command_line(), &mut |line| {
        eprintln!("soak: {line}")
    })?;
    write_result(&outcome.file, &results_dir(args.out))?;
    if !outcome.held() {
        let failed: Vec<String> = outcome
            .criteria
            .iter()
            .filter(|c| !c.held)
            .map(|c| format!("{} {}", c.phase.as_str(), c.name))
            .collect();
        bail!("the soak did not hold: {}", failed.join(", "));
    }
    eprintln!("soak: every criterion held");
    Ok(())
}

fn parse_phase(text: &str) -> Result<harness::soak::Phase, String> {
    match text {
        "memory" => Ok(harness::soak::Phase::Memory),
        "nats" => Ok(harness::soak::Phase::Nats),
        other => Err(format!("unknown phase {other} (memory, nats)")),
    }
}

fn stages_command(args: StagesArgs) -> anyhow::Result<()> {
    let options = harness::stages::Options {
        system: args.system,
        seconds: whole_seconds(args.duration).max(1),
        warmup: args.warmup.as_secs_f64(),
        server_core: args.server_core,
        protocols: if args.only.is_empty() {
            harness::stages::PROTOCOLS.to_vec()
        } else {
            args.only
        },
    };
    let file = harness::stages::run(&options, &command_line(), &mut |line| {
        eprintln!("stages: {line}")
    })?;
    write_result(&file, &results_dir(args.out))
}

fn system_load_command(args: SystemLoadArgs) -> anyhow::Result<()> {
    let out = results_dir(args.out);
    let options = harness::system_load::Options {
        system: args.system,
        system_mimalloc: args.mimalloc,
        bare: std::env::current_exe().ok(),
        nats_server: args.nats_server,
        rounds: args.rounds.max(1),
        seconds: args.duration.as_secs_f64(),
        server_core: args.server_core,
        only: args.only,
        histograms: Some(out.clone()),
        tls_dir: args
            .tls_dir
            .unwrap_or_else(harness::system_load::default_tls_dir),
    };
    let file = harness::system_load::run(&options, &command_line(), &mut |line| {
        eprintln!("system-load: {line}")
    })?;
    write_result(&file, &out)
}

/// The directory result files go to: `out`, or the workspace's results directory.
fn results_dir(out: Option<PathBuf>) -> PathBuf {
    out.unwrap_or_else(results::default_dir)
}

/// Writes `file` under `dir` and says where.
fn write_result(file: &results::ResultFile, dir: &Path) -> anyhow::Result<()> {
    let path = file.write(dir)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// A duration in whole seconds, rounded up (for runs that count whole seconds).
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn scenario_path(name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.exists() || name.contains('/') || name.ends_with(".toml") {
        path.to_path_buf()
    } else {
        results::workspace_root()
            .join("harness")
            .join("scenarios")
            .join(format!("{name}.toml"))
    }
}

impl LoadArgs {
    /// The scenario file with the command line's overrides applied.
    fn scenario(&self) -> anyhow::Result<Scenario> {
        let mut s = Scenario::load(&scenario_path(&self.scenario))?;
        s.target = self.target.clone().unwrap_or(s.target);
        s.protocol = self.protocol.unwrap_or(s.protocol);
        s.path = self.path.clone().or(s.path);
        if let Some(rate) = self.rate {
            s.mode = Mode::Open;
            s.rate = Some(rate);
        }
        if self.closed {
            s.mode = Mode::Closed;
            s.rate = None;
        }
        s.connections = self.connections.unwrap_or(s.connections);
        s.in_flight = self.in_flight.unwrap_or(s.in_flight);
        s.threads = self.threads.unwrap_or(s.threads);
        s.duration_secs = self.duration.map_or(s.duration_secs, |d| d.as_secs_f64());
        s.warmup_secs = self.warmup.map_or(s.warmup_secs, |d| d.as_secs_f64());
        s.precise_timing |= self.precise_timing;
        s.spin_us = self.spin_us.unwrap_or(s.spin_us);
        Ok(s)
    }
}

fn load_command(args: LoadArgs) -> anyhow::Result<()> {
    let scenario = args.scenario()?;
    let options = RunOptions {
        target_pid: args.target_pid,
    };
    let measured = load::measure(&scenario, &options)?;
    show_report(&args, &measured.report)?;
    if let Some(path) = &args.hgrm {
        hgrm::write(path, &measured.latency_ns)?;
    }
    if let Some(suite) = &args.result {
        write_load_result(suite, &args.scenario, &measured.report)?;
    }
    if args.fail_on_error {
        check_outcomes(&measured.report)?;
    }
    Ok(())
}

/// Prints the table (unless quiet) and writes the JSON report where `--json` asks.
fn show_report(args: &LoadArgs, report: &Report) -> anyhow::Result<()> {
    let json_to_stdout = args.json.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if !args.quiet && !json_to_stdout {
        print!("{}", report.table());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(report)? + "\n";
        if json_to_stdout {
            print!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes reports/results/<suite>.json with the run as its one case.
fn write_load_result(suite: &str, scenario_name: &str, report: &Report) -> anyhow::Result<()> {
    let mut file = ResultFile::new(suite, &command_line());
    file.notes
        .insert("scenario".to_owned(), scenario_name.to_owned());
    let scenario = &report.scenario;
    file.cases.push(report.case(
        &format!("load/{}", scenario.name),
        scenario.protocol.as_str(),
    ));
    write_result(&file, &results::default_dir())
}

/// Fails when a request failed or none succeeded (rejections are not failures).
fn check_outcomes(report: &Report) -> anyhow::Result<()> {
    if report.requests.errors > 0 {
        bail!(
            "{} request(s) failed: {:?}",
            report.requests.errors,
            report.errors
        );
    }
    if report.requests.ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}

fn serve_bare(http: SocketAddr, grpc: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let http_listener = tokio::net::TcpListener::bind(http)
            .await
            .with_context(|| format!("{}: cannot listen on {http}", bare::HTTP_SERVER))?;
        let grpc_listener = tokio::net::TcpListener::bind(grpc)
            .await
            .with_context(|| format!("{}: cannot listen on {grpc}", bare::GRPC_SERVER))?;
        println!(
            "{}",
            launch::ready_line(bare::HTTP_SERVER, http_listener.local_addr()?)
        );
        println!(
            "{}",
            launch::ready_line(bare::GRPC_SERVER, grpc_listener.local_addr()?)
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let http_server = bare::serve_http(http_listener, stopped());
        let grpc_server = bare::serve_grpc(grpc_listener, stopped());
        let signal = async move {
            system::shutdown::signal().await;
            let _ = stop_tx.send(true);
        };
        let ((), grpc_result, ()) = tokio::join!(http_server, grpc_server, signal);
        grpc_result.context(bare::GRPC_SERVER)?;
        Ok(())
    })
}

fn peers_command(args: PeersArgs) -> anyhow::Result<()> {
    let harness_bin = std::env::current_exe().context("locating this program")?;
    let mut options = PeersOptions::new(harness_bin.clone(), args.quick);
    options.command = command_line();
    if let Some(rounds) = args.rounds {
        options.rounds = rounds.clamp(1, 20);
    }
    if let Some(duration) = args.duration {
        options.duration_secs = whole_seconds(duration).clamp(1, 60);
    }
    if let Some(suite) = args.suite {
        options.suite = suite;
    }
    options.use_tools = !args.no_tools;
    options.spin_us = args.spin_us;
    if options.use_tools && !args.no_install {
        install_peer_tools();
    }
    if !args.no_system {
        options.system_bin = Some(match args.system_bin {
            Some(bin) => bin,
            None => build_system(&harness_bin)?,
        });
    }
    let result = peers::run(&options, &mut |line| eprintln!("peers: {line}"))?;
    write_result(&result, &results_dir(args.out))
}

/// Tries to install wrk and h2load; the run goes on without the ones that are missing.
fn install_peer_tools() {
    let script = results::workspace_root()
        .join("scripts")
        .join("ensure-tools");
    let status = Command::new(&script)
        .args(["wrk", "h2load=nghttp2-client"])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("peers: wrk or h2load could not be installed; they are skipped where missing");
    }
}

/// Builds the release `system` binary and returns its path (beside this program when this
/// program is a release build in the same target directory).
fn build_system(harness_bin: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "system"])
        .current_dir(results::workspace_root())
        .status()
        .context("running cargo build --release -p system")?;
    if !status.success() {
        bail!("cargo build --release -p system failed");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| results::workspace_root().join("target"));
    let candidates = [
        harness_bin.with_file_name("system"),
        target_dir.join("release").join("system"),
    ];
    candidates
        .into_iter()
        .find(|path| path.ends_with("release/system") && path.exists())
        .context("the release system binary was not found after building it")
}

/// The command line as invoked, with paths inside the workspace shown relative to it.
fn command_line() -> String {
    std::env::args()
        .map(|arg| results::shown_path(std::path::Path::new(&arg)))
        .collect::<Vec<_>>()
        .join(" ")
}
