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
//! let mut world = World::create();
//! world.make_it_so("dinosaurs".into());
//! world.make_it_so("trucks".into());
//! assert_eq!(world.history, ["dinosaurs", "trucks"]);
//! assert_eq!(world.version(), 3);
//! assert_eq!(world.head().to_hex().len(), 64);
//! ```

mod application;
mod cipher;
mod config;
mod domain;
mod error;
mod mapper;
mod notification;
pub mod recorder;
pub mod schema;
pub mod testing;

pub use crate::application::{Application, ApplicationBuilder, EventStore, Repository, Unsaved};
pub use crate::cipher::{Cipher, generate_cipher_key};
pub use crate::config::DbUri;
pub use crate::domain::{
    Aggregate, Event, EventSchema, Hash, JsonObject, Meta, RecordedEvent, Root, event_hash,
    now_micros, split_topic, versioned_topic,
};
pub use crate::error::{Error, IntegrityFault, Result};
pub use crate::mapper::{Compression, Mapper, StoredEvent};
pub use crate::notification::{NotificationLog, NotificationLogReader, Section};
pub use crate::recorder::Notification;
#[cfg(feature = "derive")]
pub use eventsourcing_derive::{Event, aggregate, created, event, upcast};
/// The JSON library events and snapshots are encoded with, for upcasters.
pub use serde_json as json;
pub use uuid::Uuid;

/// The names most programs need: `use eventsourcing::prelude::*;`.
pub mod prelude {
    pub use crate::application::Application;
    pub use crate::domain::{Aggregate, Event, Hash, JsonObject, Root};
    pub use crate::error::{Error, Result};
    #[cfg(feature = "derive")]
    pub use eventsourcing_derive::{Event, aggregate, created, event, upcast};
    pub use uuid::Uuid;
}

/// What generated code needs, under paths that users never write.
#[doc(hidden)]
pub mod __private;

/// The README's code, compiled and run as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
