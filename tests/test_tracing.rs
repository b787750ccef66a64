//! Tracing (feature `tracing`): the spans of a save, a load, a snapshot and
//! a follower batch, with their fields, as a subscriber collects them; and
//! none of them at a level that leaves out `DEBUG`.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use eventsourcing::follower::Follower;
use eventsourcing::prelude::*;
use support::account::{Account, AccountEvent};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry, filter::LevelFilter};

/// A span as the layer saw it.
#[derive(Clone, Debug)]
struct Seen {
    name: &'static str,
    target: String,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
    closed: bool,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// An event as the layer saw it: its fields, `message` included.
type SeenEvent = BTreeMap<String, String>;

/// Collects every span (and event) into shared lists.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Seen>>>,
    events: Arc<Mutex<Vec<SeenEvent>>>,
}

/// Where a span's record is in the list.
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        let span = context.span(id).unwrap();
        let mut spans = self.spans.lock().unwrap();
        spans.push(Seen {
            name: attributes.metadata().name(),
            target: attributes.metadata().target().to_owned(),
            parent: span.parent().map(|parent| parent.name()),
            fields,
            closed: false,
        });
        span.extensions_mut().insert(Index(spans.len() - 1));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let span = context.span(id).unwrap();
        let extensions = span.extensions();
        let index = extensions.get::<Index>().unwrap().0;
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[index].fields));
    }

    fn on_close(&self, id: Id, context: Context<'_, S>) {
        let span = context.span(&id).unwrap();
        let index = span.extensions().get::<Index>().unwrap().0;
        self.spans.lock().unwrap()[index].closed = true;
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(fields);
    }
}

impl Collector {
    /// Runs `f` with this collector as the thread's subscriber, at `level`.
    fn run<R>(&self, level: LevelFilter, f: impl FnOnce() -> R) -> R {
        let subscriber = Registry::default().with(self.clone().with_filter(level));
        tracing::subscriber::with_default(subscriber, f)
    }

    /// The spans named `name`, in the order they started.
    fn named(&self, name: &str) -> Vec<Seen> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|span| span.name == name)
            .cloned()
            .collect()
    }

    fn clear(&self) {
        self.spans.lock().unwrap().clear();
        self.events.lock().unwrap().clear();
    }
}

/// Checks the fields every span has: closed, with its duration.
fn finished(span: &Seen) {
    assert!(span.closed, "{span:?}");
    let elapsed: u64 = span.field("elapsed_us").unwrap().parse().unwrap();
    assert!(elapsed < u64::MAX, "{span:?}");
    assert!(span.target.starts_with("eventsourcing::"), "{span:?}");
}

#[test]
fn a_save_a_load_and_snapshots_have_spans_with_their_fields() {
    let app = Application::builder()
        .name("Bank")
        .snapshot_every::<Account>(4)
        .build()
        .unwrap();
    let collector = Collector::default();
    let mut account = Account::open("ada".into());
    account.deposit(10, "a".into());
    account.deposit(20, "b".into());
    let id = account.id();
    collector.run(LevelFilter::DEBUG, || app.save(&mut account).unwrap());

    let saves = collector.named("save");
    assert_eq!(saves.len(), 1, "{saves:?}");
    let save = &saves[0];
    finished(save);
    assert_eq!(save.field("app"), Some("Bank"));
    assert_eq!(save.field("aggregate_id"), Some(&*id.to_string()));
    assert_eq!(save.field("version"), Some("3"));
    assert_eq!(save.field("aggregates"), Some("1"));
    assert_eq!(save.field("events"), Some("3"));
    assert_eq!(save.field("first_notification_id"), Some("1"));
    assert_eq!(save.field("last_notification_id"), Some("3"));
    assert!(collector.named("snapshot").is_empty());

    // The fourth event crosses the interval: a snapshot inside the save.
    collector.clear();
    account.deposit(30, "c".into());
    collector.run(LevelFilter::DEBUG, || app.save(&mut account).unwrap());
    let snapshots = collector.named("snapshot");
    assert_eq!(snapshots.len(), 1);
    let snapshot = &snapshots[0];
    finished(snapshot);
    assert_eq!(snapshot.parent, Some("save"));
    assert_eq!(snapshot.field("aggregate_id"), Some(&*id.to_string()));
    assert_eq!(snapshot.field("version"), Some("4"));
    assert_eq!(snapshot.field("topic"), Some("Account"));
    assert_eq!(snapshot.field("inserted"), Some("true"));
    assert_eq!(collector.named("save")[0].field("version"), Some("4"));

    // A load from that snapshot and the event after it.
    account.deposit(40, "d".into());
    app.save(&mut account).unwrap();
    collector.clear();
    let loaded: Account = collector.run(LevelFilter::DEBUG, || app.repository().get(id).unwrap());
    assert_eq!(loaded.balance, 100);
    let loads = collector.named("load");
    assert_eq!(loads.len(), 1);
    let load = &loads[0];
    finished(load);
    assert_eq!(load.parent, None);
    assert_eq!(load.field("aggregate"), Some("Account"));
    assert_eq!(load.field("aggregate_id"), Some(&*id.to_string()));
    assert_eq!(load.field("snapshot_version"), Some("4"));
    assert_eq!(load.field("events"), Some("1"));
    assert_eq!(load.field("version"), Some("5"));
    assert_eq!(load.field("found"), Some("true"));

    // An explicit snapshot: a load, then the snapshot (already there: not
    // inserted again); then a load of an aggregate that is not there.
    collector.clear();
    collector.run(LevelFilter::DEBUG, || {
        app.save_snapshot_at::<Account>(id, 4).unwrap();
        assert!(
            app.repository()
                .find::<Account>(Uuid::new_v4())
                .unwrap()
                .is_none()
        );
    });
    let names: Vec<&str> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["load", "snapshot", "load"]);
    let snapshot = &collector.named("snapshot")[0];
    assert_eq!(snapshot.field("version"), Some("4"));
    assert_eq!(snapshot.field("inserted"), Some("false"));
    let missing = &collector.named("load")[1];
    assert_eq!(missing.field("found"), Some("false"));
    assert_eq!(missing.field("events"), Some("0"));
}

