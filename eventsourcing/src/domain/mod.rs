//! The domain layer: the traits aggregates and events implement, the
//! bookkeeping every aggregate carries, the records it leaves (events and
//! snapshots), the one check of their hash chain, and replay.
//!
//! Nothing here touches storage: the store hands recorded events in, and
//! takes pending events out.

mod aggregate;
mod chain;
mod event;
mod meta;
mod metadata;
mod recorded;
pub(crate) mod replay;

pub use self::aggregate::{Aggregate, AggregateExt, AggregateId, Bookkeeping, Root};
pub use self::chain::Chain;
pub use self::event::{Event, EventSchema, JsonObject};
pub use self::meta::Meta;
pub(crate) use self::metadata::scoped as scoped_metadata;
pub use self::metadata::{Metadata, with_metadata};
pub(crate) use self::recorded::EventView;
pub use self::recorded::{Recorded, RecordedEvent, Snapshot};
