//! Transactions that run a follower's own statements with a batch: a
//! projection into SQL tables writes its rows, its tracking update and its
//! parked changes in one transaction (`transact`), and is rebuilt in one
//! (`rebuild`).

use rusqlite::{Transaction, TransactionBehavior};

use super::{Checked, SqliteRecorder, db};
use crate::crash;
use crate::error::{Error, Result};
use crate::recorder::{Batch, Registration, TrackingKey, signed_rewind};

/// The error of a follower's statements that ended the transaction they
/// were given (a `COMMIT` or `ROLLBACK` of their own).
fn ended_by_work() -> Error {
    Error::InvalidArgument {
        name: "work",
        reason: "the follower's statements ended the transaction they were given".to_owned(),
    }
}

impl SqliteRecorder {
    /// Runs `work` (a follower's own statements, say the rows of a
    /// projection), then writes `batch` (its events, parked changes and
    /// tracking compare-and-set), in one `BEGIN IMMEDIATE` transaction on
    /// the writer connection, and commits; returns what `work` returned and
    /// the events' notification ids.
    ///
    /// All or nothing: when `work` fails, or the batch does (a tracking
    /// conflict, a concurrency conflict, [`Error::NotParked`]...), or the
    /// commit does, everything rolls back, what `work` wrote included, and
    /// that error is returned. `work` must not end the transaction itself
    /// (the batch is then refused with [`Error::InvalidArgument`]). It runs
    /// with the writer's lock held: other writes of this recorder wait.
    /// The crash points `after_insert` and `before_commit` come after the
    /// batch.
    pub(crate) fn transact<T>(
        &self,
        batch: &Batch<'_>,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<(T, Vec<u64>)> {
        let checked = Checked::new(batch)?;
        let mut conn = self.writer()?;
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        // Dropping `tx` on any error below rolls back.
        let value = work(&mut tx)?;
        if tx.is_autocommit() {
            return Err(ended_by_work());
        }
        let ids = self.write_batch(&tx, &checked)?;
        crash::point("after_insert");
        crash::point("before_commit");
        tx.commit().map_err(db)?;
        Ok((value, ids))
    }

    /// Rebuilds a follower in one transaction: runs `work` (its reset and
    /// setup), moves each tracking row of `rewind` back to notification 0
    /// provided that it still has the given epoch, deletes every parked
    /// row of `registration.follower`, stores `registration` (in place of
    /// the follower's), and commits.
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
        let mut conn = self.writer()?;
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        work(&mut tx)?;
        if tx.is_autocommit() {
            return Err(ended_by_work());
        }
        for ((key, epoch), signed) in rewind.iter().zip(signed) {
            self.rewind(&tx, key, *epoch, signed)?;
        }
        tx.prepare_cached(&self.sql.followers.delete_parked_of_follower)
            .and_then(|mut delete| delete.execute([registration.follower.as_str()]))
            .map_err(db)?;
        self.store_registration(&tx, registration)?;
        tx.commit().map_err(db)
    }
}
