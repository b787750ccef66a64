//! A bounded load test of the notification log server, from a second
//! process on loopback: the parent fills a SQLite file and serves it; a
//! child (this program again, with `--client URL`) sends a fixed number
//! of requests from a few threads and reports requests per second and
//! latency percentiles, for full sections (cacheable, served whole) and
//! for pages of 100 rows.
//!
//! ```text
//! cargo run --release --example http_load -- [--events N] [--threads T] [--requests R]
//! ```
//!
//! Bounded: `threads * requests` requests of each kind, and no more than
//! a minute of sending whatever the machine's speed. The figures depend
//! on the machine; BENCHMARKS.md has some.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsourcing::http::NotificationServer;
use support::ledger::fill;
use support::sqlite::FileDb;

/// How long the client sends at most, whatever is left.
const TIME_CAP: Duration = Duration::from_mins(1);

/// The command line: `--name value` pairs with defaults.
struct Args {
    client: Option<String>,
    events: usize,
    threads: usize,
    requests: usize,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        client: None,
        events: 5000,
        threads: 4,
        requests: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(name) = it.next() {
        let value = it.next().ok_or(format!("{name} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{name}: {e}"));
        match name.as_str() {
            "--client" => args.client = Some(value.clone()),
            "--events" => args.events = number()?.max(1),
            "--threads" => args.threads = number()?.max(1),
            "--requests" => args.requests = number()?.max(1),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    if let Some(url) = &args.client {
        return client(url, &args);
    }
    let file = FileDb::new();
    let app = file.builder().name("Accounts").section_size(100).build()?;
    // Accounts of 10 events: 1 opening and 9 deposits.
    let _ = fill(&app, args.events.div_ceil(10), 9);
    let head = app.notification_log().max_id()?;
    let server = NotificationServer::new(&app).bind("127.0.0.1:0")?;
    let output = Command::new(std::env::current_exe()?)
        .args(["--client", &format!("{},{head}", server.url())])
        .args(["--threads", &args.threads.to_string()])
        .args(["--requests", &args.requests.to_string()])
        .output()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    server.stop()?;
    if !output.status.success() {
        return Err("the client failed".into());
    }
    Ok(())
}

/// In the child: `threads` threads, each sending `requests` requests of
/// each kind; prints what it measured.
fn client(target: &str, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let (url, head) = target.rsplit_once(',').ok_or("--client URL,HEAD")?;
    let head: u64 = head.parse()?;
    let full_sections = (head / 100).max(1);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let deadline = Instant::now() + TIME_CAP;
    for (kind, path) in [
        (
            "full sections",
            Box::new(move |i: u64| {
                let first = (i % full_sections) * 100 + 1;
                format!("/notifications/{first},{}", first + 99)
            }) as Box<dyn Fn(u64) -> String + Send + Sync>,
        ),
        (
            "pages of 100",
            Box::new(move |i: u64| format!("/notifications?after={}&limit=100", (i * 37) % head)),
        ),
    ] {
        let path = Arc::new(path);
        let started = Instant::now();
        let threads: Vec<_> = (0..args.threads)
            .map(|t| {
                let (agent, path, url) = (agent.clone(), Arc::clone(&path), url.to_owned());
                let requests = args.requests;
                std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                    let mut latencies = Vec::with_capacity(requests);
                    for i in 0..requests {
                        if Instant::now() > deadline {
                            break;
                        }
                        let n = u64::try_from(t * requests + i).unwrap_or(0);
                        let sent = Instant::now();
                        let mut response = agent
                            .get(format!("{url}{}", path(n)))
                            .call()
                            .map_err(|e| e.to_string())?;
                        let body = response
                            .body_mut()
                            .read_to_vec()
                            .map_err(|e| e.to_string())?;
                        latencies.push(sent.elapsed());
                        if body.is_empty() {
                            return Err("an empty response".into());
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for thread in threads {
            latencies.extend(thread.join().map_err(|_| "a client thread panicked")??);
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        if latencies.is_empty() {
            println!("http_load: {kind}: no request sent within {TIME_CAP:?}");
            continue;
        }
        let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        #[allow(clippy::cast_precision_loss)] // a count of requests
        let rate = latencies.len() as f64 / elapsed.as_secs_f64();
        println!(
            "http_load: {kind}: {} requests from {} threads in {:.2} s: {rate:.0} requests/s, \
             p50 {:.2} ms, p99 {:.2} ms",
            latencies.len(),
            args.threads,
            elapsed.as_secs_f64(),
            percentile(50).as_secs_f64() * 1e3,
            percentile(99).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
