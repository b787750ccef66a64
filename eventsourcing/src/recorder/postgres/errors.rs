//! What PostgreSQL's errors mean to the recorder: a lost connection, a
//! concurrency conflict, a tracking conflict, or a failure to report as is.

use std::fmt;

use postgres::error::SqlState;
use uuid::Uuid;

use super::sql::{CONFLICT_DETAIL_PREFIX, TRACKING_CONFLICT};
use crate::error::Error;

/// A failure to connect, shown with its cause ("connection refused"...),
/// which the client's own message leaves to `source()`.
#[derive(Debug)]
pub(super) struct ConnectError(pub(super) postgres::Error);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to PostgreSQL: {}", self.0)?;
        let mut cause = std::error::Error::source(&self.0);
        while let Some(inner) = cause {
            write!(f, ": {inner}")?;
            cause = inner.source();
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Wraps a database error.
pub(super) fn db(error: postgres::Error) -> Error {
    Error::Database(Box::new(error))
}

/// Whether `error` means the connection, or the server, is gone.
pub(super) fn is_connection_lost(error: &postgres::Error) -> bool {
    error.is_closed()
        || error.code().is_some_and(|code| {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::IDLE_SESSION_TIMEOUT,
                ]
                .contains(code)
        })
}

/// Whether a call that failed with `error`, leaving `client` closed, sent
/// nothing to the server: the server's error arrived while no request was
/// waiting for an answer (it ended an idle session and said why), which
/// the client reports as the connection's own error and closes it. An
/// error that answers a request leaves the client open, and a connection
/// that ended without a word is a closed-connection error, not a server's.
pub(super) fn sent_nothing(error: &postgres::Error, client: &postgres::Client) -> bool {
    error.as_db_error().is_some() && client.is_closed()
}

/// A unique violation on `(originator_id, originator_version)`.
pub(super) enum Conflict {
    /// The server's message names the row.
    Named(Uuid, u64),
    /// It does not (a translated message, say): look it up.
    Unnamed,
}

/// Why the insert function refused a batch, leaving the connection fine.
pub(super) enum Refused {
    /// An event's version is recorded.
    Events(Conflict),
    /// The tracking row is elsewhere.
    Tracking,
}

/// Whether `error` is the insert function's report of a failed tracking
/// compare-and-set.
pub(super) fn is_tracking_conflict(error: &postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| code.code() == TRACKING_CONFLICT)
}

/// The conflict that `error` reports, if it is one.
pub(super) fn conflict_in(error: &postgres::Error) -> Option<Conflict> {
    let db_error = error.as_db_error()?;
    if db_error.code() != &SqlState::UNIQUE_VIOLATION {
        return None;
    }
    let named = db_error.detail().and_then(|detail| {
        let rest = detail.strip_prefix(CONFLICT_DETAIL_PREFIX)?;
        let (values, _) = rest.split_once(')')?;
        let (id, version) = values.split_once(", ")?;
        Some((Uuid::parse_str(id).ok()?, version.parse().ok()?))
    });
    if named.is_none()
        && db_error
            .constraint()
            .is_some_and(|constraint| constraint.ends_with("_pkey"))
    {
        // A duplicate notification id is not a concurrency conflict.
        return None;
    }
    Some(named.map_or(Conflict::Unnamed, |(id, version)| {
        Conflict::Named(id, version)
    }))
}

/// What a call does, which decides how a lost connection is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Call {
    /// Reads only: safe to run again.
    Read,
    /// A batch: one statement, or one explicit transaction, so nothing of
    /// it is committed before its last answer. Its connection is checked
    /// first only after an idle spell, and it runs again on a fresh
    /// connection when the server had closed the old one before anything
    /// of it was sent.
    Batch,
    /// Other writes: never run twice.
    Write,
}

/// A failed step of a call: a database error (which condemns the
/// connection), one that must not be retried either, or any other error
/// (which leaves the connection usable).
pub(super) enum Failure {
    Database(postgres::Error),
    Final(postgres::Error),
    Other(Error),
}

impl From<postgres::Error> for Failure {
    fn from(error: postgres::Error) -> Self {
        Failure::Database(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Other(error)
    }
}
