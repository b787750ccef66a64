//! Nodes of a distributed test, each in a Linux network namespace of its
//! own, reaching the host's PostgreSQL through a forwarder, with a link
//! that a test can cut and restore without killing the node.
//!
//! A [`Node`] is a namespace `es-<tag>-<pid>-<index>` joined to the host by
//! a veth pair `esh<slot>` (host) and `esn<slot>` (node) on the /30 number
//! `slot` of `10.231.0.0/16`: the host end has the first address, the node
//! end the second, and the node has no other route. The first `ip link add`
//! that wins a host-side name owns that slot, so parallel runs pick
//! different ones. PostgreSQL listens on loopback only, which a namespace
//! cannot reach, so a forwarder thread listens on the host end's address
//! and relays each connection to `127.0.0.1:5432`.
//!
//! # What a node observes when cut
//!
//! [`Node::cut`] takes the host end down; a veth pair with one end down
//! passes nothing either way. The node's end stays up, without carrier, and
//! keeps its route, so the node sees a silent network, not a local error:
//!
//! - a new connection gets no answer: it times out, or, after about three
//!   seconds of unanswered address resolution, fails with "no route to
//!   host";
//! - an established connection stalls: what the node sends is neither
//!   delivered nor acknowledged and what it waits for does not come, but
//!   nothing resets it. Once [`Node::restore`] brings the link back, the
//!   held or retransmitted segments get through and the connection carries
//!   on, unless a timeout of the node's own (or of the server, which sees
//!   an idle client meanwhile) ended it first.
//!
//! Taking the node's end down as well would make the node's sends fail at
//! once with "network is unreachable", which a real partition does not do,
//! and would stop nothing more, so `cut` leaves it up. The forwarder's
//! sockets are bound to the host end: while it is down, what they send is
//! refused locally instead of leaving through the host's default route.

use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the forwarder relays connections: the host's PostgreSQL.
pub const POSTGRES: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5432);

/// How many /30 networks `10.231.0.0/16` holds.
const SLOTS: u32 = 1 << 14;
/// How many slots `create` tries before giving up.
const ATTEMPTS: u32 = 64;

/// Why a node could not be made: the tests that need one skip, saying this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// A network namespace with a veth link to the host and a forwarder to
/// PostgreSQL. Dropping it stops the forwarder and deletes the link and the
/// namespace; processes started in it with [`Node::command`] are not
/// killed (they lose the network).
#[derive(Debug)]
pub struct Node {
    ip: PathBuf,
    name: String,
    host_if: String,
    host_addr: Ipv4Addr,
    addr: Ipv4Addr,
    forwarder: Forwarder,
}

