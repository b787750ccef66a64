//! The notification log: every stored event of an application in its
//! total order, served in sections, and a reader that follows it.

use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::RecordedEvent;
use crate::error::{Error, Result};
use crate::format::Hash;
use crate::mapper::{DataKey, Mapper, Scratch};
use crate::recorder::{Notification, Recorder};

/// The application's events in notification order, in sections of a fixed
/// size whose ids are `"first,last"` (`"1,10"`, `"11,20"`, ...).
///
/// Notification ids start at 1 and only grow. A reader that follows them
/// upwards never misses a row that becomes visible later with a smaller
/// id; a failed write may leave a permanent hole in the ids, which readers
/// simply pass over.
#[derive(Clone)]
pub struct NotificationLog {
    recorder: Arc<dyn Recorder>,
    mapper: Mapper,
    section_size: usize,
}

impl fmt::Debug for NotificationLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationLog")
            .field("section_size", &self.section_size)
            .finish_non_exhaustive()
    }
}

/// One section of the notification log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// `"first,last"`: the ids this section covers.
    pub id: String,
    /// The notifications recorded with ids in the section's range.
    pub items: Vec<Notification>,
    /// The section before this one, unless this is the first.
    pub previous_id: Option<String>,
    /// The section after this one, once this one is full.
    pub next_id: Option<String>,
}

impl NotificationLog {
    pub(crate) fn new(
        recorder: Arc<dyn Recorder>,
        mapper: Mapper,
        section_size: usize,
    ) -> NotificationLog {
        NotificationLog {
            recorder,
            mapper,
            section_size: section_size.max(1),
        }
    }

    /// How many notifications a section holds.
    #[must_use]
    pub fn section_size(&self) -> usize {
        self.section_size
    }

    /// The section with the id `"first,last"`.
    ///
    /// `first` is at least 1 and `last` at least `first`; a range longer
    /// than the section size is cut to it. Anything else is
    /// [`Error::InvalidArgument`].
    pub fn section(&self, section_id: &str) -> Result<Section> {
        let (first, last) = parse_section_id(section_id)?;
        let span = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        let size = span.min(self.section_size);
        let last = first + u64::try_from(size).unwrap_or(MAX_ID) - 1;
        // The greatest id is read first: every id up to it is settled (a
        // recorder reports no id a reader could still miss), so if it is
        // past this section, the items read next are all the section holds.
        let max_id = self.recorder.max_notification_id()?;
        let items = self.recorder.select_notifications(first, size, &[])?;
        let items: Vec<_> = items.into_iter().filter(|n| n.id <= last).collect();
        let full = items.last().is_some_and(|n| n.id == last) || max_id > last;
        let step = u64::try_from(self.section_size).unwrap_or(MAX_ID);
        Ok(Section {
            id: format!("{first},{last}"),
            previous_id: (first > 1).then(|| {
                let start = first.saturating_sub(step).max(1);
                format!("{start},{}", first - 1)
            }),
            next_id: (full && last < MAX_ID)
                .then(|| format!("{},{}", last + 1, last.saturating_add(step).min(MAX_ID))),
            items,
        })
    }

    /// At most `limit` notifications from id `start` on, optionally only
    /// those of the given topics.
    pub fn select(&self, start: u64, limit: usize, topics: &[&str]) -> Result<Vec<Notification>> {
        self.recorder.select_notifications(start, limit, topics)
    }

