//! The in-memory recorder.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::{Bound, ControlFlow};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use super::{
    Batch, DataKeyRow, EventQuery, Notification, ParkChange, Parked, Position, Recorder,
    Registration, Rewrap, TrackingKey, TrackingUpdate, already_parked, check_key_rows,
    epoch_exhausted, not_parked, signed_changes, signed_partition, signed_update, signed_version,
    tracking_conflict,
};
use crate::error::{Error, Result};
use crate::mapper::{StoredEvent, StoredRow};

/// A recorder that keeps its rows in the process's memory.
///
/// For tests, examples and prototypes: everything is lost when it is
/// dropped. It has the same semantics as the database backends, atomic
/// multi-aggregate batches, concurrency errors and tracking
/// compare-and-sets included.
///
/// Reads take a shared lock, writes an exclusive one; rows are copied out
/// under the lock, a chunk at a time for a long history, and handed to
/// callbacks after it is released.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    tables: RwLock<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    /// `stored_events` in notification order: the row at index `i` has
    /// notification id `i + 1`.
    events: Vec<Notification>,
    /// For each aggregate, its versions and the index of each in `events`.
    by_originator: HashMap<Uuid, BTreeMap<u64, usize>>,
    /// `snapshots`, by aggregate and version.
    snapshots: HashMap<Uuid, BTreeMap<u64, StoredEvent>>,
    /// `tracking`, by follower, upstream and partition.
    tracking: HashMap<TrackingKey, Position>,
    /// `followers`, by name.
    followers: HashMap<String, Registration>,
    /// `parked`, by follower, upstream and notification id.
    parked: BTreeMap<(String, String, u64), Parked>,
    /// `aggregate_keys`, by aggregate.
    data_keys: HashMap<Uuid, DataKeyRow>,
}

impl Tables {
    fn is_recorded(&self, originator_id: Uuid, version: u64) -> bool {
        self.by_originator
            .get(&originator_id)
            .is_some_and(|versions| versions.contains_key(&version))
    }

    /// Whether `update`'s compare-and-set would succeed: the row is at the
    /// expected position and epoch, or is missing and the update expects
    /// neither (notification 0, epoch 0).
    fn tracking_fits(&self, update: &TrackingUpdate) -> bool {
        let at = self.tracking.get(&update.key).copied().unwrap_or_default();
        at.notification_id == update.expected && at.epoch == update.epoch
    }

