//! Event sourcing for Rust.
//!
//! Annotate a plain struct and its `impl` block; the macros generate the
//! event enum, the apply dispatch, the command triggers and the hash and
//! version bookkeeping.
//!
//! ```
//! use eventsourcing::prelude::*;
//!
//! #[aggregate]
//! #[derive(Debug, Default)]
//! pub struct World {
//!     history: Vec<String>,
//! }
//!
//! #[aggregate]
//! impl World {
//!     #[created(Created)]
//!     fn create(&mut self) {}
//!
//!     #[event(SomethingHappened)]
//!     pub fn make_it_so(&mut self, what: String) {
//!         self.history.push(what);
//!     }
//! }
//!
//! let app = Application::builder().build()?;
//! let mut world = World::create();
//! world.make_it_so("dinosaurs".into());
//! world.make_it_so("trucks".into());
//! app.save(&mut world)?;
//!
//! let copy: World = app.repository().get(world.id())?;
//! assert_eq!(copy.history, ["dinosaurs", "trucks"]);
//! assert_eq!(app.event_store().verify(world.id())?, world.head());
//! # Ok::<(), eventsourcing::Error>(())
//! ```
//!
//! # Layers
//!
//! From the user's model down to the database (`docs/ARCHITECTURE.md` has
//! the whole picture):
//!
//! - the **domain** ([`Aggregate`], [`Root`], [`AggregateExt`], [`Event`],
//!   [`RecordedEvent`], [`Snapshot`], [`Chain`]): what the macros generate
//!   and users implement, the hash chain and replay;
//! - the **mapper** ([`Mapper`], [`Cipher`]): records to stored rows,
//!   compressed and encrypted ([`format`](mod@format) has the bytes);
//! - the **[`recorder`]s**: rows in memory, SQLite or PostgreSQL;
//! - the **store** and the **application** ([`EventStore`],
//!   [`Repository`], [`Application`], [`NotificationLog`]): saving,
//!   loading, snapshots, and the log that followers read.
//!
//! # Features
//!
//! - `derive` (default): the `#[aggregate]`, `#[derive(Event)]` and
//!   `#[policy]` macros.
//! - `sqlite` (default): [`recorder::SqliteRecorder`], with a bundled SQLite.
//! - `postgres` (default): [`recorder::PostgresRecorder`].
//! - `http`: `http::NotificationServer`, the notification log served over
//!   HTTP (axum on tokio), and `http::Browser`, read-only web pages of the
//!   log and of aggregates' histories served with it.
//! - `http-client`: `http::RemoteRecorder`, a notification log read over
//!   HTTP, for followers (a blocking ureq client).
//! - `tokio`: the async facade, `asynchronous::AsyncApplication`
//!   (`Application::into_async`): saves, loads, snapshots and follower
//!   waits as futures whose blocking work runs on tokio's blocking threads,
//!   and `with_metadata_async` for metadata scoped to a task.
//! - `tracing`: `DEBUG` spans for saves (`save`), loads (`load`),
//!   snapshots (`snapshot`) and follower batches (`follower_batch`), with
//!   the aggregate's id, versions, counts and `elapsed_us` as fields, and
//!   events for conflicts and failed automatic snapshots, through the
//!   `tracing` crate. With no subscriber they cost a level check each.

mod application;
#[cfg(feature = "tokio")]
pub mod asynchronous;
pub mod bounds;
mod cipher;
mod codec;
mod config;
mod crash;
mod domain;
mod error;
pub mod follower;
pub mod format;
#[cfg(any(feature = "http", feature = "http-client"))]
pub mod http;
mod keys;
mod mapper;
mod nonces;
mod notification;
pub mod recorder;
mod repository;
pub mod schema;
mod signal;
mod snapshot;
mod store;
pub mod system;
pub mod testing;
mod trace;

