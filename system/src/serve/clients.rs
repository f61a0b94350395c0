//! The front doors' clients, told apart by address, each held to its share: at most
//! `MAX_CONNECTIONS_PER_CLIENT` open connections (counted at accept, before any TLS) and
//! at most `MEMORY_PER_CLIENT` bytes of the process's `MEMORY_BUDGET` in flight (a child
//! budget of it). A client that holds its share, typically a slow one whose bodies trickle
//! in, is refused, while clients that hold less are served: no single address can take
//! what the others need.
//!
//! A client is an IPv4 address, or an IPv6 /64 network (one host usually owns a whole
//! /64, so counting its addresses one by one would give it millions of shares). The table
//! holds only addresses with an open connection: an entry goes when its last connection
//! does, so the table is bounded by the server's connection limit.
//!
//! Every request carries a [`Peer`] in its extensions: the client it came from (when its
//! server tells clients apart) and where its server counts refusals.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::{
    domain::budget::{Budget, DEFAULT_MEMORY_BUDGET},
    serve::refusals::{Refusal, Refusals},
};

pub use crate::domain::budget::MEMORY_PER_CLIENT;
/// Most connections one client address keeps open at a front door unless told otherwise
/// (`MAX_CONNECTIONS_PER_CLIENT`).
pub(crate) const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 512;
/// The share of `MEMORY_BUDGET` one client may hold unless told otherwise: a quarter, so
/// that a client keeps whole requests of the largest kind in flight (a gRPC message of
/// the largest size is held about twice until the processor answers) and three quarters
/// always remain for the others.
pub(crate) const DEFAULT_MEMORY_SHARE_DIVISOR: usize = 4;

/// What one client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Most open connections of one address.
    pub connections: usize,
    /// Most bytes in flight for one address.
    pub memory: usize,
}

impl ClientLimits {
    /// The default shares within a process budget of `budget` bytes.
    pub fn within(budget: usize) -> ClientLimits {
        ClientLimits {
            connections: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            memory: budget / DEFAULT_MEMORY_SHARE_DIVISOR,
        }
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits::within(DEFAULT_MEMORY_BUDGET)
    }
}

/// The clients of a process's front doors and the budget their shares come from. One per
/// process: the gateway's ports and the gRPC port count an address together.
#[derive(Debug)]
pub struct Clients {
    table: Arc<Table>,
    budget: Arc<Budget>,
    limits: ClientLimits,
}

#[derive(Debug, Default)]
struct Table {
    entries: Mutex<HashMap<ClientKey, Weak<Entry>>>,
}

/// One address with open connections.
#[derive(Debug)]
struct Entry {
    key: ClientKey,
    connections: AtomicUsize,
    share: Arc<Budget>,
    table: Arc<Table>,
}

/// How clients are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl ClientKey {
    /// The client of a connection from `addr`: its IPv4 address (also when written as an
    /// IPv4-mapped IPv6 address), or its IPv6 /64.
    pub(crate) fn of(addr: SocketAddr) -> ClientKey {
        match addr.ip().to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
            }
        }
    }
}

/// One connection's hold on its client's entry; the connection is counted until it is
/// dropped.
#[derive(Debug)]
pub struct Client {
    entry: Arc<Entry>,
}

/// A connection refused because its address holds its share of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyConnections;

impl Clients {
    /// The clients of a process whose budget is `budget`.
    pub fn new(budget: &Arc<Budget>, limits: ClientLimits) -> Arc<Clients> {
        Arc::new(Clients {
            table: Arc::default(),
            budget: Arc::clone(budget),
            limits,
        })
    }

    /// The clients of `budget` with the default shares of it.
    pub fn within(budget: &Arc<Budget>) -> Arc<Clients> {
        Clients::new(budget, ClientLimits::within(budget.limit()))
    }

    /// The process's budget, which every client's share is part of.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The shares.
    pub fn limits(&self) -> ClientLimits {
        self.limits
    }

    /// Counts a new connection from `addr`, or refuses it when its client already holds
    /// its share of connections.
    pub(crate) fn admit(&self, addr: SocketAddr) -> Result<Client, TooManyConnections> {
        let key = ClientKey::of(addr);
        let mut entries = self.table.lock();
        if let Some(entry) = entries.get(&key).and_then(Weak::upgrade) {
            if entry.connections.load(Ordering::Relaxed) >= self.limits.connections {
                return Err(TooManyConnections);
            }
            entry.connections.fetch_add(1, Ordering::Relaxed);
            return Ok(Client { entry });
        }
        let entry = Arc::new(Entry {
            key,
            connections: AtomicUsize::new(1),
            share: Budget::child(&self.budget, MEMORY_PER_CLIENT, self.limits.memory),
            table: Arc::clone(&self.table),
        });
        entries.insert(key, Arc::downgrade(&entry));
        Ok(Client { entry })
    }

