//! Three `nats-server -js` nodes, `n1`, `n2` and `n3`, routed to each other as one
//! JetStream cluster on loopback ports. A cluster is handed out only once it can serve
//! JetStream: every node accepts clients and answers `/healthz` with `ok`, which nats-server
//! does only once the nodes have elected a meta leader and the node is current with it.
//! Any node can be killed and restarted, and rejoins; dropping the cluster stops every node
//! (SIGTERM, then reaped) and removes the stores it made.

use std::{
    io,
    net::TcpListener,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use super::{NatsServer, READY_TIMEOUT, healthz::wait_healthy};
use crate::LaunchError;

/// The node names, in the order of their ports.
const NAMES: [&str; 3] = ["n1", "n2", "n3"];
/// Starts on free ports tried before giving up because someone took one of them.
const FREE_PORT_ATTEMPTS: u32 = 3;

/// Where a cluster listens and keeps its stores; the default is free ports and temporary
/// stores.
#[derive(Debug, Clone, Default)]
pub struct NatsClusterOptions {
    /// The client port of `n1`, `P`; then `n2` and `n3` on `P+1` and `P+2`, the route ports
    /// on `P+2000..` and the monitoring ports on `P+4000..` (4222 gives 6222 and 8222, the
    /// ports nats-server uses by default). `None`: nine free ports.
    pub first_client_port: Option<u16>,
    /// The stores go to `DIR/n1`, `DIR/n2` and `DIR/n3` and are kept after the cluster
    /// stops, so a cluster started again on them finds its streams. `None`: a temporary
    /// directory, removed when the cluster is dropped.
    pub store_dir: Option<PathBuf>,
}

/// Three routed `nats-server -js` nodes; every node stopped, and the temporary stores
/// removed, when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    /// The temporary directory of the stores, removed on drop; `None` for stores the user
    /// named.
    temporary: Option<PathBuf>,
}

impl NatsCluster {
    /// How far above a node's client port its route port is.
    pub const ROUTE_PORT_OFFSET: u16 = 2000;
    /// How far above a node's client port its monitoring port is.
    pub const MONITOR_PORT_OFFSET: u16 = 4000;

    /// Starts three nodes of `program` on free ports with temporary stores and waits
    /// until the cluster serves JetStream.
    pub fn start(program: &Path) -> Result<NatsCluster, LaunchError> {
        NatsCluster::start_with(program, &NatsClusterOptions::default())
    }

    /// Like [`NatsCluster::start`], on the client ports `first_client_port` and the two
    /// after it (see [`NatsClusterOptions::first_client_port`]).
    pub fn start_on(program: &Path, first_client_port: u16) -> Result<NatsCluster, LaunchError> {
        NatsCluster::start_with(
            program,
            &NatsClusterOptions {
                first_client_port: Some(first_client_port),
                store_dir: None,
            },
        )
    }

    /// Starts three nodes of `program` as `options` say and waits (up to 30 s) until
    /// every node accepts clients and JetStream has its meta leader; on failure every node
    /// is stopped and the error names what was missing.
    pub fn start_with(
        program: &Path,
        options: &NatsClusterOptions,
    ) -> Result<NatsCluster, LaunchError> {
        let Some(first) = options.first_client_port else {
            // A free port can be taken by someone else before the node binds it (on a
            // busy machine, by an outgoing connection): then nine other ports.
            let mut attempt = 1;
            loop {
                match NatsCluster::start_on_ports(program, Ports::free(), options) {
                    Err(err) if attempt < FREE_PORT_ATTEMPTS && port_taken(&err) => attempt += 1,
                    result => return result,
                }
            }
        };
        NatsCluster::start_on_ports(program, Ports::fixed(first), options)
    }

    /// For a test: a running cluster, or `None` after saying (on stderr) that `test` is
    /// skipped because `nats-server` cannot be had. Panics when it is there but the
    /// cluster does not start.
    pub fn for_test(test: &str) -> Option<NatsCluster> {
        super::for_test(test, NatsCluster::start)
    }

