//! A TCP proxy for network-fault tests: it listens on an ephemeral loopback port and pipes
//! every connection to a target address, until told to cut.
//!
//! - `cut()` closes every live connection and refuses new ones (accepts, then closes at once:
//!   the peer sees a reset or EOF, never a hang), until `heal()`.
//! - `cut_from(pid)` does the same only for connections whose client socket belongs to the
//!   process `pid` (looked up in /proc: the client end's socket inode, then the process's
//!   fds). All test processes share 127.0.0.1, so the process is the only thing that tells
//!   one node's outgoing connections from another's.
//! - `black_hole()` and `black_hole_from(pid)` drop nothing and close nothing: bytes stop
//!   moving both ways (the senders' socket buffers fill up, then their writes block), and
//!   new connections are accepted but not forwarded, as when packets are lost on the way
//!   and no reset comes back. Peers notice only by their own timeouts. At `heal()` the
//!   held bytes and connections go through, as TCP retransmits them once a route is back.
//!
//! Put one proxy in front of each listener of a node (Kafka, controller) and advertise the
//! proxy's address: cutting node X's proxies plus `cut_from(X's pid)` on every other proxy
//! severs all TCP to and from X (see `Node::start_cluster_behind_proxies`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Conn {
    /// Port of the client's end (its local port, our peer port).
    client_port: u16,
    client: TcpStream,
    upstream: TcpStream,
    /// In a black hole: its pumps hold what they read until `heal`.
    frozen: Arc<AtomicBool>,
}

impl Conn {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

#[derive(Default)]
struct State {
    cut: bool,
    blocked_pids: HashSet<i32>,
    /// Everything in a black hole (`black_hole`), or what these processes opened.
    held: bool,
    held_pids: HashSet<i32>,
    /// Bumped by each `cut_from` and `black_hole_from`, so a connection checked before it
    /// is checked again.
    cuts: u64,
    conns: HashMap<u64, Conn>,
    /// Processes whose connection attempts to note (see `watch_dialers`).
    watched: HashSet<i32>,
    dialed: HashSet<i32>,
}

/// A running proxy; stops (closing everything) when dropped.
pub struct Proxy {
    /// `127.0.0.1:port` the proxy listens on.
    pub addr: String,
    /// Where it forwards to.
    pub target: String,
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy on an ephemeral loopback port forwarding to `target`.
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let proxy = Proxy {
            addr: format!("127.0.0.1:{port}"),
            target: target.to_string(),
            port,
            state: state.clone(),
            stop: stop.clone(),
        };
        let target = target.to_string();
        std::thread::spawn(move || accept_loop(listener, port, target, state, stop));
        proxy
    }

