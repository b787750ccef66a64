//! Followers: process applications and projections. A follower reads one
//! or more upstream applications' notification logs and hands each event
//! to its [`Policy`]; what the handlers record, and the follower's new
//! position in each upstream log, are written in one transaction.

mod builder;
pub(crate) mod causal;
pub(crate) mod inbox;
mod listen;
mod parked;
mod policy;
mod processing;
mod reader;
mod runner;
mod running;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod target;
mod watch;

pub use self::builder::FollowerBuilder;
pub use self::causal::{Dependency, Partition};
pub use self::policy::{
    BoxError, Envelope, HandleError, Policy, forgotten_topics, is_forgotten_of, variant_topics,
};
pub use self::processing::Processing;
pub use self::runner::{DEFAULT_BATCH_SIZE, Follower, Progress, Rebuild};
pub use self::running::{Lag, Running};
#[cfg(feature = "postgres")]
pub use self::sql::PostgresProjection;
#[cfg(feature = "sqlite")]
pub use self::sql::SqliteProjection;
pub use self::target::{InMemory, ProcessTarget, Target};
pub use self::watch::Watch;
