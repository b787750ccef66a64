//! When a system is quiescent: every follower has passed every event of
//! the logs it follows that it has a handler for (the events after its
//! recorded position, if any, are of other topics: followers of a system
//! do not commit moves over those on their own), and no log grew while
//! that was being checked. Read from the database, so it holds whichever
//! process or machine the followers run in.

use super::definition::System;
use crate::application::Application;
use crate::error::Result;
use crate::recorder::TrackingKey;

/// Whether every tracking row of the system is at its upstream's head,
/// the heads read before and after the rows being the same.
pub(crate) fn is_quiescent(system: &System, apps: &[Application]) -> Result<bool> {
    let heads = heads(apps)?;
    let def = &system.inner;
    for (app, partition) in def.units() {
        let recorder = apps[app].event_store().recorder();
        let topics = def.apps[app].handles();
        for upstream in def.upstreams(app) {
            let key = TrackingKey::new(def.apps[app].name(), def.apps[upstream].name())
                .partition(partition);
            let at = recorder
                .select_tracking(&key)?
                .map_or(0, |position| position.notification_id);
            if at < heads[upstream] {
                let Some(topics) = &topics else {
                    return Ok(false);
                };
                let wanted = apps[upstream]
                    .event_store()
                    .recorder()
                    .select_notifications(at + 1, 1, topics)?;
                if wanted.first().is_some_and(|row| row.id <= heads[upstream]) {
                    return Ok(false);
                }
            }
        }
    }
    Ok(heads == self::heads(apps)?)
}

fn heads(apps: &[Application]) -> Result<Vec<u64>> {
    apps.iter()
        .map(|app| app.event_store().recorder().max_notification_id())
        .collect()
}
