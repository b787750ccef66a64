//! What the browser's pages show, read from the store on a blocking
//! thread: a page of the notification log, and one aggregate's history
//! with the state of its hash chain.

use std::fmt::Write as _;
use std::ops::ControlFlow;

use uuid::Uuid;

use crate::domain::{Chain, RecordedEvent};
use crate::error::Result;
use crate::format::Hash;
use crate::recorder::{EventQuery, Notification};
use crate::store::EventStore;

/// Flag bit of a stored record: compressed (FORMAT.md).
const COMPRESSED: u8 = 0x01;
/// Flag bit of a stored record: encrypted.
const ENCRYPTED: u8 = 0x02;
/// Flag bit of a stored record: encrypted under the aggregate's own key.
const AGGREGATE_KEY: u8 = 0x04;

/// What a stored record's flags byte says, in words: `plain`,
/// `compressed`, `encrypted, compressed`, ...
pub(super) fn describe_flags(state: &[u8]) -> String {
    let Some(&flags) = state.first() else {
        return "empty".to_owned();
    };
    let mut words = Vec::new();
    if flags & ENCRYPTED != 0 {
        words.push("encrypted");
    }
    if flags & AGGREGATE_KEY != 0 {
        words.push("aggregate key");
    }
    if flags & COMPRESSED != 0 {
        words.push("compressed");
    }
    let unknown = flags & !(COMPRESSED | ENCRYPTED | AGGREGATE_KEY);
    let mut text = if words.is_empty() {
        "plain".to_owned()
    } else {
        words.join(", ")
    };
    if unknown != 0 {
        let _ = write!(text, ", unknown bits {unknown:#04x}");
    }
    text
}

/// Whether a stored record's flags say it is encrypted.
fn is_encrypted(state: &[u8]) -> bool {
    state.first().is_some_and(|flags| flags & ENCRYPTED != 0)
}

/// A page of the notification log.
#[derive(Debug)]
pub(super) struct LogPage {
    /// The greatest notification id when the page was read.
    pub(super) head: u64,
    /// The rows after the page's `after`, at most a page of them.
    pub(super) items: Vec<Notification>,
}

/// At most `limit` notifications after `after`, and the head.
pub(super) fn log_page(store: &EventStore, after: u64, limit: usize) -> Result<LogPage> {
    let (head, items) = store.recorder().select_page(after, limit, &[])?;
    Ok(LogPage { head, items })
}

/// One stored event of an aggregate, read as far as the server's key
/// allows.
#[derive(Debug)]
pub(super) struct Row {
    /// The row as stored.
    pub(super) version: u64,
    pub(super) topic: String,
    pub(super) size: usize,
    pub(super) flags: String,
    /// What the record holds, or why it cannot be read.
    pub(super) body: Body,
}

/// What a stored record holds, as far as the server can tell.
#[derive(Debug)]
pub(super) enum Body {
    /// Decrypted (or plaintext) and decoded.
    Read {
        timestamp: i64,
        data: Vec<u8>,
        event_hash: Hash,
    },
    /// Encrypted, and the server has no key: nothing of it is shown.
    Encrypted,
    /// It could not be read: the error says why.
    Unreadable(String),
}

/// Where an aggregate's hash chain stands, as
/// [`EventStore::verify`] checks it (every record readable, every hash
/// matching its bytes, versions 1, 2, 3, ... each linked to the hash
/// before).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ChainStatus {
    /// The whole chain checks out: its last version and head.
    Verified { version: u64, head: Hash },
    /// The first fault of the chain itself (a hash that does not match
    /// its record, a broken link, a missing version): the version and
    /// what is wrong.
    Broken { version: u64, reason: String },
    /// The record at `version` cannot be read (a wrong key, tampered
    /// ciphertext, a malformed record): the chain is checked up to the
    /// version before.
    Unreadable { version: u64, reason: String },
    /// Checked up to `version - 1`; the record at `version` is encrypted
    /// and the server has no key.
    Unchecked { version: u64 },
}