    /// The greatest notification id so far, and at most `limit` rows after
    /// `after` of the given topics (none when the head is not past it),
    /// read together.
    pub(crate) fn page(
        &self,
        after: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<(u64, Vec<Notification>)> {
        self.recorder.select_page(after, limit, topics)
    }

    /// The greatest notification id so far (0 when the log is empty).
    pub fn max_id(&self) -> Result<u64> {
        self.recorder.max_notification_id()
    }

    /// Lends at most `limit` notifications from id `start` on (only those
    /// of `topics`, unless it is empty) to `each`, decrypted, decompressed
    /// and hash-checked, until `each` breaks; returns how many it lent.
    ///
    /// What [`NotificationLog::select`] then [`NotificationLog::decode`] of
    /// each give, without an allocation per notification: the topic and
    /// data are the database's bytes, or buffers reused from one
    /// notification to the next. For readers that look at each event once
    /// (projections, exports, checks); [`LentNotification::to_recorded`]
    /// keeps one. An error (a corrupted record, a wrong key) ends the call
    /// at the notification it is about.
    pub fn decode_each(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
        mut each: impl FnMut(LentNotification<'_>) -> ControlFlow<()>,
    ) -> Result<usize> {
        let mut scratch = Scratch::default();
        let mut lent = 0;
        self.recorder
            .select_notification_rows(start, limit, topics, &mut |id, row| {
                let view = self.mapper.open_row(row, DataKey::Ask, &mut scratch)?;
                view.check_hash()?;
                lent += 1;
                Ok(each(LentNotification {
                    id,
                    originator_id: view.originator_id,
                    originator_version: view.originator_version,
                    topic: view.topic,
                    timestamp: view.timestamp,
                    previous_hash: view.previous_hash,
                    data: view.data,
                    event_hash: view.event_hash,
                }))
            })?;
        Ok(lent)
    }

    /// Decrypts and decodes a notification into its recorded event, and
    /// checks its hash.
    pub fn decode(&self, notification: Notification) -> Result<RecordedEvent> {
        let event = self.mapper.decode(notification.into_event())?;
        event.check_hash()?;
        Ok(event)
    }

    /// A reader that starts at the first notification.
    #[must_use]
    pub fn reader(&self) -> NotificationLogReader {
        NotificationLogReader::new(self.clone())
    }
}

/// A notification decoded and hash-checked, lent by
/// [`NotificationLog::decode_each`] for the time of one call: the fields of
/// its [`RecordedEvent`], borrowed, and its notification id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LentNotification<'a> {
    /// Position in the application's total order.
    pub id: u64,
    /// The aggregate the event belongs to.
    pub originator_id: Uuid,
    /// The event's version within its aggregate.
    pub originator_version: u64,
    /// The event's stable type name.
    pub topic: &'a str,
    /// Microseconds since the Unix epoch, UTC.
    pub timestamp: i64,
    /// The hash of the aggregate's previous event (zero for the first).
    pub previous_hash: Hash,
    /// The event's fields as one UTF-8 JSON object.
    pub data: &'a [u8],
    /// SHA-256 of the pre-image in FORMAT.md, checked.
    pub event_hash: Hash,
}

impl LentNotification<'_> {
    /// The recorded event, copied out of the lent bytes.
    #[must_use]
    pub fn to_recorded(&self) -> RecordedEvent {
        RecordedEvent {
            originator_id: self.originator_id,
            originator_version: self.originator_version,
            topic: Cow::Owned(self.topic.to_owned()),
            timestamp: self.timestamp,
            previous_hash: self.previous_hash,
            data: self.data.to_vec(),
            event_hash: self.event_hash,
        }
    }
}

/// The greatest notification id any backend can hold (SQL `BIGINT`).
const MAX_ID: u64 = i64::MAX.unsigned_abs();

fn parse_section_id(section_id: &str) -> Result<(u64, u64)> {
    let invalid = || Error::InvalidArgument {
        name: "section id",
        reason: format!(
            "`{section_id}` is not of the form `first,last` with 1 <= first <= last <= {MAX_ID}"
        ),
    };
    let (first, last) = section_id.split_once(',').ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first == 0 || last < first || first > MAX_ID {
        return Err(invalid());
    }
    Ok((first, last.min(MAX_ID)))
}

/// The smallest page [`NotificationLogReader::read`] asks a recorder for.
const READ_PAGE: usize = 1000;

/// Follows a notification log: each [`read`](Self::read) returns what was
/// recorded since the previous one.
#[derive(Clone, Debug)]
pub struct NotificationLogReader {
    log: NotificationLog,
    position: u64,
}

impl NotificationLogReader {
    /// A reader of `log`, starting at the first notification.
    #[must_use]
    pub fn new(log: NotificationLog) -> NotificationLogReader {
        NotificationLogReader { log, position: 1 }
    }

    /// The id of the next notification the reader will return (or the
    /// first one after it, where a failed write left a hole).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves the reader to notification id `position` (at least 1).
    pub fn seek(&mut self, position: u64) {
        self.position = position.max(1);
    }

    /// Every notification recorded since the last read, read in pages of
    /// at least 1,000 rows (or a section, if larger): a section of
    /// ten is a fine unit for a remote reader but a slow one for a bulk
    /// read.
    pub fn read(&mut self) -> Result<Vec<Notification>> {
        let page = self.log.section_size.max(READ_PAGE);
        let mut all = Vec::new();
        loop {
            let batch = self.read_page(page)?;
            let done = batch.len() < page;
            all.extend(batch);
            if done {
                return Ok(all);
            }
        }
    }

    /// At most one section's worth of new notifications; empty when the
    /// reader is up to date.
    pub fn read_batch(&mut self) -> Result<Vec<Notification>> {
        self.read_page(self.log.section_size)
    }

    fn read_page(&mut self, size: usize) -> Result<Vec<Notification>> {
        let batch = self
            .log
            .recorder
            .select_notifications(self.position, size, &[])?;
        if let Some(last) = batch.last() {
            self.position = last.id + 1;
        }
        Ok(batch)
    }
}