pub use crate::application::{Application, ApplicationBuilder, Unsaved};
#[cfg(feature = "tokio")]
pub use crate::asynchronous::{AsyncApplication, with_metadata_async};
pub use crate::cipher::{Cipher, Fingerprint, generate_cipher_key};
pub use crate::config::DbUri;
pub use crate::domain::{
    Aggregate, AggregateExt, AggregateId, Chain, Event, EventSchema, JsonObject, Metadata,
    Recorded, RecordedEvent, Root, Snapshot, with_metadata,
};
pub use crate::error::{Error, IntegrityFault, Result};
pub use crate::format::Hash;
pub use crate::keys::{Encryption, Rotation};
pub use crate::mapper::{Compression, Mapper, StoredEvent, StoredRow};
pub use crate::notification::{LentNotification, NotificationLog, NotificationLogReader, Section};
pub use crate::recorder::Notification;
pub use crate::repository::Repository;
pub use crate::store::{CommitHook, EventStore};
/// Makes an impl block the handlers of a follower, implementing
/// [`Policy<C>`](follower::Policy) for its type.
///
/// Each method marked `#[on(Enum::Variant)]` handles that upstream event,
/// named by a variant of an event enum that `#[aggregate]` generated or
/// that derives [`Event`]. A handler takes:
///
/// - `&self` or `&mut self`;
/// - then the *context*, by reference: what the handlers work with, the
///   `C` of `Policy<C>`. Every handler, `#[setup]` and `#[reset]` takes
///   the same type, as `&C` or `&mut C` (say `&mut Totals` for state of
///   your own, or `&rusqlite::Transaction<'_>` for a projection into SQL
///   tables; elided lifetimes in it are fine);
/// - then any of the event's fields, each by its name and either its type
///   or a reference to it (`owner: String`, `owner: &String` or
///   `owner: &str`), and `&Envelope` (any name, any position) for the
///   event as received: its upstream, notification id, originator and
///   timestamp.
///
/// A handler returns nothing, or `Result<(), E>` where `E` converts into
/// [`BoxError`](follower::BoxError); its error comes back from
/// [`Policy::handle`](follower::Policy::handle) as
/// [`HandleError::Handler`](follower::HandleError::Handler). One method
/// marked `#[setup]` and one marked `#[reset]` take `&self` or
/// `&mut self` and the context, with the same return types, and become
/// `Policy::setup` and `Policy::reset`. The marked methods stay ordinary
/// methods; others are left alone.
///
/// `handle` decodes the envelope as each upstream enum in turn and calls
/// the handler of its variant, saying whether one ran; `topics()` lists
/// every handled variant's topics at each schema version, so a follower
/// reads only those. `#[policy(name = "Stats")]` sets `Policy::NAME`
/// (the type's name by default) and `#[policy(version = 2)]`
/// `Policy::VERSION`, which rebuilds a projection when it changes.
/// `#[policy(crate = "path")]` names a renamed runtime crate. A generic
/// impl block works when its parameters are `Send + 'static`.
///
/// ```
/// use std::sync::Arc;
///
/// use eventsourcing::follower::{Envelope, HandleError, Policy};
/// use eventsourcing::prelude::*;
///
/// #[aggregate]
/// #[derive(Debug, Default)]
/// pub struct Account {
///     balance: u64,
/// }
///
/// #[aggregate]
/// impl Account {
///     #[created(Opened)]
///     fn open(&mut self, owner: String) {
///         let _ = owner;
///     }
///
///     #[event(Deposited)]
///     pub fn deposit(&mut self, amount: u64) {
///         self.balance += amount;
///     }
/// }
///
/// /// What the handlers make: here, totals kept in memory.
/// #[derive(Default)]
/// struct Totals {
///     owners: Vec<String>,
///     deposited: u64,
///     last_seen: u64,
/// }
///
/// struct Statistics;
///
/// #[policy]
/// impl Statistics {
///     #[on(AccountEvent::Opened)]
///     fn opened(&self, totals: &mut Totals, owner: &str) {
///         totals.owners.push(owner.to_owned());
///     }
///
///     #[on(AccountEvent::Deposited)]
///     fn deposited(&self, totals: &mut Totals, envelope: &Envelope, amount: u64) {
///         totals.deposited += amount;
///         totals.last_seen = envelope.notification_id();
///     }
/// }
///
/// let mut account = Account::open("ada".into());
/// account.deposit(30);
/// account.deposit(12);
///
/// let mut statistics = Statistics;
/// let mut totals = Totals::default();
/// for (id, event) in (1..).zip(account.pending_events()) {
///     let envelope = Envelope::new(Arc::from("bank"), id, event.clone());
///     assert!(statistics.handle(&mut totals, &envelope)?);
/// }
/// assert_eq!(totals.owners, ["ada"]);
/// assert_eq!((totals.deposited, totals.last_seen), (42, 3));
/// assert_eq!(Statistics::NAME, "Statistics");
/// assert_eq!(
///     <Statistics as Policy<Totals>>::topics(),
///     Some(vec!["Account.Opened", "Account.Deposited"])
/// );
/// # Ok::<(), HandleError>(())
/// ```
#[cfg(feature = "derive")]
pub use eventsourcing_derive::policy;
#[cfg(feature = "derive")]
pub use eventsourcing_derive::{
    AggregateId, Event, aggregate, created, event, on, reset, setup, upcast,
};
/// The PostgreSQL driver the recorder uses: a projection's handlers take
/// its `Transaction`, of this version.
#[cfg(feature = "postgres")]
pub use postgres;
/// The SQLite driver the recorder uses: a projection's handlers take its
/// `Transaction`, of this version.
#[cfg(feature = "sqlite")]
pub use rusqlite;
/// The JSON library events and snapshots are encoded with, for upcasters.
pub use serde_json as json;
pub use uuid::Uuid;

