//! Encrypting some events: public aggregate types and public events are
//! stored in plaintext under a key, and read back; a plaintext record of
//! any other type is still refused. The declarations are part of the
//! schema file, so changing one is drift the check reports.

use eventsourcing::prelude::*;
use eventsourcing::recorder::EventQuery;
use eventsourcing::schema::Schemas;
use eventsourcing::{ApplicationBuilder, Cipher};

#[aggregate(public)]
#[derive(Debug, Default)]
struct Notice {
    text: String,
}

#[aggregate]
impl Notice {
    #[created(Posted)]
    fn post(&mut self, text: String) {
        self.text = text;
    }

    #[event(Edited)]
    fn edit(&mut self, text: String) {
        self.text = text;
    }
}

#[aggregate]
#[derive(Debug, Default)]
struct Order {
    total: u64,
    status: String,
}

#[aggregate]
impl Order {
    #[created(Placed)]
    fn place(&mut self, total: u64) {
        self.total = total;
    }

    /// Shipping status: not secret, shown on a public tracking page.
    #[event(Shipped, public)]
    fn ship(&mut self, status: String) {
        self.status = status;
    }
}

fn keyed(db: &support::sqlite::FileDb) -> ApplicationBuilder {
    db.builder().cipher(Cipher::new([3; 32]))
}

fn first_bytes(app: &Application, id: Uuid) -> Vec<u8> {
    app.event_store()
        .recorder()
        .events(&EventQuery::new(id))
        .unwrap()
        .iter()
        .map(|row| row.state[0])
        .collect()
}

#[test]
fn public_records_are_plaintext_under_a_key_and_load() {
    let db = support::sqlite::FileDb::new();
    let app = keyed(&db).snapshot_every::<Notice>(2).build().unwrap();
    let mut notice = Notice::post("Open on Sunday".into());
    notice.edit("Closed on Sunday".into());
    let mut order = Order::place(40);
    order.ship("on its way".into());
    app.save((&mut notice, &mut order)).unwrap();

    assert_eq!(first_bytes(&app, notice.id()), [0x00, 0x00]);
    assert_eq!(first_bytes(&app, order.id()), [0x02, 0x00]);
    let snapshot = app
        .event_store()
        .recorder()
        .select_snapshot(notice.id(), None)
        .unwrap()
        .unwrap();
    assert_eq!(
        snapshot.state[0], 0x00,
        "a public type's snapshot is public"
    );
    // The public text is visible in the rows; the order's total is not.
    let rows = app
        .event_store()
        .recorder()
        .events(&EventQuery::new(notice.id()))
        .unwrap();
    assert!(rows[1].state.windows(16).any(|w| w == b"Closed on Sunday"));

    // Another process, with the same key, reads them all.
    drop(app);
    let again = keyed(&db).build().unwrap();
    let loaded: Notice = again.repository().get(notice.id()).unwrap();
    assert_eq!(loaded.text, "Closed on Sunday");
    let loaded: Order = again.repository().get(order.id()).unwrap();
    assert_eq!((loaded.total, loaded.status.as_str()), (40, "on its way"));
    assert_eq!(
        again.event_store().verify(order.id()).unwrap(),
        order.head()
    );
}

#[test]
fn plaintext_records_of_other_types_are_refused() {
    let db = support::sqlite::FileDb::new();
    // Written without a key: everything in plaintext.
    let plain = db.builder().build().unwrap();
    let mut order = Order::place(40);
    order.ship("on its way".into());
    let mut notice = Notice::post("Open".into());
    plain.save((&mut order, &mut notice)).unwrap();
    drop(plain);

    let app = keyed(&db).build().unwrap();
    // The order's creation was not public: refused, as before.
    let error = app.repository().get::<Order>(order.id()).unwrap_err();
    assert!(
        matches!(error, Error::Decryption { version: 1, .. }),
        "{error:?}"
    );
    // The public type loads.
    assert_eq!(
        app.repository().get::<Notice>(notice.id()).unwrap().text,
        "Open"
    );

    // A reader of notifications in a fresh process does not know the
    // public types until told.
    let fresh = keyed(&db).build().unwrap();
    let log = fresh.notification_log();
    let rows = log.select(1, 10, &[]).unwrap();
    let shipped = rows
        .iter()
        .position(|row| row.topic == "Order.Shipped")
        .unwrap();
    let error = log.decode(rows[shipped].clone()).unwrap_err();
    assert!(matches!(error, Error::Decryption { .. }), "{error:?}");
    let told = keyed(&db)
        .aggregate::<Order>()
        .aggregate::<Notice>()
        .build()
        .unwrap();
    let log = told.notification_log();
    assert!(log.decode(rows[shipped].clone()).is_ok());
    let posted = rows
        .iter()
        .position(|row| row.topic == "Notice.Posted")
        .unwrap();
    assert!(log.decode(rows[posted].clone()).is_ok());
    let placed = rows
        .iter()
        .position(|row| row.topic == "Order.Placed")
        .unwrap();
    assert!(matches!(
        log.decode(rows[placed].clone()),
        Err(Error::Decryption { .. })
    ));
}

#[test]
fn the_schema_file_shows_what_is_public_and_what_has_its_own_key() {
    #[aggregate(key = per_aggregate)]
    #[derive(Debug, Default)]
    struct Member {
        email: String,
    }

    #[aggregate]
    impl Member {
        #[created(Joined)]
        fn join(&mut self, email: String) {
            self.email = email;
        }
    }

    let schemas = Schemas::new()
        .aggregate::<Notice>()
        .aggregate::<Order>()
        .aggregate::<Member>();
    let text = schemas.render();
    assert!(
        text.contains("state Notice v1 public { text: String }"),
        "{text}"
    );
    assert!(
        text.contains("event Order.Shipped v1 public { status: String }"),
        "{text}"
    );
    assert!(
        text.contains("event Order.Placed v1 { total: u64 }"),
        "{text}"
    );
    assert!(
        text.contains("state Member v1 key=per_aggregate { email: String }"),
        "{text}"
    );
    assert_eq!(
        Schemas::parse(&text).unwrap(),
        schemas,
        "the file reads back"
    );

    // A committed file from before `Shipped` was public: drift, which an
    // update may write (old records stay readable by their flags).
    let before = text.replace("event Order.Shipped v1 public", "event Order.Shipped v1");
    let drifts = schemas.drift_from(&Schemas::parse(&before).unwrap());
    assert_eq!(drifts.len(), 1, "{drifts:?}");
    assert_eq!(drifts[0].key, "Order.Shipped");
    assert!(!drifts[0].breaking);
    // The other way, public records stored already would be refused: a
    // breaking change.
    let after = schemas.drift_from(
        &Schemas::parse(&text.replace("state Notice v1 public", "state Notice v1")).unwrap(),
    );
    assert_eq!(after.len(), 1);
    assert!(!after[0].breaking, "becoming public never breaks");
    let reverse = Schemas::parse(&before)
        .unwrap()
        .drift_from(&Schemas::parse(&text).unwrap());
    assert!(
        reverse
            .iter()
            .any(|d| d.key == "Order.Shipped" && d.breaking),
        "{reverse:?}"
    );
    assert!(Schemas::parse("event A.B v1 secret {}").is_err());
}
