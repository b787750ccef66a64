//! Reading an upstream log in pages for a follower: which rows a page
//! holds, how far it lets the follower's position move, and reading the
//! next page on another thread while the current one is handled and
//! committed (decoding, decrypting and checking hashes overlap with the
//! writes).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use super::inbox::Inbox;
use super::policy::Envelope;
use crate::error::{Error, Result};
use crate::notification::NotificationLog;
use crate::recorder::Notification;

/// One page of an upstream log, decoded.
#[derive(Debug)]
pub(crate) struct Page {
    /// The wanted events after the position the page was read from, in
    /// notification order.
    pub(crate) envelopes: Vec<Envelope>,
    /// How far the position may move once they are recorded: past the
    /// page's last row, and past the unwanted rows after it when the page
    /// reached the head. Never past a row that could not be read.
    pub(crate) to: u64,
    /// Whether nothing is left after `to` (as of the read).
    pub(crate) at_head: bool,
    /// A row that could not be read (its hash, its decryption): the page
    /// stops before it, and the follower stops there.
    pub(crate) unreadable: Option<Error>,
}

/// What to read a page of.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) name: Arc<str>,
    pub(crate) log: NotificationLog,
    pub(crate) topics: Option<Vec<&'static str>>,
    pub(crate) limit: usize,
    /// Read nothing past this notification.
    pub(crate) until: Option<u64>,
    /// What the upstream just committed, served instead of a read when it
    /// covers the page (`inbox.rs`).
    pub(crate) inbox: Option<Arc<Inbox>>,
}

impl Source {
    /// The page after position `from`.
    pub(crate) fn read(&self, from: u64) -> Result<Page> {
        // Every id up to the head is settled: a recorder never reports one
        // that a reader could still miss. Head and rows come from one read.
        let topics = self.topics.as_deref().unwrap_or(&[]);
        let (head, mut rows) = match self.served_by_inbox(from, topics) {
            Some(page) => page,
            None => self.log.page(from, self.limit, topics)?,
        };
        let head = self.until.map_or(head, |until| head.min(until));
        if head <= from {
            return Ok(Page {
                envelopes: Vec::new(),
                to: from,
                at_head: true,
                unreadable: None,
            });
        }
        let mut full = rows.len() >= self.limit;
        if rows.last().is_some_and(|row| row.id > head) {
            rows.retain(|row| row.id <= head);
            full = false;
        }
        // A short page holds every wanted row up to the head; the rows it
        // holds are settled too.
        let mut to = match rows.last() {
            Some(last) if full => last.id,
            Some(last) => last.id.max(head),
            None => head,
        };
        let mut envelopes = Vec::with_capacity(rows.len());
        let mut unreadable = None;
        for row in rows {
            let id = row.id;
            match self.log.decode(row) {
                Ok(event) => envelopes.push(Envelope::new(Arc::clone(&self.name), id, event)),
                // An older record of a forgotten aggregate: nobody can read
                // it any more, so it is passed over (its `Forgotten` event
                // comes later, and is delivered).
                Err(Error::Forgotten { .. }) => {}
                Err(error) => {
                    // Everything before it may be recorded; it is not passed.
                    to = id - 1;
                    unreadable = Some(error);
                    break;
                }
            }
        }
        let at_head = unreadable.is_none() && !full && to >= head;
        Ok(Page {
            envelopes,
            to,
            at_head,
            unreadable,
        })
    }

    /// The page after `from` from the inbox, if there is one, it covers
    /// the page, and this thread holds a transaction open on a SQLite
    /// file (where the inbox knows every id up to the head).
    fn served_by_inbox(&self, from: u64, topics: &[&str]) -> Option<(u64, Vec<Notification>)> {
        #[cfg(feature = "sqlite")]
        if crate::recorder::in_scope() {
            return self.inbox.as_ref()?.page(from, self.limit, topics);
        }
        let _ = (from, topics);
        None
    }
}

/// Reads pages on a thread of its own, one ahead of the follower: asked
/// for the page after a position, it reads it while the follower records
/// the one before.
pub(crate) struct ReadAhead<'scope> {
    ask: Option<SyncSender<u64>>,
    pages: Receiver<Result<Page>>,
    thread: ScopedJoinHandle<'scope, ()>,
}

impl<'scope> ReadAhead<'scope> {
    /// Starts the reader in `scope`.
    pub(crate) fn start<'env>(scope: &'scope Scope<'scope, 'env>, source: Source) -> Self {
        let (ask, asked) = sync_channel::<u64>(1);
        let (send, pages) = sync_channel::<Result<Page>>(1);
        let thread = scope.spawn(move || {
            for from in asked {
                if send.send(source.read(from)).is_err() {
                    return;
                }
            }
        });
        ReadAhead {
            ask: Some(ask),
            pages,
            thread,
        }
    }

    /// Asks for the page after `from`.
    pub(crate) fn ask(&self, from: u64) {
        if let Some(ask) = &self.ask {
            // A reader that ended has sent its last answer already.
            let _ = ask.send(from);
        }
    }

    /// The page asked for last.
    pub(crate) fn next(&self) -> Result<Page> {
        self.pages.recv().map_err(|_| {
            Error::Database("the follower's reading thread ended without a page".into())
        })?
    }

    /// Stops the reader (after the read in progress, if any).
    pub(crate) fn finish(mut self) {
        self.ask = None;
        // Unblock a reader waiting to hand over a page nobody will take.
        while self.pages.try_recv().is_ok() {}
        drop(self.pages);
        let _ = self.thread.join();
    }
}
