//! A process application: `Reservations` follows the `Orders`
//! application's notification log and reacts to its events by creating
//! and changing aggregates of its own. What a handler records and the
//! follower's new position are committed together, so each order event
//! has its effect exactly once, whatever crashes in between.
//!
//! Configured from the environment like any application (both
//! applications share the database, with table prefixes of their own):
//!
//! ```text
//! cargo run --example process_application
//! DB_URI=sqlite:////tmp/shop.db cargo run --example process_application
//! DB_URI=postgres://postgres@127.0.0.1:5432/test cargo run --example process_application
//! ```

use std::time::Duration;

use eventsourcing::follower::{Envelope, Follower, Processing};
use eventsourcing::prelude::*;

/// An order in the upstream application.
#[aggregate]
#[derive(Debug, Default)]
pub struct Order {
    items: Vec<String>,
    cancelled: bool,
}

#[aggregate]
impl Order {
    /// Places an order.
    #[created(Placed)]
    pub fn place(&mut self, items: Vec<String>) {
        self.items = items;
    }

    /// Cancels it.
    #[event(Cancelled)]
    pub fn cancel(&mut self, reason: String) {
        let _ = reason;
        self.cancelled = true;
    }
}

/// The stock held for one order, in the process application. Its id is
/// derived from the order's, so the policy finds it from an order event.
#[aggregate]
#[derive(Debug, Default)]
pub struct Reservation {
    order: Uuid,
    items: Vec<String>,
    released: bool,
}

/// The reservation id of an order.
fn reservation_id(order: Uuid) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, order.as_bytes())
}

#[aggregate]
impl Reservation {
    /// Holds the items of `order`.
    #[created(Reserved, id = reservation_id(order))]
    pub fn reserve(&mut self, order: Uuid, items: Vec<String>) {
        self.order = order;
        self.items = items;
    }

    /// Gives the items back.
    #[event(Released)]
    pub fn release(&mut self) {
        self.released = true;
    }
}

/// The policy: one handler per order event it reacts to, typed by the
/// `Order` aggregate's generated event enum.
pub struct Reserver;

#[policy]
impl Reserver {
    #[on(OrderEvent::Placed)]
    fn placed(&self, cx: &mut Processing, envelope: &Envelope, items: Vec<String>) -> Result<()> {
        cx.collect(Reservation::reserve(envelope.originator_id(), items))?;
        Ok(())
    }

    #[on(OrderEvent::Cancelled)]
    fn cancelled(&self, cx: &mut Processing, envelope: &Envelope) -> Result<()> {
        let reservation = cx.get::<Reservation>(reservation_id(envelope.originator_id()))?;
        reservation.release();
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orders = Application::builder()
        .env()?
        .name("Orders")
        .table_prefix("orders_")
        .build()?;
    let reservations = Application::builder()
        .env()?
        .name("Reservations")
        .table_prefix("reservations_")
        .build()?;

    // The follower takes its tracking row over and runs on its own thread,
    // woken right after each commit of `orders` in this process.
    let running = Follower::process(Reserver, &reservations)
        .follow(&orders)
        .start()?
        .spawn();

    let mut order = Order::place(vec!["tea".into(), "cups".into()]);
    let placed = orders.save(&mut order)?;

    // Read your writes: wait until the follower has handled the save.
    assert!(running.wait_for("Orders", placed[0], Duration::from_secs(30))?);
    let reservation: Reservation = reservations.repository().get(reservation_id(order.id()))?;
    assert_eq!(reservation.order, order.id());
    assert_eq!(reservation.items, ["tea", "cups"]);
    assert!(!reservation.released);

    order.cancel("changed my mind".into());
    let cancelled = orders.save(&mut order)?;
    assert!(running.wait_for("Orders", cancelled[0], Duration::from_secs(30))?);
    let reservation: Reservation = reservations.repository().get(reservation_id(order.id()))?;
    assert!(reservation.released);

    // Stopped cleanly after the batch in progress; a new run has nothing
    // left to do.
    let mut follower = running.stop()?;
    assert_eq!(follower.run_until_caught_up()?.events, 0);
    let lag = follower.lag()?;
    assert_eq!(lag[0].events, 0);
    println!(
        "process_application: order {} reserved and released; follower `{}` at notification {} of `Orders`",
        order.id(),
        follower.name(),
        follower.position("Orders").unwrap_or_default(),
    );
    Ok(())
}