    /// Checks that `changes` can be made, in order, before any is.
    fn check_parked(&self, changes: &[ParkChange]) -> Result<()> {
        let mut parking = BTreeSet::new();
        let mut releasing = BTreeSet::new();
        for change in changes {
            match change {
                ParkChange::Park(parked) => {
                    let key = park_key(parked);
                    let taken = self.parked.contains_key(&key) && !releasing.contains(&key);
                    if taken || !parking.insert(key) {
                        return Err(already_parked(parked));
                    }
                }
                ParkChange::Release {
                    follower,
                    upstream,
                    notification_ids,
                } => {
                    for &id in notification_ids {
                        let key = (follower.clone(), upstream.clone(), id);
                        let there = self.parked.contains_key(&key) || parking.remove(&key);
                        if !there || !releasing.insert(key) {
                            return Err(not_parked(follower, upstream, id));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_parked(&mut self, changes: &[ParkChange]) {
        for change in changes {
            match change {
                ParkChange::Park(parked) => {
                    self.parked.insert(park_key(parked), parked.clone());
                }
                ParkChange::Release {
                    follower,
                    upstream,
                    notification_ids,
                } => {
                    for &id in notification_ids {
                        self.parked
                            .remove(&(follower.clone(), upstream.clone(), id));
                    }
                }
            }
        }
    }
}

fn park_key(parked: &Parked) -> (String, String, u64) {
    (
        parked.follower.clone(),
        parked.upstream.clone(),
        parked.notification_id,
    )
}

impl MemoryRecorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    // A panic elsewhere while a lock was held cannot leave the tables half
    // written (every write checks first, then only pushes), so a poisoned
    // lock is safe to take over.
    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// At most this many rows of one aggregate are copied out under the lock at
/// a time by [`Recorder::select_events`].
const CHUNK: usize = 1024;

/// The notification id of the row at `index`.
fn notification_id(index: usize) -> u64 {
    u64::try_from(index).map_or(u64::MAX, |index| index.saturating_add(1))
}

impl Recorder for MemoryRecorder {
    fn insert(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(update) = batch.tracking {
            signed_update(update)?;
        }
        // The same bounds as the databases' columns.
        signed_changes(batch.parked)?;
        let events = batch.events;
        let mut tables = self.write();

        // Check the whole batch before writing anything.
        if let Some(update) = batch.tracking
            && !tables.tracking_fits(update)
        {
            return Err(tracking_conflict(update));
        }
        tables.check_parked(batch.parked)?;
        check_key_rows(batch.data_keys)?;
        let mut in_batch = HashSet::new();
        for event in events {
            signed_version(event)?;
            let key = (event.originator_id, event.originator_version);
            let duplicate = events.len() > 1 && !in_batch.insert(key);
            if duplicate || tables.is_recorded(key.0, key.1) {
                return Err(Error::Concurrency {
                    id: key.0,
                    version: key.1,
                });
            }
        }
        for row in batch.data_keys {
            if tables.data_keys.contains_key(&row.originator_id) {
                return Err(Error::Concurrency {
                    id: row.originator_id,
                    version: 1,
                });
            }
        }

        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let index = tables.events.len();
            let id = notification_id(index);
            tables
                .by_originator
                .entry(event.originator_id)
                .or_default()
                .insert(event.originator_version, index);
            tables.events.push(Notification {
                id,
                originator_id: event.originator_id,
                originator_version: event.originator_version,
                topic: event.topic.clone(),
                state: event.state.clone(),
            });
            ids.push(id);
        }
        if let Some(update) = batch.tracking {
            let moved = Position {
                notification_id: update.notification_id,
                epoch: update.epoch,
            };
            match tables.tracking.get_mut(&update.key) {
                Some(at) => *at = moved,
                None => {
                    tables.tracking.insert(update.key.clone(), moved);
                }
            }
        }
        tables.apply_parked(batch.parked);
        for row in batch.data_keys {
            tables.data_keys.insert(row.originator_id, row.clone());
        }
        for id in batch.forgotten {
            tables.data_keys.remove(id);
            tables.snapshots.remove(id);
        }
        Ok(ids)
    }

    fn select_data_key(&self, id: Uuid) -> Result<Option<DataKeyRow>> {
        Ok(self.read().data_keys.get(&id).cloned())
    }

    fn select_data_keys(
        &self,
        except: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DataKeyRow>> {
        let tables = self.read();
        let mut rows: Vec<&DataKeyRow> = tables
            .data_keys
            .values()
            .filter(|row| row.key_fingerprint != except)
            .filter(|row| after.is_none_or(|after| row.originator_id > after))
            .collect();
        rows.sort_by_key(|row| row.originator_id);
        Ok(rows.into_iter().take(limit).cloned().collect())
    }

    fn rewrap_data_keys(&self, rewraps: &[Rewrap]) -> Result<usize> {
        let mut tables = self.write();
        let mut changed = 0;
        for rewrap in rewraps {
            if let Some(row) = tables.data_keys.get_mut(&rewrap.row.originator_id)
                && row.key_fingerprint == rewrap.expected
            {
                row.wrapped_key.clone_from(&rewrap.row.wrapped_key);
                row.key_fingerprint.clone_from(&rewrap.row.key_fingerprint);
                changed += 1;
            }
        }
        Ok(changed)
    }

    fn select_events(
        &self,
        query: &EventQuery,
        each: &mut dyn FnMut(StoredRow<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        // Rows are copied out a chunk at a time and handed over after the
        // lock is released, so that a long history is never copied whole.
        let mut query = *query;
        let mut remaining = query.limit.unwrap_or(usize::MAX);
        let mut first = true;
        while remaining > 0 {
            let take = remaining.min(CHUNK);
            let chunk: Vec<StoredEvent> = {
                let tables = self.read();
                let Some(versions) = tables.by_originator.get(&query.originator_id) else {
                    return Ok(());
                };
                if first && !query.descending {
                    // Only what is recorded now, as one query of a database
                    // would read: nothing appended while callbacks run.
                    let Some((&last, _)) = versions.last_key_value() else {
                        return Ok(());
                    };
                    query.to_version = Some(query.to_version.map_or(last, |to| to.min(last)));
                }
                first = false;
                if let (Some(after), Some(to)) = (query.after_version, query.to_version)
                    && to <= after
                {
                    return Ok(());
                }
                let lower = query
                    .after_version
                    .map_or(Bound::Unbounded, Bound::Excluded);
                let upper = query.to_version.map_or(Bound::Unbounded, Bound::Included);
                let range = versions.range((lower, upper));
                let row = |(_, &index): (&u64, &usize)| tables.events.get(index);
                let copy = |row: &Notification| row.clone().into_event();
                if query.descending {
                    range.rev().filter_map(row).take(take).map(copy).collect()
                } else {
                    range.filter_map(row).take(take).map(copy).collect()
                }
            };
            let Some(last) = chunk.last().map(|event| event.originator_version) else {
                return Ok(());
            };
            let len = chunk.len();
            for event in &chunk {
                if each(event.as_row())?.is_break() {
                    return Ok(());
                }
            }
            remaining = remaining.saturating_sub(len);
            if len < take {
                return Ok(());
            }
            if query.descending {
                let Some(below) = last.checked_sub(1) else {
                    return Ok(());
                };
                query.to_version = Some(below);
            } else {
                query.after_version = Some(last);
            }
        }
        Ok(())
    }

    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        let tables = self.read();
        let Some(first) = usize::try_from(start.saturating_sub(1))
            .ok()
            .and_then(|first| tables.events.get(first..))
        else {
            return Ok(Vec::new());
        };
        Ok(first
            .iter()
            .filter(|row| topics.is_empty() || topics.contains(&row.topic.as_str()))
            .take(limit)
            .cloned()
            .collect())
    }

    fn max_notification_id(&self) -> Result<u64> {
        Ok(u64::try_from(self.read().events.len()).unwrap_or(u64::MAX))
    }

    fn select_notification_of(
        &self,
        originator_id: Uuid,
        originator_version: u64,
    ) -> Result<Option<Notification>> {
        let tables = self.read();
        Ok(tables
            .by_originator
            .get(&originator_id)
            .and_then(|versions| versions.get(&originator_version))
            .and_then(|&index| tables.events.get(index))
            .cloned())
    }

    fn insert_snapshot(&self, snapshot: &StoredEvent) -> Result<bool> {
        signed_version(snapshot)?;
        let mut tables = self.write();
        let versions = tables.snapshots.entry(snapshot.originator_id).or_default();
        if versions.contains_key(&snapshot.originator_version) {
            return Ok(false);
        }
        versions.insert(snapshot.originator_version, snapshot.clone());
        Ok(true)
    }

    fn select_snapshot(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
    ) -> Result<Option<StoredEvent>> {
        let tables = self.read();
        let Some(versions) = tables.snapshots.get(&originator_id) else {
            return Ok(None);
        };
        let latest = versions
            .range(..=to_version.unwrap_or(u64::MAX))
            .next_back();
        Ok(latest.map(|(_, snapshot)| snapshot.clone()))
    }

    fn select_positions(&self) -> Result<Option<Vec<(TrackingKey, Position)>>> {
        let mut rows: Vec<_> = self
            .read()
            .tracking
            .iter()
            .map(|(key, at)| (key.clone(), *at))
            .collect();
        rows.sort_by(|(a, _), (b, _)| {
            (&a.follower, &a.upstream, a.partition).cmp(&(&b.follower, &b.upstream, b.partition))
        });
        Ok(Some(rows))
    }

    fn select_tracking(&self, key: &TrackingKey) -> Result<Option<Position>> {
        signed_partition(key)?;
        Ok(self.read().tracking.get(key).copied())
    }

    fn raise_epoch(&self, key: &TrackingKey) -> Result<Position> {
        signed_partition(key)?;
        let mut tables = self.write();
        let Some(at) = tables.tracking.get_mut(key) else {
            let taken = Position {
                notification_id: 0,
                epoch: 1,
            };
            tables.tracking.insert(key.clone(), taken);
            return Ok(taken);
        };
        // The same bound as the databases' signed 64-bit column.
        if i64::try_from(at.epoch).map_or(true, |epoch| epoch == i64::MAX) {
            return Err(epoch_exhausted(key));
        }
        at.epoch += 1;
        Ok(*at)
    }

    fn register_follower(&self, registration: &Registration) -> Result<Registration> {
        let mut tables = self.write();
        Ok(tables
            .followers
            .entry(registration.follower.clone())
            .or_insert_with(|| registration.clone())
            .clone())
    }

    fn update_follower(&self, registration: &Registration) -> Result<()> {
        self.write()
            .followers
            .insert(registration.follower.clone(), registration.clone());
        Ok(())
    }

    fn select_parked(&self, follower: &str) -> Result<Vec<Parked>> {
        let tables = self.read();
        Ok(tables
            .parked
            .values()
            .filter(|parked| parked.follower == follower)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: Uuid, version: u64) -> StoredEvent {
        StoredEvent {
            originator_id: id,
            originator_version: version,
            topic: "Test.Happened".to_owned(),
            state: version.to_be_bytes().to_vec(),
        }
    }

    fn versions(recorder: &MemoryRecorder, query: &EventQuery) -> Vec<u64> {
        let mut seen = Vec::new();
        recorder
            .select_events(query, &mut |event| {
                seen.push(event.originator_version);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        seen
    }

    /// Reads longer than a chunk return what one read would: every bound,
    /// limit and direction across chunk boundaries.
    #[test]
    fn select_events_across_chunks() {
        let recorder = MemoryRecorder::new();
        let id = Uuid::from_u128(7);
        let n = u64::try_from(CHUNK).unwrap() * 2 + 5;
        let rows: Vec<_> = (1..=n).map(|v| row(id, v)).collect();
        recorder.insert_events(&rows).unwrap();
        recorder
            .insert_events(&[row(Uuid::from_u128(8), 1)])
            .unwrap();

        let all: Vec<u64> = (1..=n).collect();
        assert_eq!(versions(&recorder, &EventQuery::new(id)), all);
        let down: Vec<u64> = (1..=n).rev().collect();
        assert_eq!(
            versions(&recorder, &EventQuery::new(id).descending(true)),
            down
        );
        let query = EventQuery::new(id).after_version(3).to_version(n - 2);
        assert_eq!(versions(&recorder, &query), (4..=n - 2).collect::<Vec<_>>());
        let query = EventQuery::new(id).after_version(3).limit(CHUNK + 1);
        let expected: Vec<u64> = (4..).take(CHUNK + 1).collect();
        assert_eq!(versions(&recorder, &query), expected);
        let query = EventQuery::new(id).descending(true).limit(CHUNK * 2);
        let expected: Vec<u64> = (1..=n).rev().take(CHUNK * 2).collect();
        assert_eq!(versions(&recorder, &query), expected);
        let chunk = u64::try_from(CHUNK).unwrap();
        let query = EventQuery::new(id).limit(CHUNK);
        assert_eq!(versions(&recorder, &query), (1..=chunk).collect::<Vec<_>>());
    }

    /// Events appended while a long read hands out its chunks are not part
    /// of that read, as with a database query.
    #[test]
    fn select_events_reads_what_was_recorded_when_it_started() {
        let recorder = MemoryRecorder::new();
        let id = Uuid::from_u128(9);
        let n = u64::try_from(CHUNK).unwrap() + 10;
        let rows: Vec<_> = (1..=n).map(|v| row(id, v)).collect();
        recorder.insert_events(&rows).unwrap();
        let mut seen = 0;
        recorder
            .select_events(&EventQuery::new(id), &mut |event| {
                seen += 1;
                if event.originator_version == 1 {
                    recorder.insert_events(&[row(id, n + 1)])?;
                }
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(seen, n);
        assert_eq!(
            versions(&recorder, &EventQuery::new(id)).len() as u64,
            n + 1
        );
    }
}
