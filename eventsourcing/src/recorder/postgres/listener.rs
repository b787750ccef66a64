//! Waiting for new events: `LISTEN` on the channel the insert function
//! notifies.

use std::fmt;
use std::time::Duration;

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::PostgresRecorder;
use super::errors::db;
use super::sql::quote_ident;
use crate::error::{Error, Result};

/// A connection that waits for new events in a [`PostgresRecorder`]'s
/// tables, from any process: made by [`PostgresRecorder::listener`].
///
/// The insert function notifies the tables' channel (`es_` and 16 hex
/// digits derived from the schema and table prefix) in every transaction
/// that inserts events; PostgreSQL delivers the notification when, and
/// only if, that transaction commits. A follower polls its upstream log
/// when [`wait`](Listener::wait) returns, or when it times out: a
/// notification is a hint that the log grew, the log is the truth (one
/// sent while no listener was connected is lost).
///
/// ```no_run
/// use std::time::Duration;
///
/// use eventsourcing::recorder::{PostgresOptions, PostgresRecorder, Recorder};
///
/// let recorder = PostgresRecorder::open(PostgresOptions::new("postgres://localhost/app"))?;
/// let mut listener = recorder.listener()?;
/// let mut seen = recorder.max_notification_id()?;
/// loop {
///     // Woken by a commit elsewhere, or polling once a second anyway.
///     listener.wait(Duration::from_secs(1))?;
///     for notification in recorder.select_notifications(seen + 1, 100, &[])? {
///         seen = notification.id;
///         // ...
///     }
/// }
/// # Ok::<(), eventsourcing::Error>(())
/// ```
pub struct Listener {
    pub(super) client: Client,
    pub(super) channel: String,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("channel", &self.channel)
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl PostgresRecorder {
    /// A [`Listener`] on a connection of its own (outside the pool, and not
    /// counted in its size) that has run `LISTEN` on the tables' channel.
    ///
    /// Fails with [`Error::Database`] when the server cannot be reached.
    pub fn listener(&self) -> Result<Listener> {
        let mut client = self.pool.connect_dedicated()?;
        client
            .batch_execute(&format!("LISTEN {}", quote_ident(&self.sql.channel)))
            .map_err(db)?;
        Ok(Listener {
            client,
            channel: self.sql.channel.clone(),
        })
    }
}

impl Listener {
    /// Waits at most `timeout` for a notification: `true` as soon as at
    /// least one arrived (every one pending is then taken, so that a burst
    /// of commits wakes the caller once), `false` when none came in time.
    ///
    /// A lost connection (a server restart, say) is [`Error::Database`],
    /// now and at every later call: make a new listener, and read the log,
    /// since notifications sent meanwhile are lost.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let first = self
            .client
            .notifications()
            .timeout_iter(timeout)
            .next()
            .map_err(db)?;
        if first.is_none() {
            // The client reports a closed connection as "nothing came".
            if self.client.is_closed() {
                return Err(Error::Database(
                    "the listener's PostgreSQL connection was lost".into(),
                ));
            }
            return Ok(false);
        }
        let mut notifications = self.client.notifications();
        let mut pending = notifications.iter();
        // A connection lost while draining is reported by the next call.
        while let Ok(Some(_)) = pending.next() {}
        Ok(true)
    }
}