impl Node {
    /// Makes the namespace `es-<tag>-<pid>-<index>` of this process, after
    /// removing the namespaces of `tag` left by processes that are gone
    /// (see [`remove_stale`]). `tag` is ASCII letters, digits and `_`;
    /// `index` tells apart the nodes of one process with the same tag. Some
    /// tens of milliseconds: a dozen runs of `ip`.
    ///
    /// Fails, saying why, without root, without `ip`, when the kernel
    /// refuses a namespace or a link (as in a container without
    /// `CAP_NET_ADMIN`), or when the same node already exists.
    pub fn create(tag: &str, index: u8) -> Result<Node, Skip> {
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if !(1..=24).contains(&tag.len()) || !tag.bytes().all(valid) {
            return Err(Skip(format!(
                "bad tag {tag:?}: 1 to 24 letters, digits or _"
            )));
        }
        if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
            return Err(Skip("network namespaces need root".to_owned()));
        }
        let ip = find_ip()?;
        // A failure here only leaves leftovers: the run goes on without it.
        let _ = remove_stale_with(&ip, tag);
        let name = format!("es-{tag}-{}-{index}", std::process::id());
        run(&ip, &["netns", "add", &name]).map_err(Skip)?;
        let (host_if, host_addr, addr) = link(&ip, &name).map_err(|e| {
            let _ = run(&ip, &["netns", "del", &name]);
            Skip(e)
        })?;
        let forwarder = Forwarder::start(&host_if, host_addr).map_err(|e| {
            teardown(&ip, &host_if, &name);
            Skip(format!("no forwarder on {host_addr}: {e}"))
        })?;
        Ok(Node {
            ip,
            name,
            host_if,
            host_addr,
            addr,
            forwarder,
        })
    }

    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host end's interface name, in the host's namespace.
    #[must_use]
    pub fn host_link(&self) -> &str {
        &self.host_if
    }

    /// The host end's address, where the forwarder listens.
    #[must_use]
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// The node end's address.
    #[must_use]
    pub fn node_addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Where the node reaches PostgreSQL: the forwarder's address.
    #[must_use]
    pub fn forwarder(&self) -> SocketAddr {
        self.forwarder.addr
    }

    /// `base` with its host and port replaced by the forwarder's; see
    /// [`rewrite_url`].
    #[must_use]
    pub fn postgres_url(&self, base: &str) -> String {
        rewrite_url(base, self.forwarder.addr)
    }

    /// A command that runs `program` in the namespace (through
    /// `ip netns exec`); add arguments and environment to it.
    #[must_use]
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(&self.ip);
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Cuts the node off: takes the host end of its link down. See the
    /// module's documentation for what the node observes.
    pub fn cut(&self) -> io::Result<()> {
        self.set_host_end("down")
    }

    /// Brings the link back up after [`Node::cut`].
    pub fn restore(&self) -> io::Result<()> {
        self.set_host_end("up")
    }

    /// Sets the host end `up` or `down`.
    fn set_host_end(&self, state: &str) -> io::Result<()> {
        let args = ["link", "set", &self.host_if, state];
        run(&self.ip, &args).map(drop).map_err(io::Error::other)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.forwarder.stop();
        teardown(&self.ip, &self.host_if, &self.name);
    }
}

/// Deletes the link and the namespace. Deleting one end deletes the pair
/// at once, even while a process still holds the namespace.
fn teardown(ip: &Path, host_if: &str, name: &str) {
    let _ = run(ip, &["link", "del", host_if]);
    let _ = run(ip, &["netns", "del", name]);
}

/// `base`, a `postgres://` or `postgresql://` URL, with the host and port of
/// its authority replaced by `to`; user, password, database and parameters
/// are kept. Anything else is returned unchanged.
#[must_use]
pub fn rewrite_url(base: &str, to: SocketAddr) -> String {
    let Some(scheme_end) = base.find("://") else {
        return base.to_owned();
    };
    if !matches!(&base[..scheme_end], "postgres" | "postgresql") {
        return base.to_owned();
    }
    let start = scheme_end + 3;
    let end = base[start..]
        .find(['/', '?'])
        .map_or(base.len(), |i| start + i);
    let host_start = base[start..end].rfind('@').map_or(start, |i| start + i + 1);
    format!("{}{to}{}", &base[..host_start], &base[end..])
}

/// Removes the namespaces `es-<tag>-<pid>-<index>` whose process is no
/// longer running, with their links; returns how many. A pid that has been
/// reused by another process keeps its namespace until that one ends.
pub fn remove_stale(tag: &str) -> Result<usize, Skip> {
    remove_stale_with(&find_ip()?, tag).map_err(Skip)
}

/// [`remove_stale`] with this `ip` command.
fn remove_stale_with(ip: &Path, tag: &str) -> Result<usize, String> {
    let prefix = format!("es-{tag}-");
    let mut removed = 0;
    for line in run(ip, &["netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let pid = (name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('-')))
        .filter(|(_, index)| index.parse::<u8>().is_ok())
        .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // A process left in the namespace would keep it, and the link, alive.
        for link in run(ip, &["-n", name, "-o", "link", "show", "type", "veth"])?.lines() {
            if let Some(dev) = link.split(": ").nth(1).and_then(|d| d.split('@').next()) {
                let _ = run(ip, &["-n", name, "link", "del", dev]);
            }
        }
        run(ip, &["netns", "del", name])?;
        removed += 1;
    }
    Ok(removed)
}

/// The `ip` command, where iproute2 installs it.
fn find_ip() -> Result<PathBuf, Skip> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| Skip("no `ip` command (iproute2) found".to_owned()))
}