#[test]
fn a_failed_save_has_an_event_and_a_save_of_several_names_the_first() {
    let app = Application::builder().build().unwrap();
    let collector = Collector::default();
    let mut account = Account::open("ada".into());
    for amount in 1..5 {
        account.deposit(amount, "a".into());
    }
    app.save(&mut account).unwrap();
    let id = account.id();

    // A save that meets a conflict: an event in its span, and no counts.
    let mut stale: Account = app.repository().get(id).unwrap();
    account.deposit(1, "e".into());
    app.save(&mut account).unwrap();
    stale.deposit(2, "f".into());
    collector.clear();
    collector.run(LevelFilter::DEBUG, || {
        assert!(matches!(
            app.save(&mut stale),
            Err(Error::Concurrency { .. })
        ));
    });
    let events = collector.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].get("message").map(String::as_str),
        Some("the save's transaction failed")
    );
    assert!(events[0]["error"].contains(&id.to_string()), "{events:?}");
    let save = &collector.named("save")[0];
    assert_eq!(save.field("version"), Some("6"));
    assert_eq!(save.field("events"), None);

    // Several aggregates: the span names the first with new events.
    let mut other = Account::open("bob".into());
    other.deposit(5, "g".into());
    collector.clear();
    collector.run(LevelFilter::DEBUG, || {
        app.save((&mut account, &mut other)).unwrap()
    });
    let save = &collector.named("save")[0];
    assert_eq!(save.field("aggregate_id"), Some(&*other.id().to_string()));
    assert_eq!(save.field("version"), Some("2"));
    assert_eq!(save.field("aggregates"), Some("2"));
    assert_eq!(save.field("events"), Some("2"));
}

#[test]
fn a_subscriber_at_info_gets_none_of_the_debug_spans() {
    let app = Application::builder().build().unwrap();
    let collector = Collector::default();
    collector.run(LevelFilter::INFO, || {
        let mut account = Account::open("ada".into());
        app.save(&mut account).unwrap();
        let _: Account = app.repository().get(account.id()).unwrap();
        app.save_snapshot::<Account>(account.id()).unwrap();
    });
    assert!(collector.spans.lock().unwrap().is_empty());
    // The same calls at DEBUG do make spans: the filter is what left them out.
    collector.run(LevelFilter::DEBUG, || {
        let mut account = Account::open("bob".into());
        app.save(&mut account).unwrap();
    });
    assert_eq!(collector.named("save").len(), 1);
}

#[derive(Default)]
struct Totals {
    amount: i64,
}

struct Deposits;

#[policy]
impl Deposits {
    #[on(AccountEvent::Deposited)]
    fn deposited(&self, totals: &mut Totals, amount: i64) {
        totals.amount += amount;
    }
}

/// A process application: one `Receipt` per deposit.
#[aggregate]
#[derive(Debug, Default)]
struct Receipt {
    amount: i64,
}

#[aggregate]
impl Receipt {
    #[created(Issued)]
    fn issue(&mut self, amount: i64) {
        self.amount = amount;
    }
}

struct Receipts;

#[policy]
impl Receipts {
    #[on(AccountEvent::Deposited)]
    fn deposited(
        &self,
        cx: &mut eventsourcing::follower::Processing,
        amount: i64,
    ) -> eventsourcing::Result<()> {
        cx.collect(Receipt::issue(amount))?;
        Ok(())
    }
}

