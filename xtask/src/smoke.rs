//! `cargo xtask smoke`: starts the system as a user would (`system` with all roles, on free
//! ports), runs the end-to-end checks of `harness::smoke`, prints a verdict per check,
//! writes `reports/results/smoke.json`, and stops the system with SIGTERM.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail};
use harness::results::{Case, Metric, ResultFile, default_dir};

use crate::cmd::{cargo, workspace_root};

pub(crate) fn run() -> anyhow::Result<()> {
    cargo(&["build", "-p", "system"])?;
    let binary = workspace_root().join("target/debug/system");
    let mut child = Command::new(&binary)
        .envs([
            ("API_PORT", "0"),
            ("GRPC_PORT", "0"),
            ("PROCESSOR_PORT", "0"),
            ("RUST_LOG", "info"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
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
    file.write(&default_dir())?;
    let failed = checks.iter().filter(|c| !c.passed).count() + usize::from(!status.success());
    if failed > 0 {
        bail!("smoke: {failed} check(s) failed");
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
