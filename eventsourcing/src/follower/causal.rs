//! Partitions and causal dependencies.
//!
//! A follower split into `count` partitions hands partition `index` the
//! upstream events whose aggregate falls in it ([`Partition::owns`]), so
//! each aggregate's events stay in order on one worker, and each partition
//! moves a tracking row of its own.
//!
//! Partitions of a follower run side by side, so a downstream follower
//! may see two events of its upstream log in another order than they
//! were caused in. To stop that, a process application whose events feed
//! a partitioned follower records, with the events each handler records,
//! the place in its own log of the latest event of every other aggregate
//! that handler read (`"$meta"."dependencies"`, FORMAT.md), and the
//! partition that recorded it. A partitioned downstream follower does not handle
//! such an event until each of its partitions has passed those places:
//! whatever the read aggregates' events caused downstream is recorded
//! first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::policy::Envelope;
use super::watch::Shared;
use crate::application::Application;
use crate::domain::Metadata;
use crate::error::Result;

/// Which share of a follower's upstream events one worker handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Partition {
    index: u32,
    count: u32,
}

impl Partition {
    /// Partition `index` of `count` (`None` when `index` is not below
    /// `count`).
    #[must_use]
    pub fn new(index: u32, count: u32) -> Option<Partition> {
        (index < count).then_some(Partition { index, count })
    }

    /// The whole: one partition of one.
    #[must_use]
    pub fn whole() -> Partition {
        Partition { index: 0, count: 1 }
    }

    /// Which partition this is, from 0.
    #[must_use]
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many partitions there are.
    #[must_use]
    pub fn count(self) -> u32 {
        self.count
    }

    /// The partition, of `count`, that the events of aggregate `id` go
    /// to: the id's 128 bits modulo `count`. Stable across processes,
    /// machines and releases (it is part of what a tracking row means).
    #[must_use]
    pub fn of(id: Uuid, count: u32) -> u32 {
        let count = u128::from(count.max(1));
        u32::try_from(id.as_u128() % count).unwrap_or(0)
    }

    /// Whether events of aggregate `id` are this partition's.
    #[must_use]
    pub fn owns(self, id: Uuid) -> bool {
        self.count <= 1 || Partition::of(id, self.count) == self.index
    }
}

/// One causal dependency of a recorded event: notification
/// `notification_id` of application `upstream` (recorded by its partition
/// `partition`) must be handled downstream first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// The application whose log holds the notification.
    pub upstream: String,
    /// The partition of that application's follower that recorded it (0
    /// when it was not recorded by a partitioned follower).
    pub partition: u32,
    /// Its place in that log.
    pub notification_id: u64,
}

impl Dependency {
    /// The dependencies in an event's metadata (none when it has none;
    /// entries that are not well formed are passed over).
    #[must_use]
    pub fn read(metadata: &Metadata) -> Vec<Dependency> {
        let Some(Value::Array(list)) = metadata.get("dependencies") else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|entry| {
                let entry = entry.as_object()?;
                Some(Dependency {
                    upstream: entry.get("upstream")?.as_str()?.to_owned(),
                    partition: u32::try_from(entry.get("partition")?.as_u64()?).ok()?,
                    notification_id: entry.get("notification_id")?.as_u64()?,
                })
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("upstream".to_owned(), Value::from(self.upstream.as_str()));
        entry.insert("partition".to_owned(), Value::from(self.partition));
        entry.insert(
            "notification_id".to_owned(),
            Value::from(self.notification_id),
        );
        Value::Object(entry)
    }
}

/// The metadata key a partitioned follower stamps its partition under.
const PARTITION_KEY: &str = "partition";

/// What a process application records about causes: set when its events
/// feed a partitioned follower, or when it is partitioned itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Causal {
    /// This worker's partition, stamped on what it records.
    pub(crate) partition: Option<Partition>,
    /// Whether to record dependencies at all.
    pub(crate) record: bool,
}

/// The dependencies a batch has gathered so far, per aggregate: the
/// events an aggregate records depend on what was read by the handlers
/// that got or created it.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    causal: Causal,
    /// The stored latest event of each aggregate read in this batch.
    read: HashMap<Uuid, Dependency>,
    /// What the handler now running has read, and which aggregates it got
    /// or created.
    reads_now: Vec<Uuid>,
    touched_now: Vec<Uuid>,
    /// What each aggregate's events depend on.
    of: HashMap<Uuid, Vec<Dependency>>,
}

impl Gathered {
    pub(crate) fn new(causal: Causal) -> Gathered {
        Gathered {
            causal,
            ..Gathered::default()
        }
    }

    /// Notes that the handler now running got aggregate `id` (at
    /// `version`, as stored, when it was not collected already): its
    /// stored latest event becomes a dependency of what the handler
    /// records on other aggregates.
    pub(crate) fn got(&mut self, app: &Application, id: Uuid, stored: Option<u64>) -> Result<()> {
        if !self.causal.record {
            return Ok(());
        }
        self.touched(id);
        if let Some(version) = stored.filter(|&v| v > 0)
            && !self.read.contains_key(&id)
            && let Some(dependency) = latest(app, id, version)?
        {
            self.read.insert(id, dependency);
        }
        if self.read.contains_key(&id) && !self.reads_now.contains(&id) {
            self.reads_now.push(id);
        }
        Ok(())
    }

