//! One test, run against every kind of store: the in-memory recorder,
//! SQLite in memory, a SQLite file (plain, and encrypted and compressed),
//! and PostgreSQL (a scratch schema) when [`pg::server`](crate::pg::server)
//! says so.

use eventsourcing::{Application, ApplicationBuilder, Cipher, Compression};

use crate::pg::Scratch;
use crate::sqlite::FileDb;

/// Runs `test` on a fresh application of each store, each built from a
/// builder that `configure` finishes (a key, a snapshot interval...).
/// `name` tells the test which store it runs on.
///
/// # Panics
///
/// When an application cannot be built, or PostgreSQL is required but
/// unreachable.
pub fn each_store(
    configure: impl Fn(ApplicationBuilder) -> ApplicationBuilder,
    test: impl Fn(&str, &Application),
) {
    let build = |builder: ApplicationBuilder| configure(builder).build().expect("application");
    test("memory", &build(Application::builder().db_uri("memory://")));
    test(
        "sqlite in memory",
        &build(Application::builder().db_uri("sqlite:///:memory:")),
    );
    let file = FileDb::new();
    test("sqlite file", &build(file.builder()));
    let file = FileDb::new();
    test(
        "sqlite file, encrypted and compressed",
        &build(
            file.builder()
                .cipher(Cipher::new([9; 32]))
                .compression(Some(Compression::Zlib)),
        ),
    );
    if let Some(scratch) = Scratch::new() {
        test("postgres", &build(scratch.builder()));
    }
}