/// Runs `ip` with `args`; its standard output, or what it said on failure.
fn run(ip: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(ip)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ip.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Claims a slot for namespace `name` and sets its link up: the host end's
/// name, its address and the node end's address.
fn link(ip: &Path, name: &str) -> Result<(String, Ipv4Addr, Ipv4Addr), String> {
    let mut hasher = DefaultHasher::new();
    name.hash(&mut hasher);
    let first = u32::try_from(hasher.finish() % u64::from(SLOTS)).unwrap_or(0);
    for attempt in 0..ATTEMPTS {
        let slot = (first + attempt) % SLOTS;
        let (host_if, node_if) = (format!("esh{slot}"), format!("esn{slot}"));
        let pair = ["type", "veth", "peer", "name", &node_if, "netns", name];
        match run(ip, &[&["link", "add", &host_if][..], &pair].concat()) {
            Err(e) if e.contains("File exists") => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let base = u32::from(Ipv4Addr::new(10, 231, 0, 0)) + slot * 4;
        let (host_addr, addr) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        // Someone outside this scheme may use these addresses: leave them.
        let net = format!("{}/30", Ipv4Addr::from(base));
        let used = run(ip, &["-4", "-o", "addr", "show", "to", &net]);
        if !used.unwrap_or_default().trim().is_empty() {
            let _ = run(ip, &["link", "del", &host_if]);
            continue;
        }
        let (host_net, net) = (format!("{host_addr}/30"), format!("{addr}/30"));
        let steps: [&[&str]; 5] = [
            &["addr", "add", &host_net, "dev", &host_if],
            &["-n", name, "addr", "add", &net, "dev", &node_if],
            &["-n", name, "link", "set", "lo", "up"],
            &["-n", name, "link", "set", &node_if, "up"],
            &["link", "set", &host_if, "up"],
        ];
        if let Err(e) = steps.iter().try_for_each(|args| run(ip, args).map(drop)) {
            let _ = run(ip, &["link", "del", &host_if]);
            return Err(e);
        }
        return Ok((host_if, host_addr, addr));
    }
    Err(format!(
        "no free /30 in 10.231.0.0/16 after {ATTEMPTS} tries"
    ))
}

/// A listener on the host end that relays each connection to [`POSTGRES`],
/// one thread per direction, until stopped.
#[derive(Debug)]
struct Forwarder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A relayed connection: both sockets, and the two threads pumping them.
type Relay = (TcpStream, TcpStream, [JoinHandle<()>; 2]);

impl Forwarder {
    /// Listens on `addr`, port 5432 if free (another port if not), bound to
    /// the device `host_if`.
    fn start(host_if: &str, addr: Ipv4Addr) -> io::Result<Forwarder> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.bind_device(Some(host_if.as_bytes()))?;
        let port = SocketAddr::from((addr, POSTGRES.port()));
        if socket.bind(&port.into()).is_err() {
            socket.bind(&SocketAddr::from((addr, 0)).into())?;
        }
        socket.listen(128)?;
        let listener = TcpListener::from(socket);
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("netns-forward-{addr}"))
            .spawn(move || accept(&listener, &flag))?;
        Ok(Forwarder {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting, closes every relayed connection, and waits for all
    /// threads.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The accept loop: polls `listener` until `stop`, then closes the relays.
fn accept(listener: &TcpListener, stop: &AtomicBool) {
    let mut relays: Vec<Relay> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if let Ok(relay) = relay(client) {
                    relays.push(relay);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
        relays.retain(|(_, _, threads)| !threads.iter().all(JoinHandle::is_finished));
    }
    for (client, server, threads) in relays {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Connects `client` to [`POSTGRES`] and starts pumping both ways. When the
/// server cannot be reached, `client` is closed.
fn relay(client: TcpStream) -> io::Result<Relay> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&POSTGRES, Duration::from_secs(5))?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let up = pump(client.try_clone()?, server.try_clone()?)?;
    let down = pump(server.try_clone()?, client.try_clone()?)?;
    Ok((client, server, [up, down]))
}

/// Copies `from` to `to` until the end, then passes the end on; on an error
/// both are closed.
fn pump(mut from: TcpStream, mut to: TcpStream) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("netns-pump".to_owned())
        .spawn(move || {
            if io::copy(&mut from, &mut to).is_ok() {
                let _ = to.shutdown(Shutdown::Write);
            } else {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            }
        })
}
