//! What the event browser's tests share: stores, a server with the
//! browser, plain HTTP requests, reading the pages' tables, and a record
//! with hostile values.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use eventsourcing::http::{Browser, NotificationServer, RunningServer};
use eventsourcing::{Application, ApplicationBuilder, Hash, Mapper, RecordedEvent, Uuid};
pub(crate) use support::http::{Reply, get_with};
use support::pg::Scratch;
use support::sqlite::FileDb;

/// A store that outlives the applications opened on it.
pub(crate) enum Store {
    Sqlite(FileDb),
    Postgres(Scratch),
}

impl Store {
    pub(crate) fn builder(&self) -> ApplicationBuilder {
        match self {
            Store::Sqlite(file) => file.builder(),
            Store::Postgres(scratch) => scratch.builder(),
        }
        .name("Accounts")
    }
}

/// Runs `test` on a SQLite file and, when the PostgreSQL tests run, on a
/// scratch schema.
pub(crate) fn each_store(test: impl Fn(&str, &Store)) {
    test("sqlite file", &Store::Sqlite(FileDb::new()));
    if let Some(scratch) = Scratch::new() {
        test("postgres", &Store::Postgres(scratch));
    }
}

/// An application key (base64 of 32 bytes).
pub(crate) fn key() -> String {
    STANDARD.encode([7u8; 32])
}

pub(crate) fn get(url: &str) -> Reply {
    get_with(url, &[])
}

/// A page that must be a `200` HTML page.
pub(crate) fn page(url: &str) -> String {
    let reply = get(url);
    assert_eq!(reply.status, 200, "{url}: {}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    reply.body
}

/// Serves `app`'s log and its browser on a free loopback port.
pub(crate) fn serve(app: &Application, page_size: usize) -> RunningServer {
    NotificationServer::new(app)
        .browser(Browser::new(app).page_size(page_size))
        .bind("127.0.0.1:0")
        .expect("the server starts")
}

/// The rows of the table with this `id`: each row's cells' markup.
pub(crate) fn table_rows(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = format!("<table id=\"{id}\">");
    let Some(at) = html.find(&start) else {
        return Vec::new();
    };
    let table = &html[at..];
    let table = &table[..table.find("</tbody></table>").expect("table ends")];
    let body = &table[table.find("<tbody>").expect("tbody") + "<tbody>".len()..];
    body.split("</tr>")
        .filter(|row| !row.is_empty())
        .map(|row| {
            row.split("</td>")
                .filter_map(|cell| cell.rfind("<td").map(|at| &cell[at..]))
                .map(|cell| cell[cell.find('>').expect("td") + 1..].to_owned())
                .collect()
        })
        .collect()
}

/// The numbers in the first cells of the table's rows.
pub(crate) fn first_column(html: &str, id: &str) -> Vec<u64> {
    table_rows(html, id)
        .iter()
        .map(|cells| cells[0].parse().expect("a number"))
        .collect()
}

/// Records one event with a hostile topic and hostile field names and
/// values, straight through the recorder; returns its aggregate id.
pub(crate) fn record_hostile(app: &Application) -> Uuid {
    let id = Uuid::new_v4();
    let event = RecordedEvent::new(
        id,
        1,
        "<script>alert(1)</script>".into(),
        0,
        Hash::ZERO,
        br#"{"note":"</pre></td><script>alert(2)</script>","<img src=x onerror=alert(3)>":"\"'&"}"#
            .to_vec(),
    );
    let stored = Mapper::new().encode(&event).expect("encodes");
    app.event_store()
        .recorder()
        .insert_events(&[stored])
        .expect("recorded");
    id
}
