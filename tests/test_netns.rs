//! `support::netns`: a node in a network namespace of its own reaches
//! PostgreSQL through the forwarder, loses it when its link is cut, and
//! finds it again when the link is restored; what it had left behind when
//! its process ended without cleaning up is removed by the next node.
//!
//! The checks from inside a namespace run this test binary again there, as
//! a child test that `CHILD` selects. Without root or `ip`, the tests say
//! why and pass without running.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::Duration;

use support::netns::{Node, rewrite_url};

/// Set in a child process: which check it runs.
const CHILD: &str = "EVENTSOURCING_NETNS_CHILD";
/// Where the child connects: a PostgreSQL URL, or an address.
const TARGET: &str = "EVENTSOURCING_NETNS_TARGET";
/// How a connection attempt from inside gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A node, or `None` after printing why there is none.
fn node(tag: &str, index: u8) -> Option<Node> {
    let start = std::time::Instant::now();
    let node = Node::create(tag, index)
        .inspect_err(|skip| eprintln!("skipped: {skip}"))
        .ok()?;
    println!("{} made in {:?}", node.name(), start.elapsed());
    Some(node)
}

/// Whether the namespace `name` is there, and the interface index of the
/// host-side link `link` if there is one (another node may have taken the
/// name since: its link has another index).
fn traces(name: &str, link: &str) -> (bool, Option<String>) {
    let index = Path::new("/sys/class/net").join(link).join("ifindex");
    (
        Path::new("/run/netns").join(name).exists(),
        std::fs::read_to_string(index).ok(),
    )
}

/// Asserts that the namespace and the link, found as `before`, are gone.
fn assert_gone(name: &str, link: &str, before: &(bool, Option<String>)) {
    let after = traces(name, link);
    assert!(before.0 && before.1.is_some(), "{name}, {link}: {before:?}");
    assert!(!after.0, "{name} is left");
    assert_ne!(after.1, before.1, "{link} is left");
}

/// Whether this process is the child that runs `check`.
fn is_child(check: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|c| c == check)
}

/// Runs this binary's test `test` in `node`, as the child for `check`.
fn spawn_in(node: &Node, test: &str, check: &str, target: &str) -> Child {
    node.command(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, check)
        .env(TARGET, target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child starts in the namespace")
}

/// A child's next `NETNS ` line, without the prefix.
fn next_report(stdout: &mut impl BufRead) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let read = stdout.read_line(&mut line).expect("child output");
        assert!(read > 0, "the child ended without a report");
        if let Some(report) = line.trim_end().strip_prefix("NETNS ") {
            return report.to_owned();
        }
    }
}

/// Prints a report for [`next_report`] (on a line of its own: the test
/// harness may have started one).
fn report(text: &str) {
    println!("\nNETNS {text}");
    std::io::stdout().flush().expect("stdout");
}

/// In the child: connects to the URL in `TARGET` and asks a question.
#[test]
fn child_query() {
    if !is_child("query") {
        return;
    }
    let url = std::env::var(TARGET).expect("target");
    let answer = url
        .parse::<postgres::Config>()
        .and_then(|mut config| {
            config
                .connect_timeout(CONNECT_TIMEOUT)
                .connect(postgres::NoTls)
        })
        .and_then(|mut client| client.query_one("SELECT 40 + 2", &[]))
        .map(|row| row.get::<_, i32>(0));
    match answer {
        Ok(n) => report(&format!("answered {n}")),
        Err(error) => {
            let cause = std::error::Error::source(&error).map(ToString::to_string);
            report(&format!("failed: {error} ({})", cause.unwrap_or_default()));
        }
    }
}

/// Asks PostgreSQL, from inside `node`, through the forwarder.
fn query_from(node: &Node, url: &str) -> String {
    let child = spawn_in(node, "child_query", "query", url);
    let output = child.wait_with_output().expect("child ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = next_report(&mut stdout.as_bytes());
    println!("from {}: {report}", node.name());
    report
}

#[test]
fn a_node_reaches_postgres_through_its_link_until_cut_and_after_restore() {
    let Some(base) = support::pg::server() else {
        return;
    };
    let Some(node) = node("reach", 0) else {
        return;
    };
    let url = node.postgres_url(&base);
    assert_eq!(url, rewrite_url(&base, node.forwarder()));
    assert_eq!(node.forwarder().ip(), node.host_addr());
    assert_eq!(query_from(&node, &url), "answered 42");

    node.cut().expect("cut");
    let cut = query_from(&node, &url);
    assert!(cut.starts_with("failed"), "answered while cut: {cut}");

    node.restore().expect("restore");
    assert_eq!(query_from(&node, &url), "answered 42");

    let (name, link) = (node.name().to_owned(), node.host_link().to_owned());
    let before = traces(&name, &link);
    drop(node);
    assert_gone(&name, &link, &before);
}

/// A PostgreSQL startup message for `user` on `database`: the server
/// answers it (authentication, or an error) without logging anything when
/// the client then leaves.
fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608_u32.to_be_bytes().to_vec(); // protocol 3.0
    for text in ["user", user, "database", database, ""] {
        body.extend(text.as_bytes());
        body.push(0);
    }
    let length = u32::try_from(body.len() + 4).expect("short message");
    [&length.to_be_bytes()[..], &body].concat()
}