    /// Client addresses with an open connection now.
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    /// Whether no client has a connection open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Weak<Entry>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Client {
    /// The client's share of the budget: what its requests charge.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.entry.share
    }

    /// Connections its address holds open now.
    pub fn connections(&self) -> usize {
        self.entry.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.entry.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut entries = self.table.lock();
        // A new connection may have put a fresh entry under the key meanwhile.
        if entries
            .get(&self.key)
            .is_some_and(|entry| entry.strong_count() == 0)
        {
            entries.remove(&self.key);
        }
    }
}

/// What a request knows of the connection it came on: its client (when its server tells
/// clients apart) and where its server counts refusals. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Peer(Arc<PeerInner>);

#[derive(Debug)]
struct PeerInner {
    client: Option<Client>,
    refusals: Arc<Refusals>,
}

impl Peer {
    /// The peer of a connection from `client` (none: its server does not tell clients
    /// apart) on a server counting refusals in `refusals`.
    pub fn new(client: Option<Client>, refusals: Arc<Refusals>) -> Peer {
        Peer(Arc::new(PeerInner { client, refusals }))
    }

    /// The peer of a request in `extensions`, if its server put one there.
    pub fn of(extensions: &http::Extensions) -> Option<Peer> {
        extensions.get::<Peer>().cloned()
    }

    /// The budget this request charges: its client's share, or `process` when its server
    /// does not tell clients apart.
    pub fn budget<'a>(&'a self, process: &'a Arc<Budget>) -> &'a Arc<Budget> {
        self.0.client.as_ref().map_or(process, Client::budget)
    }

    /// Counts a refusal of this peer's request.
    pub fn refuse(&self, refusal: Refusal) {
        self.0.refusals.count(refusal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    #[test]
    fn an_address_keeps_at_most_its_share_of_connections() {
        let clients = Clients::new(
            &Budget::new("MEMORY_BUDGET", 1000),
            ClientLimits {
                connections: 2,
                memory: 100,
            },
        );
        let a1 = clients.admit(addr("127.0.0.2")).unwrap();
        let a2 = clients.admit(addr("127.0.0.2")).unwrap();
        assert_eq!(
            clients.admit(addr("127.0.0.2")).unwrap_err(),
            TooManyConnections
        );
        let b = clients.admit(addr("127.0.0.3")).unwrap();
        assert_eq!(
            (a1.connections(), b.connections(), clients.len()),
            (2, 1, 2)
        );
        drop(a1);
        let a3 = clients.admit(addr("127.0.0.2")).unwrap();
        drop((a2, a3, b));
        assert!(clients.is_empty(), "entries go with their last connection");
    }

    #[test]
    fn an_address_holds_at_most_its_share_of_the_budget_and_leaves_the_rest() {
        let budget = Budget::new("MEMORY_BUDGET", 1000);
        let clients = Clients::new(
            &budget,
            ClientLimits {
                connections: 10,
                memory: 400,
            },
        );
        let (a1, a2) = (
            clients.admit(addr("10.0.0.1")).unwrap(),
            clients.admit(addr("10.0.0.1")).unwrap(),
        );
        let held = a1.budget().try_charge(300).unwrap();
        let refused = a2.budget().try_charge(101).unwrap_err();
        assert_eq!(refused.setting, MEMORY_PER_CLIENT);
        assert_eq!(Refusal::of(&refused), Refusal::ClientMemory);
        let other = clients.admit(addr("10.0.0.2")).unwrap();
        let theirs = other.budget().try_charge(400).unwrap();
        assert_eq!(budget.used(), 700);
        drop((held, theirs));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_a_mapped_ipv4_is_the_ipv4() {
        assert_eq!(
            ClientKey::of(addr("2001:db8:1:2:aaaa::1")),
            ClientKey::of(addr("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            ClientKey::of(addr("2001:db8:1:2::1")),
            ClientKey::of(addr("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(addr("::ffff:192.0.2.7")),
            ClientKey::of(addr("192.0.2.7"))
        );
    }
}
