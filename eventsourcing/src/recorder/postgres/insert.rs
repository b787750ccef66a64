//! Writing a batch on PostgreSQL: one call of the insert function (events
//! and the tracking compare-and-set) in a transaction of its own, or, when
//! the batch has parked changes, that call and then the parked statements
//! in one explicit transaction.

use std::collections::HashSet;

use postgres::types::ToSql;
use uuid::Uuid;

use super::errors::{Call, Conflict, Failure, Refused, conflict_in, is_tracking_conflict};
use super::followers::ParkedStatements;
use super::sql::Query;
use super::{PostgresRecorder, Sequencing};
use crate::crash;
use crate::error::{Error, Result};
use crate::mapper::StoredEvent;
use crate::recorder::{
    Batch, corrupt, signed_changes, signed_update, signed_version, tracking_conflict,
};

/// A batch's events as the insert function's array arguments.
struct Arrays<'a> {
    ids: Vec<Uuid>,
    versions: Vec<i64>,
    topics: Vec<&'a str>,
    states: Vec<&'a [u8]>,
}

impl<'a> Arrays<'a> {
    /// The columns of `events`; a version twice in the batch is refused
    /// here, before the server draws ids for it.
    fn new(events: &'a [StoredEvent]) -> Result<Self> {
        let mut arrays = Arrays {
            ids: Vec::with_capacity(events.len()),
            versions: Vec::with_capacity(events.len()),
            topics: Vec::with_capacity(events.len()),
            states: Vec::with_capacity(events.len()),
        };
        for event in events {
            arrays.ids.push(event.originator_id);
            arrays.versions.push(signed_version(event)?);
            arrays.topics.push(event.topic.as_str());
            arrays.states.push(event.state.as_slice());
        }
        // A save's events come in ascending (id, version) order, which
        // rules out a repeat without hashing; any other order is checked
        // with a set.
        let pairs = || {
            arrays
                .ids
                .iter()
                .copied()
                .zip(arrays.versions.iter().copied())
        };
        if !pairs().zip(pairs().skip(1)).all(|(a, b)| a < b) {
            let mut in_batch = HashSet::with_capacity(events.len());
            for (event, pair) in events.iter().zip(pairs()) {
                if !in_batch.insert(pair) {
                    return Err(Error::Concurrency {
                        id: event.originator_id,
                        version: event.originator_version,
                    });
                }
            }
        }
        Ok(arrays)
    }
}

/// What a failed call of the insert function means: a refusal (recorded in
/// `refused`, the connection is fine) or a database failure.
fn refusal<T>(error: postgres::Error, refused: &mut Option<Refused>) -> Result<Option<T>, Failure> {
    if is_tracking_conflict(&error) {
        *refused = Some(Refused::Tracking);
        return Ok(None);
    }
    match conflict_in(&error) {
        Some(found) => {
            *refused = Some(Refused::Events(found));
            Ok(None)
        }
        None => Err(Failure::Database(error)),
    }
}

impl PostgresRecorder {
    /// [`Recorder::insert`](crate::recorder::Recorder::insert).
    pub(super) fn insert_batch(&self, batch: &Batch<'_>) -> Result<Vec<u64>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let events = batch.events;
        let tracking = batch
            .tracking
            .map(|update| Ok::<_, Error>((update, signed_update(update)?)))
            .transpose()?;
        let parked = signed_changes(batch.parked)?;
        let arrays = Arrays::new(events)?;
        crate::recorder::check_key_rows(batch.data_keys)?;
        let lock_table = self.sequencing == Sequencing::TableLock;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &lock_table,
            &arrays.ids,
            &arrays.versions,
            &arrays.topics,
            &arrays.states,
        ];
        // Events alone keep the statement of five parameters.
        let query = match &tracking {
            Some((update, signed)) => {
                params.extend::<[&(dyn ToSql + Sync); 6]>([
                    &update.key.follower,
                    &update.key.upstream,
                    &signed.partition,
                    &signed.expected,
                    &signed.notification_id,
                    &signed.epoch,
                ]);
                Query::InsertBatch
            }
            None => Query::InsertEvents,
        };

        let mut refused = None;
        let result = if parked.is_empty() && !batch.touches_keys() {
            // The common path: one prepared statement, committed by itself.
            self.run(Call::Batch, |connection| {
                let statement = connection.statement(&self.sql, query)?;
                match connection.client.query_one(&statement, &params) {
                    Ok(row) => Ok(Some(row.try_get::<_, Vec<i64>>(0)?)),
                    Err(error) => refusal(error, &mut refused),
                }
            })?
        } else {
            // The function call comes first: inserting the events must be
            // the transaction's first write (docs/gap-free-log.md).
            let call = !events.is_empty() || tracking.is_some();
            self.run(Call::Batch, |connection| {
                let statement = if call {
                    Some(connection.statement(&self.sql, query)?)
                } else {
                    None
                };
                let parked_sql = ParkedStatements::prepare(connection, &self.sql)?;
                // Dropping `tx` without a commit rolls it back.
                let mut tx = connection.client.transaction()?;
                let assigned = match statement {
                    Some(statement) => match tx.query_one(&statement, &params) {
                        Ok(row) => row.try_get::<_, Vec<i64>>(0)?,
                        Err(error) => return refusal(error, &mut refused),
                    },
                    None => Vec::new(),
                };
                parked_sql.write(&mut tx, &parked)?;
                self.write_keys(&mut tx, batch.data_keys, batch.forgotten)?;
                crash::point("after_insert");
                crash::point("before_commit");
                tx.commit()?;
                Ok(Some(assigned))
            })?
        };

        let Some(assigned) = result else {
            if let (Some(Refused::Tracking), Some((update, _))) = (&refused, tracking) {
                return Err(tracking_conflict(update));
            }
            let (id, version) = match refused {
                Some(Refused::Events(Conflict::Named(id, version))) => (id, version),
                _ => self
                    .find_conflict(&arrays.ids, &arrays.versions)?
                    .unwrap_or_else(|| {
                        events.first().map_or((Uuid::nil(), 0), |event| {
                            (event.originator_id, event.originator_version)
                        })
                    }),
            };
            return Err(Error::Concurrency { id, version });
        };
        notification_ids(assigned, events)
    }
}

/// The notification ids the insert function `assigned` to `events`.
fn notification_ids(assigned: Vec<i64>, events: &[StoredEvent]) -> Result<Vec<u64>> {
    if assigned.len() != events.len() {
        return Err(Error::Database(
            format!(
                "the insert function returned {} ids for {} events",
                assigned.len(),
                events.len()
            )
            .into(),
        ));
    }
    assigned
        .into_iter()
        .zip(events)
        .map(|(id, event)| {
            u64::try_from(id).map_err(|_| {
                corrupt(
                    event.originator_id,
                    event.originator_version,
                    format!("the sequence gave a negative notification_id ({id})"),
                )
            })
        })
        .collect()
}