    /// The three client URLs, comma-separated: the value of `NATS_URL` for a client that
    /// may use any node.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(NatsServer::url).collect();
        urls.join(",")
    }

    /// The node names, `n1`, `n2` and `n3`.
    pub fn names(&self) -> [&'static str; 3] {
        NAMES
    }

    /// The nodes, in the order of [`NatsCluster::names`].
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NatsServer> {
        self.nodes.iter().find(|node| node.name() == Some(name))
    }

    /// The node called `name`, to kill or restart it.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NatsServer> {
        self.nodes.iter_mut().find(|node| node.name() == Some(name))
    }

    /// Starts every node that is not running (killed, or ended by itself) and waits until
    /// the cluster serves JetStream again. Unlike [`NatsServer::restart`] one node at a
    /// time, this also brings back a cluster that lost most of its nodes.
    pub fn restart_stopped(&mut self) -> Result<(), LaunchError> {
        for node in &mut self.nodes {
            if node.process.is_none() || node.exited().is_some() {
                node.spawn()?;
            }
        }
        self.wait_healthy()
    }

    /// Stops every node cleanly: SIGTERM to all of them at once, then each is reaped
    /// (killed if it takes longer than its grace). The stores stay until the drop.
    pub fn stop(&mut self) {
        for process in self.nodes.iter().filter_map(NatsServer::process) {
            let _ = process.signal("TERM");
        }
        for node in &mut self.nodes {
            node.stop();
        }
    }

    fn start_on_ports(
        program: &Path,
        ports: io::Result<Ports>,
        options: &NatsClusterOptions,
    ) -> Result<NatsCluster, LaunchError> {
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let ports = ports.map_err(|source| LaunchError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        let (dir, temporary) = match &options.store_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "nats-cluster-{}-{}",
                    std::process::id(),
                    CLUSTERS.fetch_add(1, Ordering::Relaxed)
                ));
                (dir.clone(), Some(dir))
            }
        };
        // The ports are ours while the cluster runs, so the name is unique among running
        // clusters, and a cluster started again on kept stores keeps its name.
        let cluster_name = format!("nats-cluster-{}", ports.client[0]);
        let nodes = (0..NAMES.len())
            .map(|i| NatsServer {
                program: program.to_owned(),
                port: ports.client[i],
                store: dir.join(NAMES[i]),
                keep_store: temporary.is_none(),
                extra: Vec::new(),
                node: Some(Node {
                    name: NAMES[i],
                    cluster_name: cluster_name.clone(),
                    route_port: ports.route[i],
                    monitor_port: ports.monitor[i],
                    routes: (0..NAMES.len())
                        .filter(|&j| j != i)
                        .map(|j| ports.route[j])
                        .collect(),
                }),
                process: None,
            })
            .collect();
        let mut cluster = NatsCluster { nodes, temporary };
        for node in &mut cluster.nodes {
            node.spawn()?;
        }
        cluster.wait_healthy()?;
        Ok(cluster)
    }

    fn wait_healthy(&mut self) -> Result<(), LaunchError> {
        let mut nodes: Vec<&mut NatsServer> = self.nodes.iter_mut().collect();
        wait_healthy(&mut nodes, READY_TIMEOUT)
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.temporary {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What makes a server a node of a cluster: its name, its route and monitoring ports and
/// the route ports of the other nodes.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) name: &'static str,
    cluster_name: String,
    route_port: u16,
    pub(super) monitor_port: u16,
    routes: Vec<u16>,
}

impl Node {
    /// The name of the cluster it belongs to.
    pub(super) fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// Its arguments to `nats-server`, after those of a server alone.
    pub(super) fn args(&self) -> Vec<String> {
        let route_url = |port| format!("nats://127.0.0.1:{port}");
        let routes: Vec<String> = self.routes.iter().copied().map(route_url).collect();
        vec![
            "-n".to_owned(),
            self.name.to_owned(),
            "--cluster_name".to_owned(),
            self.cluster_name.clone(),
            "--cluster".to_owned(),
            route_url(self.route_port),
            "--routes".to_owned(),
            routes.join(","),
            "-m".to_owned(),
            self.monitor_port.to_string(),
        ]
    }
}

/// Whether a node failed because one of its ports was taken.
fn port_taken(err: &LaunchError) -> bool {
    matches!(err, LaunchError::NotReady { output, .. } if output.contains("address already in use"))
}

/// The ports of the three nodes, in the order of [`NAMES`].
struct Ports {
    client: [u16; 3],
    route: [u16; 3],
    monitor: [u16; 3],
}

impl Ports {
    /// Consecutive ports from `first`, the route and monitoring ports at their offsets.
    fn fixed(first: u16) -> io::Result<Ports> {
        let at = |offset: u16, i: u16| {
            first
                .checked_add(offset)
                .and_then(|port| port.checked_add(i))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "client port {first} leaves no room for the monitoring ports \
                             (+{} and the two after)",
                            NatsCluster::MONITOR_PORT_OFFSET
                        ),
                    )
                })
        };
        let three = |offset| -> io::Result<[u16; 3]> {
            Ok([at(offset, 0)?, at(offset, 1)?, at(offset, 2)?])
        };
        Ok(Ports {
            client: three(0)?,
            route: three(NatsCluster::ROUTE_PORT_OFFSET)?,
            monitor: three(NatsCluster::MONITOR_PORT_OFFSET)?,
        })
    }

    /// Nine distinct free loopback ports: all are held at once while they are picked.
    fn free() -> io::Result<Ports> {
        let held = (0..9)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        let mut ports = held
            .iter()
            .map(|listener| Ok(listener.local_addr()?.port()))
            .collect::<io::Result<Vec<u16>>>()?
            .into_iter();
        let mut three = || [0; 3].map(|_| ports.next().unwrap_or_default());
        Ok(Ports {
            client: three(),
            route: three(),
            monitor: three(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream},
        path::Path,
    };

    use super::NatsCluster;
    use crate::nats::healthz::healthz;
    use crate::{LaunchError, ensure_nats_server};

    fn reach(port: u16) -> bool {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    #[test]
    fn a_cluster_survives_a_killed_node_which_rejoins_and_is_gone_when_dropped() {
        let Some(mut cluster) = NatsCluster::for_test("nats cluster test of launch") else {
            return;
        };
        let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port()).collect();
        assert_eq!(
            cluster.urls(),
            ports
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(ports.iter().all(|&p| reach(p)), "{}", cluster.urls());
        for node in cluster.nodes() {
            assert_eq!(healthz(node.monitor_port().unwrap()), Ok(()));
        }
        assert_eq!(cluster.node("n2").and_then(|n| n.name()), Some("n2"));
        let stores: Vec<_> = cluster.nodes().iter().map(|n| n.store.clone()).collect();
        assert!(stores.iter().all(|s| s.exists()));

        let n2 = cluster.node_mut("n2").unwrap();
        n2.kill();
        assert!(!reach(n2.port()));
        for name in ["n1", "n3"] {
            assert!(reach(cluster.node(name).unwrap().port()), "{name}");
        }
        cluster.node_mut("n2").unwrap().restart().unwrap();
        let n2 = cluster.node("n2").unwrap();
        assert!(reach(n2.port()));
        assert_eq!(healthz(n2.monitor_port().unwrap()), Ok(()));

        let pids: Vec<u32> = cluster
            .nodes()
            .iter()
            .map(|n| n.process().unwrap().pid())
            .collect();
        drop(cluster);
        for pid in pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{pid}");
        }
        assert!(stores.iter().all(|s| !s.exists()), "{stores:?}");
    }

    #[test]
    fn a_cluster_that_cannot_start_says_which_node_and_why() {
        let Some(program) = ensure_nats_server() else {
            eprintln!("skipping a cluster that cannot start: no `nats-server`");
            return;
        };
        // Below the range the OS hands out for outgoing connections, nine ports at the
        // cluster's offsets that are free; then someone else takes n2's client port.
        let free = |port| TcpListener::bind(("127.0.0.1", port)).is_ok();
        let first = (10_000..28_000)
            .step_by(3)
            .find(|&p| {
                [
                    0,
                    NatsCluster::ROUTE_PORT_OFFSET,
                    NatsCluster::MONITOR_PORT_OFFSET,
                ]
                .iter()
                .all(|offset| (0..3).all(|i| free(p + offset + i)))
            })
            .expect("no free ports for a cluster");
        let _taken = TcpListener::bind(("127.0.0.1", first + 1)).unwrap();
        let err = NatsCluster::start_on(&program, first).unwrap_err();
        let shown = err.to_string();
        assert!(matches!(err, LaunchError::NotReady { .. }), "{shown}");
        assert!(shown.contains(r#""n2""#), "{shown}");
        assert!(shown.contains("address already in use"), "{shown}");
    }
}