#[test]
fn a_follower_batch_has_a_span_with_its_counts() {
    let bank = Application::builder().name("Bank").build().unwrap();
    for n in 0..3 {
        let mut account = Account::open(format!("owner {n}"));
        account.deposit(n + 1, "x".into());
        account.deposit(10, "y".into());
        bank.save(&mut account).unwrap();
    }
    let head = bank.notification_log().max_id().unwrap();
    assert_eq!(head, 9);

    // A projection in memory, which has no transactions: a batch per event.
    let mut follower = Follower::in_memory(Deposits, Totals::default())
        .follow(&bank)
        .start()
        .unwrap();
    let collector = Collector::default();
    collector.run(LevelFilter::DEBUG, || {
        follower.run_until_caught_up().unwrap()
    });
    assert_eq!(follower.state().lock().unwrap().amount, 36);
    let batches = collector.named("follower_batch");
    // Deposits only are read (the topic filter): 2, 3, 5, 6, 8, 9.
    assert_eq!(
        ranges(&batches),
        [
            ("0", "2", "1"),
            ("2", "3", "1"),
            ("3", "5", "1"),
            ("5", "6", "1"),
            ("6", "8", "1"),
            ("8", "9", "1")
        ]
    );
    for batch in &batches {
        finished(batch);
        assert_eq!(batch.field("follower"), Some("Deposits"));
        assert_eq!(batch.field("upstream"), Some("Bank"));
        assert_eq!(batch.field("parked"), Some("0"));
        assert_eq!(batch.field("attempts"), Some("1"));
    }

    // A process application, in batches of 4 events, saves inside each
    // batch's span.
    let ledger = Application::builder().name("Ledger").build().unwrap();
    let mut process = Follower::process(Receipts, &ledger)
        .follow(&bank)
        .batch_size(4)
        .start()
        .unwrap();
    collector.clear();
    collector.run(LevelFilter::DEBUG, || {
        process.run_until_caught_up().unwrap()
    });
    let batches = collector.named("follower_batch");
    assert_eq!(ranges(&batches), [("0", "6", "4"), ("6", "9", "2")]);
    for batch in &batches {
        finished(batch);
        assert_eq!(batch.field("follower"), Some("Receipts"));
        assert_eq!(batch.field("attempts"), Some("1"));
    }
    let saves = collector.named("save");
    let counts: Vec<(Option<&'static str>, Option<&str>, Option<&str>)> = saves
        .iter()
        .map(|s| (s.parent, s.field("app"), s.field("events")))
        .collect();
    assert_eq!(
        counts,
        [
            (Some("follower_batch"), Some("Ledger"), Some("4")),
            (Some("follower_batch"), Some("Ledger"), Some("2"))
        ]
    );
}

/// Each batch's `(from, to, events)`.
fn ranges(batches: &[Seen]) -> Vec<(&str, &str, &str)> {
    batches
        .iter()
        .map(|b| {
            (
                b.field("from").unwrap(),
                b.field("to").unwrap(),
                b.field("events").unwrap(),
            )
        })
        .collect()
}

/// `GET path` on `addr` over a plain socket; the status line.
fn status_of(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn an_http_request_has_a_span_with_its_method_path_and_status() {
    use eventsourcing::http::NotificationServer;
    let app = Application::builder().name("Bank").build().unwrap();
    app.save(&mut Account::open("ada".into())).unwrap();
    let collector = Collector::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = NotificationServer::new(&app);
    // The server's tasks run on this thread, whose subscriber is the
    // collector; the client is another thread.
    let statuses = collector.run(LevelFilter::DEBUG, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (done, shutdown) = tokio::sync::oneshot::channel::<()>();
            let client = std::thread::spawn(move || {
                let statuses = [
                    status_of(addr, "/notifications?after=0&limit=10"),
                    status_of(addr, "/notifications/x,y"),
                ];
                let _ = done.send(());
                statuses
            });
            server
                .serve(listener, async {
                    let _ = shutdown.await;
                })
                .await
                .unwrap();
            client.join().unwrap()
        })
    });
    assert!(statuses[0].contains("200"), "{statuses:?}");
    assert!(statuses[1].contains("400"), "{statuses:?}");
    let requests = collector.named("http_request");
    assert_eq!(requests.len(), 2, "{requests:?}");
    for (request, (path, status)) in requests
        .iter()
        .zip([("/notifications", "200"), ("/notifications/x,y", "400")])
    {
        finished(request);
        assert_eq!(request.field("method"), Some("GET"));
        assert_eq!(request.field("path"), Some(path));
        assert_eq!(request.field("status"), Some(status));
    }
}
