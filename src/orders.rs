//! The orders system of the seed: `Orders | Reservations | Orders, Orders
//! | Payments | Orders`. An order placed in `Orders` is reserved by
//! `Reservations`, marked reserved back in `Orders`, paid by `Payments`
//! and marked paid in `Orders`. Shared by `examples/orders.rs`, the bench
//! program's `s1_*` lines and the system tests; the oracle here checks
//! that every order was reserved and paid exactly once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventsourcing::Metadata;
use eventsourcing::follower::{Envelope, Processing};
use eventsourcing::prelude::*;
use eventsourcing::system::{App, System, SystemRunning, table_prefix};

/// The id of order number `number`: the same in every run, so that runs
/// can be compared aggregate by aggregate.
#[must_use]
pub fn order_id(number: u64) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_DNS, &number.to_be_bytes())
}

/// An order.
#[aggregate]
#[derive(Debug, Default)]
pub struct Order {
    /// Its number.
    pub number: u64,
    /// The reservation made for it.
    pub reservation: Option<Uuid>,
    /// The payment made for it.
    pub payment: Option<Uuid>,
}

#[aggregate]
impl Order {
    /// Places order number `number`.
    #[created(Created, id = order_id(number))]
    pub fn create(&mut self, number: u64) {
        self.number = number;
    }

    /// Notes the reservation made for it.
    #[event(Reserved)]
    pub fn set_reserved(&mut self, reservation: Uuid) {
        self.reservation = Some(reservation);
    }

    /// Notes the payment made for it.
    #[event(Paid)]
    pub fn set_paid(&mut self, payment: Uuid) {
        self.payment = Some(payment);
    }
}

/// The stock held for one order; its id is derived from the order's.
#[aggregate]
#[derive(Debug, Default)]
pub struct Reservation {
    /// The order.
    pub order: Uuid,
}

#[aggregate]
impl Reservation {
    /// Holds stock for `order`.
    #[created(Created, id = Uuid::new_v5(&Uuid::NAMESPACE_OID, order.as_bytes()))]
    pub fn create(&mut self, order: Uuid) {
        self.order = order;
    }
}

/// The payment of one order; its id is derived from the order's.
#[aggregate]
#[derive(Debug, Default)]
pub struct Payment {
    /// The order.
    pub order: Uuid,
}

#[aggregate]
impl Payment {
    /// Takes payment for `order`.
    #[created(Created, id = Uuid::new_v5(&Uuid::NAMESPACE_URL, order.as_bytes()))]
    pub fn create(&mut self, order: Uuid) {
        self.order = order;
    }
}

/// The orders application: takes orders, and notes their reservations and
/// payments.
#[derive(Clone, Debug, Default)]
pub struct Orders;

#[policy]
impl Orders {
    #[on(ReservationEvent::Created)]
    fn reserved(&self, cx: &mut Processing, envelope: &Envelope, order: Uuid) -> Result<()> {
        cx.get::<Order>(order)?
            .set_reserved(envelope.originator_id());
        Ok(())
    }

    #[on(PaymentEvent::Created)]
    fn paid(&self, cx: &mut Processing, envelope: &Envelope, order: Uuid) -> Result<()> {
        cx.get::<Order>(order)?.set_paid(envelope.originator_id());
        Ok(())
    }
}

impl App for Orders {
    type Aggregates = (Order,);
}

/// The reservations application: reserves stock for each new order.
#[derive(Clone, Debug, Default)]
pub struct Reservations;

#[policy]
impl Reservations {
    #[on(OrderEvent::Created)]
    fn created(&self, cx: &mut Processing, envelope: &Envelope) -> Result<()> {
        cx.collect(Reservation::create(envelope.originator_id()))?;
        Ok(())
    }
}

impl App for Reservations {
    type Aggregates = (Reservation,);
}

/// The payments application: takes payment for each reserved order.
#[derive(Clone, Debug, Default)]
pub struct Payments;

#[policy]
impl Payments {
    #[on(OrderEvent::Reserved)]
    fn reserved(&self, cx: &mut Processing, envelope: &Envelope) -> Result<()> {
        cx.collect(Payment::create(envelope.originator_id()))?;
        Ok(())
    }
}

impl App for Payments {
    type Aggregates = (Payment,);
}

/// The system, with `Reservations` and `Payments` following in
/// `partitions` partitions each.
///
/// # Errors
///
/// Never for this definition; the signature is the builder's.
pub fn system(partitions: u32) -> eventsourcing::Result<System> {
    let mut builder = System::builder()
        .app(Orders)
        .app(Reservations)
        .app(Payments)
        .pipe::<(Orders, Reservations, Orders)>()
        .pipe::<(Orders, Payments, Orders)>();
    if partitions > 1 {
        builder = builder
            .partitions::<Reservations>(partitions)
            .partitions::<Payments>(partitions);
    }
    builder.build()
}

/// Makes the system's applications on the database at `uri`, each with
/// the table prefix `table_prefix` gives (as `System::start` would from
/// `DB_URI`), every event they record stamped with `metadata` (none when
/// it is empty): what processes and nodes that must agree pass to
/// `start_with`.
pub fn factory(
    uri: String,
    metadata: Metadata,
) -> impl Fn(&str) -> eventsourcing::Result<Application> + Send + Sync + 'static {
    move |name| {
        Application::builder()
            .db_uri(uri.clone())
            .name(name)
            .table_prefix(table_prefix(name))
            .metadata(metadata.clone())
            .build()
    }
}