/// Marks the event's body in a command with checks: the last statement of
/// an `#[event]` method that returns `Result<(), E>`. The statements before
/// it are the checks, which run when the command is called and may return
/// an error (nothing is then recorded or changed); the block is what the
/// event does, and the only part that runs on replay.
///
/// ```
/// use eventsourcing::prelude::*;
///
/// #[derive(Debug, PartialEq)]
/// pub enum BankError {
///     InsufficientFunds { balance: u64, wanted: u64 },
/// }
///
/// #[aggregate]
/// #[derive(Debug, Default)]
/// pub struct Account {
///     balance: u64,
/// }
///
/// #[aggregate]
/// impl Account {
///     #[created(Opened)]
///     fn open(&mut self) {}
///
///     #[event(Deposited)]
///     pub fn deposit(&mut self, amount: u64) {
///         self.balance += amount;
///     }
///
///     #[event(Withdrawn)]
///     pub fn withdraw(&mut self, amount: u64) -> Result<(), BankError> {
///         if amount > self.balance {
///             return Err(BankError::InsufficientFunds { balance: self.balance, wanted: amount });
///         }
///         apply! {
///             self.balance -= amount;
///         }
///     }
/// }
///
/// let mut account = Account::open();
/// account.deposit(10);
/// assert!(account.withdraw(25).is_err());
/// assert_eq!(account.version(), 2); // nothing recorded
/// account.withdraw(4)?;
/// assert_eq!((account.balance, account.version()), (6, 3));
/// # Ok::<(), BankError>(())
/// ```
///
/// Outside such a method it is an error: only `#[aggregate]` reads it.
#[macro_export]
macro_rules! apply {
    ($($body:tt)*) => {
        ::core::compile_error!(
            "`apply! { ... }` goes last in an `#[event]` method of an `#[aggregate]` impl block that returns `Result<(), E>`: the checks come before it, and its block is the event's body"
        )
    };
}

/// The names most programs need: `use eventsourcing::prelude::*;`.
pub mod prelude {
    pub use crate::application::Application;
    pub use crate::apply;
    pub use crate::domain::{Aggregate, AggregateExt, AggregateId, Event, JsonObject, Root};
    pub use crate::error::{Error, Result};
    pub use crate::format::Hash;
    #[cfg(feature = "derive")]
    pub use eventsourcing_derive::{
        AggregateId, Event, aggregate, created, event, on, policy, reset, setup, upcast,
    };
    pub use uuid::Uuid;
}

/// What generated code needs, under paths that users never write.
#[doc(hidden)]
pub mod __private;

/// The README's code, compiled and run as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
