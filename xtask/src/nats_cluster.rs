//! `cargo xtask nats-cluster [--port P] [--dir DIR]`: a three-node NATS JetStream cluster
//! on this machine in the foreground (`launch::NatsCluster` on fixed ports), for trying
//! the system's NATS queue with replicated streams. It prints the `NATS_URL` to use and
//! runs until Ctrl-C, SIGTERM or SIGHUP, then stops every node (SIGTERM, reaped) and exits
//! 0. Ctrl-C reaches the nodes too, since they share our process group; they stop by
//! themselves and are reaped the same way, so no node outlives the command either way.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use anyhow::{Context, bail};
use launch::{NatsCluster, NatsClusterOptions};

/// The highest `--port` whose monitoring ports (`P+4000` and the two after) still fit.
const MAX_PORT: u16 = u16::MAX - NatsCluster::MONITOR_PORT_OFFSET - 2;
/// How often the foreground loop looks for a stop signal or a node that ended.
const POLL: Duration = Duration::from_millis(100);

/// Set by the signal handler; read by the foreground loop.
static STOP: AtomicBool = AtomicBool::new(false);

/// `cargo xtask nats-cluster`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Ports from --port P: clients on P, P+1, P+2 (n1, n2, n3); routes between the nodes on
P+2000..P+2002; monitoring (/healthz, /jsz) on P+4000..P+4002. The default P=4222 gives
4222-4224, 6222-6224 and 8222-8224, all on 127.0.0.1.")]
pub(crate) struct Args {
    /// Client port of n1; n2 and n3 take the next two.
    #[arg(long, value_name = "P", default_value_t = 4222,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PORT)))]
    port: u16,
    /// Keep the stores in DIR/n1, DIR/n2 and DIR/n3, so the streams are still there when
    /// the cluster is started again (default: temporary stores, removed on exit).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let program = launch::ensure_nats_server().context(
        "`nats-server` is not installed and `scripts/ensure-tools nats-server` could not \
         install it",
    )?;
    catch_stop_signals()?;
    let options = NatsClusterOptions {
        first_client_port: Some(args.port),
        store_dir: args.dir.clone(),
    };
    let mut cluster = match NatsCluster::start_with(&program, &options) {
        Ok(cluster) => cluster,
        // Ctrl-C while starting stops the nodes before they are ready: not a failure.
        Err(_) if STOP.load(Ordering::SeqCst) => {
            println!("interrupted while starting; every node stopped");
            return Ok(());
        }
        Err(err) => return Err(err).context("the NATS cluster did not start"),
    };
    print_usage(&cluster, args);
    wait_for_stop(&mut cluster)?;
    cluster.stop();
    match &args.dir {
        Some(dir) => println!("stopped every node; the stores stay in {}", dir.display()),
        None => println!("stopped every node; the stores are removed"),
    }
    Ok(())
}

/// The nodes, their URLs and the line to give the system.
fn print_usage(cluster: &NatsCluster, args: &Args) {
    println!("NATS JetStream cluster ready:");
    for node in cluster.nodes() {
        println!(
            "  {}  {}  (monitoring http://127.0.0.1:{})",
            node.name().unwrap_or_default(),
            node.url(),
            node.monitor_port().unwrap_or_default()
        );
    }
    match &args.dir {
        Some(dir) => println!("stores in {} (kept)", dir.display()),
        None => println!("stores are temporary (removed on exit)"),
    }
    println!("use:");
    println!("  NATS_URL={} NATS_REPLICAS=3", cluster.urls());
    println!("Ctrl-C stops it.");
}

/// Returns once a stop signal came; an error when a node ended by itself first.
fn wait_for_stop(cluster: &mut NatsCluster) -> anyhow::Result<()> {
    loop {
        if STOP.load(Ordering::SeqCst) {
            return Ok(());
        }
        for name in cluster.names() {
            let Some(status) = cluster.node_mut(name).and_then(|node| node.exited()) else {
                continue;
            };
            // Ctrl-C reaches the nodes and us at the same time; give our handler the
            // moment it may need before calling the end unexpected.
            thread::sleep(POLL);
            if STOP.load(Ordering::SeqCst) {
                return Ok(());
            }
            let output = cluster
                .node(name)
                .and_then(|node| node.process())
                .map(|process| process.tail(20))
                .unwrap_or_default();
            bail!("node {name} ended by itself ({status}); its last lines:\n{output}");
        }
        thread::sleep(POLL);
    }
}

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP set [`STOP`] instead of ending us, so that the nodes are
/// stopped and reaped. The nodes do not inherit the handler: `exec` resets it.
fn catch_stop_signals() -> anyhow::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let previous =
            unsafe { libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t) };
        if previous == libc::SIG_ERR {
            bail!(
                "cannot catch signal {signal}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}