/// An aggregate's history: a page of its rows, how many it has, and its
/// chain's status.
#[derive(Debug)]
pub(super) struct History {
    pub(super) rows: Vec<Row>,
    pub(super) total: u64,
    pub(super) last_version: u64,
    pub(super) status: ChainStatus,
}

/// Reads every event of aggregate `id` once: checks its chain from the
/// first event to the last (as [`EventStore::verify`] does, with
/// [`Chain`]), and keeps the rows after version `after`, at most `limit`
/// of them, for display. `None` when the aggregate has no event.
pub(super) fn history(
    store: &EventStore,
    id: Uuid,
    after: u64,
    limit: usize,
) -> Result<Option<History>> {
    let mapper = store.mapper();
    let keyed = mapper.has_cipher();
    let mut chain = Chain::new(id);
    let mut status = None;
    let mut rows = Vec::new();
    let mut total = 0u64;
    let mut last_version = 0;
    store
        .recorder()
        .select_events(&EventQuery::new(id), &mut |lent| {
            let stored = lent.to_owned();
            total += 1;
            last_version = stored.originator_version;
            let shown = stored.originator_version > after && rows.len() < limit;
            let row = shown.then(|| Row {
                version: stored.originator_version,
                topic: stored.topic.clone(),
                size: stored.state.len(),
                flags: describe_flags(&stored.state),
                body: Body::Encrypted,
            });
            let version = stored.originator_version;
            let encrypted = is_encrypted(&stored.state);
            let body = match mapper.decode(stored) {
                Ok(event) => {
                    if status.is_none()
                        && let Err(error) = chain.check_next(&event)
                    {
                        status = Some(ChainStatus::Broken {
                            version: fault_version(&error, version),
                            reason: error.to_string(),
                        });
                    }
                    read_body(event)
                }
                Err(_) if encrypted && !keyed => {
                    status.get_or_insert(ChainStatus::Unchecked { version });
                    Body::Encrypted
                }
                Err(error) => {
                    let reason = error.to_string();
                    status.get_or_insert_with(|| ChainStatus::Unreadable {
                        version,
                        reason: reason.clone(),
                    });
                    Body::Unreadable(reason)
                }
            };
            if let Some(mut row) = row {
                row.body = body;
                rows.push(row);
            }
            Ok(ControlFlow::Continue(()))
        })?;
    if total == 0 {
        return Ok(None);
    }
    let status = status.unwrap_or(ChainStatus::Verified {
        version: chain.version(),
        head: chain.head(),
    });
    Ok(Some(History {
        rows,
        total,
        last_version,
        status,
    }))
}

/// The version an integrity error names, else the row's.
fn fault_version(error: &crate::Error, version: u64) -> u64 {
    match error {
        crate::Error::Integrity { version, .. } => *version,
        _ => version,
    }
}

/// The parts of a decoded event a page shows.
fn read_body(event: RecordedEvent) -> Body {
    Body::Read {
        timestamp: event.timestamp,
        event_hash: event.event_hash,
        data: event.data,
    }
}

/// Whether aggregate `id` has an event.
pub(super) fn exists(store: &EventStore, id: Uuid) -> Result<bool> {
    let mut found = false;
    store
        .recorder()
        .select_events(&EventQuery::new(id).limit(1), &mut |_| {
            found = true;
            Ok(ControlFlow::Break(()))
        })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::describe_flags;

    #[test]
    fn flags_are_named() {
        assert_eq!(describe_flags(&[]), "empty");
        assert_eq!(describe_flags(&[0x00, 1]), "plain");
        assert_eq!(describe_flags(&[0x03]), "encrypted, compressed");
        assert_eq!(describe_flags(&[0x01]), "compressed");
        assert_eq!(describe_flags(&[0x06]), "encrypted, aggregate key");
        assert_eq!(describe_flags(&[0x10]), "plain, unknown bits 0x10");
    }
}
