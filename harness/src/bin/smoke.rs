//! Starts the system as a user would (`system` with all roles, on free ports), runs the
//! end-to-end checks of `harness::smoke`, prints a verdict per check, writes
//! `smoke.json` (into `reports/results/` or `--out DIR`), and stops the system with SIGTERM.
//!
//! Usage: `smoke --system BINARY [--out DIR]` (`cargo xtask smoke` builds and runs it).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use harness::results::{Case, Metric, ResultFile, default_dir};

/// Runs the end-to-end smoke checks against a `system` binary.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The `system` binary to start.
    #[arg(long)]
    system: PathBuf,
    /// Directory of the result file (reports/results by default).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("smoke: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut child = Command::new(&args.system)
        .envs([
            ("API_PORT", "0"),
            ("GRPC_PORT", "0"),
            ("PROCESSOR_PORT", "0"),
            ("RUST_LOG", "info"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", args.system.display()))?;
    let addresses = match addresses(&mut child) {
        Ok(addresses) => addresses,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checks = runtime.block_on(harness::smoke::run(addresses["gateway"], addresses["grpc"]));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;

    let mut file = ResultFile::new("smoke", "cargo xtask smoke");
    for check in &checks {
        println!(
            "{} {:<16} {}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name,
            check.detail
        );
        file.cases.push(
            Case::new(check.name, "system", None)
                .param("detail", &check.detail)
                .metric(
                    "passed",
                    Metric::exact("bool", if check.passed { 1.0 } else { 0.0 }),
                ),
        );
    }
    println!(
        "{} {:<16} exit status {status}",
        if status.success() { "PASS" } else { "FAIL" },
        "shutdown"
    );
    file.write(&args.out.clone().unwrap_or_else(default_dir))?;
    let failed = checks.iter().filter(|c| !c.passed).count() + usize::from(!status.success());
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// Reads the `<role> listening on <addr>` lines of the three roles.
fn addresses(child: &mut Child) -> anyhow::Result<HashMap<&'static str, SocketAddr>> {
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut found = HashMap::new();
    while found.len() < 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .context("the system did not report its addresses within 30 s")?;
        for role in ["processor", "gateway", "grpc"] {
            if let Some((_, addr)) = line.split_once(&format!("{role} listening on ")) {
                found.insert(role, addr.trim().parse()?);
            }
        }
    }
    // Keep draining the log so the system never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Ok(found)
}
