//! What an upstream just committed, kept for a follower that runs on the
//! committing thread (the single-thread runner), so that it need not read
//! back the rows it was handed a moment before.
//!
//! The runner's commit hook pushes each commit of the upstream: its
//! notification ids and stored events. The inbox keeps a run of
//! consecutive ids it has seen entirely (and the events of them the
//! follower may want); a page after a position is served from it only
//! when the run starts right after that position. Any gap (a commit it was
//! not told of, hooks told out of order, more than it keeps) empties it,
//! and the follower reads the log as usual until the run starts again.
//!
//! Served only inside a transaction this thread holds open on a SQLite
//! file (`recorder::in_scope`): no other connection can commit to the log
//! meanwhile, so every id up to the run's end is known, and the run's end
//! is the log's head as the follower's own read would have found it.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use crate::mapper::StoredEvent;
use crate::recorder::Notification;

/// At most this many events are kept; past it the inbox empties, and the
/// follower reads the log.
const CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct Inbox {
    state: Mutex<Run>,
}

/// A run of consecutive notification ids, `first..=last`, every one seen;
/// `events` holds those of them a follower may want, in order.
#[derive(Debug, Default)]
struct Run {
    first: u64,
    last: u64,
    events: VecDeque<Notification>,
}

impl Run {
    fn clear(&mut self) {
        self.first = 0;
        self.last = 0;
        self.events.clear();
    }

    fn is_empty(&self) -> bool {
        self.last == 0
    }
}

impl Inbox {
    /// Takes in a commit of the upstream: `ids[i]` is the notification id
    /// of `events[i]`; events of other topics than `wanted` (if given) are
    /// not kept, their ids are.
    pub(crate) fn push(&self, ids: &[u64], events: &[StoredEvent], wanted: Option<&[&str]>) {
        let mut run = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return;
        };
        let consecutive = ids.len() == events.len()
            && ids.windows(2).all(|pair| pair[1] == pair[0] + 1)
            && first > 0;
        if !consecutive {
            run.clear();
            return;
        }
        if run.is_empty() || first != run.last + 1 {
            run.clear();
            run.first = first;
        }
        run.last = last;
        for (&id, event) in ids.iter().zip(events) {
            if wanted.is_none_or(|topics| topics.contains(&event.topic.as_str())) {
                run.events.push_back(Notification {
                    id,
                    originator_id: event.originator_id,
                    originator_version: event.originator_version,
                    topic: event.topic.clone(),
                    state: event.state.clone(),
                });
            }
        }
        if run.events.len() > CAPACITY {
            run.clear();
        }
    }

    /// What [`NotificationLog::page`](crate::notification::NotificationLog)
    /// would read after `after` (the head, and at most `limit` rows of
    /// `topics`, all when empty), if the run covers every id after it;
    /// `None` otherwise. Events up to `after` are let go.
    pub(crate) fn page(
        &self,
        after: u64,
        limit: usize,
        topics: &[&str],
    ) -> Option<(u64, Vec<Notification>)> {
        let mut run = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if run.is_empty() || after < run.first.saturating_sub(1) || after > run.last {
            return None;
        }
        while run.events.front().is_some_and(|event| event.id <= after) {
            run.events.pop_front();
        }
        run.first = after + 1;
        let rows = run
            .events
            .iter()
            .filter(|event| topics.is_empty() || topics.contains(&event.topic.as_str()))
            .take(limit)
            .cloned()
            .collect();
        Some((run.last, rows))
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn event(topic: &str, n: u8) -> StoredEvent {
        StoredEvent {
            originator_id: Uuid::from_u128(u128::from(n)),
            originator_version: 1,
            topic: topic.to_owned(),
            state: vec![n],
        }
    }

    fn ids(page: &(u64, Vec<Notification>)) -> Vec<u64> {
        page.1.iter().map(|n| n.id).collect()
    }

    #[test]
    fn serves_a_run_that_starts_right_after_the_position() {
        let inbox = Inbox::default();
        assert!(inbox.page(0, 10, &[]).is_none(), "nothing seen yet");
        inbox.push(&[1, 2], &[event("A", 1), event("B", 2)], None);
        inbox.push(&[3], &[event("A", 3)], None);
        let page = inbox.page(0, 10, &[]).unwrap();
        assert_eq!((page.0, ids(&page)), (3, vec![1, 2, 3]));
        assert_eq!(page.1[1].state, vec![2]);
        // Read again from the same place (the follower did not move): the
        // same rows.
        assert_eq!(ids(&inbox.page(0, 10, &[]).unwrap()), vec![1, 2, 3]);
        let page = inbox.page(1, 1, &["A"]).unwrap();
        assert_eq!((page.0, ids(&page)), (3, vec![3]));
        assert_eq!(ids(&inbox.page(3, 10, &[]).unwrap()), Vec::<u64>::new());
        // Behind what it let go, or past what it saw: not served.
        assert!(inbox.page(0, 10, &[]).is_none());
        assert!(inbox.page(4, 10, &[]).is_none());
    }

    #[test]
    fn a_gap_empties_it_until_a_run_starts_after_the_position() {
        let inbox = Inbox::default();
        inbox.push(&[1], &[event("A", 1)], None);
        // Id 2 was committed without this inbox being told.
        inbox.push(&[3], &[event("A", 3)], None);
        assert!(inbox.page(0, 10, &[]).is_none());
        assert!(inbox.page(1, 10, &[]).is_none());
        assert_eq!(ids(&inbox.page(2, 10, &[]).unwrap()), vec![3]);
        // Out of order, or not consecutive within a commit: emptied.
        inbox.push(&[5, 7], &[event("A", 5), event("A", 7)], None);
        assert!(inbox.page(3, 10, &[]).is_none());
        assert!(inbox.page(4, 10, &[]).is_none());
    }

    #[test]
    fn keeps_only_wanted_events_but_every_id() {
        let inbox = Inbox::default();
        inbox.push(
            &[1, 2, 3],
            &[event("A", 1), event("B", 2), event("A", 3)],
            Some(&["A"]),
        );
        let page = inbox.page(0, 10, &[]).unwrap();
        assert_eq!((page.0, ids(&page)), (3, vec![1, 3]));
    }

    #[test]
    fn empties_past_its_capacity() {
        let inbox = Inbox::default();
        let events: Vec<_> = (0..=CAPACITY).map(|_| event("A", 1)).collect();
        let ids: Vec<u64> = (1..=events.len() as u64).collect();
        inbox.push(&ids, &events, None);
        assert!(inbox.page(0, 10, &[]).is_none());
    }
}