    /// Notes that the handler now running created or got aggregate `id`.
    pub(crate) fn touched(&mut self, id: Uuid) {
        if self.causal.record && !self.touched_now.contains(&id) {
            self.touched_now.push(id);
        }
    }

    /// The handler now running has returned: what it touched depends on
    /// what it read (an aggregate never on itself: its own events are in
    /// order already).
    pub(crate) fn end_handler(&mut self) {
        for id in std::mem::take(&mut self.touched_now) {
            for read in &self.reads_now {
                let Some(dependency) = self.read.get(read).filter(|_| *read != id) else {
                    continue;
                };
                let list = self.of.entry(id).or_default();
                if !list.contains(dependency) {
                    list.push(dependency.clone());
                }
            }
        }
        self.reads_now.clear();
    }

    /// The metadata to stamp on every event of the batch: the partition
    /// that recorded it, if partitioned.
    pub(crate) fn metadata(&self) -> Metadata {
        let mut metadata = Metadata::new();
        if let Some(partition) = self.causal.partition.filter(|p| p.count > 1) {
            metadata = metadata.with(PARTITION_KEY, partition.index);
        }
        metadata
    }

    /// The metadata to stamp on the events of aggregate `id`: its
    /// dependencies, if it has any.
    pub(crate) fn metadata_of(&self, id: Uuid) -> Option<Metadata> {
        let list = self.of.get(&id).filter(|list| !list.is_empty())?;
        let list: Vec<Value> = list.iter().map(Dependency::to_json).collect();
        Some(Metadata::new().with("dependencies", Value::Array(list)))
    }
}

/// Where the event at `version` of aggregate `id` sits in `app`'s log, and
/// which partition recorded it.
fn latest(app: &Application, id: Uuid, version: u64) -> Result<Option<Dependency>> {
    let recorder = app.event_store().recorder();
    let Some(row) = recorder.select_notification_of(id, version)? else {
        return Ok(None);
    };
    let notification_id = row.id;
    let event = app.notification_log().decode(row)?;
    let partition = event
        .metadata()?
        .get(PARTITION_KEY)
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    Ok(Some(Dependency {
        upstream: app.name().to_owned(),
        partition,
        notification_id,
    }))
}

/// Whether downstream followers check dependencies (on unless a test
/// turned it off to show what goes wrong without).
static CHECK: AtomicBool = AtomicBool::new(true);

/// Turns the dependency check off (`false`) or on; for tests only.
pub(crate) fn set_check(on: bool) {
    CHECK.store(on, Ordering::SeqCst);
}

/// The notification id `envelope` has to wait for in the log it came
/// from: the greatest of its dependencies on that log, if any.
pub(crate) fn waits_for(envelope: &Envelope) -> Result<Option<u64>> {
    if !CHECK.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let metadata = envelope.metadata()?;
    Ok(Dependency::read(&metadata)
        .into_iter()
        .filter(|d| d.upstream == envelope.upstream())
        .map(|d| d.notification_id)
        .max())
}

/// The running partitions of each follower in this process, so that one
/// that commits wakes the others at once (one of them may be waiting for
/// what it just recorded).
static SIBLINGS: Mutex<Option<HashMap<String, Vec<Weak<Shared>>>>> = Mutex::new(None);

/// Lists a running partition of follower `name` among its siblings.
pub(crate) fn join(name: &str, shared: &Arc<Shared>) {
    let mut siblings = SIBLINGS.lock().unwrap_or_else(PoisonError::into_inner);
    let list = siblings
        .get_or_insert_with(HashMap::new)
        .entry(name.to_owned())
        .or_default();
    list.retain(|s| s.strong_count() > 0);
    list.push(Arc::downgrade(shared));
}

/// Wakes the running partitions of follower `name` in this process.
pub(crate) fn wake_siblings(name: &str) {
    let siblings = SIBLINGS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(list) = siblings.as_ref().and_then(|map| map.get(name)) {
        for sibling in list.iter().filter_map(Weak::upgrade) {
            sibling.doorbell.ring();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_share_out_every_id_once() {
        for count in 1..6 {
            for _ in 0..200 {
                let id = Uuid::new_v4();
                let owners = (0..count)
                    .filter(|&i| Partition::new(i, count).is_some_and(|p| p.owns(id)))
                    .count();
                assert_eq!(owners, 1);
            }
        }
        assert!(Partition::new(2, 2).is_none());
    }

    #[test]
    fn dependencies_round_trip_through_metadata() {
        let mut gathered = Gathered::new(Causal {
            partition: Partition::new(1, 3),
            record: true,
        });
        let (read, made) = (Uuid::new_v4(), Uuid::new_v4());
        let dependency = Dependency {
            upstream: "Reservations".into(),
            partition: 2,
            notification_id: 41,
        };
        gathered.read.insert(read, dependency.clone());
        gathered.reads_now.push(read);
        gathered.touched(read);
        gathered.touched(made);
        gathered.end_handler();
        let metadata = gathered.metadata();
        assert_eq!(metadata.get("partition").and_then(Value::as_u64), Some(1));
        let of_made = gathered.metadata_of(made).unwrap();
        assert_eq!(Dependency::read(&of_made), [dependency]);
        // An aggregate does not depend on itself.
        assert!(gathered.metadata_of(read).is_none());
        assert!(Dependency::read(&Metadata::new()).is_empty());
    }
}
