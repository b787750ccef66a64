//! A load's rows on PostgreSQL ([`Recorder::select_snapshot_and_events`]):
//! the snapshot and the first events in one statement, then the rest a
//! page at a time, each page received whole before its rows are handed on.
//!
//! [`Recorder::select_snapshot_and_events`]: crate::recorder::Recorder::select_snapshot_and_events

use postgres::types::ToSql;
use uuid::Uuid;

use super::PostgresRecorder;
use super::errors::Call;
use super::rows::read_event;
use super::sql::Query;
use crate::error::Result;
use crate::recorder::{LoadRows, clamp};

/// The events a load reads per statement: enough that a statement's round
/// trip is small beside its rows, few enough that the rows held at once
/// stay small whatever the aggregate's length.
const LOAD_PAGE: i64 = 1000;

impl PostgresRecorder {
    /// The latest snapshot of `originator_id` within `to_version` and the
    /// events from its version on, handed to `load`. A full page is
    /// followed by the next, from the last version read on: no event is
    /// handed on twice or skipped, and events appended in between are read
    /// too.
    pub(super) fn load(
        &self,
        originator_id: Uuid,
        to_version: Option<u64>,
        load: &mut LoadRows<'_>,
    ) -> Result<()> {
        let to = to_version.map_or(i64::MAX, clamp);
        let params: [&(dyn ToSql + Sync); 3] = [&originator_id, &to, &LOAD_PAGE];
        let mut rows = self.page(Query::SelectSnapshotAndEvents, &params)?;
        // The first page's rows lead with their kind (0 snapshot, 1 event);
        // the pages after it hold events only.
        let mut kinded = true;
        let mut last = 0;
        loop {
            let mut events = 0;
            for row in &rows {
                let is_event = !kinded || row.try_get::<_, i32>(0).is_ok_and(|kind| kind == 1);
                let stored = read_event(row, usize::from(kinded))?;
                if is_event {
                    events += 1;
                    last = stored.originator_version;
                }
                if load.hand(is_event, stored)?.is_break() {
                    return Ok(());
                }
            }
            if events < LOAD_PAGE {
                return Ok(());
            }
            let (after, limit) = (clamp(last), Some(LOAD_PAGE));
            let params: [&(dyn ToSql + Sync); 4] = [&originator_id, &after, &to, &limit];
            rows = self.page(Query::SelectEventsAscending, &params)?;
            kinded = false;
        }
    }

    /// The rows of the read `which`, all received before any is handed on:
    /// one wait for the whole result, where `stream` waits once per row
    /// (the `postgres` crate enters its runtime for each `next`), which
    /// costs a long load more than decoding its rows. A read whose
    /// connection was lost runs once more, as in `stream`: none of its rows
    /// was handed on.
    fn page(&self, which: Query, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        self.run(Call::Read, |connection| {
            let statement = connection.statement(&self.sql, which)?;
            Ok(connection.client.query(&statement, params)?)
        })
    }
}