/// In the child: connects to the server of the URL in `TARGET`; when told,
/// sends a startup message and waits 2 s for the answer; when told again,
/// waits a minute more.
#[test]
fn child_stall() {
    if !is_child("stall") {
        return;
    }
    let config: postgres::Config = std::env::var(TARGET).expect("target").parse().expect("URL");
    let Some(postgres::config::Host::Tcp(host)) = config.get_hosts().first() else {
        panic!("no TCP host in {config:?}");
    };
    let target = SocketAddr::new(host.parse().expect("address"), config.get_ports()[0]);
    let user = config.get_user().expect("user");
    let message = startup_message(user, config.get_dbname().unwrap_or(user));
    let mut stream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).expect("connect");
    let mut stdin = std::io::stdin().lock();
    let mut go = || stdin.read_line(&mut String::new()).expect("stdin");
    report("connected");
    go();
    stream.write_all(&message).expect("send");
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .expect("timeout");
    let mut byte = [0];
    match stream.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            report("stalled");
        }
        other => report(&format!("not stalled: {other:?}")),
    }
    go();
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .expect("timeout");
    match stream.read(&mut byte) {
        Ok(1) => report(&format!("answered {}", char::from(byte[0]))),
        other => report(&format!("not resumed: {other:?}")),
    }
}

/// Tells the child to go on, and returns its next report.
fn step(stdin: &mut ChildStdin, stdout: &mut BufReader<ChildStdout>) -> String {
    stdin.write_all(b"go\n").expect("tell the child");
    next_report(stdout)
}

#[test]
fn an_established_connection_stalls_while_cut_and_resumes_after_restore() {
    let Some(base) = support::pg::server() else {
        return;
    };
    let Some(node) = node("stall", 0) else {
        return;
    };
    let mut child = spawn_in(&node, "child_stall", "stall", &node.postgres_url(&base));
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    assert_eq!(next_report(&mut stdout), "connected");

    node.cut().expect("cut");
    assert_eq!(step(&mut stdin, &mut stdout), "stalled");

    node.restore().expect("restore");
    // `R`: authentication, the server's first answer to a startup message.
    let resumed = step(&mut stdin, &mut stdout);
    assert!(resumed.starts_with("answered "), "{resumed}");
    assert!(child.wait().expect("child ends").success());
}

/// In the child: makes a node with the tag in `TARGET` and ends without
/// dropping it, printing its names.
#[test]
fn child_abandon() {
    if !is_child("abandon") {
        return;
    }
    let tag = std::env::var(TARGET).expect("tag");
    let node = Node::create(&tag, 0).expect("a node in the child");
    report(&format!("{} {}", node.name(), node.host_link()));
    std::process::exit(0);
}

#[test]
fn what_a_gone_process_left_is_removed_by_the_next_node() {
    // Only to find out whether nodes can be made here at all.
    let Some(probe) = node("probe", 0) else {
        return;
    };
    drop(probe);
    // A tag of this process's own, so that no other test run removes what
    // the child leaves before this one looks.
    let tag = format!("gone{}", std::process::id());
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_abandon",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "abandon")
        .env(TARGET, &tag)
        .stdin(Stdio::null())
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = next_report(&mut stdout.as_bytes());
    let (name, link) = report.split_once(' ').expect("name and link");
    let before = traces(name, link);

    let node = node(&tag, 1).expect("a node after the child's");
    assert_gone(name, link, &before);
    drop(node);
}

#[test]
fn postgres_urls_are_rewritten_to_go_through_the_forwarder() {
    let to: SocketAddr = "10.231.4.5:5432".parse().unwrap();
    let cases = [
        (
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://postgres@10.231.4.5:5432/test",
        ),
        (
            "postgres://user:secret@127.0.0.1:5432/db?connect_timeout=2&options=-c%20x",
            "postgres://user:secret@10.231.4.5:5432/db?connect_timeout=2&options=-c%20x",
        ),
        (
            "postgresql://localhost/db",
            "postgresql://10.231.4.5:5432/db",
        ),
        (
            "postgres://127.0.0.1:5432?dbname=x",
            "postgres://10.231.4.5:5432?dbname=x",
        ),
        ("postgres://u@h", "postgres://u@10.231.4.5:5432"),
        // Not a PostgreSQL URL: left alone.
        ("host=127.0.0.1 port=5432", "host=127.0.0.1 port=5432"),
        ("mysql://127.0.0.1/x", "mysql://127.0.0.1/x"),
    ];
    for (base, expected) in cases {
        assert_eq!(rewrite_url(base, to), expected, "{base}");
    }
    let other_port: SocketAddr = "10.231.4.5:40000".parse().unwrap();
    assert_eq!(
        rewrite_url("postgres://postgres@127.0.0.1:5432/test", other_port),
        "postgres://postgres@10.231.4.5:40000/test"
    );
}