/// Places two orders every `pause`, numbered from `first`, until `stop`
/// is set; returns their ids.
///
/// # Panics
///
/// When a save fails (a test helper).
#[must_use]
pub fn keep_placing(
    running: &SystemRunning,
    stop: &AtomicBool,
    first: u64,
    pause: Duration,
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut number = first;
    while !stop.load(Ordering::SeqCst) {
        ids.extend(place(running, number..number + 2).expect("orders are placed"));
        number += 2;
        std::thread::sleep(pause);
    }
    ids
}

/// Places the orders with these numbers, one save each; returns their
/// ids.
///
/// # Errors
///
/// When a save fails.
pub fn place(
    running: &SystemRunning,
    numbers: impl IntoIterator<Item = u64>,
) -> eventsourcing::Result<Vec<Uuid>> {
    let orders = running.app::<Orders>();
    numbers
        .into_iter()
        .map(|number| {
            let mut order = Order::create(number);
            orders.save(&mut order)?;
            Ok(order.id())
        })
        .collect()
}

/// What the oracle found: every order reserved and paid exactly once, and
/// the latency from placed to paid of each.
#[derive(Debug)]
pub struct Report {
    /// Orders checked.
    pub orders: usize,
    /// From `Created` to `Paid`, per order, sorted.
    pub latencies: Vec<Duration>,
}

impl Report {
    /// The `q`-quantile of the latencies (0.5: the median).
    #[must_use]
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a short list"
        )]
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)]
    }
}

/// Checks every order in `ids`: its events are exactly `Created`,
/// `Reserved`, `Paid`; its reservation and payment exist, name it, are the
/// ones it notes, and have one event each. Returns the latencies, or what
/// is wrong.
///
/// # Errors
///
/// A description of the first order that is not reserved and paid exactly
/// once, or a store error.
pub fn check(running: &SystemRunning, ids: &[Uuid]) -> Result<Report, String> {
    let orders = running.app::<Orders>();
    let reservations = running.app::<Reservations>();
    let payments = running.app::<Payments>();
    let mut latencies = Vec::with_capacity(ids.len());
    for &id in ids {
        let events = orders
            .event_store()
            .recorded_events(id)
            .map_err(|e| format!("order {id}: {e}"))?;
        let topics: Vec<&str> = events.iter().map(|e| &*e.topic).collect();
        let shape = ["Created", "Reserved", "Paid"];
        if topics.len() != 3 || !topics.iter().zip(shape).all(|(t, s)| t.ends_with(s)) {
            return Err(format!("order {id} has events {topics:?}"));
        }
        let order: Order = orders
            .repository()
            .get(id)
            .map_err(|e| format!("order {id}: {e}"))?;
        let reservation: Reservation = reservations
            .repository()
            .get(order.reservation.unwrap_or_default())
            .map_err(|e| format!("reservation of order {id}: {e}"))?;
        let payment: Payment = payments
            .repository()
            .get(order.payment.unwrap_or_default())
            .map_err(|e| format!("payment of order {id}: {e}"))?;
        if reservation.order != id || payment.order != id {
            return Err(format!(
                "order {id}: its reservation or payment names another order"
            ));
        }
        if reservation.version() != 1 || payment.version() != 1 {
            return Err(format!(
                "order {id}: its reservation or payment has more than one event"
            ));
        }
        let micros = events[2].timestamp.saturating_sub(events[0].timestamp);
        latencies.push(Duration::from_micros(u64::try_from(micros).unwrap_or(0)));
    }
    latencies.sort_unstable();
    Ok(Report {
        orders: ids.len(),
        latencies,
    })
}

/// Every application's aggregates, each as the list of its events' topics
/// and fields (without metadata, which says which partition recorded
/// them, and without timestamps and hashes, which differ from run to run):
/// what two runs of one command log must agree on.
///
/// # Errors
///
/// When a log cannot be read.
pub fn state(
    running: &SystemRunning,
) -> eventsourcing::Result<BTreeMap<String, BTreeMap<Uuid, Vec<String>>>> {
    let mut state = BTreeMap::new();
    for name in running.system().names() {
        let app =
            running
                .application(name)
                .ok_or_else(|| eventsourcing::Error::InvalidArgument {
                    name: "application",
                    reason: name.to_owned(),
                })?;
        let log = app.notification_log();
        let rows = app
            .event_store()
            .recorder()
            .select_notifications(1, usize::MAX, &[])?;
        let mut aggregates: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
        for row in rows {
            let event = log.decode(row)?;
            let mut data: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&event.data).unwrap_or_default();
            data.remove("$meta");
            aggregates
                .entry(event.originator_id)
                .or_default()
                .push(format!(
                    "{} v{} {}",
                    event.topic,
                    event.originator_version,
                    serde_json::Value::Object(data)
                ));
        }
        state.insert(name.to_owned(), aggregates);
    }
    Ok(state)
}
