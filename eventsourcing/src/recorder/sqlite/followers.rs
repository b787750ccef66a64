//! The `followers` and `parked` tables in SQLite: registrations, parked
//! notifications, and the parked changes written with a batch.

use rusqlite::Connection;
use uuid::Uuid;

use super::rows::{read_parked, read_registration};
use super::{SqliteRecorder, db};
use crate::error::Result;
use crate::recorder::{Parked, Registration, SignedChange, already_parked, not_parked};

impl SqliteRecorder {
    /// Writes `changes`, in order, inside the writer's open transaction:
    /// a park inserts its row (one already there is refused), a release
    /// deletes each named row (one missing is [`Error::NotParked`]). On an
    /// error the caller rolls everything back.
    ///
    /// [`Error::NotParked`]: crate::Error::NotParked
    pub(super) fn write_parked(
        &self,
        conn: &Connection,
        changes: &[SignedChange<'_>],
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        for change in changes {
            match change {
                SignedChange::Park {
                    parked,
                    notification_id,
                } => {
                    let mut buffer = Uuid::encode_buffer();
                    let originator_id = parked.originator_id.hyphenated().encode_lower(&mut buffer);
                    let inserted = conn
                        .prepare_cached(&self.sql.followers.insert_parked)
                        .and_then(|mut insert| {
                            insert.execute((
                                parked.follower.as_str(),
                                parked.upstream.as_str(),
                                notification_id,
                                &*originator_id,
                                parked.topic.as_str(),
                                parked.reason.as_str(),
                            ))
                        })
                        .map_err(db)?;
                    if inserted == 0 {
                        return Err(already_parked(parked));
                    }
                }
                SignedChange::Release {
                    follower,
                    upstream,
                    notification_ids,
                    signed,
                } => {
                    let mut delete = conn
                        .prepare_cached(&self.sql.followers.delete_parked)
                        .map_err(db)?;
                    for (&id, signed) in notification_ids.iter().zip(signed) {
                        let deleted = delete.execute((follower, upstream, signed)).map_err(db)?;
                        if deleted == 0 {
                            return Err(not_parked(follower, upstream, id));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Stores `registration` in place of its follower's, or as its first
    /// one.
    pub(super) fn store_registration(
        &self,
        conn: &Connection,
        registration: &Registration,
    ) -> Result<()> {
        conn.prepare_cached(&self.sql.followers.update)
            .and_then(|mut upsert| {
                upsert.execute((
                    registration.follower.as_str(),
                    registration.kind.as_str(),
                    i64::from(registration.version),
                ))
            })
            .map_err(db)?;
        Ok(())
    }

    /// Inserts `registration` unless its follower has one, and reads back
    /// the one stored, in one write transaction.
    pub(super) fn register(&self, registration: &Registration) -> Result<Registration> {
        let follower = registration.follower.as_str();
        self.write(|conn| {
            conn.prepare_cached(&self.sql.followers.register)
                .and_then(|mut insert| {
                    insert.execute((
                        follower,
                        registration.kind.as_str(),
                        i64::from(registration.version),
                    ))
                })
                .map_err(db)?;
            let mut select = conn
                .prepare_cached(&self.sql.followers.select)
                .map_err(db)?;
            let mut rows = select.query([follower]).map_err(db)?;
            match rows.next().map_err(db)? {
                Some(row) => read_registration(row, follower),
                None => Err(crate::Error::Database(
                    format!("the registration of follower `{follower}` vanished").into(),
                )),
            }
        })
    }

    /// The notifications parked by `follower`, by upstream and id.
    pub(super) fn parked_by(&self, follower: &str) -> Result<Vec<Parked>> {
        self.read(|conn| {
            let mut select = conn
                .prepare_cached(&self.sql.followers.select_parked)
                .map_err(db)?;
            let mut rows = select.query([follower]).map_err(db)?;
            let mut parked = Vec::new();
            while let Some(row) = rows.next().map_err(db)? {
                parked.push(read_parked(row, follower)?);
            }
            Ok(parked)
        })
    }
}
