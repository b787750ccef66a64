//! Transactions that run a follower's own statements with a tracking
//! update: a projection into SQL tables writes its rows, its position and
//! its parked changes in one transaction (`transact`), and is rebuilt in
//! one (`rebuild`).

use postgres::Transaction;
use postgres::types::ToSql;
use uuid::Uuid;

use super::PostgresRecorder;
use super::errors::{Call, Failure, is_tracking_conflict};
use super::followers::ParkedStatements;
use super::sql::Query;
use crate::crash;
use crate::error::{Error, Result};
use crate::recorder::{
    Batch, Registration, TrackingKey, rewind_conflict, signed_changes, signed_rewind,
    signed_update, tracking_conflict,
};

/// The error of a `work` closure asked to run a second time: `run` calls
/// its step once for a write, so this cannot happen.
fn ran_twice() -> Failure {
    Failure::Other(Error::Database(
        "a follower's statements were asked to run twice".into(),
    ))
}

impl PostgresRecorder {
    /// Runs `work` (a follower's own statements, say the rows of a
    /// projection), then the batch's tracking compare-and-set and parked
    /// changes, in one explicit transaction on a pooled connection, and
    /// commits; returns what `work` returned, and no notification ids.
    ///
    /// A batch with events is refused with [`Error::InvalidArgument`]
    /// before anything runs: the events must be the transaction's first
    /// write, before any of `work`'s, or a reader of the notification log
    /// could pass over them for good (the gap-free reading rule,
    /// docs/gap-free-log.md). A follower that records events writes them
    /// with [`Recorder::insert`](crate::recorder::Recorder::insert).
    ///
    /// All or nothing: when `work` fails, or the compare-and-set does
    /// ([`Error::TrackingConflict`]), or a parked change
    /// ([`Error::NotParked`]...), or the commit, everything rolls back,
    /// `work`'s rows included, and that error is returned. `work` must not
    /// end the transaction itself. Like every write, it is never run twice:
    /// a connection lost on the way is [`Error::Database`], and a lost
    /// answer to the commit leaves the outcome unknown (read the position
    /// to see). The crash points `after_insert` and `before_commit` come
    /// after the compare-and-set and the parked changes.
    /// Runs `read` with a pooled connection, outside any transaction of
    /// the recorder's: for querying a projection's tables. `read`'s error
    /// comes back as [`Error::Database`]; a connection on which it failed
    /// is closed rather than reused.
    ///
    /// ```no_run
    /// use eventsourcing::recorder::{PostgresOptions, PostgresRecorder};
    ///
    /// let recorder = PostgresRecorder::open(PostgresOptions::new("postgres://localhost/test"))?;
    /// let balance: i64 = recorder.read_with(|client| {
    ///     Ok(client.query_one("SELECT sum(balance) FROM balances", &[])?.get(0))
    /// })?;
    /// # Ok::<(), eventsourcing::Error>(())
    /// ```
    pub fn read_with<T>(
        &self,
        read: impl FnOnce(&mut postgres::Client) -> std::result::Result<T, crate::follower::BoxError>,
    ) -> Result<T> {
        let mut lease = self.lease(Call::Read)?;
        let result = read(&mut lease.connection()?.client);
        if result.is_err() {
            lease.discard();
        }
        result.map_err(Error::Database)
    }