    /// Closes every live connection and refuses new ones until `heal`.
    pub fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut = true;
        for c in s.conns.values() {
            c.close();
        }
    }

    /// Closes the connections opened by process `pid` and refuses its new ones until `heal`.
    pub fn cut_from(&self, pid: i32) {
        let mut s = self.state.lock().unwrap();
        s.blocked_pids.insert(pid);
        s.cuts += 1;
        for c in self.opened_by(&s, pid) {
            c.close();
        }
    }

    /// The live connections process `pid` opened.
    fn opened_by<'a>(&self, s: &'a State, pid: i32) -> impl Iterator<Item = &'a Conn> {
        let owned = socket_inodes(pid);
        let port = self.port;
        s.conns
            .values()
            .filter(move |c| client_inode(c.client_port, port).is_some_and(|i| owned.contains(&i)))
    }

    /// Stops every byte both ways, on live and new connections, closing nothing, until
    /// `heal`.
    pub fn black_hole(&self) {
        let mut s = self.state.lock().unwrap();
        s.held = true;
        for c in s.conns.values() {
            c.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// `black_hole` for the connections of process `pid` only.
    pub fn black_hole_from(&self, pid: i32) {
        let mut s = self.state.lock().unwrap();
        s.held_pids.insert(pid);
        s.cuts += 1;
        for c in self.opened_by(&s, pid) {
            c.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Lets every connection through again (a black hole's held bytes first).
    pub fn heal(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut = false;
        s.blocked_pids.clear();
        s.held = false;
        s.held_pids.clear();
        for c in s.conns.values() {
            c.frozen.store(false, Ordering::SeqCst);
        }
    }

    /// From now on notes which of `pids` connect (or try to, while cut): see `dialed`.
    pub fn watch_dialers(&self, pids: &[i32]) {
        let mut s = self.state.lock().unwrap();
        s.watched = pids.iter().copied().collect();
        s.dialed.clear();
    }

    /// The watched processes that connected or tried to since `watch_dialers`.
    pub fn dialed(&self) -> HashSet<i32> {
        self.state.lock().unwrap().dialed.clone()
    }

    /// Live connections (for tests of the proxy itself).
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().conns.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn accept_loop(
    listener: TcpListener,
    port: u16,
    target: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
) {
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        // Each connection on its own thread: telling its process from /proc takes a few
        // milliseconds, and done here it would hold every other connection in the accept
        // queue (Raft's 100 ms calls then time out behind each other: the proxy, not the
        // product, would be what fails).
        let (target, state, stop) = (target.clone(), state.clone(), stop.clone());
        std::thread::spawn(move || admit(client, port, &target, &state, &stop));
    }
}

/// Pipes one accepted connection to `target`, unless it is refused.
fn admit(
    client: TcpStream,
    port: u16,
    target: &str,
    state: &Arc<Mutex<State>>,
    stop: &Arc<AtomicBool>,
) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let client_port = client.peer_addr().map(|a| a.port()).unwrap_or(0);
    let (watched, blocked_pids, held_pids, cuts) = {
        let s = state.lock().unwrap();
        let held = s.held_pids.clone();
        (s.watched.clone(), s.blocked_pids.clone(), held, s.cuts)
    };
    // The /proc lookups run without the lock.
    let dialer = if watched.is_empty() {
        None
    } else {
        client_inode(client_port, port).and_then(|inode| {
            watched
                .iter()
                .copied()
                .find(|pid| socket_inodes(*pid).contains(&inode))
        })
    };
    let from_blocked = blocked(&blocked_pids, client_port, port);
    let refused = {
        let mut s = state.lock().unwrap();
        s.dialed.extend(dialer);
        // A pid blocked meanwhile is caught by `cut_from`'s sweep of live connections.
        s.cut || from_blocked
    };
    if refused {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    // In a black hole the connection waits, as a SYN retransmitted until a route is back.
    let from_held = blocked(&held_pids, client_port, port);
    loop {
        let s = state.lock().unwrap();
        let still_held = s.held || (from_held && !s.held_pids.is_empty());
        if !still_held || s.cut || stop.load(Ordering::SeqCst) {
            break;
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(10));
    }
    let Ok(upstream) = TcpStream::connect_timeout(
        &target.parse().expect("target is ip:port"),
        Duration::from_secs(2),
    ) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (Ok(c3), Ok(u3)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let frozen = Arc::new(AtomicBool::new(false));
    {
        let mut s = state.lock().unwrap();
        // A cut may have come in while we connected upstream (or a `cut_from` that swept
        // the live connections before this one was among them).
        let cut_since = s.cuts != cuts && blocked(&s.blocked_pids, client_port, port);
        if s.cut || cut_since || stop.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        let held_since = s.cuts != cuts && blocked(&s.held_pids, client_port, port);
        frozen.store(s.held || held_since, Ordering::SeqCst);
        s.conns.insert(
            id,
            Conn {
                client_port,
                client,
                upstream,
                frozen: frozen.clone(),
            },
        );
    }
    let (frozen2, stop2) = (frozen.clone(), stop.clone());
    std::thread::spawn(move || pump(c2, u2, &frozen2, &stop2));
    pump(u3, c3, &frozen, stop);
    let gone = state.lock().unwrap().conns.remove(&id);
    if let Some(c) = gone {
        c.close();
    }
}

/// Copies `from` to `to` until either side closes; then closes both. While `frozen`, what
/// it read (or the close it saw) waits.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buf);
        while frozen.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn blocked(pids: &HashSet<i32>, client_port: u16, proxy_port: u16) -> bool {
    if pids.is_empty() {
        return false;
    }
    let Some(inode) = client_inode(client_port, proxy_port) else {
        return false;
    };
    pids.iter().any(|pid| socket_inodes(*pid).contains(&inode))
}

/// The socket inode of the client end of a loopback connection to `proxy_port` from
/// `client_port` (from /proc/net/tcp).
fn client_inode(client_port: u16, proxy_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{client_port:04X}");
    let remote = format!("0100007F:{proxy_port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == local && f[2] == remote)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// The inodes of every socket process `pid` holds open.
fn socket_inodes(pid: i32) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sends back what it reads; its address.
    fn echo_server() -> String {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in echo.incoming().map_while(Result::ok) {
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    #[test]
    fn pipes_then_cuts_then_heals() {
        let proxy = Proxy::start(&echo_server());
        let roundtrip = || -> std::io::Result<Vec<u8>> {
            let mut s = TcpStream::connect(&proxy.addr)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"ping")?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf)?;
            Ok(buf.to_vec())
        };
        assert_eq!(roundtrip().unwrap(), b"ping");

        let mut live = TcpStream::connect(&proxy.addr).unwrap();
        live.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        live.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        live.read_exact(&mut one).unwrap();
        proxy.cut();
        assert!(
            matches!(live.read(&mut one), Ok(0) | Err(_)),
            "a live connection is closed by the cut"
        );
        assert!(roundtrip().is_err(), "new connections are refused");

        // Only this process's connections: blocked by pid, then healed.
        proxy.heal();
        assert_eq!(roundtrip().unwrap(), b"ping");
        let me = std::process::id() as i32;
        proxy.watch_dialers(&[me]);
        proxy.cut_from(me);
        assert!(
            roundtrip().is_err(),
            "connections from a cut-off pid refused"
        );
        assert!(proxy.dialed().contains(&me), "the attempt was noted");
        proxy.cut_from(1); // some other process: ours still refused, nothing else changes
        proxy.heal();
        assert_eq!(roundtrip().unwrap(), b"ping");
    }

    #[test]
    fn a_black_hole_holds_bytes_and_connections_until_healed() {
        let proxy = Proxy::start(&echo_server());
        let open = || {
            let s = TcpStream::connect(&proxy.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s
        };
        let mut live = open();
        live.write_all(b"a").unwrap();
        let mut one = [0u8; 1];
        live.read_exact(&mut one).unwrap();

        proxy.black_hole();
        live.write_all(b"b").unwrap();
        let mut late = open();
        late.write_all(b"c").unwrap();
        for s in [&mut live, &mut late] {
            let err = s
                .read(&mut one)
                .expect_err("nothing comes back, nothing is closed");
            assert!(
                matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{err}"
            );
        }
        proxy.heal();
        for (s, sent) in [(&mut live, b'b'), (&mut late, b'c')] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.read_exact(&mut one).unwrap();
            assert_eq!(one[0], sent, "held bytes go through after the heal");
        }

        // Only this process's connections.
        let me = std::process::id() as i32;
        proxy.black_hole_from(me);
        live.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        live.write_all(b"d").unwrap();
        assert!(live.read(&mut one).is_err(), "held");
        proxy.heal();
        live.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        live.read_exact(&mut one).unwrap();
        assert_eq!(one[0], b'd');
    }
}
