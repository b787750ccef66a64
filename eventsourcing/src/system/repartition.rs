//! Changing how many partitions an application follows in, without
//! handling anything twice or skipping anything.
//!
//! The count an application last ran with is kept in the followers table,
//! under the name `<application>#partitions` (kind `partitions`, the count
//! as its version; 1 when there is no such row). When the system now says
//! another count, for each upstream: the old partitions are brought level
//! (each one that is behind the furthest runs until it reaches it, and no
//! further), then every new partition's row is set to that common place,
//! and the count is stored. From there on, each new partition handles
//! exactly the events after the common place that are its own.

use super::definition::System;
use crate::application::Application;
use crate::error::Result;
use crate::recorder::{Batch, Recorder, Registration, TrackingKey, TrackingUpdate};

/// The kind of the registration that keeps a partition count.
const KIND: &str = "partitions";

/// Brings every application whose partition count changed to the new
/// count (see the module's documentation).
pub(crate) fn level(system: &System, apps: &[Application]) -> Result<()> {
    let def = &system.inner;
    for app in 0..def.apps.len() {
        let upstreams = def.upstreams(app);
        if upstreams.is_empty() {
            continue;
        }
        let name = def.apps[app].name();
        let recorder = apps[app].event_store().recorder();
        let marker = format!("{name}#{KIND}");
        let held = recorder.register_follower(&Registration::new(marker.clone(), KIND, 1))?;
        let (had, wanted) = (held.version.max(1), def.partitions[app]);
        if had == wanted {
            continue;
        }
        for &upstream in &upstreams {
            let key = TrackingKey::new(name, def.apps[upstream].name());
            let positions = (0..had)
                .map(|p| position(&**recorder, &key.clone().partition(p)))
                .collect::<Result<Vec<u64>>>()?;
            let level = positions.iter().copied().max().unwrap_or(0);
            for (p, &at) in (0..had).zip(&positions) {
                if at < level {
                    let mut worker =
                        system.worker_of(apps, app, &[upstream], p, had, Some(level), None)?;
                    worker.run_until_caught_up()?;
                }
            }
            for p in 0..wanted {
                let key = key.clone().partition(p);
                let at = recorder.raise_epoch(&key)?;
                if at.notification_id != level {
                    let update = TrackingUpdate::new(key, at.epoch, at.notification_id, level);
                    recorder.insert(&Batch::new(&[]).with_tracking(&update))?;
                }
            }
        }
        recorder.update_follower(&Registration::new(marker, KIND, wanted))?;
    }
    Ok(())
}

fn position(recorder: &dyn Recorder, key: &TrackingKey) -> Result<u64> {
    Ok(recorder
        .select_tracking(key)?
        .map_or(0, |at| at.notification_id))
}