    pub(crate) fn transact<T>(
        &self,
        batch: &Batch<'_>,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<(T, Vec<u64>)> {
        if !batch.events.is_empty() {
            return Err(Error::InvalidArgument {
                name: "batch",
                reason: "a follower's own statements cannot share a transaction with events on \
                         PostgreSQL: the events must be its first write, for the gap-free log"
                    .to_owned(),
            });
        }
        let tracking = batch
            .tracking
            .map(|update| Ok::<_, Error>((update, signed_update(update)?)))
            .transpose()?;
        let parked = signed_changes(batch.parked)?;
        // The compare-and-set is the insert function's, called without
        // events: no lock, no id, no notification.
        let lock_table = false;
        let (ids, versions, topics, states) = (
            Vec::<Uuid>::new(),
            Vec::<i64>::new(),
            Vec::<&str>::new(),
            Vec::<&[u8]>::new(),
        );
        let mut work = Some(work);
        let value = self.run(Call::Write, |connection| {
            let compare_and_set = match tracking {
                Some(_) => Some(connection.statement(&self.sql, Query::InsertBatch)?),
                None => None,
            };
            let parked_sql = ParkedStatements::prepare(connection, &self.sql)?;
            let work = work.take().ok_or_else(ran_twice)?;
            // Dropping `tx` without a commit rolls it back.
            let mut tx = connection.client.transaction()?;
            let value = work(&mut tx)?;
            if let (Some(statement), Some((update, signed))) = (&compare_and_set, tracking) {
                let params: [&(dyn ToSql + Sync); 11] = [
                    &lock_table,
                    &ids,
                    &versions,
                    &topics,
                    &states,
                    &update.key.follower,
                    &update.key.upstream,
                    &signed.partition,
                    &signed.expected,
                    &signed.notification_id,
                    &signed.epoch,
                ];
                match tx.query_one(statement, &params) {
                    Ok(_) => {}
                    Err(error) if is_tracking_conflict(&error) => {
                        return Err(Failure::Other(tracking_conflict(update)));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            parked_sql.write(&mut tx, &parked)?;
            crash::point("after_insert");
            crash::point("before_commit");
            tx.commit()?;
            Ok(value)
        })?;
        Ok((value, Vec::new()))
    }

    /// Rebuilds a follower in one explicit transaction: runs `work` (its
    /// reset and setup), moves each tracking row of `rewind` back to
    /// notification 0 provided that it still has the given epoch, deletes
    /// every parked row of `registration.follower`, stores `registration`
    /// (in place of the follower's), and commits.
    ///
    /// All or nothing: a row at another epoch (another worker took it over)
    /// is [`Error::TrackingConflict`], with `expected` 0; that, a failure of
    /// `work`, or of any statement, rolls everything back. A partition or
    /// epoch beyond its column is [`Error::InvalidArgument`], before
    /// anything runs.
    pub(crate) fn rebuild(
        &self,
        rewind: &[(TrackingKey, u64)],
        registration: &Registration,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<()>,
    ) -> Result<()> {
        let signed = rewind
            .iter()
            .map(|(key, epoch)| signed_rewind(key, *epoch))
            .collect::<Result<Vec<_>>>()?;
        let version = i64::from(registration.version);
        let mut work = Some(work);
        self.run(Call::Write, |connection| {
            let rewind_row = connection.statement(&self.sql, Query::RewindTracking)?;
            let select_row = connection.statement(&self.sql, Query::SelectTracking)?;
            let delete_parked = connection.statement(&self.sql, Query::DeleteParkedOfFollower)?;
            let store = connection.statement(&self.sql, Query::UpdateFollower)?;
            let work = work.take().ok_or_else(ran_twice)?;
            let mut tx = connection.client.transaction()?;
            work(&mut tx)?;
            for ((key, epoch), (partition, signed_epoch)) in rewind.iter().zip(&signed) {
                let key_params: [&(dyn ToSql + Sync); 3] =
                    [&key.follower, &key.upstream, partition];
                let moved = tx.execute(
                    &rewind_row,
                    &[&key.follower, &key.upstream, partition, signed_epoch],
                )?;
                // A missing row is at notification 0, epoch 0 already.
                let fine = moved == 1
                    || (*epoch == 0 && tx.query_opt(&select_row, &key_params)?.is_none());
                if !fine {
                    return Err(Failure::Other(rewind_conflict(key, *epoch)));
                }
            }
            tx.execute(&delete_parked, &[&registration.follower])?;
            tx.execute(
                &store,
                &[&registration.follower, &registration.kind, &version],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}
